"""Synthetic Gaussian data that follow the modality Venn diagram (MFH paper, Appendix B.2, Eq. (27)).

One draw per seed gives decisive features ``x* ~ N(0, I)``, a separating hyperplane ``delta`` and
Gaussian noise for both modalities; the label is ``y = 1[<delta, x*> > 0]``. A *setting* decides
which channels of modality a (teacher) and modality b (student) carry which decisive feature:
channel ``j`` of a modality is ``x*_j`` where the setting marks it decisive and noise otherwise
(in all three designs below a decisive channel sits at the index of its feature). Every generator
returns all (setting, seed) runs stacked along a leading run axis, setting-major, so that one
batched optimisation trains all of them. Each seed uses the same draw in every setting (common
random numbers, as in the reference code), so differences between settings are not seed noise.

Determinism: each (seed, split) pair has its own ``torch.Generator`` whose state comes from
``numpy.random.SeedSequence([seed, split])``. The reference code instead re-seeds with ``seed + 1``
for the test set, which makes neighbouring seeds share random streams; we avoid that overlap.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import Tensor

__all__ = ["MVDSplit", "MVDBatch", "increase_gamma", "increase_alpha", "modify_gamma", "venn", "with_copies"]

_SPLITS = {"train": 0, "test": 1, "student": 2, "hyperplane": 3, "copies_train": 4, "copies_test": 5,
           "copies_student": 6}


@dataclass
class MVDSplit:
    """One split of every run: ``xa`` (R, n, d_a), ``xb`` (R, n, d_b), ``y`` (R, n) int64 in {0, 1}."""

    xa: Tensor
    xb: Tensor
    y: Tensor


@dataclass
class MVDBatch:
    """All runs of one design. Run ``r`` belongs to setting ``setting[r]`` and seed ``seed[r]``.

    ``shared_a`` marks channels of modality a that hold modality-general decisive features
    (shared with b); ``decisive_a`` marks all decisive channels of a. ``student`` is an extra
    training set for the student (Table 2 design: teacher and student see different samples).
    """

    name: str
    train: MVDSplit
    test: MVDSplit
    setting: Tensor
    seed: Tensor
    gamma: Tensor
    alpha: Tensor
    beta: Tensor
    shared_a: Tensor
    decisive_a: Tensor
    settings: list[dict] = field(default_factory=list)
    student: MVDSplit | None = None

    @property
    def n_runs(self) -> int:
        return int(self.setting.numel())

    @property
    def n_settings(self) -> int:
        return len(self.settings)

    def by_setting(self, values: Tensor) -> Tensor:
        """Reshape a per-run tensor (R, ...) to (settings, seeds, ...)."""
        return values.reshape(self.n_settings, -1, *values.shape[1:])


def _generator(seed: int, split: str) -> torch.Generator:
    state = np.random.SeedSequence([int(seed), _SPLITS[split]]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state) & ((1 << 63) - 1))


def _check_seeds(seeds) -> list[int]:
    seeds = [int(s) for s in np.atleast_1d(np.asarray(seeds))]
    if not seeds or any(s < 0 for s in seeds):
        raise ValueError(f"seeds must be a non-empty list of non-negative integers, got {seeds}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct, got {seeds}")
    return seeds


def _check_n(**sizes: int) -> None:
    for name, n in sizes.items():
        if int(n) != n or n < 2:
            raise ValueError(f"{name} must be an integer >= 2, got {n!r}")


def _draw(seeds: list[int], split: str, n: int, width: int, d_a: int, d_b: int,
          delta: Tensor, dec_a: Tensor, dec_b: Tensor, dtype: torch.dtype) -> MVDSplit:
    """Eq. (27) for every (setting, seed): K settings given by masks ``dec_a`` (K, d_a), ``dec_b``
    (K, d_b) and per-setting hyperplanes ``delta`` (K, S, width) (zero outside the label dims)."""
    xs, na, nb = [], [], []
    for s in seeds:
        g = _generator(s, split)
        xs.append(torch.randn(n, width, generator=g, dtype=torch.float64))
        na.append(torch.randn(n, d_a, generator=g, dtype=torch.float64))
        nb.append(torch.randn(n, d_b, generator=g, dtype=torch.float64))
    xs, na, nb = torch.stack(xs), torch.stack(na), torch.stack(nb)          # (S, n, .)
    y = (torch.einsum("snw,ksw->ksn", xs, delta) > 0).long()                # (K, S, n)
    xa = torch.where(dec_a[:, None, None, :], xs[None, ..., :d_a], na[None])  # (K, S, n, d_a)
    xb = torch.where(dec_b[:, None, None, :], xs[None, ..., :d_b], nb[None])
    flat = lambda t: t.reshape(-1, *t.shape[2:])                             # noqa: E731
    return MVDSplit(flat(xa).to(dtype), flat(xb).to(dtype), flat(y))


def _hyperplanes(seeds: list[int], width: int, label_mask: Tensor, kind: str) -> Tensor:
    if kind == "gaussian":
        base = torch.stack([torch.randn(width, generator=_generator(s, "hyperplane"), dtype=torch.float64)
                            for s in seeds])
    else:  # "ones"
        base = torch.ones(len(seeds), width, dtype=torch.float64)
    return base[None] * label_mask[:, None, :].double()                      # (K, S, width)


def _build(name: str, seeds, settings: list[dict], dec_a: Tensor, dec_b: Tensor, label_mask: Tensor,
           shared_a: Tensor, hyperplane: str, n_train: int, n_test: int, student_set: bool,
           dtype: torch.dtype) -> MVDBatch:
    seeds = _check_seeds(seeds)
    _check_n(n_train=n_train, n_test=n_test)
    width = max(dec_a.shape[1], dec_b.shape[1], label_mask.shape[1])
    pad = lambda m: torch.nn.functional.pad(m, (0, width - m.shape[1]))     # noqa: E731
    label_mask = pad(label_mask)
    delta = _hyperplanes(seeds, width, label_mask, hyperplane)
    d_a, d_b = dec_a.shape[1], dec_b.shape[1]
    args = (width, d_a, d_b, delta, dec_a, dec_b, dtype)
    K, S = len(settings), len(seeds)
    per_run = lambda v: torch.tensor(v, dtype=torch.float64).repeat_interleave(S)  # noqa: E731
    return MVDBatch(
        name=name,
        train=_draw(seeds, "train", n_train, *args),
        test=_draw(seeds, "test", n_test, *args),
        student=_draw(seeds, "student", n_train, *args) if student_set else None,
        setting=torch.arange(K).repeat_interleave(S),
        seed=torch.tensor(seeds).repeat(K),
        gamma=per_run([c["gamma"] for c in settings]),
        alpha=per_run([c["alpha"] for c in settings]),
        beta=per_run([c["beta"] for c in settings]),
        shared_a=shared_a.repeat_interleave(S, dim=0),
        decisive_a=dec_a.repeat_interleave(S, dim=0),
        settings=settings,
    )


def _counts(values, name: str, low: int, high: int) -> list[int]:
    values = [int(v) for v in np.atleast_1d(np.asarray(values))]
    if not values or any(not low <= v <= high for v in values):
        raise ValueError(f"{name} must be integers in [{low}, {high}], got {values}")
    return values


def increase_gamma(seeds, overlaps=(0, 2, 4, 6, 8, 10), n_train: int = 200, n_test: int = 1000,
                   dtype: torch.dtype = torch.float32) -> MVDBatch:
    """Figure 2 design: 20 decisive features with a Gaussian hyperplane; modality b (50 channels)
    holds features 0-9, modality a (25 channels) holds features ``10-o .. 19-o``. The ``o`` shared
    features are modality-general; features outside both modalities act as label noise.
    gamma = o / (20 - o), alpha = beta = (1 - gamma) / 2."""
    overlaps = _counts(overlaps, "overlaps", 0, 10)
    K = len(overlaps)
    dec_a, dec_b = torch.zeros(K, 25, dtype=torch.bool), torch.zeros(K, 50, dtype=torch.bool)
    shared_a = torch.zeros(K, 25, dtype=torch.bool)
    settings = []
    for k, o in enumerate(overlaps):
        dec_a[k, 10 - o:20 - o] = True
        dec_b[k, :10] = True
        shared_a[k, 10 - o:10] = True
        gamma = o / (20 - o)
        settings.append(dict(overlap=o, gamma=gamma, alpha=(1 - gamma) / 2, beta=(1 - gamma) / 2))
    label = torch.ones(K, 20, dtype=torch.bool)
    return _build("increase_gamma", seeds, settings, dec_a, dec_b, label, shared_a, "gaussian",
                  n_train, n_test, False, dtype)


def increase_alpha(seeds, extra=(0, 10, 20, 30, 40), n_train: int = 200, n_test: int = 1000,
                   dtype: torch.dtype = torch.float32) -> MVDBatch:
    """Figure 3 design: 50 decisive features with a Gaussian hyperplane, both modalities 50
    channels; b holds features 0-9 (all shared), a holds features 0 .. 9+k. Features beyond
    10+k act as label noise. alpha = k / (k + 10), beta = 0, gamma = 1 - alpha."""
    extra = _counts(extra, "extra", 0, 40)
    K = len(extra)
    dec_a, dec_b = torch.zeros(K, 50, dtype=torch.bool), torch.zeros(K, 50, dtype=torch.bool)
    settings = []
    for i, k in enumerate(extra):
        dec_a[i, :10 + k] = True
        dec_b[i, :10] = True
        alpha = k / (k + 10)
        settings.append(dict(extra=k, gamma=1 - alpha, alpha=alpha, beta=0.0))
    shared_a = dec_a & dec_b
    label = torch.ones(K, 50, dtype=torch.bool)
    return _build("increase_alpha", seeds, settings, dec_a, dec_b, label, shared_a, "gaussian",
                  n_train, n_test, False, dtype)


def modify_gamma(seeds, specific=(30, 10, 10), shared=(10, 10, 30), n_train: int = 200,
                 n_test: int = 1000, dtype: torch.dtype = torch.float32) -> MVDBatch:
    """Table 2 / Algorithm 1 design: hyperplane of ones over ``specific + shared`` decisive
    features; both modalities have 50 channels. Modality a holds all of them in channels
    ``0 .. specific+shared-1``; modality b holds the first ``shared`` ones (beta = 0).
    gamma = shared / (specific + shared). Includes a second, independent training set
    (``student``) for the students, as in the reference's Table 2 script."""
    specific = _counts(specific, "specific", 0, 50)
    shared = _counts(shared, "shared", 1, 50)
    if len(specific) != len(shared):
        raise ValueError(f"specific and shared need the same length, got {len(specific)} and {len(shared)}")
    K = len(shared)
    dec_a, dec_b = torch.zeros(K, 50, dtype=torch.bool), torch.zeros(K, 50, dtype=torch.bool)
    settings = []
    for i, (ka, kb) in enumerate(zip(specific, shared)):
        if ka + kb > 50:
            raise ValueError(f"specific + shared must be <= 50 channels, got {ka} + {kb}")
        dec_a[i, :ka + kb] = True
        dec_b[i, :kb] = True
        gamma = kb / (ka + kb)
        settings.append(dict(specific=ka, shared=kb, gamma=gamma, alpha=1 - gamma, beta=0.0))
    shared_a = dec_a & dec_b
    return _build("modify_gamma", seeds, settings, dec_a, dec_b, dec_a.clone(), shared_a, "ones",
                  n_train, n_test, True, dtype)


