"""MNIST idx and CIFAR binary files: tiny files written in the real formats, parsed and checked.

Every checksum, truncation and missing-file case is an error that names the file, and the
network is never touched (the downloader is patched to fail in every test here).
"""

import dataclasses
import gzip
import hashlib
import io
import tarfile
from urllib.error import URLError

import numpy as np
import pytest

import satkit.data.datasets as datasets_mod
import satkit.data.download as download_mod
import satkit.data.mnist as mnist_mod
from satkit.data import DataError, RemoteFile, load_dataset
from satkit.data.cifar import CIFAR10, CIFAR100, load_cifar_arrays
from satkit.data.formats import read_idx
from satkit.data.mnist import load_mnist_arrays

MNIST_BASES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
               "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refuse(url, timeout=None):
        raise URLError(f"network disabled in tests ({url})")
    monkeypatch.setattr(download_mod, "urlopen", refuse)


def idx_bytes(array: np.ndarray) -> bytes:
    """The idx encoding of a uint8 array: magic 0x00 0x00 0x08 NDIM, big-endian sizes, data."""
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def tiny_mnist(rng, n_train=12, n_test=6):
    return {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }


def write_mnist(directory, arrays, *, gz, monkeypatch=None):
    """Write the four files; for .gz ones, register their SHA-256 in place of the real sums."""
    for base, array in arrays.items():
        data = idx_bytes(array)
        if gz:
            data = gzip.compress(data, mtime=0)
            (directory / f"{base}.gz").write_bytes(data)
            monkeypatch.setitem(mnist_mod.MNIST_FILES, base, dataclasses.replace(
                mnist_mod.MNIST_FILES[base], sha256=hashlib.sha256(data).hexdigest()))
        else:
            (directory / base).write_bytes(data)


