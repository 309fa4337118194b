"""The one hard line: the runtime (`edge`) never imports torch, nor the model package `qamoe`.

Imports every module under edge/ in a fresh interpreter (so the check covers modules added later) and also
scans the sources, since a lazy import inside a function would escape the first check."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

EDGE = Path(__file__).resolve().parents[1] / "edge"
FORBIDDEN = ("torch", "qamoe")


def test_importing_every_edge_module_loads_neither_torch_nor_qamoe() -> None:
    code = (
        "import importlib, pkgutil, sys, edge\n"
        "mods = [m.name for m in pkgutil.walk_packages(edge.__path__, 'edge.')]\n"
        "for m in mods: importlib.import_module(m)\n"
        "bad = [k for k in sys.modules if k.split('.')[0] in ('torch', 'qamoe')]\n"
        "assert not bad, bad\n"
        "print(len(mods))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    assert int(r.stdout.strip()) >= 5


def test_no_edge_source_mentions_an_import_of_torch_or_qamoe() -> None:
    offenders = []
    for path in EDGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.relative_to(EDGE.parent)}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    assert offenders == []
