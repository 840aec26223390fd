"""The README's Python blocks run as shown; its quick start is the two make commands."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


@pytest.mark.parametrize("code", _blocks("python"))
def test_python_blocks_run(code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {"__name__": "__readme__"})


def test_quick_start_is_the_two_make_commands():
    quick = README.split("## Quick start", 1)[1].split("##", 1)[0]
    commands = [line.split("#")[0].strip() for line in _blocks("bash")[0].splitlines()]
    assert commands == ["make demo", "make test"]
    assert "make demo" in quick and "make test" in quick


def test_readme_cli_commands_exist():
    from satkit.cli import build_parser

    parser = build_parser()
    for line in _blocks("bash")[1].splitlines():
        argv = line.split("#")[0].split()
        if argv and argv[0] == "satkit":
            parser.parse_args(argv[1:])  # each shown command parses


def test_relative_links_and_pictures_exist():
    targets = re.findall(r"\]\(([^)#:]+)\)", README)
    assert "docs/demo_dashboard.png" in targets
    notebooks = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "notebooks").glob("*.ipynb"))
    assert [t for t in targets if t.startswith("notebooks/")] == notebooks  # all, in order
    for target in targets:
        assert (ROOT / target).exists(), target
