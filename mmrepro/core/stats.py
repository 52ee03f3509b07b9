"""Intervals for claims: how much the runs and test rows behind a number say about it.

Every empirical claim of the book is decided by a 95 % interval (see :mod:`mmrepro.publish.claims`).
This module computes those intervals; each function returns an :class:`Evidence` -- the point
estimate, the interval, how many independent units it rests on, how it was computed, and the
sources of randomness it counts (:class:`Part`: seeds, folds, test rows, with their share of the
variance), from which the claim contract works out how many more runs would decide it.

* :func:`t_interval` -- Student-t interval of a mean (the basic building block).
* :func:`mean_evidence` -- the mean of per-unit values (seeds, runs, folds, trials).
* :func:`paired_evidence` -- the mean of paired differences ``a - b`` over shared units (methods
  that share seeds and splits are compared pairwise, never as two independent samples).
* :func:`clustered_evidence` -- nested repetitions (e.g. initialisations within folds, folds within
  repeated partitions): values are averaged within each cluster and the interval is taken over
  clusters; with ``test_train_ratio`` the corrected repeated cross-validation variance of Nadeau &
  Bengio (2003) and Bouckaert & Frank (2004).
* :func:`seed_row_evidence` and :func:`hierarchical_evidence` -- a number that rests on both seeds
  and a finite test set: the variance of the seed mean and the variance from the test rows are
  added, and the interval uses Student t with Welch-Satterthwaite degrees of freedom, so that with
  few seeds it is as wide as t over those seeds and with many it approaches the rows' bootstrap.
* :func:`paired_bootstrap_evidence` -- a metric difference between two models scored on the same
  test rows: a bootstrap over the rows with the same resamples for both models.

With 10 or fewer seeds or folds no interval here is a percentile over that few values (which
undercovers: about 0.6-0.7 of the t half-width at n = 5); percentiles are used over test rows only.

Bounded quantities (accuracies in [0, 100], AUROC in [0, 1], their differences) keep their
intervals inside the range: when a Student-t interval would cross a bound it is computed for the
logit of the mean (delta method: the t half-width divided by p (1 - p)) and mapped back, so the
interval contains the estimate strictly inside unless every value sits on the bound; ``method``
says which was used. An interval of zero width (every value equal) decides nothing: the claim
contract reads it as undecided.
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
class Part:
    """One source of randomness behind an interval: ``count`` units of kind ``unit`` (seeds, folds, test
    rows), their contribution ``variance`` to the variance of the estimate (in its units, squared), which
    shrinks as 1 / count, and the notebook ``parameter`` that sets the count (None: not a parameter)."""

    unit: str
    count: int
    variance: float
    parameter: str | None = None

    def as_record(self) -> dict[str, Any]:
        return {"unit": self.unit, "count": self.count, "variance": self.variance, "parameter": self.parameter}


@dataclass(frozen=True)
class Evidence:
    """What a claim rests on: ``estimate``, its ``interval`` (low, high), ``n`` independent units, the
    ``method`` that produced the interval (written into the results file as ``interval_method``), the
    sources of randomness it counts (``parts``) and a variance ``floor`` that more units of any part
    cannot remove (one K-fold partition's shared training rows, Nadeau & Bengio 2003)."""

    estimate: float
    interval: tuple[float, float]
    n: int
    method: str
    parts: tuple[Part, ...] = ()
    floor: float = 0.0

    def __post_init__(self) -> None:
        lo, hi = self.interval
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in (self.estimate, lo, hi)):
            raise ValueError(f"evidence needs a finite estimate and interval, got {self.estimate}, {self.interval}")
        if lo > hi:
            raise ValueError(f"interval low {lo} exceeds high {hi}")
        if not isinstance(self.n, int) or self.n < 1:
            raise ValueError(f"n must be a positive int, got {self.n!r}")
        if not (math.isfinite(self.floor) and self.floor >= 0):
            raise ValueError(f"floor must be a variance >= 0, got {self.floor}")
        for p in self.parts:
            if not (isinstance(p.count, int) and p.count >= 1 and math.isfinite(p.variance) and p.variance >= 0):
                raise ValueError(f"a part needs a count >= 1 and a variance >= 0, got {p}")

    def scaled(self, factor: float) -> "Evidence":
        """The same evidence in other units (e.g. accuracy as a percentage): estimate and interval times
        a positive ``factor`` (variances times its square)."""
        if not factor > 0:
            raise ValueError(f"factor must be positive, got {factor}")
        lo, hi = self.interval
        parts = tuple(Part(p.unit, p.count, p.variance * factor**2, p.parameter) for p in self.parts)
        return Evidence(self.estimate * factor, (lo * factor, hi * factor), self.n, self.method, parts,
                        self.floor * factor**2)

    def design(self) -> dict[str, Any]:
        """The sources of randomness as the results file records them (see :func:`mmrepro.publish.claims.runs_to_decide`)."""
        parts = self.parts or (Part("units", self.n, 1.0),)
        return {"parts": [p.as_record() for p in parts], "floor": self.floor}


def t_interval(values: Sequence[float], level: float = LEVEL, widen: float = 1.0) -> tuple[float, float, float]:
    """(mean, low, high): Student-t interval of the mean, its half-width times ``widen`` (a variance
    correction, see :func:`clustered_evidence`); a single value gives (v, nan, nan)."""
    v = np.asarray(values, dtype=float)
    if v.size == 0 or not np.all(np.isfinite(v)):
        raise ValueError(f"need finite values, got {v.tolist()}")
    _check_level(level)
    m = float(v.mean())
    if v.size < 2:
        return m, math.nan, math.nan
    half = float(widen * _st.t.ppf(0.5 + level / 2, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))
    return m, m - half, m + half


def _check_level(level: float) -> None:
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")


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


def _difference_bounds(bounds: tuple[float, float] | None) -> tuple[float, float] | None:
    """The range of ``a - b`` when ``a`` and ``b`` lie in ``bounds``."""
    return None if bounds is None else (bounds[0] - bounds[1], bounds[1] - bounds[0])


def bounded_interval(estimate: float, half: float, bounds: tuple[float, float] | None) -> tuple[tuple[float, float], bool]:
    """``estimate ± half``, or, when that crosses ``bounds``, the same half-width carried to the logit of the
    estimate's position in the range (delta method: divided by p (1 - p)) and mapped back; and whether
    the logit scale was used. The result lies inside the bounds and contains the estimate strictly
    inside, unless the estimate sits on a bound (then the interval is the bound itself)."""
    lo, hi = estimate - half, estimate + half
    if bounds is None or (lo >= bounds[0] and hi <= bounds[1]):
        return (lo, hi), False
    a, b = bounds
    p = (estimate - a) / (b - a)
    if not 0 < p < 1:
        return (estimate, estimate), True
    half_z = half / (b - a) / (p * (1 - p))
    z = float(logit(p))
    return (float(a + (b - a) * expit(z - half_z)), float(a + (b - a) * expit(z + half_z))), True


def _bounded_t(v: np.ndarray, bounds: tuple[float, float] | None, level: float, what: str, part: Part,
               widen: float = 1.0, floor_share: float = 0.0) -> Evidence:
    """Student-t interval of the mean of ``v`` (its half-width times ``widen``), on the logit scale of
    ``bounds`` when the plain one crosses them; ``floor_share`` of the variance is a floor."""
    m, lo, hi = t_interval(v, level, widen)
    (low, high), on_logit = bounded_interval(m, hi - m, bounds)
    if on_logit:
        what += f" on the logit scale of [{bounds[0]:g}, {bounds[1]:g}]"
    total = part.variance * widen**2
    return Evidence(m, (low, high), int(v.size), f"Student t over {what}",
                    (Part(part.unit, part.count, total - total * floor_share, part.parameter),), total * floor_share)


def mean_evidence(values: Sequence[float], bounds: tuple[float, float] | None = None, *, unit: str = "seeds",
                  parameter: str | None = None, level: float = LEVEL) -> Evidence:
    """Mean of per-unit values with a Student-t interval (``unit`` names what the values are: seeds,
    runs, folds, trials; ``parameter`` the notebook parameter that sets how many); ``bounds`` keep the
    interval inside the quantity's range."""
    v = _values(values, "mean_evidence")
    _check_bounds(bounds, v, "mean_evidence")
    return _bounded_t(v, bounds, level, unit, Part(unit, int(v.size), float(v.var(ddof=1) / v.size), parameter))


def paired_evidence(a: Sequence[float], b: Sequence[float], bounds: tuple[float, float] | None = None, *,
                    unit: str = "seeds", parameter: str | None = None, level: float = LEVEL) -> Evidence:
    """Mean of the paired differences ``a[i] - b[i]`` (unit ``i`` shared by both, e.g. a seed and split)
    with a Student-t interval. ``bounds`` are those of ``a`` and ``b`` (e.g. (0, 100) for accuracy in
    percent); the difference is then kept inside (low - high, high - low)."""
    av, bv = np.asarray(a, dtype=float).ravel(), np.asarray(b, dtype=float).ravel()
    if av.shape != bv.shape:
        raise ValueError(f"paired_evidence: a and b must pair up, got {av.size} and {bv.size} values")
    if bounds is not None:
        _check_bounds(bounds, _values(av, "paired_evidence a"), "paired_evidence a")
        _check_bounds(bounds, _values(bv, "paired_evidence b"), "paired_evidence b")
    d = _values(av - bv, "paired_evidence")
    return _bounded_t(d, _difference_bounds(bounds), level, f"paired {unit}",
                      Part(unit, int(d.size), float(d.var(ddof=1) / d.size), parameter))


def clustered_evidence(values: Sequence[float], clusters: Sequence[Any], bounds: tuple[float, float] | None = None,
                       *, unit: str = "folds", parameter: str | None = None, level: float = LEVEL,
                       test_train_ratio: float | None = None) -> Evidence:
    """Mean over clusters of the within-cluster means (e.g. weight initialisations within a fold), with a
    Student-t interval over the clusters: repetitions inside a cluster share its data and are not
    independent, so ``n`` counts clusters. Pass differences as ``values`` for a paired comparison.

    Folds of K-fold partitions still share most of their training rows, so their means are not
    independent either and the plain interval is too narrow (Bengio & Grandvalet 2004). With
    ``test_train_ratio`` = n_test / n_train, the variance of the mean over J folds (all folds of
    r repeated partitions, J = k r) is that of the corrected repeated cross-validation test
    (Nadeau & Bengio 2003; Bouckaert & Frank 2004), ``(1 / J + n_test / n_train) * s**2``, with
    J - 1 degrees of freedom. Its second term does not shrink with more folds or initialisations: it
    is recorded as the evidence's variance ``floor``."""
    v = np.asarray(values, dtype=float).ravel()
    c = np.empty(len(clusters), dtype=object)
    c[:] = list(clusters)  # labels may be tuples (repeat, fold): one label per value
    if v.shape != c.shape:
        raise ValueError(f"clustered_evidence: {v.size} values but {c.size} cluster labels")
    if not np.all(np.isfinite(v)):
        raise ValueError(f"clustered_evidence: every value must be finite, got {v.tolist()}")
    keys = list(dict.fromkeys(c.tolist()))
    means = _values(np.array([v[np.array([x == k for x in c])].mean() for k in keys]), "clustered_evidence")
    part = Part(unit, int(means.size), float(means.var(ddof=1) / means.size), parameter)
    what = f"{unit} ({v.size} runs averaged within each)"
    if test_train_ratio is None:
        return _bounded_t(means, bounds, level, what, part)
    if not test_train_ratio > 0:
        raise ValueError(f"test_train_ratio must be n_test / n_train > 0, got {test_train_ratio}")
    widen2 = 1 + means.size * test_train_ratio
    return _bounded_t(means, bounds, level, f"{what}, Nadeau-Bengio corrected for overlapping training sets "
                      f"(n_test/n_train = {test_train_ratio:.3f})", part, math.sqrt(widen2),
                      floor_share=(widen2 - 1) / widen2)


def _combined(estimate: float, v_units: float, k: int, v_rows: float, n_rows: int, level: float
              ) -> tuple[float, float]:
    """Half-width and degrees of freedom of a mean whose variance is ``v_units`` (from ``k`` units, k - 1
    degrees of freedom) plus ``v_rows`` (from ``n_rows`` test rows): Welch-Satterthwaite."""
    total = v_units + v_rows
    if total == 0:
        return 0.0, float(k - 1)
    df = total**2 / (v_units**2 / max(k - 1, 1) + v_rows**2 / max(n_rows - 1, 1))
    return float(_st.t.ppf(0.5 + level / 2, df) * math.sqrt(total)), float(df)


def hierarchical_evidence(unit_values: Sequence[float], row_replicates: Sequence[float],
                          bounds: tuple[float, float] | None = None, *, n_rows: int, unit: str = "seeds",
                          parameter: str | None = None, row_parameter: str | None = None,
                          level: float = LEVEL) -> Evidence:
    """A statistic averaged over units (seeds) that are each scored on the same ``n_rows`` test rows.

    ``unit_values`` (K,): the statistic of each unit on all test rows (their mean is the estimate);
    ``row_replicates`` (B,): the unit-averaged statistic on B bootstrap resamples of the rows (every unit
    kept, the same rows for every unit; NaN resamples dropped). The variance of the estimate is that of
    the unit mean, s_K^2 / K, plus the rows' bootstrap variance; the interval is Student t with
    Welch-Satterthwaite degrees of freedom. For a paired comparison pass differences (and the bounds of
    the two compared quantities: the difference is kept inside (low - high, high - low))."""
    u = _values(unit_values, "hierarchical_evidence")
    reps = np.asarray(row_replicates, dtype=float).ravel()
    reps = reps[np.isfinite(reps)]
    if reps.size < 2:
        raise ValueError("hierarchical_evidence: need at least 2 defined row replicates")
    _check_level(level)
    m, k = float(u.mean()), int(u.size)
    v_units, v_rows = float(u.var(ddof=1) / k), float(reps.var(ddof=1))
    half, df = _combined(m, v_units, k, v_rows, n_rows, level)
    interval, on_logit = bounded_interval(m, half, bounds)
    method = (f"Student t over {k} {unit} plus a bootstrap over {n_rows} test rows ({reps.size} resamples), "
              f"Welch-Satterthwaite df {df:.1f}" + (" on the logit scale" if on_logit else ""))
    return Evidence(m, interval, k, method, (Part(unit, k, v_units, parameter),
                                             Part("test rows", int(n_rows), v_rows, row_parameter)))


