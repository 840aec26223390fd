"""fetch_file: verified downloads, mirror fallback, atomic placement; never the real network."""

import hashlib
import io
from pathlib import Path
from urllib.error import URLError

import pytest

import satkit.data.download as download_mod
from satkit.data import DataError, RemoteFile, default_data_dir, fetch_file

PAYLOAD = b"standard file bytes" * 100
REMOTE = RemoteFile("thing.gz", hashlib.sha256(PAYLOAD).hexdigest(),
                    ("https://mirror.invalid/thing.gz", "https://origin.invalid/thing.gz"))


class FakeResponse(io.BytesIO):
    def __init__(self, data, length=None):
        super().__init__(data)
        self.headers = {"Content-Length": str(len(data) if length is None else length)}


def serve(monkeypatch, table):
    """Patch urlopen: ``table[url]`` is bytes (served), an int (served bytes claim that length)
    or an exception (raised)."""
    calls = []

    def fake_urlopen(url, timeout=None):
        calls.append(url)
        item = table.get(url, URLError("no route"))
        if isinstance(item, Exception):
            raise item
        data, length = item if isinstance(item, tuple) else (item, None)
        return FakeResponse(data, length)

    monkeypatch.setattr(download_mod, "urlopen", fake_urlopen)
    return calls


def names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_download_verifies_and_places_the_file(tmp_path, monkeypatch):
    calls = serve(monkeypatch, {REMOTE.urls[0]: PAYLOAD})
    path = fetch_file(REMOTE, tmp_path / "new")
    assert path == tmp_path / "new" / "thing.gz" and path.read_bytes() == PAYLOAD
    assert names(tmp_path / "new") == ["thing.gz"]
    assert fetch_file(REMOTE, tmp_path / "new") == path and calls == [REMOTE.urls[0]]  # cached


def test_falls_back_to_the_next_mirror(tmp_path, monkeypatch):
    calls = serve(monkeypatch, {REMOTE.urls[0]: URLError("down"), REMOTE.urls[1]: PAYLOAD})
    assert fetch_file(REMOTE, tmp_path).read_bytes() == PAYLOAD
    assert calls == list(REMOTE.urls)


@pytest.mark.parametrize("served", [b"tampered" + PAYLOAD, (PAYLOAD[:50], len(PAYLOAD))],
                         ids=["checksum-mismatch", "short-read"])
def test_bad_download_is_an_error_and_leaves_nothing(tmp_path, monkeypatch, served):
    serve(monkeypatch, {url: served for url in REMOTE.urls})
    with pytest.raises(DataError, match=r"could not download thing\.gz into .*place the file in"):
        fetch_file(REMOTE, tmp_path)
    assert names(tmp_path) == []  # no .part file, nothing under the real name


def test_no_network_names_the_file_and_the_directory(tmp_path, monkeypatch):
    serve(monkeypatch, {})
    with pytest.raises(DataError, match=f"thing.gz.*place the file in {tmp_path}"):
        fetch_file(REMOTE, tmp_path)
    assert names(tmp_path) == []


def test_download_off_and_corrupt_local_file(tmp_path, monkeypatch):
    calls = serve(monkeypatch, {})
    with pytest.raises(DataError, match="downloading is off"):
        fetch_file(REMOTE, tmp_path, download=False)
    (tmp_path / "thing.gz").write_bytes(PAYLOAD[:-1])
    with pytest.raises(DataError, match=r"thing\.gz fails its SHA-256 check.*Delete it"):
        fetch_file(REMOTE, tmp_path)
    assert calls == []  # a corrupt file is reported, never silently replaced


def test_default_data_dir_honours_satkit_data(monkeypatch, tmp_path):
    monkeypatch.setenv("SATKIT_DATA", str(tmp_path))
    assert default_data_dir() == tmp_path
    monkeypatch.delenv("SATKIT_DATA")
    assert default_data_dir() == Path.home() / ".cache" / "satkit"
