"""Parse the raw file formats of MNIST (idx) and CIFAR (binary records) into numpy arrays.

Pure functions from bytes to arrays: no file system, no network, no torch. Every structural
problem (wrong magic number, truncated data, bad label) is a :class:`DataError` that names the
source, so a corrupt download never turns into silently wrong data. CIFAR is read from its
*binary* version only; nothing is ever unpickled.
"""

from __future__ import annotations

import gzip
import zlib
from typing import NamedTuple

import numpy as np

from satkit.data.download import DataError

__all__ = ["CIFAR_IMAGE_BYTES", "RawArrays", "gunzip", "read_cifar_records", "read_idx"]

# idx type codes (third byte of the magic number) -> big-endian numpy dtype.
_IDX_DTYPES: dict[int, str] = {
    0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8",
}
#: Bytes of one CIFAR image: 3 channel planes of 32 x 32, red then green then blue.
CIFAR_IMAGE_BYTES = 3 * 32 * 32


def gunzip(data: bytes, source: str) -> bytes:
    """Decompress gzip ``data``; raise ``DataError`` naming ``source`` if it is corrupt or cut."""
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"{source} is not a valid gzip file ({err}): it is corrupt or truncated; "
                        f"delete it and download or place it again") from err


def read_idx(data: bytes, source: str) -> np.ndarray:
    """Parse one idx file (the MNIST format) from its bytes.

    The header is a 4-byte magic number ``0x00 0x00 TYPE NDIM`` followed by NDIM big-endian
    uint32 sizes, then the data in C order. MNIST images are TYPE 0x08 (ubyte), NDIM 3
    (magic 2051); labels TYPE 0x08, NDIM 1 (magic 2049).

    Args:
        data: the uncompressed file contents.
        source: the file's name, used in error messages.

    Returns:
        A new (writable) array of the header's shape, in native byte order.

    Raises:
        DataError: bad magic number, unknown type code, or data shorter or longer than the
            header's sizes (a truncated or corrupt file).
    """
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise DataError(f"{source} is not an idx file (bad magic number {data[:4].hex() or 'none'})"
                        f"; delete it and download or place the standard file again")
    ndim = data[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(data) < header:
        raise DataError(f"{source}: idx header is truncated or has no dimensions")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) - header != expected:
        raise DataError(f"{source} is truncated or corrupt: its header promises {shape} "
                        f"({expected} bytes of data) but it holds {len(data) - header}; "
                        f"delete it and download or place the standard file again")
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="))  # a writable copy in native byte order


def read_cifar_records(
    data: bytes, source: str, *, label_bytes: int, label_index: int, num_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Parse a CIFAR binary batch: records of ``label_bytes`` label bytes then a 3x32x32 image.

    CIFAR-10 records have one label byte; CIFAR-100 records have two (coarse, then fine).

    Args:
        data: the file contents.
        source: the file's name, used in error messages.
        label_bytes: label bytes per record (1 for CIFAR-10, 2 for CIFAR-100).
        label_index: which label byte to return (0 for CIFAR-10; 1, the fine label, for CIFAR-100).
        num_classes: labels must lie in ``[0, num_classes)``.

    Returns:
        ``(images, labels)``: uint8 (N, 3, 32, 32) and int64 (N,).

    Raises:
        DataError: empty data, a size that is not a whole number of records (truncated), or
            a label out of range (corrupt).
    """
    record = label_bytes + CIFAR_IMAGE_BYTES
    if len(data) == 0 or len(data) % record:
        raise DataError(f"{source} is truncated or corrupt: {len(data)} bytes is not a whole "
                        f"number of {record}-byte records; delete it and download or place the "
                        f"standard file again")
    rows = np.frombuffer(data, dtype=np.uint8).reshape(-1, record)
    labels = rows[:, label_index].astype(np.int64)
    if labels.max() >= num_classes:
        raise DataError(f"{source} is corrupt: label {int(labels.max())} >= {num_classes} classes")
    images = rows[:, label_bytes:].reshape(-1, 3, 32, 32).copy()
    return images, labels


class RawArrays(NamedTuple):
    """A data set as loaded from disk, before normalisation: uint8 images, int64 labels.

    Shape:
        train_x (N, C, H, W) uint8, train_y (N,) int64, test_x (M, C, H, W), test_y (M,).
    """

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
