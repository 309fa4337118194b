"""The layers (docs/ARCHITECTURE.md), enforced on the sources and on a real import of the runtime.

  edge            the torch-free runtime: imports nothing of qamoe, tools or tests, and never torch
  qamoe (core)    model, spectrum, data, training: never imports edge, nor the bridge
  qamoe.build,    the bridge: code that needs both sides (engine building; corpus building and offline
  qamoe.corpus    feature extraction); may import edge and the core
  tools           thin mains: may import edge and qamoe, never tests
  tests           anything

The source scan sees every import statement, lazy ones inside functions included; the subprocess check imports
every edge module in a fresh interpreter, so a module added later is covered too."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BRIDGE = ("qamoe.build", "qamoe.corpus")


def layer(module: str) -> str:
    top = module.split(".")[0]
    if top == "qamoe":
        return "bridge" if any(module == b or module.startswith(b + ".") for b in BRIDGE) else "core"
    return top


# what each layer must never import (by the imported module's layer, or its top-level name for third parties)
FORBIDDEN = {
    "edge": {"core", "bridge", "tools", "tests", "torch"},
    "core": {"edge", "bridge", "tools", "tests"},
    "bridge": {"tools", "tests"},
    "tools": {"tests"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path) -> list[str]:
    """Absolute module names imported anywhere in the file (relative imports resolved against its package)."""
    package = module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else module_name(path)
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found += [f"{base}.{a.name}" if layer(base) in ("core", "bridge") else base for a in node.names]
    return found


def sources() -> list[Path]:
    return [p for d in ("edge", "qamoe", "tools") for p in sorted((ROOT / d).rglob("*.py"))]


def test_no_layer_imports_what_it_must_not() -> None:
    offenders = []
    for path in sources():
        own = layer(module_name(path))
        for name in imports(path):
            theirs = layer(name)
            if theirs in FORBIDDEN.get(own, set()):
                offenders.append(f"{path.relative_to(ROOT)} ({own}) imports {name} ({theirs})")
    assert offenders == [], "\n".join(offenders)


@pytest.mark.parametrize(
    ("importer", "imported", "allowed"),
    [
        ("edge.cli.live", "qamoe.models", False),
        ("edge.cli.live", "torch.nn", False),
        ("qamoe.training", "edge.windows", False),
        ("qamoe.training", "qamoe.corpus.plan", False),
        ("qamoe.corpus.plan", "edge.windows", True),
        ("qamoe.build.runner", "qamoe.models", True),
        ("tools.bench_live", "tests.support.live_fixtures", False),
        ("tools.bench_live", "qamoe.build.scratch", True),
    ],
)
def test_the_rule_itself(importer: str, imported: str, allowed: bool) -> None:
    assert (layer(imported) not in FORBIDDEN.get(layer(importer), set())) is allowed


def test_importing_every_edge_module_loads_neither_torch_nor_qamoe() -> None:
    code = (
        "import importlib, pkgutil, sys, edge\n"
        "mods = [m.name for m in pkgutil.walk_packages(edge.__path__, 'edge.')]\n"
        "for m in mods: importlib.import_module(m)\n"
        "bad = [k for k in sys.modules if k.split('.')[0] in ('torch', 'qamoe', 'tools', 'tests')]\n"
        "assert not bad, bad\n"
        "print(len(mods))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180, cwd=ROOT, check=False)
    assert r.returncode == 0, r.stderr
    assert int(r.stdout.strip()) >= 5


def test_the_core_and_the_runtime_name_the_modalities_alike() -> None:
    # the core cannot import edge.vocab: its own tuple must agree with it, order included (the engine's I/O)
    from edge.vocab import MODALITIES
    from qamoe.modality import MODALITIES as CORE

    assert tuple(m.value for m in CORE) == MODALITIES