def venn(seeds, shared=(10,), specific_a=(5,), specific_b=(5,), n_train: int = 200, n_test: int = 1000,
         dtype: torch.dtype = torch.float32) -> MVDBatch:
    """General MVD design for any (gamma, alpha, beta): ``shared + specific_a + specific_b`` decisive
    features (at most 25) with a Gaussian hyperplane, ordered [a-specific | shared | b-specific].
    Modality a (25 channels) holds the first two groups, modality b (50 channels) the last two, each
    feature in the channel of its index; other channels are noise. gamma = shared / total,
    alpha = specific_a / total, beta = specific_b / total."""
    shared = _counts(shared, "shared", 0, 25)
    specific_a = _counts(specific_a, "specific_a", 0, 25)
    specific_b = _counts(specific_b, "specific_b", 0, 25)
    if not len(shared) == len(specific_a) == len(specific_b):
        raise ValueError("shared, specific_a and specific_b need the same length")
    K = len(shared)
    dec_a, dec_b = torch.zeros(K, 25, dtype=torch.bool), torch.zeros(K, 50, dtype=torch.bool)
    label = torch.zeros(K, 25, dtype=torch.bool)
    settings = []
    for i, (s0, sa, sb) in enumerate(zip(shared, specific_a, specific_b)):
        total = s0 + sa + sb
        if not 1 <= total <= 25 or sa + s0 == 0 or s0 + sb == 0:
            raise ValueError(f"need 1..25 decisive features and at least one per modality, got "
                             f"shared={s0}, specific_a={sa}, specific_b={sb}")
        dec_a[i, :sa + s0] = True
        dec_b[i, sa:total] = True
        label[i, :total] = True
        settings.append(dict(shared=s0, specific_a=sa, specific_b=sb, gamma=s0 / total, alpha=sa / total,
                             beta=sb / total))
    return _build("venn", seeds, settings, dec_a, dec_b, label, dec_a & dec_b[:, :25], "gaussian",
                  n_train, n_test, False, dtype)


