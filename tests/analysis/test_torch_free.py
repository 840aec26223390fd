"""satkit.analysis needs no torch: neither it nor any satkit module it imports imports torch.

Checked on the source (every import statement, also those inside functions), following
satkit imports transitively; the package root ``satkit/__init__.py`` is left out, since it
re-exports the torch heads for users of the package.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _module_path(name: str) -> Path | None:
    base = ROOT / Path(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.exists():
            return path
    return None


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def _closure(start: str) -> dict[str, set[str]]:
    """satkit module -> the names it imports, for ``start`` and every satkit module reached."""
    seen: dict[str, set[str]] = {}
    todo = [start]
    while todo:
        name = todo.pop()
        path = _module_path(name)
        if name in seen or path is None or name == "satkit":
            continue
        seen[name] = _imports(path)
        todo += [n for n in seen[name] if n.startswith("satkit.")]
    return seen


def test_analysis_and_what_it_imports_never_import_torch():
    modules = _closure("satkit.analysis")
    assert {"satkit.analysis.survival_analysis", "satkit.schema", "satkit.methods",
            "satkit.analysis.views"} <= set(modules)
    heavy = {name: sorted(n for n in imported if n == "torch" or n.startswith("torch."))
             for name, imported in modules.items()}
    assert {name: found for name, found in heavy.items() if found} == {}
