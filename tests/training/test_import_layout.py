"""The training side's import layout: nothing in mlpcore.training or mlpcore.sklearn reaches
into the package root (``from mlpcore import x``, ``from .. import __version__``,
``sys.modules[__package__]``); module-level imports across the package form no cycle."""

import ast
import re
import pathlib

import mlpcore

PKG = pathlib.Path(mlpcore.__file__).parent


def _modules() -> dict:
    mods = {}
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG.parent).with_suffix("")
        name = ".".join(rel.parts)
        mods[name[: -len(".__init__")] if name.endswith(".__init__") else name] = path
    return mods


MODS = _modules()
KNOWN = set(MODS) | {"mlpcore._core"}


def _imports(name: str, path: pathlib.Path, module_level: bool):
    """(target module, imported name or None) for each import of the file."""
    tree = ast.parse(path.read_text())
    base = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    nodes = tree.body if module_level else list(ast.walk(tree))
    for node in nodes:
        if isinstance(node, ast.ImportFrom):
            if node.level:
                parts = base.split(".")
                target = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for a in node.names:
                yield target, a.name
        elif isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, None


def test_training_and_sklearn_never_use_the_package_root():
    for name, path in MODS.items():
        if not name.startswith(("mlpcore.training", "mlpcore.sklearn")):
            continue
        # no reaching the root package through sys.modules (other modules, such as IPython for
        # the notebook check, may be looked up there)
        assert not re.search(r"sys\.modules(\.get\(|\[)\s*([\"']mlpcore|__package__)", path.read_text()), name
        for target, what in _imports(name, path, module_level=False):
            if target == "mlpcore":  # only submodules may come from the root package
                assert what is not None and f"mlpcore.{what}" in KNOWN, f"{name} imports {what!r} from mlpcore"


def test_no_import_cycles_at_module_level():
    graph = {}
    for name, path in MODS.items():
        ancestors = {".".join(name.split(".")[:i]) for i in range(2, name.count(".") + 1)}
        deps = set()
        for target, what in _imports(name, path, module_level=True):
            if not target.startswith("mlpcore"):
                continue
            sub = f"{target}.{what}" if what else None
            dep = sub if sub in KNOWN else target
            if dep in MODS and dep != name and dep not in ancestors:  # parents load first anyway
                deps.add(dep)
        graph[name] = deps
    state: dict = {}

    def visit(u, path):
        state[u] = "open"
        for v in graph[u]:
            assert state.get(v) != "open", "import cycle: " + " -> ".join(path + [v])
            if v not in state:
                visit(v, path + [v])
        state[u] = "done"

    for u in graph:
        if u not in state:
            visit(u, [u])
