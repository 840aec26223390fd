#!/usr/bin/env python3
"""Strip outputs and execution counts from Jupyter notebooks, in place.

Usage: strip_notebook_outputs.py NOTEBOOK.ipynb... ; prints the paths it changed.
Uses only the standard library so the git hook runs before any venv exists.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def strip(nb: dict) -> bool:
    """Remove outputs, execution counts and volatile metadata; return True if anything changed."""
    changed = False
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        if cell.get("outputs"):
            cell["outputs"] = []
            changed = True
        if cell.get("execution_count") is not None:
            cell["execution_count"] = None
            changed = True
        for key in ("execution", "collapsed", "scrolled"):
            if key in cell.get("metadata", {}):
                del cell["metadata"][key]
                changed = True
    if "widgets" in nb.get("metadata", {}):
        del nb["metadata"]["widgets"]
        changed = True
    return changed


def main(paths: list[str]) -> int:
    for path in map(Path, paths):
        nb = json.loads(path.read_text(encoding="utf-8"))
        if strip(nb):
            path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
            print(f"stripped outputs from {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
