"""Intervals for claims: how much the runs or test rows behind a number say about it.

Every empirical claim of the book is decided by a 95 % interval (see :mod:`mmrepro.publish.claims`).
This module computes those intervals; each function returns an :class:`Evidence` -- the point
estimate, the interval, how many independent units it rests on and how it was computed -- that
:meth:`mmrepro.publish.notebook.Run.claim` records as it is.

* :func:`t_interval` -- Student-t interval of a mean (the basic building block).
* :func:`mean_evidence` -- the mean of per-unit values (seeds, runs, folds, trials).
* :func:`paired_evidence` -- the mean of paired differences ``a - b`` over shared units (methods
  that share seeds and splits are compared pairwise, never as two independent samples).
* :func:`clustered_evidence` -- nested repetitions (e.g. initialisations within folds): values are
  averaged within each cluster and the interval is taken over clusters, so that the units counted
  by ``n`` are independent.
* :func:`paired_bootstrap_evidence` -- a metric difference between two models scored on the same
  test rows: percentile bootstrap over rows with the same resamples for both models.

Bounded quantities (accuracies in [0, 100], AUROC in [0, 1], their differences) keep their
intervals inside the range: when a Student-t interval would cross a bound, the interval is
computed on the logit scale of the range instead (values at a bound are pulled in by half of the
smallest gap to it, Haldane-style) and mapped back; ``method`` says which was used. An interval
always contains its estimate (a back-transformed or bootstrap interval that would not is widened
to it, which can only make a verdict more cautious).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from scipy import stats as _st
from scipy.special import expit, logit

LEVEL = 0.95


@dataclass(frozen=True)
class Evidence:
    """What a claim rests on: ``estimate``, its ``interval`` (low, high), ``n`` independent units and
    the ``method`` that produced the interval (written into the results file as ``interval_method``)."""

    estimate: float
    interval: tuple[float, float]
    n: int
    method: str

    def __post_init__(self) -> None:
        lo, hi = self.interval
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in (self.estimate, lo, hi)):
            raise ValueError(f"evidence needs a finite estimate and interval, got {self.estimate}, {self.interval}")
        if lo > hi:
            raise ValueError(f"interval low {lo} exceeds high {hi}")
        if not isinstance(self.n, int) or self.n < 1:
            raise ValueError(f"n must be a positive int, got {self.n!r}")

    def scaled(self, factor: float) -> "Evidence":
        """The same evidence in other units (e.g. accuracy as a percentage): estimate and interval times
        a positive ``factor``."""
        if not factor > 0:
            raise ValueError(f"factor must be positive, got {factor}")
        lo, hi = self.interval
        return Evidence(self.estimate * factor, (lo * factor, hi * factor), self.n, self.method)


def t_interval(values: Sequence[float], level: float = LEVEL, widen: float = 1.0) -> tuple[float, float, float]:
    """(mean, low, high): Student-t interval of the mean, its half-width times ``widen`` (a variance
    correction, see :func:`clustered_evidence`); a single value gives (v, nan, nan)."""
    v = np.asarray(values, dtype=float)
    if v.size == 0 or not np.all(np.isfinite(v)):
        raise ValueError(f"need finite values, got {v.tolist()}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    m = float(v.mean())
    if v.size < 2:
        return m, math.nan, math.nan
    half = float(widen * _st.t.ppf(0.5 + level / 2, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))
    return m, m - half, m + half


def _values(values: Sequence[float], name: str) -> np.ndarray:
    v = np.asarray(values, dtype=float).ravel()
    if v.size < 2:
        raise ValueError(f"{name}: an interval needs at least 2 independent units, got {v.size}; "
                         "run more seeds (or record the claim as not comparable, with a reason)")
    if not np.all(np.isfinite(v)):
        raise ValueError(f"{name}: every value must be finite, got {v.tolist()}")
    return v


def _check_bounds(bounds: tuple[float, float] | None, v: np.ndarray, name: str) -> None:
    if bounds is None:
        return
    lo, hi = bounds
    if not lo < hi:
        raise ValueError(f"{name}: bounds must be (low, high) with low < high, got {bounds}")
    if v.min() < lo or v.max() > hi:
        raise ValueError(f"{name}: values {v.min():.4g}..{v.max():.4g} lie outside the stated bounds {bounds}")


def _bounded_t(v: np.ndarray, bounds: tuple[float, float] | None, level: float, what: str,
               widen: float = 1.0) -> Evidence:
    """Student-t interval of the mean of ``v``; on the logit scale of ``bounds`` when the plain one crosses them."""
    m, lo, hi = t_interval(v, level, widen)
    if bounds is None or (lo >= bounds[0] and hi <= bounds[1]):
        return Evidence(m, (lo, hi), int(v.size), f"Student t over {what}")
    a, b = bounds
    p = (v - a) / (b - a)
    inside = p[(p > 0) & (p < 1)]
    # values at the bounds move half the smallest distance of any other value to a bound inwards (at least
    # 1e-9, so that 1 - gap / 2 stays below 1 in floating point and every logit is finite)
    gap = min(max(np.min(np.minimum(inside, 1 - inside)) if inside.size else 0.5, 1e-9), 0.5)
    p = np.clip(p, gap / 2, 1 - gap / 2)
    _, zl, zh = t_interval(logit(p), level, widen)
    low, high = (float(a + (b - a) * expit(t)) for t in (zl, zh))
    return Evidence(m, (min(low, m), max(high, m)), int(v.size),
                    f"Student t over {what} on the logit scale of [{a:g}, {b:g}]")


def mean_evidence(values: Sequence[float], bounds: tuple[float, float] | None = None, *,
                  unit: str = "seeds", level: float = LEVEL) -> Evidence:
    """Mean of per-unit values with a Student-t interval (``unit`` names what the values are: seeds,
    runs, folds, trials); ``bounds`` keep the interval inside the quantity's range."""
    v = _values(values, "mean_evidence")
    _check_bounds(bounds, v, "mean_evidence")
    return _bounded_t(v, bounds, level, unit)


