"""MNIST from its four standard idx files, gzipped or not, downloaded on first use.

Files are looked for in ``data_dir`` and in torchvision's layout ``data_dir/MNIST/raw``: an
uncompressed idx file is used as it is (its header and size are checked); a ``.gz`` file is
verified by SHA-256 first. Missing files are downloaded as ``.gz`` into ``data_dir``.

SHA-256 sums of the standard gzipped files (the same bytes on the S3 mirror torchvision uses
and on yann.lecun.com) as published, identically, by several independent public loaders
(torch.rb, the Ruby port of torchvision, among them); torchvision
itself publishes MD5 sums only.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from satkit.data.download import DataError, RemoteFile, fetch_file
from satkit.data.formats import RawArrays, gunzip, read_idx

__all__ = ["MNIST_FILES", "MNIST_MIRRORS", "load_mnist_arrays"]

#: Base URLs tried in order: torchvision's S3 mirror, then the original site.
MNIST_MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
_SHA256 = {
    "train-images-idx3-ubyte": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}
#: Base name (uncompressed) -> the gzipped file to download and its SHA-256.
MNIST_FILES: dict[str, RemoteFile] = {
    base: RemoteFile(f"{base}.gz", sha, tuple(m + f"{base}.gz" for m in MNIST_MIRRORS))
    for base, sha in _SHA256.items()
}


def _read(base: str, data_dir: Path, download: bool) -> np.ndarray:
    remote = MNIST_FILES[base]
    for folder in (data_dir, data_dir / "MNIST" / "raw"):
        if (folder / base).is_file():
            return read_idx((folder / base).read_bytes(), str(folder / base))
        if (folder / remote.name).is_file():
            path = fetch_file(remote, folder, download=False)
            return read_idx(gunzip(path.read_bytes(), str(path)), str(path))
    if not download:
        raise DataError(f"MNIST file {remote.name} (or the uncompressed {base}) is not in "
                        f"{data_dir} and downloading is off: place it in {data_dir} "
                        f"(from {remote.urls[0]}), or allow downloading.")
    path = fetch_file(remote, data_dir, download=True)
    return read_idx(gunzip(path.read_bytes(), str(path)), str(path))


def _pair(split: str, data_dir: Path, download: bool) -> tuple[np.ndarray, np.ndarray]:
    images = _read(f"{split}-images-idx3-ubyte", data_dir, download)
    labels = _read(f"{split}-labels-idx1-ubyte", data_dir, download)
    if images.ndim != 3 or images.dtype != np.uint8 or labels.ndim != 1 or labels.dtype != np.uint8:
        raise DataError(f"MNIST {split} files are not ubyte images (N, H, W) and labels (N,): "
                        f"got {images.dtype} {images.shape} and {labels.dtype} {labels.shape}")
    if len(images) != len(labels):
        raise DataError(f"MNIST {split} files disagree: {len(images)} images, {len(labels)} labels")
    if len(labels) == 0 or labels.max() > 9:
        raise DataError(f"MNIST {split} labels are empty or out of 0..9 (corrupt file)")
    return images[:, None], labels.astype(np.int64)


def load_mnist_arrays(data_dir: str | os.PathLike[str], *, download: bool = True) -> RawArrays:
    """Load MNIST's 60,000 training and 10,000 test images from ``data_dir``.

    Args:
        data_dir: directory with the idx files (or where to download them).
        download: allow downloading missing files.

    Returns:
        :class:`RawArrays` with images uint8 (N, 1, 28, 28), labels int64 in 0..9.

    Raises:
        DataError: a file missing with downloading off or impossible, a checksum mismatch, a
            bad magic number, or a truncated file; the message names the file.
    """
    data_dir = Path(data_dir).expanduser()
    train_x, train_y = _pair("train", data_dir, download)
    test_x, test_y = _pair("t10k", data_dir, download)
    return RawArrays(train_x, train_y, test_x, test_y)
