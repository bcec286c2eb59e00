"""python/mlpcore/_core.pyi lists everything the compiled module exports (regenerate it with
`pybind11-stubgen mlpcore._core -o python` after changing the bindings)."""

import ast
from pathlib import Path

import mlpcore as mc

STUB = Path(mc.__file__).with_name("_core.pyi")


def _stub_names() -> dict:
    tree = ast.parse(STUB.read_text())
    names: dict = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            members = set()
            if isinstance(node, ast.ClassDef):
                for sub in ast.walk(node):
                    if isinstance(sub, ast.FunctionDef):
                        members.add(sub.name)
                    elif isinstance(sub, ast.AnnAssign) and isinstance(sub.target, ast.Name):
                        members.add(sub.target.id)
            names[node.name] = members
    return names


def test_stub_covers_every_export():
    stub = _stub_names()
    core = mc._core
    public = [n for n in dir(core) if not n.startswith("__")]
    missing = [n for n in public if n not in stub]
    assert not missing, f"_core.pyi lacks {missing}"
    for name in public:
        obj = getattr(core, name)
        if isinstance(obj, type):
            attrs = [a for a in vars(obj) if not a.startswith("_")]
            lacking = [a for a in attrs if a not in stub[name]]
            assert not lacking, f"_core.pyi: {name} lacks {lacking}"
