"""Fetch a data file once into a data directory, verified by SHA-256, never left half-written.

The one concern here is getting a named file into ``data_dir``: use the copy already there, or
download it from its public mirrors (urllib only) into a temporary file in the same directory,
check its SHA-256 and only then ``os.replace`` it into place. Parsing lives in
:mod:`satkit.data.formats`, the data sets in :mod:`satkit.data.datasets`.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.error import URLError
from urllib.request import urlopen

__all__ = ["DataError", "RemoteFile", "default_data_dir", "fetch_file", "sha256_file"]

_CHUNK = 1 << 20
_TIMEOUT_S = 60.0


class DataError(ValueError):
    """A data file is missing, corrupt, truncated or fails its checksum; the message says why."""


@dataclass(frozen=True)
class RemoteFile:
    """A file with a known SHA-256 and the public URLs it can be downloaded from, in order.

    Args:
        name: the file name in the data directory (also the last part of each URL).
        sha256: lowercase hex SHA-256 of the file's bytes.
        urls: full download URLs, tried in order (mirror first, original as a fallback).
    """

    name: str
    sha256: str
    urls: tuple[str, ...]


def default_data_dir() -> Path:
    """Return ``$SATKIT_DATA`` if set and non-empty, else ``~/.cache/satkit``."""
    env = os.environ.get("SATKIT_DATA", "").strip()
    return Path(env).expanduser() if env else Path.home() / ".cache" / "satkit"


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Return the lowercase hex SHA-256 of the file at ``path``, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _verify(path: Path, remote: RemoteFile) -> None:
    actual = sha256_file(path)
    if actual != remote.sha256:
        raise DataError(
            f"{path} fails its SHA-256 check (expected {remote.sha256}, got {actual}): the file "
            f"is corrupt, truncated or not the standard {remote.name}. Delete it to download it "
            f"again, or replace it with the standard file."
        )


def _download(url: str, dest: Path) -> None:
    """Stream ``url`` into ``dest``; raise ``DataError`` on a short read (Content-Length known)."""
    with urlopen(url, timeout=_TIMEOUT_S) as response, open(dest, "wb") as out:
        expected = response.headers.get("Content-Length") if hasattr(response, "headers") else None
        written = 0
        while chunk := response.read(_CHUNK):
            out.write(chunk)
            written += len(chunk)
    if expected is not None and expected.isdigit() and written != int(expected):
        raise DataError(f"download of {url} stopped after {written} of {expected} bytes")


def fetch_file(
    remote: RemoteFile, data_dir: str | os.PathLike[str], *, download: bool = True
) -> Path:
    """Return the path of ``remote`` in ``data_dir``, downloading and verifying it if missing.

    A file already present is verified too. A download goes to a temporary ``.part`` file in
    ``data_dir`` that is moved into place (``os.replace``, atomic on one file system) only after
    its SHA-256 matched, and removed otherwise, so nothing half-written is ever left under the
    real name. Mirrors are tried in order; a mirror that fails or serves wrong bytes is skipped.

    Args:
        remote: the file, its SHA-256 and its URLs.
        data_dir: directory holding (or to hold) the file; created when a download is needed.
        download: allow network access when the file is missing.

    Returns:
        The verified file's path, ``data_dir / remote.name``.

    Raises:
        DataError: the file is missing and ``download`` is False or every mirror failed, or the
            file present fails its checksum. The message names the file and the directory.
    """
    data_dir = Path(data_dir).expanduser()
    path = data_dir / remote.name
    if path.is_file():
        _verify(path, remote)
        return path
    if not download:
        raise DataError(
            f"{remote.name} is not in {data_dir} and downloading is off: place the file in "
            f"{data_dir} (from {remote.urls[0]}), or allow downloading."
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    for url in remote.urls:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{remote.name}.", suffix=".part", dir=data_dir)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            print(f"satkit: downloading {url} -> {path}", file=sys.stderr)
            _download(url, tmp)
            _verify(tmp, remote)
            os.replace(tmp, path)
            return path
        except (URLError, OSError, DataError) as err:  # URLError and timeouts are OSErrors
            errors.append(f"{url}: {err}")
        finally:
            tmp.unlink(missing_ok=True)
    raise DataError(
        f"could not download {remote.name} into {data_dir} ({'; '.join(errors)}). Without network, "
        f"place the file in {data_dir} (from {remote.urls[0]}) and run again."
    )
