"""Redraw the pictures of docs/tensorboard.md from a comparison directory.

    python docs/images/make_screenshots.py runs/compare --label after

serves COMPARISON_DIR with satkit's TensorBoard server, screenshots its CUSTOM SCALARS,
HPARAMS and TIME SERIES tabs with headless Chromium (Debian: ``apt-get install chromium``) at
TensorBoard's defaults, draws the dashboard of the comparison with ``satkit.plots.dashboard``,
and writes them as small palette PNGs: ``tb_custom_scalars_<label>.png``,
``tb_hparams_<label>.png``, ``tb_time_series_<label>.png`` and ``dashboard_<label>.png`` in
``--out`` (default: this folder). ``--dashboard FILE`` takes an existing dashboard picture
instead of drawing one (the "before" pictures were made from satkit's output before issue 21).
The pictures of this folder were made from
``satkit compare --dataset digits --alpha2 0 0.1 1 --epochs 6 --seeds 0``.

Not part of the test suite (it needs Chromium); the tests check what is written instead.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

#: tab -> (window size in pixels, the file's stem).
TABS = {"custom_scalars": ((1500, 2250), "tb_custom_scalars"),
        "hparams": ((2000, 420), "tb_hparams"),
        "timeseries": ((1500, 1300), "tb_time_series")}
WIDTH = 1100  # pixels of the saved pictures
COLOURS = 96  # palette size


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    sys.exit("make_screenshots: needs Chromium (Debian: apt-get install chromium)")


def screenshot(url: str, size: tuple[int, int], out: Path) -> None:
    """Render ``url`` in headless Chromium (a fresh profile; 25 s of virtual time for the
    single-page app to load its data) into ``out``."""
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu",
                        "--disable-quic", "--no-first-run", "--disable-background-networking",
                        "--disable-component-update", "--disable-sync",
                        f"--user-data-dir={profile}", f"--screenshot={out}",
                        f"--window-size={size[0]},{size[1]}", "--virtual-time-budget=25000",
                        url], check=True, capture_output=True, timeout=180)


def shrink(source: Path, target: Path, width: int = WIDTH) -> None:
    """Save ``source`` at ``width`` pixels wide as a palette PNG (small in git)."""
    from PIL import Image

    with Image.open(source) as image:
        image = image.convert("RGB")
        if image.width > width:
            image = image.resize((width, round(image.height * width / image.width)),
                                 Image.LANCZOS)
        image.quantize(colors=COLOURS, method=Image.Quantize.MEDIANCUT).save(
            target, optimize=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("comparison", type=Path, help="a comparison directory")
    parser.add_argument("--label", default="after", help="file name suffix (default: after)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent)
    parser.add_argument("--dashboard", type=Path, help="use this dashboard picture")
    args = parser.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    from satkit.plots import dashboard
    from satkit.tensorboard import TensorBoardServer

    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp)
        with TensorBoardServer([args.comparison], reload_interval=0) as server:
            for tab, (size, stem) in TABS.items():
                screenshot(f"{server.url}#{tab}", size, raw / f"{stem}.png")
        for _tab, (_size, stem) in TABS.items():
            shrink(raw / f"{stem}.png", args.out / f"{stem}_{args.label}.png")
        picture = args.dashboard
        if picture is None:
            picture = raw / "dashboard.png"
            dashboard(args.comparison).savefig(picture, dpi=100)
        shrink(picture, args.out / f"dashboard_{args.label}.png")
    for path in sorted(args.out.glob(f"*_{args.label}.png")):
        print(f"{path} ({path.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
