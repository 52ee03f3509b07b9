"""Bad input: corrupt or wrong-rate WAVs, truncated CSVs, tampered files, bad cache entries, bad options."""
from __future__ import annotations

import shutil

import pytest
import torch

from mmrepro.core.data import DataError, load_dataset
from mmrepro.core.data.audio import read_wav
from mmrepro.core.data.cache import cache_key, cached
from mmrepro.core.data.mfeat import read_mfeat_csv
from mmrepro.core.data.sources import mfeat_files
from mmrepro.core.data.storage import read_manifest, verify_files
from tests.data.fixtures import SHARED_DATA, wav_bytes


def test_read_wav_ok(tmp_path):
    p = tmp_path / "ok.wav"
    p.write_bytes(wav_bytes())
    a = read_wav(p)
    assert a.dtype.name == "float32" and a.shape == (2000,) and abs(a).max() <= 1


@pytest.mark.parametrize("data, match", [
    (wav_bytes(rate=16000), "sample rate 16000 Hz, expected 8000"),
    (wav_bytes(channels=2), "2 channels, expected mono"),
    (b"RIFF\x00\x00\x00\x00WAVEjunkjunk", "not a readable WAV"),
    (wav_bytes()[:30], "not a readable WAV"),
    (b"", "not a readable WAV"),
])
def test_read_wav_rejects(tmp_path, data, match):
    p = tmp_path / "bad_3.wav"
    p.write_bytes(data)
    with pytest.raises(DataError, match=match) as e:
        read_wav(p)
    assert "bad_3.wav" in str(e.value)


def test_truncated_csv_names_file(tmp_path):
    src = SHARED_DATA / "mfeat" / "mfeat-mor.csv"
    lines = src.read_text().splitlines()
    bad = tmp_path / "mfeat-mor.csv"
    bad.write_text("\n".join(lines[:1000]) + "\n")
    with pytest.raises(DataError, match=r"mfeat-mor.csv has shape \(999, 7\).*truncated"):
        read_mfeat_csv(bad, 6)
    bad.write_text("\n".join(lines[:500]) + "\n1.0,2.0\n")  # a cut-off last line
    with pytest.raises(DataError, match="mfeat-mor.csv"):
        read_mfeat_csv(bad, 6)
    x, y = read_mfeat_csv(src, 6)
    assert x.shape == (2000, 6) and (torch.bincount(torch.from_numpy(y)) == 200).all()


def test_tampered_local_file_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("MMREPRO_OFFLINE", "1")
    shutil.copytree(SHARED_DATA / "mfeat", tmp_path / "mfeat")
    p = tmp_path / "mfeat" / "mfeat-zer.csv"
    p.chmod(0o644)
    p.write_text(p.read_text()[:-100])
    with pytest.raises(DataError, match="mfeat-zer.csv has SHA-256.*expected"):
        mfeat_files(tmp_path)
    (tmp_path / "mfeat" / "mfeat-kar.csv").unlink()
    with pytest.raises(DataError, match="mfeat-kar.csv.*MMREPRO_OFFLINE"):
        mfeat_files(tmp_path)


def test_verify_files_names_missing(tmp_path):
    with pytest.raises(DataError, match="nope.wav is missing"):
        verify_files(tmp_path, {"nope.wav": "0" * 64})


def test_shared_copy_verifies():
    verify_files(SHARED_DATA / "mfeat", read_manifest("mfeat"))


def test_corrupt_cache_entry_is_rebuilt(tmp_path):
    key = cache_key(a=1)
    calls = []

    def build():
        calls.append(1)
        return {"t": torch.arange(3)}

    assert torch.equal(cached("k", key, build, root=tmp_path)["t"], torch.arange(3))
    assert torch.equal(cached("k", key, build, root=tmp_path)["t"], torch.arange(3)) and len(calls) == 1
    (tmp_path / f"k-{key}.pt").write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="has no verification header.*recomputing it"):
        assert torch.equal(cached("k", key, build, root=tmp_path)["t"], torch.arange(3))
    assert len(calls) == 2 and sorted(p.name for p in tmp_path.iterdir()) == [f"k-{key}.pt"]


@pytest.mark.parametrize("where", [-1, -200, 100])
def test_a_flipped_bit_in_a_cache_entry_is_detected_and_recomputed(tmp_path, where):
    key = cache_key(a=2)
    calls = []

    def build():
        calls.append(1)
        return {"t": torch.arange(64, dtype=torch.float32)}

    cached("k", key, build, root=tmp_path)
    entry = tmp_path / f"k-{key}.pt"
    data = bytearray(entry.read_bytes())
    data[where] ^= 0x01  # one bit, in the tensor bytes, the zip directory or the header
    entry.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match=r"k-.*\.pt (does not match its SHA-256|has no verification header).*recomputing"):
        out = cached("k", key, build, root=tmp_path)
    assert torch.equal(out["t"], torch.arange(64, dtype=torch.float32)) and len(calls) == 2
    assert torch.equal(cached("k", key, build, root=tmp_path)["t"], out["t"]) and len(calls) == 2  # rewritten


def test_verified_entries_round_trip_and_refuse_tampering(tmp_path):
    from mmrepro.core.data.cache import CorruptEntry, load_verified, save_verified

    path = save_verified({"w": torch.ones(3), "score": 0.5, "names": ["a"]}, tmp_path / "e.pt")
    assert load_verified(path)["score"] == 0.5 and [p.name for p in tmp_path.iterdir()] == ["e.pt"]
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(CorruptEntry, match="e.pt does not match its SHA-256"):
        load_verified(path)
    with pytest.raises(FileNotFoundError):
        load_verified(tmp_path / "none.pt")


