"""Packaging: environment.yml agrees with pyproject, import has no side effects, CI runs tests."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONDA_TO_PYPI = {"pytorch": "torch", "python": None, "pip": None}


def _name(req: str) -> str:
    return re.split(r"[<>=!~ \[;]", req.strip(), maxsplit=1)[0].lower()


def _pyproject_requirements() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] + project["optional-dependencies"]["dev"]
    return {_name(r): r.replace(" ", "") for r in reqs}


def _conda_requirements() -> dict[str, str]:
    deps = {}
    text = (ROOT / "environment.yml").read_text()
    for line in text.split("dependencies:", 1)[1].splitlines():
        m = re.match(r"^  - ([A-Za-z0-9_.-]+)(.*)$", line)  # top-level entries only
        if not m:
            continue
        name = CONDA_TO_PYPI.get(m.group(1), m.group(1))
        if name is not None:
            deps[name.lower()] = (name + m.group(2)).replace(" ", "")
    return deps


def test_environment_yml_matches_pyproject():
    assert _conda_requirements() == _pyproject_requirements()


def test_torch_is_a_range_not_a_pin():
    torch_req = _pyproject_requirements()["torch"]
    assert "==" not in torch_req and ">=" in torch_req
    assert "==" not in (ROOT / "Makefile").read_text().split("TORCH_SPEC ?=")[1].splitlines()[0]


def test_import_satkit_has_no_heavy_side_effects():
    code = (
        "import sys, satkit; "
        "heavy = [m for m in ('tensorboard', 'matplotlib', 'seaborn', 'pandas', 'scipy') "
        "if m in sys.modules]; print(heavy); "
        "print(satkit.__version__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    heavy, version = out.stdout.splitlines()
    assert heavy == "[]"
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", version)


def test_ci_runs_make_test():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci
