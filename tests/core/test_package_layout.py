"""The model side of the package is layered: no import cycles, nothing in nn / io / optim / losses /
check / _validate reaches into the package root (``from . import __version__``,
``sys.modules[__package__]``), every module imports on its own in a fresh interpreter, and no
source file grows past ~600 lines."""

import ast
import pathlib
import subprocess
import sys

import pytest

import mlpcore

ROOT = pathlib.Path(mlpcore.__file__).parent
MODEL_SIDE = ("mlpcore.nn", "mlpcore.io", "mlpcore.optim", "mlpcore.losses", "mlpcore.check", "mlpcore._validate",
              "mlpcore._version")


def _modules() -> dict:
    mods = {"mlpcore._core": None}
    for f in ROOT.rglob("*.py"):
        parts = f.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        mods[name] = f
    return mods


def _graph(mods: dict) -> dict:
    """Module -> the package modules it imports at module level."""
    graph = {}
    for name, f in mods.items():
        if f is None:
            continue
        pkg = name if f.name == "__init__.py" else name.rsplit(".", 1)[0]
        deps = set()
        for node in ast.parse(f.read_text()).body:
            if isinstance(node, ast.ImportFrom) and node.level:
                base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
                deps.update(f"{target}.{a.name}" if f"{target}.{a.name}" in mods else target for a in node.names)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                deps.update(n for n in names if n in mods)
        graph[name] = deps - {name}
    return graph


def _model_side(name: str) -> bool:
    return any(name == m or name.startswith(m + ".") for m in MODEL_SIDE)


def test_no_import_cycles_and_no_root_imports_on_the_model_side():
    graph = _graph(_modules())
    for start in filter(_model_side, graph):
        assert "mlpcore" not in graph[start], f"{start} imports the package root"
        stack, seen = [start], set()
        while stack:
            for dep in graph.get(stack.pop(), ()):
                assert dep != start, f"import cycle through {start}"
                if dep not in seen and dep != "mlpcore":
                    seen.add(dep)
                    stack.append(dep)
    for name, f in _modules().items():
        if f is not None and _model_side(name):
            text = f.read_text()
            assert "sys.modules[__package__]" not in text and "from . import __version__" not in text, name


@pytest.mark.parametrize("name", sorted(n for n in _modules() if _model_side(n)))
def test_each_module_imports_first_in_a_fresh_interpreter(name):
    proc = subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_model_side_files_stay_small():
    for name, f in _modules().items():
        if f is not None and _model_side(name):
            assert len(f.read_text().splitlines()) <= 600, f"{f} has grown past 600 lines: split it by concern"