def seed_row_evidence(values: Any, bounds: tuple[float, float] | None = None, *, unit: str = "seeds",
                      parameter: str | None = None, row_parameter: str | None = None,
                      level: float = LEVEL) -> Evidence:
    """The mean of a (K units, N test rows) matrix of per-row values (e.g. 100 x correct, or the
    difference of two methods' correctness on the same rows and seeds) with both sources of randomness
    counted: s^2 of the K unit means over K, plus the variance of the N row means (over units) over N;
    Student t with Welch-Satterthwaite degrees of freedom (see :func:`hierarchical_evidence`). The row
    term also holds the units-by-rows noise once more, which errs on the wide side by 1 / (K N)."""
    x = np.asarray(values, dtype=float)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 2:
        raise ValueError(f"seed_row_evidence: values must be (units >= 2, rows >= 2), got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("seed_row_evidence: every value must be finite")
    _check_level(level)
    k, n = x.shape
    m = float(x.mean())
    v_units = float(x.mean(axis=1).var(ddof=1) / k)
    v_rows = float(x.mean(axis=0).var(ddof=1) / n)
    half, df = _combined(m, v_units, k, v_rows, n, level)
    interval, on_logit = bounded_interval(m, half, bounds)
    method = (f"Student t over {k} {unit} x {n} test rows (both counted), Welch-Satterthwaite df {df:.1f}"
              + (" on the logit scale" if on_logit else ""))
    return Evidence(m, interval, k, method, (Part(unit, k, v_units, parameter),
                                             Part("test rows", n, v_rows, row_parameter)))


def paired_bootstrap_evidence(metric: str, y_true: Any, score_a: Any, score_b: Any, task_kind: str, *,
                              n_boot: int = 1000, seed: int = 0, level: float = LEVEL,
                              row_parameter: str | None = None) -> Evidence:
    """``metric(a) - metric(b)`` for two models scored on the same test rows, with a bootstrap interval
    over rows: both models are re-scored on the same resamples (resamples on which the metric is
    undefined for either are dropped). Percentile interval (:func:`percentile_interval`), inside the
    range of the difference (-1, 1) for the metrics in [0, 1]; unbounded for MSE."""
    from mmrepro.core.metrics import METRICS, bootstrap_indices, prepare, resampled_scores, score

    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; valid: {', '.join(METRICS)}")
    point = score(metric, y_true, score_a, task_kind) - score(metric, y_true, score_b, task_kind)
    yt, sa = prepare(np.asarray(y_true), np.asarray(score_a), task_kind)
    _, sb = prepare(np.asarray(y_true), np.asarray(score_b), task_kind)
    if sa.shape != sb.shape:
        raise ValueError(f"score_a {sa.shape} and score_b {sb.shape} must score the same rows")
    idx = bootstrap_indices(yt.shape[0], n_boot, seed)
    reps = resampled_scores(metric, yt, sa, task_kind, idx, 0.5) - resampled_scores(metric, yt, sb, task_kind, idx, 0.5)
    bounds = None if metric == "mse" else (-1.0, 1.0)  # a difference of two scores in [0, 1]; MSE is unbounded
    interval, kept, how = percentile_interval(float(point), reps, level, bounds=bounds)
    return Evidence(float(point), interval, int(yt.shape[0]), f"paired {how} bootstrap over test rows ({kept} resamples)",
                    (Part("test rows", int(yt.shape[0]), float(np.nanvar(reps, ddof=1)), row_parameter),))


def percentile_interval(point: float, reps: np.ndarray, level: float = LEVEL,
                        bounds: tuple[float, float] | None = None) -> tuple[tuple[float, float], int, str]:
    """Percentile interval of the bootstrap replicates ``reps`` (NaN replicates, where the metric is
    undefined, are dropped; at least half must remain), how many replicates it rests on, and the kind
    used. A percentile interval that does not hold ``point`` strictly inside (a skewed resampling
    distribution) is replaced by the normal interval of the bootstrap standard error around ``point``
    (on the logit scale of ``bounds`` when it would cross them), so that no interval ends at its estimate."""
    kept = reps[np.isfinite(reps)]
    if kept.size < max(reps.size // 2, 2):
        raise ValueError(f"the metric is undefined on {reps.size - kept.size} of {reps.size} resamples; too few rows")
    lo, hi = (float(q) for q in np.quantile(kept, [(1 - level) / 2, (1 + level) / 2]))
    if lo < point < hi or lo == hi == point:
        return (lo, hi), int(kept.size), "percentile"
    half = float(_st.norm.ppf(0.5 + level / 2) * kept.std(ddof=1))
    return bounded_interval(point, half, bounds)[0], int(kept.size), "normal (bootstrap standard error)"
