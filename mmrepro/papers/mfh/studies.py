"""The MFH chapter's experiments, each under the paper's name: the synthetic Gaussian studies of Section 4.2
(Figures 2 and 3), Section 5.2 (Table 2) and Algorithm 1 (Appendix B.4, Figure 6) with their known truth, the
MVD grid of the chapter's explorer, and the numerical checks of Lemmas 1 and 2 (Appendix A). Each function
trains what its experiment needs (batched, :mod:`mmrepro.papers.mfh.distillation`) and returns plain results
that :mod:`~mmrepro.papers.mfh.report` turns into tables and figures and :mod:`~mmrepro.papers.mfh.findings`
into claims. The real-data experiments are :mod:`~mmrepro.papers.mfh.realdata` and
:mod:`~mmrepro.papers.mfh.case_study`."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from scipy.optimize import minimize_scalar
from torch import Tensor

from mmrepro.papers.mfh import generator as mvd
from mmrepro.papers.mfh.distillation import distill, summarise_distillation
from mmrepro.papers.mfh.generator import MVDBatch
from mmrepro.papers.mfh.kd import LinearBatch
from mmrepro.papers.mfh.ranking import (
    align_unimodal,
    correlation_groups,
    permutation_salience,
    precision_at_k,
    select_channels,
)
from mmrepro.papers.mfh.theory import lemma1_loss, lemma1_max, lemma2_sides

__all__ = ["Sweep", "Ranking", "Correlated", "Lemma1Check", "per_seed", "increasing_gamma", "increasing_alpha",
           "table2_sweep", "ranking_gaussian", "correlated_channels", "permutations_gaussian", "venn_grid",
           "lemma1_numeric", "lemma2_random", "permutation_grid", "venn_setting", "LEMMA1_EPS",
           "TABLE2_SPLITS"]

# Table 2's (specific, shared) channel counts of the teacher's modality: the paper gives only gamma.
TABLE2_SPLITS = {"specific": (15, 10, 10), "shared": (5, 10, 30)}
# Lemma 1 is checked at these epsilons (Eq. (8) against a numerical maximisation).
LEMMA1_EPS = np.array([0.01, 0.05, 0.1, 0.3, 0.5, 1, 2, 3, 5, 8, 12, 20])


def per_seed(batch: MVDBatch, results: dict[str, Tensor]) -> dict[str, np.ndarray]:
    """Per-run accuracies of :func:`~mmrepro.papers.mfh.distillation.distill` as (settings, seeds) arrays in %."""
    return {k: batch.by_setting(v).double().numpy() * 100 for k, v in results.items()}


@dataclass
class Sweep:
    """One synthetic design trained by ``distill``: the batch, the per-run accuracies (``results``), their
    per-setting summary (mean and s.d. over seeds) and the accuracies per (setting, seed) in % (``acc``)."""

    batch: MVDBatch
    results: dict[str, Tensor]
    summary: pd.DataFrame
    acc: dict[str, np.ndarray]


def _sweep(batch: MVDBatch, results: dict[str, Tensor]) -> Sweep:
    return Sweep(batch, results, summarise_distillation(batch, results), per_seed(batch, results))


def increasing_gamma(seeds: Sequence[int], *, epochs: int) -> Sweep:
    """Figure 2 (Section 4.2): the teacher always sees ten decisive features, o of them shared with the
    student's modality, gamma = o / (20 - o)."""
    batch = mvd.increase_gamma(list(seeds))
    return _sweep(batch, distill(batch, epochs=epochs))


def increasing_alpha(seeds: Sequence[int], *, epochs: int) -> Sweep:
    """Figure 3 (Section 4.2): the teacher's modality gains features the student never sees, alpha = k / (k + 10)."""
    batch = mvd.increase_alpha(list(seeds))
    return _sweep(batch, distill(batch, epochs=epochs))


def _regular_and_general(batch: MVDBatch, epochs: int) -> Sweep:
    teachers = {"regular": torch.ones(batch.n_runs, 50, dtype=torch.bool), "general": batch.shared_a}
    return _sweep(batch, distill(batch, teachers, epochs=epochs, student_split="student"))


def table2_sweep(seeds: Sequence[int], *, epochs: int, specific: Sequence[int] = TABLE2_SPLITS["specific"],
                 shared: Sequence[int] = TABLE2_SPLITS["shared"]) -> Sweep:
    """Table 2 (Section 5.2): a regular teacher (all of modality a) and a modality-general teacher (the shared
    channels only); students learn from an independent second sample, as in the reference script."""
    return _regular_and_general(mvd.modify_gamma(list(seeds), specific=tuple(specific), shared=tuple(shared)), epochs)