def with_copies(batch: MVDBatch, copies: int = 4, noise: float = 0.3) -> tuple[MVDBatch, Tensor]:
    """Correlated channels with a known truth: every modality-general channel of modality a
    (``batch.shared_a``) gets ``copies - 1`` noisy copies ``x + noise * N(0, 1)`` appended after the
    original channels (correlation 1/sqrt(1 + noise^2) with it), so one shared feature is spread over
    ``copies`` channels while teacher-specific features keep one channel each. Returns the widened
    batch (copies count as shared and decisive) and the true channel groups (R, d_a') (each original
    channel and its copies share a label), for checking Algorithm 1 on correlated channels."""
    if int(copies) != copies or copies < 1 or not noise >= 0:
        raise ValueError(f"copies must be an integer >= 1 and noise >= 0, got copies={copies}, noise={noise}")
    counts = batch.shared_a.sum(1)
    if not bool((counts == counts[0]).all()):
        raise ValueError(f"with_copies needs the same number of shared channels in every run, got {counts.unique().tolist()}")
    R, d = batch.shared_a.shape
    k = int(counts[0])
    src = torch.stack([row.nonzero().flatten() for row in batch.shared_a]) if k else torch.zeros(R, 0, dtype=torch.long)
    src = src.repeat(1, int(copies) - 1)                                     # (R, k (copies - 1))

    def widen(split: MVDSplit | None, name: str) -> MVDSplit | None:
        if split is None:
            return None
        extra = torch.gather(split.xa, 2, src[:, None, :].expand(-1, split.xa.shape[1], -1))
        eps = torch.stack([torch.randn(extra.shape[1:], generator=_generator(int(s), name), dtype=torch.float64)
                           for s in batch.seed.tolist()])
        return MVDSplit(torch.cat([split.xa, extra + noise * eps.to(extra.dtype)], 2), split.xb, split.y)

    ones = torch.ones(R, src.shape[1], dtype=torch.bool)
    groups = torch.cat([torch.arange(d).expand(R, d), src], 1)
    wide = replace(batch, name=f"{batch.name}+copies", train=widen(batch.train, "copies_train"),
                   test=widen(batch.test, "copies_test"), student=widen(batch.student, "copies_student"),
                   shared_a=torch.cat([batch.shared_a, ones], 1), decisive_a=torch.cat([batch.decisive_a, ones], 1))
    return wide, groups