def test_wrong_shape_checkpoint_is_rejected_before_any_weight_changes():
    from mmrepro.core.data.cache import CorruptEntry, load_state_checked

    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    other = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 5))  # same first layer shape
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CorruptEntry, match=r"1.weight is \(5, 4\) torch.float32, the model has \(2, 4\)"):
        load_state_checked(model, other.state_dict())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # not even layer 0 was copied
    with pytest.raises(CorruptEntry, match="missing"):
        load_state_checked(model, {"0.weight": before["0.weight"]})


def test_cache_keys_depend_on_every_part():
    assert cache_key(a=1, b=2) == cache_key(b=2, a=1)
    assert len({cache_key(a=1), cache_key(a=2), cache_key(a=1, b=None)}) == 3


def test_unwritable_cache_only_warns(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.warns(UserWarning, match="MMREPRO_CACHE"):
        out = cached("k", "abc", lambda: {"v": torch.ones(1)}, root=blocker / "sub")
    assert out["v"].item() == 1


@pytest.mark.parametrize("name, options, match", [
    ("mnist", {}, r"unknown dataset 'mnist'; valid: \['av_digits'"),
    ("pbc", {"death_yrs": 3}, r"unknown option\(s\) \['death_yrs'\].*death_years"),
    ("pbc", {"labs": "dynamic"}, "unknown labs='dynamic'"),
    ("mfeat", {"views": ["pix", "abc"]}, "views must be distinct names"),
    ("av_digits", {"images": "cifar"}, "unknown images='cifar'"),
    ("av_digits", {"image_pca_removal": 1.0}, "image_pca_removal must be in"),
    ("synthetic_bimodal", {"dims": (1, 16)}, "dims >= n_classes"),
    ("nyc_weather", {"block_days": 2}, "block_days >= 7"),
])
def test_bad_options(name, options, match):
    with pytest.raises(ValueError, match=match):
        load_dataset(name, **options)


def test_full_mnist_offline_says_what_to_do(tmp_path, monkeypatch):
    from mmrepro.core.data.av_digits import mnist_images

    monkeypatch.setenv("MMREPRO_DATA", str(tmp_path))
    monkeypatch.setenv("MMREPRO_OFFLINE", "1")
    with pytest.raises(DataError, match=r"full MNIST is not in .*mnist.*images='mlxtend5k'"):
        mnist_images("mnist")
    assert not any(p.is_file() for p in tmp_path.rglob("*"))


def test_shared_data_folder_is_never_written():
    before = sorted(str(p) for p in SHARED_DATA.rglob("*") if p.parent.name != "recordings")
    load_dataset("mfeat")
    after = sorted(str(p) for p in SHARED_DATA.rglob("*") if p.parent.name != "recordings")
    assert before == after and len(list((SHARED_DATA / "fsdd" / "recordings").iterdir())) == 3000


def test_truncated_wav_read_directly_is_an_error_not_a_warning(tmp_path):
    p = tmp_path / "3_theo_7.wav"
    data = wav_bytes()
    p.write_bytes(data[: len(data) // 2])  # the header announces twice the samples
    with pytest.raises(DataError, match=r"3_theo_7.wav is truncated or damaged \(Reached EOF prematurely.*\); "
                                        r"delete it so that it is fetched again"):
        read_wav(p)


def test_a_folder_where_a_data_file_belongs_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("MMREPRO_OFFLINE", "1")
    shutil.copytree(SHARED_DATA / "mfeat", tmp_path / "mfeat")
    target = tmp_path / "mfeat" / "mfeat-fou.csv"
    target.unlink()
    target.mkdir()
    with pytest.raises(DataError, match=r"cannot use data file .*mfeat-fou.csv: it is a folder where a file belongs: "
                                        r"remove the folder"):
        mfeat_files(tmp_path)
    with pytest.raises(DataError, match=r"mfeat-fou.csv: it is a folder where a file belongs"):
        read_mfeat_csv(target, 76)
    with pytest.raises(DataError, match=r"cannot use WAV file .*x.wav: it is a folder"):
        (tmp_path / "x.wav").mkdir()
        read_wav(tmp_path / "x.wav")


def test_permission_errors_become_data_errors_with_the_fix(tmp_path, monkeypatch):
    """(Simulated: the tests may run as root, who may read anything.)"""
    import builtins

    import mmrepro.common.files

    shutil.copytree(SHARED_DATA / "mfeat", tmp_path / "mfeat")
    real_open = builtins.open

    def denied(file, *args, **kwargs):
        if str(file).endswith("mfeat-zer.csv"):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", denied)
    monkeypatch.setattr(mmrepro.common.files, "open", denied, raising=False)
    with pytest.raises(DataError, match=r"cannot use data file .*mfeat-zer.csv: permission denied: make it readable "
                                        r"and writable for you \(e.g. chmod u\+rw .*\), or point MMREPRO_DATA"):
        verify_files(tmp_path / "mfeat", read_manifest("mfeat"))
    import numpy as np

    def loadtxt(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(np, "loadtxt", loadtxt)
    with pytest.raises(DataError, match=r"cannot use UCI Multiple Features file .*mfeat-zer.csv: permission denied"):
        read_mfeat_csv(tmp_path / "mfeat" / "mfeat-zer.csv", 47)


def test_absurd_seeds_are_named_by_every_loader():
    for name in ("synthetic_bimodal", "mfeat", "titanic"):
        with pytest.raises(ValueError, match=r"seed=36893488147419103232 is out of range: it must be an integer in "
                                             r"\[0, 4294967295\]"):
            load_dataset(name, seed=2**65)
    with pytest.raises(TypeError, match=r"seed must be an integer in \[0, 4294967295\], got '1' \(str\)"):
        load_dataset("synthetic_bimodal", seed="1")
