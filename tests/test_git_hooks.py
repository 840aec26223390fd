"""The repository's git hooks (top-level hooks/): notebook output stripping and lint."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _notebook_with_outputs() -> dict:
    return {
        "cells": [
            {"cell_type": "markdown", "metadata": {}, "source": ["# t"]},
            {"cell_type": "code", "execution_count": 3, "metadata": {"execution": {"x": 1}},
             "outputs": [{"output_type": "stream", "name": "stdout", "text": ["hi\n"]}],
             "source": ["print('hi')"]},
        ],
        "metadata": {"widgets": {"state": {}}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def test_strip_script_removes_outputs(tmp_path):
    nb_path = tmp_path / "n.ipynb"
    nb_path.write_text(json.dumps(_notebook_with_outputs()))
    subprocess.run([sys.executable, str(ROOT / "hooks" / "strip_notebook_outputs.py"),
                    str(nb_path)], check=True)
    nb = json.loads(nb_path.read_text())
    code = nb["cells"][1]
    assert code["outputs"] == [] and code["execution_count"] is None
    assert "execution" not in code["metadata"] and "widgets" not in nb["metadata"]
    assert code["source"] == ["print('hi')"]


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_pre_commit_hook_strips_staged_notebook(tmp_path):
    repo = tmp_path / "repo"
    (repo / "hooks").mkdir(parents=True)
    for name in ("pre-commit", "strip_notebook_outputs.py"):
        shutil.copy2(ROOT / "hooks" / name, repo / "hooks" / name)
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run([*git, "config", "core.hooksPath", "hooks"], check=True)
    (repo / "n.ipynb").write_text(json.dumps(_notebook_with_outputs()))
    subprocess.run([*git, "add", "n.ipynb"], check=True)
    subprocess.run([*git, "commit", "-qm", "nb"], check=True)
    committed = subprocess.run([*git, "show", "HEAD:n.ipynb"], check=True,
                               capture_output=True, text=True).stdout
    assert json.loads(committed)["cells"][1]["outputs"] == []


def test_committed_notebooks_have_no_outputs():
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = json.loads(path.read_text())
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                assert not cell.get("outputs") and cell.get("execution_count") is None, path