@dataclass
class Ranking:
    """Algorithm 1 on a synthetic design whose truth is known: the aligned unimodal models (Eq. (28)), the
    salience of every channel of modality a (runs, d_a), k (the true number of shared channels per run), the
    precision@k per (setting, seed), and the students of teachers kept to the top-, random and bottom-k
    channels (a :class:`Sweep`)."""

    keys: np.ndarray
    model_a: LinearBatch
    model_b: LinearBatch
    salience: Tensor
    k: Tensor
    precision: Tensor
    teachers: Sweep


def ranking_gaussian(t2: Sweep, *, align_epochs: int, n_permutations: int, epochs: int) -> Ranking:
    """Algorithm 1 (Appendix B.4) on the Table 2 data: rank the teacher's channels, keep the top-, random or
    bottom-k (k = the true number of shared channels) and retrain the teacher on them, as the reference does."""
    b = t2.batch
    keys = np.stack([b.seed.numpy(), b.setting.numpy()], 1)
    fa, fb = align_unimodal(b.train.xa, b.train.xb, b.train.y, keys, epochs=align_epochs, dtype=torch.float64)
    sal = permutation_salience(fa, b.train.xa, fb.logits(b.train.xb), keys, n_permutations=n_permutations)
    k = b.shared_a.sum(1)
    prec = b.by_setting(precision_at_k(sal, b.shared_a, k))
    masks = {m: select_channels(sal, k, m, keys) for m in ("top", "random", "bottom")}
    return Ranking(keys, fa, fb, sal, k, prec, _sweep(b, distill(b, masks, epochs=epochs, student_split="student")))


def permutation_grid(n_permutations: int) -> list[int]:
    """The numbers of permutations M of the Figure 6 sweeps: 1, 3, 10, 30 and the chapter's M."""
    return sorted({1, 3, 10, 30, n_permutations})


def permutations_gaussian(ranking: Ranking, batch: MVDBatch, ms: Sequence[int]) -> pd.DataFrame:
    """Figure 6 on the Table 2 data: precision@k of Algorithm 1 with M permutations per channel, one row
    per (M, run)."""
    logits_b = ranking.model_b.logits(batch.train.xb)
    keys = ranking.keys
    return pd.DataFrame([dict(M=m, gamma=float(batch.gamma[r_]), seed=int(batch.seed[r_]), precision=float(p_))
                         for m in ms
                         for r_, p_ in enumerate(precision_at_k(permutation_salience(
                             ranking.model_a, batch.train.xa, logits_b, np.c_[keys, np.full(len(keys), m)],
                             n_permutations=m), batch.shared_a, ranking.k))])


@dataclass
class Correlated:
    """Algorithm 1 when each shared feature is spread over correlated copies: precision@k per run of the
    single-channel permutation and of the grouped one, and the share of runs whose groups were found exactly."""

    single: np.ndarray
    grouped: np.ndarray
    groups_found: float


def correlated_channels(seeds: Sequence[int], *, align_epochs: int, n_permutations: int, copies: int = 4,
                        noise: float = 0.3, threshold: float = 0.5) -> Correlated:
    """The gamma = 0.25 design of Table 2 with every shared feature in ``copies`` noisy copies (ours): the
    paper's single-channel permutation against permuting each correlation cluster together."""
    cb, true_groups = mvd.with_copies(mvd.modify_gamma(list(seeds), specific=(15,), shared=(5,)), copies=copies,
                                      noise=noise)
    ckeys = np.stack([cb.seed.numpy(), cb.setting.numpy()], 1)
    cfa, cfb = align_unimodal(cb.train.xa, cb.train.xb, cb.train.y, ckeys, epochs=align_epochs, dtype=torch.float64)
    clb, ck = cfb.logits(cb.train.xb), cb.shared_a.sum(1)
    est_groups = correlation_groups(cb.train.xa, threshold)
    single = precision_at_k(permutation_salience(cfa, cb.train.xa, clb, ckeys, n_permutations=n_permutations),
                            cb.shared_a, ck).numpy()
    grouped = precision_at_k(permutation_salience(cfa, cb.train.xa, clb, ckeys, n_permutations=n_permutations,
                                                  groups=est_groups), cb.shared_a, ck).numpy()
    found = float(np.mean([(est_groups[r_].unsqueeze(0) == est_groups[r_].unsqueeze(1)).eq(
        true_groups[r_].unsqueeze(0) == true_groups[r_].unsqueeze(1)).all().item() for r_ in range(cb.n_runs)]))
    return Correlated(single, grouped, found)


