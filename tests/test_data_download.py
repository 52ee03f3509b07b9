"""Download, verification and safe extraction against a local HTTP server on 127.0.0.1."""
from __future__ import annotations

import hashlib

import pytest

from mmrepro.core.data import DataError, fsdd_recordings, mfeat_files
from mmrepro.core.data.storage import download, read_manifest, safe_extract
from tests.data.fixtures import fsdd_fixture, serve, tar_bytes


@pytest.fixture(autouse=True)
def _online(monkeypatch):
    monkeypatch.delenv("MMREPRO_OFFLINE", raising=False)


def _leftovers(folder):
    return sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_fsdd_download_extract_verify(tmp_path):
    archive, manifest = fsdd_fixture()
    with serve({"/fsdd.tar.gz": archive}) as base:
        folder = fsdd_recordings(tmp_path, url=base + "/fsdd.tar.gz", manifest=manifest)
    assert folder == tmp_path / "fsdd" / "recordings"
    assert sorted(p.name for p in folder.iterdir()) == sorted(manifest)
    assert all(hashlib.sha256((folder / n).read_bytes()).hexdigest() == d for n, d in manifest.items())
    assert [p.name for p in (tmp_path / "fsdd").iterdir()] == ["recordings"]  # staging removed
    # second call: present and verified, no network needed
    assert fsdd_recordings(tmp_path, url="http://127.0.0.1:9/unreachable", manifest=manifest) == folder


def test_fsdd_checksum_mismatch_places_nothing(tmp_path):
    archive, manifest = fsdd_fixture()
    manifest["1_jackson_7.wav"] = "0" * 64
    with serve({"/a.tgz": archive}) as base, pytest.raises(DataError, match="1_jackson_7.wav.*SHA-256"):
        fsdd_recordings(tmp_path, url=base + "/a.tgz", manifest=manifest)
    assert _leftovers(tmp_path) == []


def test_fsdd_transfer_cut_halfway(tmp_path):
    archive, manifest = fsdd_fixture()
    with serve({"/a.tgz": archive}, cut={"/a.tgz"}) as base, pytest.raises(DataError, match="cut off"):
        fsdd_recordings(tmp_path, url=base + "/a.tgz", manifest=manifest)
    assert _leftovers(tmp_path) == []


def test_fsdd_archive_missing_a_recording(tmp_path):
    archive, manifest = fsdd_fixture()
    manifest["5_lucas_3.wav"] = "a" * 64
    with serve({"/a.tgz": archive}) as base, pytest.raises(DataError, match="lacks 1 expected recordings.*5_lucas_3"):
        fsdd_recordings(tmp_path, url=base + "/a.tgz", manifest=manifest)
    assert _leftovers(tmp_path) == []


def test_offline_missing_files_says_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv("MMREPRO_OFFLINE", "1")
    with pytest.raises(DataError, match=r"FSDD recordings.*MMREPRO_DATA.*fsdd/recordings/"):
        fsdd_recordings(tmp_path)
    with pytest.raises(DataError, match=r"mfeat-fac.csv.*MMREPRO_DATA"):
        mfeat_files(tmp_path)


def test_unreachable_server_error_names_url(tmp_path):
    with serve({}) as base, pytest.raises(DataError, match=r"404|Not Found"):
        fsdd_recordings(tmp_path, url=base + "/nothing.tgz", manifest={"0_george_0.wav": "0" * 64})
    assert _leftovers(tmp_path) == []


def test_mfeat_download_and_mismatch(tmp_path):
    good, bad = b"0,1\n1.5,3\n", b"0,1\n9.9,3\n"
    manifest = {"mfeat-mor.csv": hashlib.sha256(good).hexdigest()}
    with serve({"/m/mfeat-mor.csv": bad}) as base, pytest.raises(DataError, match="mfeat-mor.csv.*SHA-256"):
        mfeat_files(tmp_path, base_url=base + "/m/", manifest=manifest)
    assert _leftovers(tmp_path) == []
    with serve({"/m/mfeat-mor.csv": good}) as base:
        folder = mfeat_files(tmp_path, base_url=base + "/m/", manifest=manifest)
    assert (folder / "mfeat-mor.csv").read_bytes() == good and _leftovers(tmp_path) == ["mfeat-mor.csv"]


def test_download_keeps_existing_destination_on_failure(tmp_path):
    dest = tmp_path / "f.bin"
    dest.write_bytes(b"old")
    with serve({"/f": b"x" * 100_000}, cut={"/f"}) as base, pytest.raises(DataError, match="cut off"):
        download(base + "/f", dest)
    assert dest.read_bytes() == b"old" and _leftovers(tmp_path) == ["f.bin"]


@pytest.mark.parametrize("name", ["../evil.wav", "/abs/evil.wav", "a/../../evil.wav"])
def test_safe_extract_rejects_escaping_paths(tmp_path, name):
    arc = tmp_path / "a.tgz"
    arc.write_bytes(tar_bytes({"ok/recordings/0_george_0.wav": b"x", name: b"y"}))
    with pytest.raises(DataError, match="outside"):
        safe_extract(arc, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / "evil.wav").exists()


def test_safe_extract_truncated_archive(tmp_path):
    data = tar_bytes({"r/x.wav": b"z" * 50_000})
    arc = tmp_path / "a.tgz"
    arc.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="truncated"):
        safe_extract(arc, tmp_path / "out")


def test_shipped_manifests_match_shared_copy():
    from tests.data.fixtures import SHARED_DATA

    fsdd = read_manifest("fsdd")
    assert len(fsdd) == 3000 and len(read_manifest("mfeat")) == 6
    if SHARED_DATA.is_dir():
        lines = (SHARED_DATA / "fsdd" / "SHA256SUMS").read_text().split()
        assert dict(zip([p.split("/")[-1] for p in lines[1::2]], lines[0::2])) == fsdd