def paired_evidence(a: Sequence[float], b: Sequence[float], bounds: tuple[float, float] | None = None, *,
                    unit: str = "seeds", level: float = LEVEL) -> Evidence:
    """Mean of the paired differences ``a[i] - b[i]`` (unit ``i`` shared by both, e.g. a seed and split)
    with a Student-t interval. ``bounds`` are those of ``a`` and ``b`` (e.g. (0, 100) for accuracy in
    percent); the difference is then kept inside (low - high, high - low)."""
    av, bv = np.asarray(a, dtype=float).ravel(), np.asarray(b, dtype=float).ravel()
    if av.shape != bv.shape:
        raise ValueError(f"paired_evidence: a and b must pair up, got {av.size} and {bv.size} values")
    if bounds is not None:
        _check_bounds(bounds, _values(av, "paired_evidence a"), "paired_evidence a")
        _check_bounds(bounds, _values(bv, "paired_evidence b"), "paired_evidence b")
        width = bounds[1] - bounds[0]
        bounds = (-width, width)
    d = _values(av - bv, "paired_evidence")
    return _bounded_t(d, bounds, level, f"paired {unit}")


def clustered_evidence(values: Sequence[float], clusters: Sequence[Any], bounds: tuple[float, float] | None = None,
                       *, unit: str = "folds", level: float = LEVEL, test_train_ratio: float | None = None) -> Evidence:
    """Mean over clusters of the within-cluster means (e.g. weight initialisations within a fold), with a
    Student-t interval over the clusters: repetitions inside a cluster share its data and are not
    independent, so ``n`` counts clusters. Pass differences as ``values`` for a paired comparison.

    Folds of one K-fold partition still share most of their training rows, so their means are not
    independent either and the plain interval is too narrow (Bengio & Grandvalet 2004). With
    ``test_train_ratio`` = n_test / n_train, the variance of the mean is that of the corrected
    resampled t-test of Nadeau & Bengio (2003, eq. 4 of Bouckaert & Frank 2004),
    ``(1 / K + n_test / n_train) * s**2`` instead of ``s**2 / K``."""
    v = np.asarray(values, dtype=float).ravel()
    c = np.asarray(clusters, dtype=object).ravel()
    if v.shape != c.shape:
        raise ValueError(f"clustered_evidence: {v.size} values but {c.size} cluster labels")
    if not np.all(np.isfinite(v)):
        raise ValueError(f"clustered_evidence: every value must be finite, got {v.tolist()}")
    keys = list(dict.fromkeys(c.tolist()))
    means = _values(np.array([v[c == k].mean() for k in keys]), "clustered_evidence")
    if test_train_ratio is None:
        return _bounded_t(means, bounds, level, f"{unit} ({v.size} runs averaged within each)")
    if not test_train_ratio > 0:
        raise ValueError(f"test_train_ratio must be n_test / n_train > 0, got {test_train_ratio}")
    widen = math.sqrt(1 + means.size * test_train_ratio)
    return _bounded_t(means, bounds, level, f"{unit} ({v.size} runs averaged within each), Nadeau-Bengio "
                      f"corrected for overlapping training sets (n_test/n_train = {test_train_ratio:.2f})", widen)


def paired_bootstrap_evidence(metric: str, y_true: Any, score_a: Any, score_b: Any, task_kind: str, *,
                              n_boot: int = 1000, seed: int = 0, level: float = LEVEL) -> Evidence:
    """``metric(a) - metric(b)`` for two models scored on the same test rows, with a percentile bootstrap
    interval over rows: both models are re-scored on the same resamples (resamples on which the metric
    is undefined for either are dropped). Stays inside the metric's range by construction."""
    from mmrepro.core.metrics import METRICS, _replicates_fast, bootstrap_indices, prepare, score

    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; valid: {', '.join(METRICS)}")
    point = score(metric, y_true, score_a, task_kind) - score(metric, y_true, score_b, task_kind)
    yt, sa = prepare(np.asarray(y_true), np.asarray(score_a), task_kind)
    _, sb = prepare(np.asarray(y_true), np.asarray(score_b), task_kind)
    if sa.shape != sb.shape:
        raise ValueError(f"score_a {sa.shape} and score_b {sb.shape} must score the same rows")
    idx = bootstrap_indices(yt.shape[0], n_boot, seed)
    reps = _replicates_fast(metric, yt, sa, task_kind, idx, 0.5) - _replicates_fast(metric, yt, sb, task_kind, idx, 0.5)
    interval, kept = percentile_interval(float(point), reps, level)
    return Evidence(float(point), interval, int(yt.shape[0]),
                    f"paired percentile bootstrap over test rows ({kept} resamples)")


def percentile_interval(point: float, reps: np.ndarray, level: float = LEVEL) -> tuple[tuple[float, float], int]:
    """Percentile interval of the bootstrap replicates ``reps`` (those undefined, NaN, dropped; at least
    half must remain), widened to contain ``point``; and how many replicates it rests on."""
    kept = reps[np.isfinite(reps)]
    if kept.size < reps.size // 2:
        raise ValueError(f"the metric is undefined on {reps.size - kept.size} of {reps.size} resamples; too few rows")
    lo, hi = np.quantile(kept, [(1 - level) / 2, (1 + level) / 2])
    return (float(min(lo, point)), float(max(hi, point))), int(kept.size)
