"""Intervals for the MIND chapter's claims: seeds and test rows both counted, paired by seed and row.

Every selected configuration is trained with the same seeds for every method, and every model is
scored on the same paired test rows. With K folds (PBC) a seed's predictions are out of fold: fold k's
rows are predicted by the seed's model trained on the other folds (teachers and students refit per
fold), so every patient is a test row once and a seed's metric is taken over all of them. A difference
between two methods (MIND minus a baseline, an ablation row with a component minus the row without it)
is uncertain for two reasons: training randomness (the seeds; with folds, each seed's K models) and the
finite test set (the rows). The seed part is the variance of the per-seed differences over the seeds
(Student t, as few seeds need); the row part is the bootstrap variance of the seed-averaged difference
when the test rows are resampled (the same resamples for every method, so the comparison stays
paired); the interval adds both with Welch-Satterthwaite degrees of freedom
(:func:`mmrepro.core.stats.hierarchical_evidence`). Where every available row is already a test row
(the K-fold design), the row part is recorded as a variance floor: more runs cannot lower it. A model
trained once per fold (UME, a teacher, an ensemble) enters every seed with its one run. Not covered:
the teachers' own training randomness (one teacher per candidate and fold) and the choice of the split
or partition (one, drawn by the chapter's seed).
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


def mean_of(parts: Sequence[Scored]) -> Scored:
    """The mean of paired quantities (e.g. two modalities' differences over the same seeds and rows)."""
    if not parts:
        raise ValueError("mean_of needs at least one scored quantity")
    runs = max(len(p.per_run) for p in parts)
    return Scored(float(np.mean([p.point for p in parts])),
                  np.mean([np.resize(p.per_run, runs) for p in parts], axis=0), np.mean([p.reps for p in parts], axis=0))


def versus_best(a: Scored, others: dict[str, Scored]) -> tuple[Scored, str]:
    """``a`` minus the best of ``others`` (and its name): the best taken by its mean on all rows, as a paper
    reads its table; per seed ``a``'s run minus that method's run of the seed; on every row resample ``a``
    minus the best of ``others`` on that resample (so the interval carries the choice of the best)."""
    best = max(others, key=lambda m: others[m].point)
    runs = np.resize(others[best].per_run, len(a.per_run))  # a method trained once pairs with every seed
    return Scored(a.point - others[best].point, a.per_run - runs,
                  a.reps - np.stack([o.reps for o in others.values()]).max(axis=0)), best


def scored(metric: str, y: np.ndarray, preds: Sequence[np.ndarray], kind: str, draws: Draws) -> Scored:
    """``metric`` of each run in ``preds`` on all rows and, averaged over the runs, on every resample of ``draws``."""
    per_run = np.array([score(metric, y, p, kind) for p in preds], dtype=float)
    reps = []
    for p in preds:
        yt, ys = prepare(np.asarray(y), np.asarray(p), kind)
        reps.append(resampled_scores(metric, yt, ys, kind, draws.rows, 0.5))
    return Scored(float(per_run.mean()), per_run, np.mean(np.stack(reps), axis=0))


def evidence(s: Scored, n_rows: int, *, difference: bool = False, parameter: str | None = "seeds",
             rows_floor: bool = False, level: float = LEVEL) -> Evidence:
    """The interval of a scored head (``difference``: of a paired difference, bounds (-1, 1); else (0, 1)):
    seeds and rows counted (``parameter``: the notebook parameter that sets the seeds; ``rows_floor``: every
    available row is a test row already, so the rows' variance is a floor that more runs cannot lower);
    with one run, the rows alone (percentile bootstrap)."""
    bounds = (-1.0, 1.0) if difference else (0.0, 1.0)
    if len(s.per_run) >= 2:
        e = hierarchical_evidence(s.per_run, s.reps, bounds, n_rows=n_rows, unit="seeds", parameter=parameter,
                                  level=level)
        if not rows_floor:
            return e
        seeds, rows = e.parts
        return Evidence(e.estimate, e.interval, e.n, e.method + "; every patient is a test row, so the rows' "
                        "share is a floor", (seeds,), rows.variance)
    interval, kept, how = percentile_interval(s.point, s.reps, level, bounds)
    return Evidence(s.point, interval, int(n_rows), f"{how} bootstrap over {n_rows} test rows of one run "
                    f"({kept} resamples)", (Part("test rows", int(n_rows), float(np.nanvar(s.reps, ddof=1))),))


def difference(metric: str, y: np.ndarray, a: Sequence[np.ndarray], b: Sequence[np.ndarray], kind: str,
               draws: Draws, **options) -> Evidence:
    """``metric(a) - metric(b)``, each averaged over its seeds, paired by seed and row, seeds and rows counted
    (``options`` go to :func:`evidence`)."""
    return evidence(scored(metric, y, a, kind, draws) - scored(metric, y, b, kind, draws), len(y), difference=True,
                    **options)
