"""Intervals for the MIND chapter's claims: a paired two-stage bootstrap over seeds and test rows.

Every selected configuration is trained with the same seeds for every method, and every model is
scored on the same paired test rows. A difference between two methods (MIND minus a baseline, an
ablation row with a component minus the row without it) is uncertain for two reasons: training
randomness (the seeds) and the finite test set (the rows). Each bootstrap replicate draws the seeds
with replacement and the test rows with replacement -- the same draws for every method, so the
comparison stays paired -- and averages the metric over the drawn seeds (a two-stage bootstrap,
Davison & Hinkley 1997, Sec. 3.8). The claim's interval is the percentile interval of the
replicated difference. A model trained once (UME, a teacher) enters every replicate with its one run.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from mmrepro.core.metrics import _replicates_fast, bootstrap_indices, prepare, score
from mmrepro.core.stats import LEVEL, Evidence, percentile_interval


@dataclass(frozen=True)
class Draws:
    """The resamples every method of a problem shares: ``rows`` (B, n_rows) and ``seeds`` (B, n_seeds)."""

    rows: np.ndarray
    seeds: np.ndarray

    @classmethod
    def make(cls, n_rows: int, n_seeds: int, n_boot: int, seed: int = 0) -> "Draws":
        if n_seeds < 1:
            raise ValueError(f"need at least one seed, got {n_seeds}")
        seeds = np.random.default_rng([seed, 1]).integers(0, n_seeds, size=(n_boot, n_seeds))
        return cls(bootstrap_indices(n_rows, n_boot, seed), seeds)

    @property
    def n_boot(self) -> int:
        return self.rows.shape[0]


def seed_mean(metric: str, y: np.ndarray, preds: Sequence[np.ndarray], kind: str) -> float:
    """The metric on all test rows, averaged over the runs (seeds) in ``preds``."""
    return float(np.mean([score(metric, y, p, kind) for p in preds]))


def replicates(metric: str, y: np.ndarray, preds: Sequence[np.ndarray], kind: str, draws: Draws) -> np.ndarray:
    """(B,) the metric averaged over each replicate's drawn seeds, on its drawn rows (NaN where undefined).
    One run (``len(preds) == 1``) is used as it is in every replicate."""
    per_run = []
    for p in preds:
        yt, ys = prepare(np.asarray(y), np.asarray(p), kind)
        per_run.append(_replicates_fast(metric, yt, ys, kind, draws.rows, 0.5))
    reps = np.stack(per_run)  # (runs, B)
    if len(preds) == 1:
        return reps[0]
    if len(preds) != draws.seeds.shape[1]:
        raise ValueError(f"{len(preds)} runs but the draws resample {draws.seeds.shape[1]} seeds")
    return reps[draws.seeds.T, np.arange(draws.n_boot)].mean(axis=0)


def evidence(point: float, reps: np.ndarray, n_seeds: int, n_rows: int, level: float = LEVEL) -> Evidence:
    """Percentile interval of ``reps`` around ``point`` (resamples undefined on either side dropped)."""
    interval, _ = percentile_interval(float(point), reps, level)
    return Evidence(float(point), interval, int(n_seeds), f"paired bootstrap, {n_seeds} seeds x {n_rows} test rows")


def difference(metric: str, y: np.ndarray, a: Sequence[np.ndarray], b: Sequence[np.ndarray], kind: str,
               draws: Draws) -> Evidence:
    """``metric(a) - metric(b)``, each averaged over its seeds, with the paired two-stage bootstrap interval."""
    point = seed_mean(metric, y, a, kind) - seed_mean(metric, y, b, kind)
    reps = replicates(metric, y, a, kind, draws) - replicates(metric, y, b, kind, draws)
    return evidence(point, reps, max(len(a), len(b)), len(y))
