"""The method catalogue: the one list every part of satkit reads."""

import ast
import math
from pathlib import Path

import pytest

from satkit import methods
from satkit.methods import METHODS


def test_every_method_is_buildable_with_its_defaults_and_config_reads_them():
    from satkit.heads import make_head_and_loss
    from satkit.training import TrainConfig

    for name, method in METHODS.items():
        head, loss = make_head_and_loss(name, 4, 3)
        config = TrainConfig(loss=name)
        for setting in method.settings:
            default = getattr(config, setting.field)
            assert default is None or default == setting.default or setting.field == "margin"
        assert method.training_logits in ("none", "noise", "margin", "temperature")


@pytest.mark.parametrize("loss, alpha2, method, eff, noise", [
    ("noisy", 0.0, "softmax", 0.0, "none"), ("noisy", 0.1, "noisy", 0.1, "annealed"),
    (None, 0.0, "softmax", 0.0, "none"), (None, 1.0, "noisy", 1.0, "annealed"),
    ("focal", 0.1, "focal", 0.0, "none"), ("softmax", 0.5, "softmax", 0.0, "none"),
])
def test_resolve_method(loss, alpha2, method, eff, noise):
    assert methods.resolve_method(loss, alpha2) == method
    assert methods.effective_alpha2(loss, alpha2) == eff
    assert methods.effective_noise(loss, alpha2, None) == noise


def test_unknown_alpha2_of_noisy_is_nan():
    assert math.isnan(methods.effective_alpha2("noisy", None))


def test_margin_default_comes_from_the_catalogue():
    from satkit.heads import make_head_and_loss

    assert make_head_and_loss("cosface", 4, 3)[0].m == METHODS["cosface"].setting("margin").default
    assert make_head_and_loss("arcface", 4, 3)[0].m == METHODS["arcface"].setting("margin").default
    with pytest.raises(ValueError, match="m must"):
        make_head_and_loss("cosface", 4, 3, m=2.0)


def test_config_refuses_a_bad_setting_of_any_method():
    from satkit.training import TrainConfig
    from satkit.training.config import ConfigError

    with pytest.raises(ConfigError, match="epsilon"):
        TrainConfig(loss="noisy", epsilon=1.5)
    with pytest.raises(ConfigError, match="margin"):
        TrainConfig(loss="cosface", margin=1.2)  # cosine margin <= 1
    TrainConfig(loss="arcface", margin=1.2)  # an angle: up to pi/2


# -- the method names are stated in satkit/methods.py only ----------------------------------

_ROOT = Path(__file__).resolve().parents[1]
#: Words that are method names and also something else: "noisy" is the saturation view of the
#: training logits (satkit.schema.VIEWS), "temperature" a fitted figure of every run. For these
#: two only a comparison with a run's loss or method counts as naming the method.
_ALSO_OTHER_WORDS = {"noisy", "temperature"}


def _docstrings(tree: ast.AST) -> set[int]:
    nodes = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    return {id(n.body[0].value) for n in ast.walk(tree) if isinstance(n, nodes) and n.body
            and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}


def _mentions_methods(node: ast.AST) -> bool:
    return any(word in ast.unparse(node) for word in ("loss", "method"))


def _naming_methods(tree: ast.AST, names: set[str]) -> set[int]:
    """The string constants that stand for a method by their place: compared with, assigned
    to or passed to something about a run's loss or method, a ``"loss"`` entry of a dict, or
    listed together with an unambiguous method name."""
    found: set[int] = set()

    def take(node: ast.AST) -> None:
        found.update(id(c) for c in ast.walk(node) if isinstance(c, ast.Constant))

    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and _mentions_methods(node):
            take(node)
        elif isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(_mentions_methods(t) for t in targets):
                take(node.value)
        elif isinstance(node, ast.Call) and _mentions_methods(node.func):
            for arg in node.args:
                take(arg)
        elif isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value in ("loss", "method"):
                    take(value)
            keys = {k.value for k in node.keys if isinstance(k, ast.Constant)}
            if keys & (names - _ALSO_OTHER_WORDS):  # keyed by method
                found.update(id(k) for k in node.keys if k is not None)
        elif isinstance(node, ast.Tuple | ast.List | ast.Set):
            words = {e.value for e in node.elts if isinstance(e, ast.Constant)}
            if words & (names - _ALSO_OTHER_WORDS):
                take(node)
    return found


def method_names_outside_the_catalogue(package: Path) -> list[str]:
    """Every string literal (docstrings aside) in ``package`` that is a method name, outside
    methods.py, as ``path:line: 'name'``."""
    names = set(METHODS)
    found = []
    for path in sorted(package.rglob("*.py")):
        if path == package / "methods.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = _docstrings(tree) | {  # what a module exports are names of Python objects
            id(c) for node in ast.walk(tree) if isinstance(node, ast.Assign)
            and ast.unparse(node.targets[0]) == "__all__" for c in ast.walk(node.value)}
        compared = _naming_methods(tree, names)
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Constant) and node.value in names) or id(node) in skip:
                continue
            if node.value in _ALSO_OTHER_WORDS and id(node) not in compared:
                continue
            found.append(f"{path.relative_to(package.parent)}:{node.lineno}: {node.value!r}")
    return found


def test_method_names_appear_only_in_the_catalogue():
    assert method_names_outside_the_catalogue(_ROOT / "satkit") == []


def test_the_method_name_check_finds_a_method_named_elsewhere(tmp_path):
    # the other direction: a module that names methods is caught, a view or a docstring is not
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "methods.py").write_text('NAMES = ("focal", "noisy")\n')
    (package / "other.py").write_text(
        '"""Docstrings may say "focal"."""\n'
        'VIEWS = ("clean", "noisy")\n'
        'def f(run):\n'
        '    return run.loss == "noisy" or run.method in ("focal",)\n'
        'BASE = {"loss": "noisy", "view": "noisy"}\n')
    assert sorted(method_names_outside_the_catalogue(package)) == [
        "pkg/other.py:4: 'focal'", "pkg/other.py:4: 'noisy'", "pkg/other.py:5: 'noisy'"]
