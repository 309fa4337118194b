"""No import circles inside `edge` and `qamoe`, not even ones hidden by a local or `TYPE_CHECKING` import.

The graph is built from the sources with `ast` (nothing is imported, so the test is fast and sees every import
statement: module level, inside functions and under `if TYPE_CHECKING:`). Nodes are the modules of the two
packages; a package is the node of its `__init__.py`.

Edge rule:
- `import a.b.c` and `from a.b.c import Name` are an edge to `a.b.c` (the package's `__init__` if `a.b.c` is a
  package); `from a.b import c`, where `a.b.c` is a module or package, is an edge to `a.b.c` instead.
- No implicit edge from a module to its parent packages. Python does run `a/b/__init__.py` before `a.b.c`, but
  counting that would make every `__init__` that re-exports its submodules' names a circle with each of them.
  A re-export (`__init__` -> submodule) therefore only closes a circle when a module below it explicitly imports
  a name from the package (`from a.b import Name`), which does work only thanks to import order: a real circle.
Imports of modules outside the two packages are ignored.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("edge", "qamoe")


def _modules() -> dict[str, Path]:
    """Dotted name -> source file for every module of PACKAGES (a package is its `__init__.py`)."""
    out = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _imported(node: ast.Import | ast.ImportFrom, name: str, is_pkg: bool, modules: dict) -> Iterator[str]:
    """The in-repo modules one import statement of module `name` depends on."""
    if isinstance(node, ast.Import):
        yield from (a.name for a in node.names)
        return
    base = node.module or ""
    if node.level:  # relative: resolved against the importing module's package
        pkg = name.split(".") if is_pkg else name.split(".")[:-1]
        pkg = pkg[: len(pkg) - (node.level - 1)]
        base = ".".join([*pkg, base] if base else pkg)
    for alias in node.names:
        sub = f"{base}.{alias.name}"
        yield sub if sub in modules else base


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                targets = _imported(node, name, is_pkg, modules)
                graph[name] |= {t for t in targets if t in modules and t != name}
    return graph


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm (iterative); components with more than one member are the circles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            w = next(children, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def test_edge_and_qamoe_have_no_import_circles() -> None:
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    graph = import_graph()
    assert len(graph) > 50 and graph["edge.pipeline.runtime"], "the graph is missing modules or edges"
    circles = strongly_connected(graph)
    report = "\n".join(
        " <-> ".join(comp) + "\n    " + "\n    ".join(f"{m} -> {sorted(graph[m] & set(comp))}" for m in comp)
        for comp in circles
    )
    assert circles == [], f"import circles (move the shared definition to a module both sides can import):\n{report}"