def venn_grid(seeds: Sequence[int], *, epochs: int, step: int = 4, width: int = 20) -> pd.DataFrame:
    """The general MVD (Fig. 1): every (shared, teacher-specific) count on a grid of ``width`` decisive
    features (the rest student-specific); per setting the summary of ``distill`` and the KD gain."""
    grid = [(s0, sa) for s0 in range(0, width + 1, step) for sa in range(0, width + 1, step)
            if 0 < s0 + sa <= width and sa < width]
    vb = mvd.venn(list(seeds), [g[0] for g in grid], [g[1] for g in grid], [width - g[0] - g[1] for g in grid])
    vs = summarise_distillation(vb, distill(vb, epochs=epochs))
    vs["gain"] = vs["kd_regular_mean"] - vs["no_kd_mean"]
    return vs


@dataclass
class Lemma1Check:
    """Lemma 1 at ``eps``: the maximum of l(a + s eps, a) over a found by scipy, a dense grid's maximum over
    the band |a - b| <= eps, and the closed form of Eq. (8)."""

    eps: np.ndarray
    numeric: np.ndarray
    dense: np.ndarray
    closed: np.ndarray

    @property
    def relative_error(self) -> float:
        """Largest relative distance between the numerical maximum and the closed form."""
        return float(np.max(np.abs(self.numeric - self.closed) / self.closed))

    @property
    def dense_below(self) -> bool:
        """Whether no point of the dense grid exceeds the closed form (up to 1e-9 relative)."""
        return bool((self.dense <= self.closed * (1 + 1e-9)).all())


def lemma1_numeric(eps: np.ndarray = LEMMA1_EPS) -> Lemma1Check:
    """Lemma 1 (Appendix A, Eq. (8)) numerically: the maximum lies on the boundary b = a +/- eps (Lemma 1 (i)),
    maximised over a by scipy, and a dense grid over the whole band as a second check."""
    numeric = []
    for e in eps:
        best = max(-minimize_scalar(lambda x, s=s: -lemma1_loss(x + s * e, x), bounds=(-40, 40), method="bounded",
                                    options={"xatol": 1e-12}).fun for s in (1, -1))
        aa = np.linspace(-20, 20, 2001)[:, None]
        dense = lemma1_loss(aa + np.linspace(-e, e, 101)[None], aa).max()
        numeric.append((best, dense))
    values = np.array(numeric)
    return Lemma1Check(np.asarray(eps), values[:, 0], values[:, 1], lemma1_max(eps))


LEMMA2_SHAPES = ((3, 3, 10, 1.0), (5, 2, 40, 0.3), (10, 10, 200, 200 ** -0.5), (4, 8, 30, 2.0))


def lemma2_random(seed: int, shapes=LEMMA2_SHAPES, trials: int = 200) -> pd.DataFrame:
    """Lemma 2 (Appendix A, Eq. (13)) on random Gaussian matrix pairs of each (d_a, d_b, n, scale): how many
    pairs satisfy the inequality, and the median of right-hand side / left-hand side."""
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for d_a, d_b, n, sc in shapes:
        A = torch.randn(trials, d_a, n, generator=gen, dtype=torch.float64) * sc
        B = torch.randn(trials, d_b, n, generator=gen, dtype=torch.float64) * sc
        s = lemma2_sides(A, B)
        rows.append(dict(shape=f"{d_a}x{n} vs {d_b}x{n}", scale=round(sc, 3), trials=trials,
                         holds=int((s["lhs"] <= s["rhs"]).sum()), median_ratio=float((s["rhs"] / s["lhs"]).median())))
    return pd.DataFrame(rows)


def venn_setting(seeds: Sequence[int], gamma: float, alpha: float, *, epochs: int, width: int = 20
                 ) -> tuple[pd.Series, tuple[int, int, int]] | None:
    """One MVD setting for the explorer: ``gamma`` and ``alpha`` rounded to counts of ``width`` decisive features
    (shared, teacher-specific, student-specific); the summary row of ``distill`` and the counts, or None when a
    modality would hold no decisive feature."""
    s0 = int(round(width * gamma))
    sa = min(int(round(width * alpha)), width - s0)
    sb = width - s0 - sa
    if s0 + sb == 0 or s0 + sa == 0:
        return None
    b = mvd.venn(list(seeds), [s0], [sa], [sb])
    return summarise_distillation(b, distill(b, epochs=epochs)).iloc[0], (s0, sa, sb)