def test_real_mnist_magic_numbers_parse():
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    data = idx_bytes(images)
    assert int.from_bytes(data[:4], "big") == 2051  # MNIST's image magic
    assert int.from_bytes(idx_bytes(np.zeros(5, np.uint8))[:4], "big") == 2049  # label magic
    np.testing.assert_array_equal(read_idx(data, "x"), images)


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzipped"])
def test_mnist_idx_files_load_exactly(tmp_path, monkeypatch, gz):
    arrays = tiny_mnist(np.random.default_rng(0))
    write_mnist(tmp_path, arrays, gz=gz, monkeypatch=monkeypatch)
    raw = load_mnist_arrays(tmp_path, download=False)
    np.testing.assert_array_equal(raw.train_x[:, 0], arrays["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(raw.train_y, arrays["train-labels-idx1-ubyte"])
    np.testing.assert_array_equal(raw.test_x[:, 0], arrays["t10k-images-idx3-ubyte"])
    np.testing.assert_array_equal(raw.test_y, arrays["t10k-labels-idx1-ubyte"])
    assert raw.train_y.dtype == np.int64


def test_mnist_in_torchvision_layout_through_load_dataset(tmp_path):
    arrays = tiny_mnist(np.random.default_rng(1))
    (tmp_path / "MNIST" / "raw").mkdir(parents=True)
    write_mnist(tmp_path / "MNIST" / "raw", arrays, gz=False)
    split = load_dataset("mnist", data_dir=tmp_path, download=False)
    assert split.train_x.shape == (12, 1, 28, 28) and split.test_x.shape == (6, 1, 28, 28)
    assert (split.num_classes, split.in_channels, split.image_size) == (10, 1, 28)
    pixels = arrays["train-images-idx3-ubyte"].astype(np.float64)
    assert split.mean[0] == pytest.approx(pixels.mean())
    assert split.std[0] == pytest.approx(pixels.std())
    assert abs(float(split.train_x.mean())) < 1e-5
    assert float(split.train_x.std(unbiased=False)) == pytest.approx(1.0, abs=1e-5)


def test_bad_magic_and_truncated_idx_name_the_file(tmp_path, monkeypatch):
    arrays = tiny_mnist(np.random.default_rng(2))
    write_mnist(tmp_path, arrays, gz=False)
    path = tmp_path / "train-images-idx3-ubyte"
    good = path.read_bytes()
    path.write_bytes(good[:-5])
    with pytest.raises(DataError, match="train-images-idx3-ubyte is truncated"):
        load_mnist_arrays(tmp_path, download=False)
    path.write_bytes(b"\x1f\x8b" + good[2:])  # not an idx file
    with pytest.raises(DataError, match="train-images-idx3-ubyte is not an idx file"):
        load_mnist_arrays(tmp_path, download=False)


def test_gz_checksum_mismatch_and_truncated_gz(tmp_path, monkeypatch):
    arrays = tiny_mnist(np.random.default_rng(3))
    write_mnist(tmp_path, arrays, gz=True, monkeypatch=monkeypatch)
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    cut = path.read_bytes()[:-8]
    path.write_bytes(cut)
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz fails its SHA-256 check"):
        load_mnist_arrays(tmp_path, download=False)
    # A truncated gzip whose checksum was (wrongly) accepted is still caught by the parser.
    base = "t10k-labels-idx1-ubyte"
    monkeypatch.setitem(mnist_mod.MNIST_FILES, base, dataclasses.replace(
        mnist_mod.MNIST_FILES[base], sha256=hashlib.sha256(cut).hexdigest()))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz is not a valid gzip"):
        load_mnist_arrays(tmp_path, download=False)


def test_mnist_missing_without_network_is_clear_and_leaves_nothing(tmp_path):
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz.*place the file in"):
        load_dataset("mnist", data_dir=tmp_path / "cache", download=True)
    assert [p.name for p in (tmp_path / "cache").iterdir()] == []
    with pytest.raises(DataError, match="downloading is off"):
        load_dataset("mnist", data_dir=tmp_path, download=False)


def cifar_records(rng, n, label_bytes, num_classes):
    labels = rng.integers(0, num_classes, (n, label_bytes), dtype=np.uint8)
    images = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    rows = np.concatenate([labels, images.reshape(n, -1)], axis=1)
    return rows.tobytes(), images, labels


def write_cifar10_archive(path, rng):
    """A real cifar-10-binary.tar.gz layout with 2 records per batch file."""
    expected = {}
    with tarfile.open(path, "w:gz") as tar:
        for name in CIFAR10.train_files + CIFAR10.test_files + ("batches.meta.txt",):
            data, images, labels = cifar_records(rng, 2, 1, 10)
            expected[name] = (images, labels[:, 0])
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return expected


def patched_spec(spec, path):
    archive = RemoteFile(spec.archive.name, hashlib.sha256(path.read_bytes()).hexdigest(),
                         spec.archive.urls)
    return dataclasses.replace(spec, archive=archive)


def test_cifar10_binary_archive_is_read_without_extracting(tmp_path, monkeypatch):
    path = tmp_path / "cifar-10-binary.tar.gz"
    expected = write_cifar10_archive(path, np.random.default_rng(4))
    monkeypatch.setattr(datasets_mod, "CIFAR10", patched_spec(CIFAR10, path))
    split = load_dataset("cifar10", data_dir=tmp_path, download=False)
    assert split.train_x.shape == (10, 3, 32, 32) and split.test_x.shape == (2, 3, 32, 32)
    assert (split.num_classes, split.in_channels, split.image_size) == (10, 3, 32)
    train_y = np.concatenate([expected[n][1] for n in CIFAR10.train_files])
    np.testing.assert_array_equal(split.train_y.numpy(), train_y)
    pixels = np.concatenate([expected[n][0] for n in CIFAR10.train_files])
    std, mean = np.asarray(split.std, dtype=np.float32), np.asarray(split.mean, dtype=np.float32)
    restored = split.train_x.numpy() * std[:, None, None] + mean[:, None, None]
    np.testing.assert_allclose(restored, pixels, atol=1e-3)  # red plane first, then green, blue
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cifar-10-binary.tar.gz"]


def test_cifar_archive_checksum_mismatch_and_corruption(tmp_path):
    path = tmp_path / "cifar-10-binary.tar.gz"
    write_cifar10_archive(path, np.random.default_rng(5))
    with pytest.raises(DataError, match=r"cifar-10-binary\.tar\.gz fails its SHA-256 check"):
        load_cifar_arrays(CIFAR10, tmp_path, download=False)  # the real sum: a mismatch
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DataError, match=r"cifar-10-binary\.tar\.gz is not a readable tar\.gz"):
        load_cifar_arrays(patched_spec(CIFAR10, path), tmp_path, download=False)


def test_cifar100_extracted_batches_use_the_fine_label(tmp_path):
    rng = np.random.default_rng(6)
    folder = tmp_path / "cifar-100-binary"
    folder.mkdir()
    train, _, train_labels = cifar_records(rng, 3, 2, 20)  # coarse labels < 20 ...
    train_labels[:, 1] = [99, 0, 57]  # ... and fine labels < 100
    rows = np.frombuffer(train, np.uint8).reshape(3, -1).copy()
    rows[:, 1] = train_labels[:, 1]
    (folder / "train.bin").write_bytes(rows.tobytes())
    (folder / "test.bin").write_bytes(cifar_records(rng, 2, 2, 20)[0])
    raw = load_cifar_arrays(CIFAR100, tmp_path, download=False)
    assert raw.train_y.tolist() == [99, 0, 57]
    (folder / "test.bin").write_bytes((folder / "test.bin").read_bytes()[:-1])
    with pytest.raises(DataError, match=r"test\.bin is truncated"):
        load_cifar_arrays(CIFAR100, tmp_path, download=False)


def test_cifar_missing_without_network_names_the_archive(tmp_path):
    with pytest.raises(DataError, match=r"cifar-100-binary\.tar\.gz.*place the file in"):
        load_dataset("cifar100", data_dir=tmp_path, download=True)
    assert list(tmp_path.iterdir()) == []
