"""Intervals for the MIND chapter's claims: seeds and test rows both counted, paired by seed and row.

Every selected configuration is trained with the same seeds for every method, and every model is
scored on the same paired test rows. A difference between two methods (MIND minus a baseline, an
ablation row with a component minus the row without it) is uncertain for two reasons: training
randomness (the seeds) and the finite test set (the rows). The seed part is the variance of the
per-seed differences over the seeds (Student t, as few seeds need); the row part is the bootstrap
variance of the seed-averaged difference when the test rows are resampled (the same resamples for
every method, so the comparison stays paired); the interval adds both
(:func:`mmrepro.core.stats.hierarchical_evidence`). A model trained once (UME, a teacher) enters
every seed with its one run.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from mmrepro.core.metrics import bootstrap_indices, prepare, resampled_scores, score
from mmrepro.core.stats import LEVEL, Evidence, Part, hierarchical_evidence, percentile_interval


@dataclass(frozen=True)
class Draws:
    """The row resamples every method of a problem shares: ``rows`` (B, n_rows)."""

    rows: np.ndarray

    @classmethod
    def make(cls, n_rows: int, n_boot: int, seed: int = 0) -> "Draws":
        return cls(bootstrap_indices(n_rows, n_boot, seed))

    @property
    def n_boot(self) -> int:
        return self.rows.shape[0]


@dataclass(frozen=True)
class Scored:
    """A head's test metric: each run's value on all rows (``per_run``), their mean (``point``) and the
    run-averaged metric on every shared row resample (``reps``, NaN where undefined)."""

    point: float
    per_run: np.ndarray
    reps: np.ndarray

    def __sub__(self, other: "Scored") -> "Scored":
        """The paired difference: run k minus run k (a single run is paired with every run of the other)."""
        a, b = self.per_run, other.per_run
        if len(a) != len(b) and 1 not in (len(a), len(b)):
            raise ValueError(f"cannot pair {len(a)} runs with {len(b)} runs")
        return Scored(self.point - other.point, a - b, self.reps - other.reps)


def scored(metric: str, y: np.ndarray, preds: Sequence[np.ndarray], kind: str, draws: Draws) -> Scored:
    """``metric`` of each run in ``preds`` on all rows and, averaged over the runs, on every resample of ``draws``."""
    per_run = np.array([score(metric, y, p, kind) for p in preds], dtype=float)
    reps = []
    for p in preds:
        yt, ys = prepare(np.asarray(y), np.asarray(p), kind)
        reps.append(resampled_scores(metric, yt, ys, kind, draws.rows, 0.5))
    return Scored(float(per_run.mean()), per_run, np.mean(np.stack(reps), axis=0))


def evidence(s: Scored, n_rows: int, *, difference: bool = False, level: float = LEVEL) -> Evidence:
    """The interval of a scored head (``difference``: of a paired difference, bounds (-1, 1); else (0, 1)):
    seeds and rows counted; with one run, the rows alone (percentile bootstrap)."""
    bounds = (-1.0, 1.0) if difference else (0.0, 1.0)
    if len(s.per_run) >= 2:
        return hierarchical_evidence(s.per_run, s.reps, bounds, n_rows=n_rows, unit="seeds", parameter="seeds",
                                     level=level)
    interval, kept, how = percentile_interval(s.point, s.reps, level, bounds)
    return Evidence(s.point, interval, int(n_rows), f"{how} bootstrap over {n_rows} test rows of one run "
                    f"({kept} resamples)", (Part("test rows", int(n_rows), float(np.nanvar(s.reps, ddof=1))),))


def difference(metric: str, y: np.ndarray, a: Sequence[np.ndarray], b: Sequence[np.ndarray], kind: str,
               draws: Draws) -> Evidence:
    """``metric(a) - metric(b)``, each averaged over its seeds, paired by seed and row, seeds and rows counted."""
    return evidence(scored(metric, y, a, kind, draws) - scored(metric, y, b, kind, draws), len(y), difference=True)
