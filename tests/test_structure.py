"""The package's shape, checked: small modules, and imports that point one way.

A *room* is a sub-package of ``satkit`` (``satkit/hooks``) or a top-level module
(``satkit/schema.py``). Rooms must import each other without a cycle, so that they stack
in floors with every import pointing down; modules must not import each other in a cycle
inside a room either. Every ``import`` statement counts, also one inside a function (a
lazy import still ties two modules), except those under ``if TYPE_CHECKING:``. The
top-level ``satkit/__init__.py`` is the facade and ``satkit/__main__.py`` the entry point:
both may import anything, and nothing in the package may import them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "satkit"
MAX_LINES = 400
FACADE = {"satkit", "satkit.__main__"}


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(path: Path, name: str, modules: dict[str, Path]) -> set[str]:
    """The satkit modules that ``path`` (module ``name``) imports."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def resolve(target: str) -> str | None:
        while target and target not in modules:
            target = target.rpartition(".")[0]
        return target or None

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # "from satkit.hooks import recorder" imports the submodule when there is one
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                       for alias in node.names]
        else:
            targets = []
        for target in targets:
            if target.split(".")[0] == "satkit" and (module := resolve(target)):
                found.add(module)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    found.discard(name)
    return found


def _room(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2])


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return out


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(path, name, modules) for name, path in modules.items()}


def test_no_module_is_over_400_lines():
    long = {str(p.relative_to(PACKAGE.parent)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_nothing_imports_the_facade(graph):
    offenders = {m: sorted(t & FACADE) for m, t in graph.items() if m not in FACADE and t & FACADE}
    assert not offenders, f"modules importing satkit's facade (import the module itself): " \
                          f"{offenders}"


def test_rooms_import_each_other_one_way(graph):
    rooms: dict[str, set[str]] = {}
    for module, targets in graph.items():
        if module in FACADE:
            continue
        rooms.setdefault(_room(module), set()).update(
            _room(t) for t in targets if t not in FACADE and _room(t) != _room(module))
    assert not _cycles(rooms), f"rooms that import each other in a cycle: {_cycles(rooms)}"


def test_no_import_cycle_inside_a_room(graph):
    inner = {m: {t for t in targets if _room(t) == _room(m) and t != _room(m)}
             for m, targets in graph.items() if m not in FACADE}
    assert not _cycles(inner), f"modules that import each other in a cycle: {_cycles(inner)}"


def test_the_checks_see_a_cycle_and_a_long_module():
    """Known answers for the checks themselves."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []
    modules = _modules()
    hooks = _imports(modules["satkit.hooks.recorder"], "satkit.hooks.recorder", modules)
    assert "satkit.hooks.capture" in hooks and "satkit.columns" in hooks
