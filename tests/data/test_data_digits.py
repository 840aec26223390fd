"""The embedded digits: shipped in the package (also non-editable installs), split, normalised."""

import fnmatch
import shutil
import subprocess
import sys
import tomllib
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import torch

from satkit.data import DATASETS, load_dataset
from satkit.data.digits import DIGITS_RESOURCE, load_digits_arrays, stratified_split

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def test_digits_file_is_a_package_resource_matched_by_package_data():
    resource = resources.files("satkit.data") / DIGITS_RESOURCE
    assert resource.is_file()
    with resource.open("rb") as f, np.load(f) as npz:
        images, labels = npz["images"], npz["labels"]
    assert images.shape == (1797, 8, 8) and images.dtype == np.uint8 and images.max() == 16
    assert labels.dtype == np.int64 and np.bincount(labels).tolist() == [
        178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"]["satkit"]
    assert any(fnmatch.fnmatch(f"data/{DIGITS_RESOURCE}", g) for g in globs)


def test_non_editable_install_ships_the_digits(tmp_path):
    pytest.importorskip("setuptools")
    src = tmp_path / "src"
    shutil.copytree(ROOT / "satkit", src / "satkit",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w",
                    str(tmp_path / "wheel"), str(src)], check=True, capture_output=True)
    wheel = next((tmp_path / "wheel").glob("satkit-*.whl"))
    subprocess.run([*pip, "install", "--no-deps", "--no-index", "--target", str(tmp_path / "site"),
                    str(wheel)], check=True, capture_output=True)
    code = ("import satkit.data as d; s = d.load_dataset('digits'); "
            "print(d.__file__); print(tuple(s.train_x.shape), tuple(s.test_x.shape))")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True,
                         capture_output=True, text=True, env={"PYTHONPATH": str(tmp_path / "site")})
    where, shapes = out.stdout.splitlines()
    assert where.startswith(str(tmp_path / "site"))
    assert shapes == "(1437, 1, 8, 8) (360, 1, 8, 8)"


def test_stratified_split_is_fixed_size_and_keeps_class_shares():
    labels = load_digits_arrays().train_y  # any labels will do
    train, test = stratified_split(labels, 0.2, seed=3)
    assert len(test) == int(np.ceil(0.2 * len(labels)))
    assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(len(labels)))
    share = np.bincount(labels[test], minlength=10) / np.bincount(labels, minlength=10)
    assert np.all(np.abs(share - 0.2) < 1.0 / np.bincount(labels).min())


def test_digits_split_normalisation_and_seed(digits):
    assert DATASETS[0] == "digits"
    assert digits.train_x.shape == (1437, 1, 8, 8) and digits.test_x.shape == (360, 1, 8, 8)
    assert digits.train_x.dtype == torch.float32 and digits.train_y.dtype == torch.int64
    assert (digits.num_classes, digits.in_channels, digits.image_size) == (10, 1, 8)
    assert abs(float(digits.train_x.mean())) < 1e-5
    assert float(digits.train_x.std(unbiased=False)) == pytest.approx(1.0, abs=1e-5)
    assert torch.bincount(digits.test_y).tolist() == [36, 37, 35, 37, 36, 36, 36, 36, 35, 36]
    again = load_dataset("digits", seed=0)
    assert torch.equal(again.test_x, digits.test_x) and torch.equal(again.train_y, digits.train_y)
    other = load_dataset("digits", seed=1)
    assert other.test_x.shape == digits.test_x.shape
    assert not torch.equal(other.test_x, digits.test_x)
    assert "train_x" not in repr(digits)  # the repr does not dump tensors


def test_unknown_dataset_lists_the_valid_ones():
    with pytest.raises(ValueError, match="digits, mnist, cifar10, cifar100"):
        load_dataset("svhn")
