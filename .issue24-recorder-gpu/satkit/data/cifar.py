"""CIFAR-10 and CIFAR-100 from their *binary* versions (never the pickled Python version).

A directory already holding the extracted batches (``cifar-10-batches-bin/`` or
``cifar-100-binary/``) is read as it is (record sizes and labels are checked); otherwise the
archive (``cifar-10-binary.tar.gz`` / ``cifar-100-binary.tar.gz``) is verified by SHA-256,
downloaded first if missing, and its members are read straight from the tar stream, so
nothing extracted is ever left half-written.

SHA-256 sums of the archives on www.cs.toronto.edu/~kriz: as published, identically, by
several independent public loaders (torch.rb, gomlx, Julia's MLDatasets among them); the
CIFAR page itself lists MD5 sums only.
"""

from __future__ import annotations

import os
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from satkit.data.download import DataError, RemoteFile, fetch_file
from satkit.data.formats import RawArrays, read_cifar_records

__all__ = ["CIFAR10", "CIFAR100", "CifarSpec", "load_cifar_arrays"]


@dataclass(frozen=True)
class CifarSpec:
    """Where one CIFAR variant lives and how its binary records are laid out."""

    archive: RemoteFile
    folder: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    label_bytes: int
    label_index: int
    num_classes: int


_KRIZ = "https://www.cs.toronto.edu/~kriz/"

CIFAR10 = CifarSpec(
    archive=RemoteFile(
        "cifar-10-binary.tar.gz",
        "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd",
        (_KRIZ + "cifar-10-binary.tar.gz",),
    ),
    folder="cifar-10-batches-bin",
    train_files=tuple(f"data_batch_{i}.bin" for i in range(1, 6)),
    test_files=("test_batch.bin",),
    label_bytes=1, label_index=0, num_classes=10,
)
CIFAR100 = CifarSpec(
    archive=RemoteFile(
        "cifar-100-binary.tar.gz",
        "58a81ae192c23a4be8b1804d68e518ed807d710a4eb253b1f2a199162a40d8ec",
        (_KRIZ + "cifar-100-binary.tar.gz",),
    ),
    folder="cifar-100-binary",
    train_files=("train.bin",),
    test_files=("test.bin",),
    label_bytes=2, label_index=1, num_classes=100,  # (coarse, fine): the fine label
)


def _members_from_archive(path: Path, wanted: set[str]) -> dict[str, bytes]:
    """Read the ``wanted`` member paths of a tar.gz in one sequential pass."""
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in tar:
                if member.name in wanted and member.isfile():
                    f = tar.extractfile(member)
                    found[member.name] = f.read() if f is not None else b""
    except (tarfile.TarError, EOFError, OSError, zlib.error) as err:
        raise DataError(f"{path} is not a readable tar.gz ({err}): it is corrupt or truncated; "
                        f"delete it and download or place it again") from err
    missing = sorted(wanted - found.keys())
    if missing:
        raise DataError(f"{path} lacks {', '.join(missing)}: it is not the standard binary archive")
    return found


def _read_batches(spec: CifarSpec, data_dir: Path, download: bool) -> dict[str, bytes]:
    names = spec.train_files + spec.test_files
    folder = data_dir / spec.folder
    if all((folder / n).is_file() for n in names):
        return {n: (folder / n).read_bytes() for n in names}
    archive = fetch_file(spec.archive, data_dir, download=download)
    members = _members_from_archive(archive, {f"{spec.folder}/{n}" for n in names})
    return {n: members[f"{spec.folder}/{n}"] for n in names}


def _stack(spec: CifarSpec, files: tuple[str, ...], data: dict[str, bytes], where: Path):
    parts = [read_cifar_records(data[n], str(where / spec.folder / n), label_bytes=spec.label_bytes,
                                label_index=spec.label_index, num_classes=spec.num_classes)
             for n in files]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def load_cifar_arrays(
    spec: CifarSpec, data_dir: str | os.PathLike[str], *, download: bool = True
) -> RawArrays:
    """Load a CIFAR variant's 50,000 training and 10,000 test images from ``data_dir``.

    Args:
        spec: :data:`CIFAR10` or :data:`CIFAR100`.
        data_dir: directory with the extracted batches or the archive (or where to download it).
        download: allow downloading the archive when neither is present.

    Returns:
        :class:`RawArrays` with images uint8 (N, 3, 32, 32), labels int64 (fine labels for
        CIFAR-100).

    Raises:
        DataError: archive missing with downloading off or impossible, checksum mismatch,
            corrupt archive, or a batch file that is truncated or holds bad labels.
    """
    data_dir = Path(data_dir).expanduser()
    data = _read_batches(spec, data_dir, download)
    train_x, train_y = _stack(spec, spec.train_files, data, data_dir)
    test_x, test_y = _stack(spec, spec.test_files, data, data_dir)
    return RawArrays(train_x, train_y, test_x, test_y)
