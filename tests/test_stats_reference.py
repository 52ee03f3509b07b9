"""The numbers that decide a claim, each against an independent reference: scipy where it has the method
(Student t, paired t, the bootstrap, binomial intervals), otherwise a hand computation on a small
example written out here from the formula (never from the function under test). Bounded and paired
cases and the edges -- ties, values at a bound, n = 2 -- are included.

These are also the tests that ``mutation/mutate.py`` runs first for ``mmrepro.core.stats`` and the
verdict rule: each asserts an exact value, so a plausible bug changes at least one of them."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sst
from sklearn import metrics as skm

from mmrepro.core.metrics import bootstrap_ci, bootstrap_indices, interval
from mmrepro.core.stats import (
    Evidence,
    Part,
    bounded_interval,
    clustered_evidence,
    hierarchical_evidence,
    mean_evidence,
    paired_bootstrap_evidence,
    paired_evidence,
    percentile_interval,
    seed_row_evidence,
    t_interval,
)
from mmrepro.publish.claims import (
    CONTRADICTED,
    FAILS,
    HOLDS,
    INCONCLUSIVE,
    LARGER,
    NOT_COMPARABLE,
    NOT_REPRODUCED,
    OUT_OF_SCOPE,
    REPRODUCES,
    SMALLER,
    UNDECIDED,
    ClaimError,
    decide,
    empirical,
    outcome,
    runs_to_decide,
    validate,
)

T975 = {1: 12.706204736174707, 2: 4.302652729749464, 4: 2.7764451051977934}  # scipy.stats.t.ppf(0.975, df)
Z975 = 1.959963984540054


def expit(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def logit_interval(m: float, half: float, a: float, b: float) -> tuple[float, float]:
    """The delta-method interval on the logit of the mean's position in [a, b], written out by hand."""
    p = (m - a) / (b - a)
    z, half_z = math.log(p / (1 - p)), half / (b - a) / (p * (1 - p))
    return a + (b - a) * expit(z - half_z), a + (b - a) * expit(z + half_z)


def test_the_t_quantiles_used_here_are_scipys():
    for df, q in T975.items():
        assert sst.t.ppf(0.975, df) == pytest.approx(q, rel=1e-12)
    assert sst.norm.ppf(0.975) == pytest.approx(Z975, rel=1e-12)


# ----------------------------------------------------------------------------- Student t

@pytest.mark.parametrize("values", [[0.3, 0.5], [0.81, 0.84, 0.79, 0.86, 0.83], [2.0, 2.0, 5.0]])
@pytest.mark.parametrize("level", [0.95, 0.8])
def test_t_interval_is_scipys(values, level):
    m, lo, hi = t_interval(values, level)
    ref = sst.t.interval(level, len(values) - 1, loc=np.mean(values), scale=sst.sem(values))
    assert m == pytest.approx(np.mean(values)) and (lo, hi) == pytest.approx(ref, rel=1e-12)


def test_t_interval_widened_ties_and_one_value():
    m, lo, hi = t_interval([1.0, 3.0], widen=2.0)  # n = 2: s = sqrt(2), sem = 1, half = 2 t_{0.975, 1}
    assert (m, lo, hi) == pytest.approx((2.0, 2.0 - 2 * T975[1], 2.0 + 2 * T975[1]), rel=1e-12)
    assert t_interval([4.0, 4.0, 4.0]) == (4.0, 4.0, 4.0)  # ties: no spread, zero width
    m, lo, hi = t_interval([7.0])
    assert m == 7.0 and math.isnan(lo) and math.isnan(hi)
    for bad, match in (([], "need finite values"), ([1.0, math.inf], "need finite values")):
        with pytest.raises(ValueError, match=match):
            t_interval(bad)
    for level in (0.0, 1.0):
        with pytest.raises(ValueError, match="level must be in"):
            t_interval([1.0, 2.0], level)


def test_mean_evidence_n2_plain_and_its_variance_part():
    ev = mean_evidence([1.0, 3.0], unit="folds", parameter="n_folds")
    assert ev.estimate == 2.0 and ev.n == 2 and ev.interval == pytest.approx((2 - T975[1], 2 + T975[1]), rel=1e-12)
    assert ev.method == "Student t over folds" and ev.floor == 0.0
    assert ev.parts == (Part("folds", 2, 1.0, "n_folds"),)  # s^2 / n = 2 / 2
    assert ev.design() == {"parts": [{"unit": "folds", "count": 2, "variance": 1.0, "parameter": "n_folds"}],
                           "floor": 0.0}


def test_mean_evidence_n2_crossing_both_bounds_goes_to_the_logit_scale():
    ev = mean_evidence([0.3, 0.5], bounds=(0.0, 1.0))  # t half-width 1.27: crosses 0 and 1
    assert ev.interval == pytest.approx(logit_interval(0.4, T975[1] * 0.1, 0.0, 1.0), rel=1e-12)
    assert ev.method == "Student t over seeds on the logit scale of [0, 1]"
    assert ev.parts[0].variance == pytest.approx(0.01)  # the variance is that of the plain mean


def test_bounds_that_are_not_0_1_and_one_side_crossed():
    values = [2.0, 2.6, 2.9]  # bounds (-1, 3): the upper one is crossed, the lower one not
    m, half = np.mean(values), T975[2] * sst.sem(values)
    assert m + half > 3 and m - half > -1
    ev = mean_evidence(values, bounds=(-1.0, 3.0))
    assert ev.interval == pytest.approx(logit_interval(m, half, -1.0, 3.0), rel=1e-12)
    assert -1 < ev.interval[0] < m < ev.interval[1] < 3
    # a plain interval that ends exactly on a bound stays plain
    (lo, hi), on_logit = bounded_interval(0.75, 0.25, (0.0, 1.0))
    assert (lo, hi, on_logit) == (0.5, 1.0, False)
    (lo, hi), on_logit = bounded_interval(0.25, 0.25, (0.0, 1.0))
    assert (lo, hi, on_logit) == (0.0, 0.5, False)


def test_bounded_interval_by_hand():
    assert bounded_interval(0.5, 0.1, None) == ((0.4, 0.6), False)
    assert bounded_interval(5.0, 100.0, None) == ((-95.0, 105.0), False)  # no bounds: never moved
    (lo, hi), on_logit = bounded_interval(0.9, 0.2, (0.0, 1.0))
    assert on_logit and (lo, hi) == pytest.approx(logit_interval(0.9, 0.2, 0.0, 1.0), rel=1e-12)
    (lo, hi), on_logit = bounded_interval(95.0, 8.0, (20.0, 100.0))
    assert on_logit and (lo, hi) == pytest.approx(logit_interval(95.0, 8.0, 20.0, 100.0), rel=1e-12)
    # an estimate on a bound: the interval is the bound itself (the estimate cannot move inside)
    assert bounded_interval(0.0, 0.3, (0.0, 1.0)) == ((0.0, 0.0), True)
    assert bounded_interval(100.0, 0.3, (20.0, 100.0)) == ((100.0, 100.0), True)


def test_values_at_a_bound():
    ev = mean_evidence([1.0, 1.0, 1.0], bounds=(0.0, 1.0))  # every value on the bound: zero width, plain
    assert ev.interval == (1.0, 1.0) and "logit" not in ev.method
    assert decide(ev.interval, 0.5, "above") == INCONCLUSIVE and outcome(ev.interval, 0.5, "above", None) == UNDECIDED
    ev = mean_evidence([1.0, 1.0, 0.9], bounds=(0.0, 1.0))  # one off the bound
    m, half = np.mean([1.0, 1.0, 0.9]), T975[2] * sst.sem([1.0, 1.0, 0.9])
    assert ev.interval == pytest.approx(logit_interval(m, half, 0.0, 1.0), rel=1e-12)


def test_paired_evidence_is_scipys_paired_t_at_n2_and_with_ties():
    a, b = [0.7, 0.9], [0.6, 0.6]
    ev = paired_evidence(a, b)
    ci = sst.ttest_rel(a, b).confidence_interval(0.95)
    assert ev.estimate == pytest.approx(0.2) and ev.interval == pytest.approx((ci.low, ci.high), rel=1e-12)
    assert ev.method == "Student t over paired seeds" and ev.n == 2
    assert ev.parts[0].variance == pytest.approx(0.01)  # var([0.1, 0.3]) / 2
    tied = paired_evidence([0.5, 0.6, 0.7], [0.4, 0.5, 0.6])  # every difference 0.1: zero width
    assert tied.interval == pytest.approx((0.1, 0.1)) and decide(tied.interval, 0.0, "above") == INCONCLUSIVE


def test_paired_evidence_bounded_difference_by_hand():
    """Accuracies in [0, 100]: the difference lies in [-100, 100], and its logit interval is taken there."""
    a, b = [100.0, 100.0, 99.0], [0.0, 1.0, 0.0]
    d = np.array(a) - np.array(b)  # 100, 99, 99
    m, half = d.mean(), T975[2] * d.std(ddof=1) / math.sqrt(3)
    assert m + half > 100
    ev = paired_evidence(a, b, bounds=(0, 100))
    assert ev.interval == pytest.approx(logit_interval(m, half, -100.0, 100.0), rel=1e-12)
    assert ev.method == "Student t over paired seeds on the logit scale of [-100, 100]"
    # the example: a difference near 0 never touches the bounds of a difference
    ev = paired_evidence([80, 82, 79], [81, 80, 79.5], bounds=(0, 100))
    assert ev.interval == pytest.approx((0.5 / 3 - T975[2] * np.std([-1, 2, -0.5], ddof=1) / math.sqrt(3),
                                         0.5 / 3 + T975[2] * np.std([-1, 2, -0.5], ddof=1) / math.sqrt(3)))
    with pytest.raises(ValueError, match="outside the stated bounds"):
        paired_evidence([101.0, 50.0], [50.0, 50.0], bounds=(0, 100))
    with pytest.raises(ValueError, match="outside the stated bounds"):
        paired_evidence([50.0, 50.0], [50.0, -1.0], bounds=(0, 100))
    with pytest.raises(ValueError, match="bounds must be"):
        mean_evidence([0.5, 0.6], bounds=(1.0, 1.0))


def test_paired_bounds_that_do_not_start_at_0():
    """Scores in [1, 3]: their difference lies in [-2, 2]."""
    a, b = [3.0, 3.0, 2.9], [1.0, 1.05, 1.0]
    d = np.array(a) - np.array(b)
    m, half = d.mean(), T975[2] * d.std(ddof=1) / math.sqrt(3)
    assert m + half > 2
    ev = paired_evidence(a, b, bounds=(1.0, 3.0))
    assert ev.interval == pytest.approx(logit_interval(m, half, -2.0, 2.0), rel=1e-12)


def test_values_on_the_stated_bounds_are_accepted():
    ev = mean_evidence([0.0, 1.0], bounds=(0.0, 1.0))
    assert ev.estimate == 0.5
    assert paired_evidence([0.0, 1.0], [1.0, 0.0], bounds=(0.0, 1.0)).estimate == 0.0


# ----------------------------------------------------------------------------- clusters and repeated CV

def test_clustered_evidence_averages_within_clusters_first():
    values = [0.8, 0.82, 0.7, 0.72, 0.9]  # unequal clusters: the mean of means is not the mean of values
    ev = clustered_evidence(values, [0, 0, "b", "b", (2, 0)], unit="folds", parameter="k")
    means = np.array([0.81, 0.71, 0.9])
    ref = sst.t.interval(0.95, 2, loc=means.mean(), scale=sst.sem(means))
    assert ev.estimate == pytest.approx(means.mean()) and ev.interval == pytest.approx(ref, rel=1e-12)
    assert ev.n == 3 and ev.method == "Student t over folds (5 runs averaged within each)"
    assert ev.parts == (Part("folds", 3, pytest.approx(means.var(ddof=1) / 3), "k"),) and ev.floor == 0.0


def test_repeated_cv_correction_by_hand_and_its_floor():
    # 2 repeats x 2 folds, one value each; n_test / n_train = 1 / 4 (5-fold CV would be 1 / 4)
    values = [0.80, 0.76, 0.83, 0.77]
    folds = [(0, 0), (0, 1), (1, 0), (1, 1)]
    ev = clustered_evidence(values, folds, test_train_ratio=0.25)
    s2 = np.var(values, ddof=1)
    half = sst.t.ppf(0.975, 3) * math.sqrt((1 / 4 + 1 / 4) * s2)  # (1/J + n_test/n_train) s^2, J - 1 df
    assert ev.interval == pytest.approx((np.mean(values) - half, np.mean(values) + half), rel=1e-12)
    assert ev.parts[0].variance == pytest.approx(s2 / 4) and ev.floor == pytest.approx(s2 / 4)
    assert "Nadeau-Bengio corrected for overlapping training sets (n_test/n_train = 0.250)" in ev.method
    bounded = clustered_evidence([0.99, 0.97, 1.0, 0.98], folds, bounds=(0, 1), test_train_ratio=0.25)
    h = sst.t.ppf(0.975, 3) * math.sqrt(0.5 * np.var([0.99, 0.97, 1.0, 0.98], ddof=1))
    assert bounded.interval == pytest.approx(logit_interval(0.985, h, 0.0, 1.0), rel=1e-12)
    with pytest.raises(ValueError, match="4 values but 3 cluster labels"):
        clustered_evidence(values, folds[:3])
    with pytest.raises(ValueError, match="every value must be finite"):
        clustered_evidence([0.8, math.nan], [0, 1])
    with pytest.raises(ValueError, match="at least 2 independent units, got 1"):
        clustered_evidence([0.8, 0.9], [0, 0])


# ----------------------------------------------------------------------------- seeds and test rows together

def welch(v_units: float, k: int, v_rows: float, n_rows: int) -> float:
    """Welch-Satterthwaite degrees of freedom of v_units (k - 1 df) + v_rows (n_rows - 1 df)."""
    return (v_units + v_rows) ** 2 / (v_units**2 / (k - 1) + v_rows**2 / (n_rows - 1))


def test_hierarchical_evidence_by_hand():
    u = [0.80, 0.84, 0.79, 0.86, 0.83]
    reps = np.array([0.81, 0.86, np.nan, 0.80, 0.85, 0.83, 0.78])  # the NaN resample is dropped
    ev = hierarchical_evidence(u, reps, n_rows=6, parameter="n_seeds", row_parameter="n_test")
    v_u, v_r = np.var(u, ddof=1) / 5, np.nanvar(reps, ddof=1)
    df = welch(v_u, 5, v_r, 6)
    half = sst.t.ppf(0.975, df) * math.sqrt(v_u + v_r)
    assert ev.estimate == pytest.approx(np.mean(u)) and ev.n == 5
    assert ev.interval == pytest.approx((np.mean(u) - half, np.mean(u) + half), rel=1e-12)
    assert ev.parts == (Part("seeds", 5, pytest.approx(v_u), "n_seeds"), Part("test rows", 6, pytest.approx(v_r), "n_test"))
    assert ev.method == (f"Student t over 5 seeds plus a bootstrap over 6 test rows (6 resamples), "
                         f"Welch-Satterthwaite df {df:.1f}")
    with pytest.raises(ValueError, match="at least 2 defined row replicates"):
        hierarchical_evidence(u, [0.8, np.nan], n_rows=6)


def test_hierarchical_evidence_bounded_and_at_the_bound():
    u, reps = [0.97, 0.99, 0.98], np.array([0.95, 0.99, 1.0, 0.97])
    ev = hierarchical_evidence(u, reps, (0.0, 1.0), n_rows=50)
    v_u, v_r = np.var(u, ddof=1) / 3, np.var(reps, ddof=1)
    half = sst.t.ppf(0.975, welch(v_u, 3, v_r, 50)) * math.sqrt(v_u + v_r)
    assert ev.interval == pytest.approx(logit_interval(0.98, half, 0.0, 1.0), rel=1e-12)
    assert ev.method.endswith("on the logit scale")
    # every seed on the bound, spread only in the rows: the interval is the bound, zero width
    ev = hierarchical_evidence([1.0, 1.0], [0.9, 1.0, 0.95], (0.0, 1.0), n_rows=20)
    assert ev.interval == (1.0, 1.0) and outcome(ev.interval, 0.5, "above", None) == UNDECIDED


def test_two_seeds_and_two_rows_by_hand():
    """The smallest design: K = 2 seeds, N = 2 rows; both sources have one degree of freedom."""
    x = np.array([[1.0, 0.0], [1.0, 1.0]])
    ev = seed_row_evidence(x)
    v_s = np.var([0.5, 1.0], ddof=1) / 2  # 0.0625
    v_r = np.var([1.0, 0.5], ddof=1) / 2  # 0.0625
    df = (v_s + v_r) ** 2 / (v_s**2 / 1 + v_r**2 / 1)  # = 2
    half = sst.t.ppf(0.975, df) * math.sqrt(v_s + v_r)
    assert df == pytest.approx(2.0) and ev.interval == pytest.approx((0.75 - half, 0.75 + half), rel=1e-12)
    ev = hierarchical_evidence([0.5, 1.0], [0.6, 0.9, 0.75], n_rows=2)
    v_r = np.var([0.6, 0.9, 0.75], ddof=1)
    df = (v_s + v_r) ** 2 / (v_s**2 / 1 + v_r**2 / 1)
    half = sst.t.ppf(0.975, df) * math.sqrt(v_s + v_r)
    assert ev.interval == pytest.approx((0.75 - half, 0.75 + half), rel=1e-12)


def test_no_variance_at_all_gives_zero_width_and_k_minus_1_df():
    ev = hierarchical_evidence([0.5, 0.5, 0.5], [0.5, 0.5], n_rows=10)
    assert ev.interval == (0.5, 0.5) and "df 2.0" in ev.method


def test_seed_row_evidence_by_hand_not_square_and_bounded():
    x = 100 * np.array([[1, 1, 1, 0, 1], [1, 0, 1, 1, 1]], dtype=float)  # 2 seeds x 5 rows, in percent
    ev = seed_row_evidence(x, parameter="seeds", row_parameter="rows")
    v_s = np.var([80.0, 80.0], ddof=1) / 2  # both seeds score 80: no seed variance
    v_r = np.var([100, 50, 100, 50, 100], ddof=1) / 5
    half = sst.t.ppf(0.975, welch(v_s, 2, v_r, 5)) * math.sqrt(v_s + v_r)
    assert v_s == 0 and ev.interval == pytest.approx((80 - half, 80 + half), rel=1e-12)
    assert ev.parts == (Part("seeds", 2, 0.0, "seeds"), Part("test rows", 5, pytest.approx(v_r), "rows"))
    assert "df 4.0" in ev.method  # the rows' n - 1 alone when the seeds add nothing
    crossing = seed_row_evidence(x, (0.0, 100.0))
    assert crossing.interval == pytest.approx(logit_interval(80.0, half, 0.0, 100.0), rel=1e-12)
    x3 = np.array([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0], [1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])  # 4 seeds x 3 rows
    ev = seed_row_evidence(x3)
    v_s, v_r = np.var(x3.mean(1), ddof=1) / 4, np.var(x3.mean(0), ddof=1) / 3
    half = sst.t.ppf(0.975, welch(v_s, 4, v_r, 3)) * math.sqrt(v_s + v_r)
    assert ev.n == 4 and ev.interval == pytest.approx((x3.mean() - half, x3.mean() + half), rel=1e-12)
    for bad in (np.ones((1, 4)), np.ones((3, 1)), np.ones(4)):
        with pytest.raises(ValueError, match="values must be"):
            seed_row_evidence(bad)
    with pytest.raises(ValueError, match="every value must be finite"):
        seed_row_evidence(np.array([[1.0, np.nan], [0.0, 1.0]]))


# ----------------------------------------------------------------------------- bootstraps over rows

def test_percentile_interval_by_hand():
    reps = np.arange(101, dtype=float) / 100  # quantiles 0.025 and 0.975 by linear interpolation
    assert percentile_interval(0.5, reps) == ((pytest.approx(0.025), pytest.approx(0.975)), 101, "percentile")
    assert percentile_interval(0.5, reps, 0.9)[0] == (pytest.approx(0.05), pytest.approx(0.95))
    # NaN replicates (the metric undefined there) are dropped; at least half must remain
    with_nan = np.r_[reps, np.full(100, np.nan)]
    assert percentile_interval(0.5, with_nan)[1] == 101
    odd = np.r_[np.linspace(0, 1, 5), np.full(6, np.nan)]  # 5 of 11 kept: 11 // 2 = 5 is enough
    assert percentile_interval(0.5, odd)[1] == 5
    assert percentile_interval(0.15, np.array([0.1, 0.2, np.nan, np.nan]))[1] == 2  # two of four: enough
    with pytest.raises(ValueError, match="undefined on 6 of 10 resamples"):
        percentile_interval(0.5, np.r_[np.linspace(0, 1, 4), np.full(6, np.nan)])
    with pytest.raises(ValueError, match="undefined on 1 of 2"):
        percentile_interval(0.5, np.array([0.4, np.nan]))
    # every replicate equal to the point: zero width, still the percentile interval (it decides nothing)
    assert percentile_interval(0.3, np.full(20, 0.3)) == ((0.3, 0.3), 20, "percentile")


def test_percentile_interval_falls_back_to_the_normal_one_when_the_point_is_not_inside():
    reps = np.linspace(0.6, 0.9, 1001)  # the point 0.5 lies below every replicate
    (lo, hi), kept, how = percentile_interval(0.5, reps, bounds=(-1.0, 1.0))
    half = Z975 * np.std(reps, ddof=1)
    assert (lo, hi) == pytest.approx((0.5 - half, 0.5 + half), rel=1e-12) and kept == 1001
    assert how == "normal (bootstrap standard error)"
    # a percentile end on the point itself also falls back (no interval ends at its estimate)
    assert percentile_interval(0.6, np.r_[np.full(50, 0.6), np.linspace(0.6, 0.8, 50)])[2].startswith("normal")
    assert percentile_interval(0.8, np.r_[np.full(50, 0.8), np.linspace(0.6, 0.8, 50)])[2].startswith("normal")
    # near a bound the normal interval moves to the logit scale of the bounds
    reps = np.linspace(0.1, 0.5, 401)
    (lo, hi), _, _ = percentile_interval(0.95, reps, bounds=(-1.0, 1.0))
    assert (lo, hi) == pytest.approx(logit_interval(0.95, Z975 * np.std(reps, ddof=1), -1.0, 1.0), rel=1e-12)


def auroc_by_ranks(y: np.ndarray, s: np.ndarray) -> np.ndarray:
    """AUROC of each row of (B, n) labels and scores from scipy's mid-ranks (Mann-Whitney U / (P N));
    NaN where a row lacks a class."""
    ranks = sst.rankdata(s, axis=-1)
    n_pos = y.sum(-1)
    n_neg = y.shape[-1] - n_pos
    with np.errstate(invalid="ignore", divide="ignore"):
        return ((ranks * y).sum(-1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def test_paired_bootstrap_is_mann_whitney_on_the_same_resamples():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 60)
    sa = np.round(np.clip(0.5 * y + rng.random(60) * 0.6, 0, 1), 1)  # rounded: ties
    sb = np.round(np.clip(0.2 * y + rng.random(60) * 0.8, 0, 1), 1)
    ev = paired_bootstrap_evidence("auroc", y, sa, sb, "binary", n_boot=300, seed=9, row_parameter="n_test")
    idx = bootstrap_indices(60, 300, 9)
    ref = auroc_by_ranks(y[idx], sa[idx]) - auroc_by_ranks(y[idx], sb[idx])
    point = skm.roc_auc_score(y, sa) - skm.roc_auc_score(y, sb)
    assert float(auroc_by_ranks(y, sa) - auroc_by_ranks(y, sb)) == pytest.approx(point, abs=1e-12)
    lo, hi = np.nanquantile(ref, [0.025, 0.975])
    assert lo < point < hi
    assert ev.estimate == pytest.approx(point, abs=1e-12) and ev.interval == pytest.approx((lo, hi), abs=1e-12)
    assert ev.n == 60 and ev.parts == (Part("test rows", 60, pytest.approx(np.nanvar(ref, ddof=1)), "n_test"),)
    assert ev.method == f"paired percentile bootstrap over test rows ({int(np.isfinite(ref).sum())} resamples)"


def test_paired_bootstrap_keeps_a_difference_of_scores_in_its_range(monkeypatch):
    """The bounds handed to the interval: (-1, 1) for scores in [0, 1]; none for MSE, whose differences
    are unbounded (they used to be clipped to (-1, 1) as well, which would make the normal fallback's
    interval zero-width at any MSE difference beyond 1)."""
    import mmrepro.core.stats as stats_module

    seen = []
    real = stats_module.percentile_interval
    monkeypatch.setattr(stats_module, "percentile_interval",
                        lambda point, reps, level, bounds=None: seen.append(bounds) or real(point, reps, level, bounds))
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 40)
    paired_bootstrap_evidence("auroc", y, rng.random(40), rng.random(40), "binary", n_boot=20)
    yr = rng.normal(0, 3, 40)
    ev = paired_bootstrap_evidence("mse", yr, yr + rng.normal(0, 3, 40), yr, "regression", n_boot=200)
    assert seen == [(-1.0, 1.0), None] and ev.estimate > 1 and ev.interval[0] < ev.estimate < ev.interval[1]


def test_paired_bootstrap_of_accuracy_agrees_with_scipys_bootstrap():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    sa = np.where(rng.random(400) < 0.85, y, 1 - y).astype(float)  # 85 % correct
    sb = np.where(rng.random(400) < 0.75, y, 1 - y).astype(float)
    ev = paired_bootstrap_evidence("accuracy", y, sa, sb, "binary", n_boot=4000, seed=1)
    diff = (sa == y).astype(float) - (sb == y).astype(float)
    ref = sst.bootstrap((diff,), np.mean, n_resamples=4000, method="percentile",
                        rng=np.random.default_rng(2)).confidence_interval
    width = ev.interval[1] - ev.interval[0]
    assert ev.estimate == pytest.approx(diff.mean())
    assert ev.method == "paired percentile bootstrap over test rows (4000 resamples)"  # no fallback needed
    assert abs(ev.interval[0] - ref.low) < 0.05 * width and abs(ev.interval[1] - ref.high) < 0.05 * width


def test_bootstrap_ci_of_an_accuracy_is_close_to_the_binomial_interval():
    y = np.r_[np.ones(320), np.zeros(80)].astype(int)  # 320 of 400 predicted right
    pred = np.r_[np.ones(400)].astype(float)
    res = bootstrap_ci("accuracy", y, pred, n_boot=4000, seed=0, task_kind="binary")
    ci = sst.binomtest(320, 400).proportion_ci(0.95, method="wilson")
    assert res.point == 0.8
    assert abs(res.low - ci.low) < 0.004 and abs(res.high - ci.high) < 0.004


def test_bootstrap_ci_edges_by_hand():
    # n = 2: a resample's mean is a, (a + b) / 2 or b; with many resamples the 95 % interval is (a, b)
    res = bootstrap_ci(lambda yt, ys: float(np.mean(ys)), np.zeros(2), np.array([1.0, 3.0]), n_boot=2000)
    assert tuple(res) == (2.0, 1.0, 3.0)
    # ties: every value equal gives a zero-width interval at the value
    res = bootstrap_ci("mse", np.zeros(5), np.full(5, 0.5), n_boot=50, task_kind="regression")
    assert tuple(res) == (0.25, 0.25, 0.25) and res.n_dropped == 0
    # percentile and basic intervals of a small replicate set, by hand (linear interpolation)
    reps = np.array([1.0, 2.0, 3.0, 4.0, 5.0])  # quantile 0.025 -> 1.1, 0.975 -> 4.9
    assert interval(3.5, reps, 0.95, "percentile") == pytest.approx((1.1, 4.9))
    assert interval(3.5, reps, 0.95, "basic") == pytest.approx((2 * 3.5 - 4.9, 2 * 3.5 - 1.1))
    assert interval(3.5, reps, 0.5, "percentile") == pytest.approx((2.0, 4.0))
    # one row: every resample is that row
    assert tuple(bootstrap_ci("mse", np.zeros(1), np.full(1, 0.5), n_boot=5, task_kind="regression")) == (0.25,) * 3
    with pytest.raises(ValueError, match="same number of rows"):  # a scalar score is no row
        bootstrap_ci(lambda a, b: 0.0, np.zeros(1), np.float64(0.5))
    for level in (0.0, 1.0):
        with pytest.raises(ValueError, match="level must be a number strictly between 0 and 1"):
            bootstrap_ci("mse", np.zeros(5), np.full(5, 0.5), level=level, task_kind="regression")


def test_bootstrap_indices_draw_rows_with_replacement():
    idx = bootstrap_indices(3, 4000, seed=5)
    assert idx.shape == (4000, 3) and idx.min() == 0 and idx.max() == 2
    assert np.bincount(idx.ravel(), minlength=3) / idx.size == pytest.approx([1 / 3] * 3, abs=0.02)
    # resamples with a repeated row occur (with replacement): P(all distinct) = 3! / 3^3 = 2 / 9
    distinct = np.mean([len(set(r)) == 3 for r in idx])
    assert distinct == pytest.approx(2 / 9, abs=0.03)
    np.testing.assert_array_equal(idx, bootstrap_indices(3, 4000, seed=5))
    # the stream a seed gives (so that a seed reproduces the book's intervals): numpy's int32 draws
    np.testing.assert_array_equal(bootstrap_indices(1000, 7, seed=2),
                                  np.random.default_rng(2).integers(0, 1000, size=(7, 1000), dtype=np.int32))
    assert bootstrap_indices(1, 1).tolist() == [[0]]  # one row, one resample: the smallest case
    for bad in (dict(n=0, n_boot=5), dict(n=5, n_boot=0), dict(n=5, n_boot=True)):
        with pytest.raises(ValueError, match="must be a positive integer"):
            bootstrap_indices(**bad)


# ----------------------------------------------------------------------------- Evidence records

def test_evidence_scaled_and_checked():
    ev = Evidence(0.1, (0.05, 0.2), 4, "t", (Part("seeds", 4, 0.002, "s"),), 0.001)
    pct = ev.scaled(100)
    assert pct.estimate == pytest.approx(10) and pct.interval == pytest.approx((5, 20))
    assert pct.parts[0].variance == pytest.approx(20) and pct.floor == pytest.approx(10)
    assert (pct.n, pct.method, pct.parts[0].unit, pct.parts[0].parameter) == (4, "t", "seeds", "s")
    assert Evidence(1.0, (0.0, 2.0), 3, "t").design() == {
        "parts": [{"unit": "units", "count": 3, "variance": 1.0, "parameter": None}], "floor": 0.0}
    assert Evidence(1.0, (1.0, 1.0), 1, "t").interval == (1.0, 1.0)  # zero width and n = 1 are records too
    assert Evidence(1.0, (0.0, 2.0), 1, "t", (Part("seeds", 1, 0.0),)).parts[0].count == 1
    assert ev.scaled(0.01).interval == pytest.approx((0.0005, 0.002))  # a factor below 1 is a scale too
    for factor in (0, -2):
        with pytest.raises(ValueError, match="factor must be positive"):
            ev.scaled(factor)
    for kwargs, match in ((dict(interval=(0.0, math.nan)), "finite estimate"), (dict(interval=(1.0, 0.0)), "exceeds"),
                          (dict(n=0), "positive int"), (dict(floor=-1e-9), "floor must be"),
                          (dict(parts=(Part("s", 0, 1.0),)), "count >= 1"),
                          (dict(parts=(Part("s", 2, -0.1),)), "variance >= 0")):
        with pytest.raises(ValueError, match=match):
            Evidence(**({"estimate": 0.5, "interval": (0.0, 1.0), "n": 2, "method": "t"} | kwargs))


# ----------------------------------------------------------------------------- the verdict and the outcome

@pytest.mark.parametrize("interval_, threshold, direction, verdict", [
    ((0.0, 1.0), 0.0, "above", INCONCLUSIVE),  # a lower end on the threshold is not above it
    ((1e-9, 1.0), 0.0, "above", HOLDS),
    ((-1.0, 0.0), 0.0, "above", FAILS),        # an upper end on it: no improvement
    ((-1.0, 1e-9), 0.0, "above", INCONCLUSIVE),
    ((-1.0, 0.0), 0.0, "below", INCONCLUSIVE),
    ((-1.0, -1e-9), 0.0, "below", HOLDS),
    ((0.0, 1.0), 0.0, "below", FAILS),
    ((-1e-9, 1.0), 0.0, "below", INCONCLUSIVE),
    ((2.0, 3.0), 1.0, "above", HOLDS),          # a threshold other than 0
    ((2.0, 3.0), 2.5, "below", INCONCLUSIVE),
    ((-0.1, 0.1), (-0.1, 0.1), "within", HOLDS),
    ((-0.1, 0.1 + 1e-9), (-0.1, 0.1), "within", INCONCLUSIVE),
    ((-0.1 - 1e-9, 0.1), (-0.1, 0.1), "within", INCONCLUSIVE),
    ((0.1, 0.3), (-0.1, 0.1), "within", INCONCLUSIVE),  # touching a margin from outside: not wholly outside
    ((0.1 + 1e-9, 0.3), (-0.1, 0.1), "within", FAILS),
    ((-0.3, -0.1 - 1e-9), (-0.1, 0.1), "within", FAILS),
    ((-0.3, -0.1), (-0.1, 0.1), "within", INCONCLUSIVE),
    ((-0.5, 0.5), (-0.1, 0.1), "within", INCONCLUSIVE),  # wider than the margins on both sides
    ((0.2, 0.2), (-0.1, 0.1), "within", INCONCLUSIVE),   # zero width decides nothing, even outside
])
def test_verdict_edges(interval_, threshold, direction, verdict):
    assert decide(interval_, threshold, direction) == verdict


@pytest.mark.parametrize("interval_, threshold, direction, effect, expected", [
    ((0.5, 2.0), 0.0, "above", 0.5, REPRODUCES),       # the effect on either end is inside
    ((0.5, 2.0), 0.0, "above", 2.0 + 1e-9, SMALLER),
    ((0.5, 2.0), 0.0, "above", 0.5 - 1e-9, LARGER),
    ((1.5, 2.0), 1.0, "above", 3.0, SMALLER),            # a threshold other than 0
    ((0.0, 2.0), 0.0, "above", 2.0, UNDECIDED),          # an end on the threshold: not established
    ((0.0, 2.0), 0.0, "above", 2.5, NOT_REPRODUCED),
    ((-2.0, -0.5), 0.0, "below", -0.5, REPRODUCES),
    ((-2.0, -0.5), 0.0, "below", -2.0 - 1e-9, SMALLER),  # the paper's effect lies farther below
    ((-2.0, -0.5), 0.0, "below", -0.5 + 1e-9, LARGER),
    ((-2.0, 0.0), 0.0, "below", -3.0, NOT_REPRODUCED),
    ((-2.0, 0.0), 0.0, "below", None, UNDECIDED),
    ((0.0, 2.0), 0.0, "below", -1.0, CONTRADICTED),
    ((-0.1, 0.1), (-0.1, 0.1), "within", 5.0, REPRODUCES),  # within: the paper's effect plays no part
    ((0.2, 0.3), (-0.1, 0.1), "within", None, CONTRADICTED),
    ((0.0, 0.3), (-0.1, 0.1), "within", None, UNDECIDED),
])
def test_outcome_edges(interval_, threshold, direction, effect, expected):
    assert outcome(interval_, threshold, direction, effect) == expected


def test_a_paper_effect_on_the_threshold_is_refused():
    for direction in ("above", "below"):
        with pytest.raises(ValueError, match=f"is not {direction} the threshold 1"):
            outcome((0.5, 2.0), 1.0, direction, 1.0)
    assert outcome((1.5, 2.0), 1.0, "above", 1.0 + 1e-9) == LARGER


# ----------------------------------------------------------------------------- runs to decide

def design(*parts, floor=0.0):
    return {"parts": [{"unit": u, "count": c, "variance": v, "parameter": p} for u, c, v, p in parts], "floor": floor}


def test_runs_to_decide_below_and_rounding_up():
    # below 0: estimate -1, upper half-width 3 (the side facing the threshold), lower 1
    runs, why = runs_to_decide(-1.0, (-2.0, 2.0), 0.0, "below", design(("seeds", 3, 0.5, "n"), ("rows", 7, 0.25, None)))
    # needed variance 0.75 (1 / 3)^2; factor 0.75 / (0.75 / 9) = 9; 3 x 9 = 27 seeds, 63 rows
    assert why is None and runs == {"factor": 9.0, "units": {"seeds": 27, "rows": 63}, "parameters": {"n": 27}}
    # a factor of 2.25 rounds every count up: 3 -> 7 (6.75), 7 -> 16 (15.75)
    runs, _ = runs_to_decide(2.0, (-1.0, 5.0), 0.0, "above", design(("seeds", 3, 1.0, None), ("rows", 7, 1.0, None)))
    assert runs["factor"] == 2.25 and runs["units"] == {"seeds": 7, "rows": 16}
    # a factor just above 1 still asks for one more unit of each part
    runs, _ = runs_to_decide(0.99, (-0.01, 1.99), 0.0, "above", design(("folds", 5, 1.0, "k")))
    assert runs["units"] == {"folds": 6} and runs["parameters"] == {"k": 6}


def test_runs_to_decide_within_outside_the_margins():
    # estimate 0.05 outside (-0.02, 0.02): to be shown outside, the nearer margin 0.02 decides (d = 0.03)
    runs, _ = runs_to_decide(0.05, (0.0, 0.1), (-0.02, 0.02), "within", design(("seeds", 4, 1.0, None)))
    assert runs["factor"] == 2.78  # (0.05 / 0.03)^2 = 2.777..., recorded to two decimals
    runs, _ = runs_to_decide(-0.05, (-0.1, 0.0), (-0.02, 0.02), "within", design(("seeds", 4, 1.0, None)))
    assert runs["factor"] == pytest.approx((0.05 / 0.03) ** 2, abs=0.01)
    # inside, nearer the upper margin: d = 0.005 against the upper half-width 0.02
    runs, _ = runs_to_decide(0.015, (0.0, 0.035), (-0.02, 0.02), "within", design(("seeds", 4, 1.0, None)))
    assert runs["factor"] == pytest.approx((0.02 / 0.005) ** 2, abs=0.01)
    # equidistant from both margins (the estimate in the middle): the lower margin, the lower side
    runs, _ = runs_to_decide(0.0, (-0.04, 0.01), (-0.02, 0.02), "within", design(("seeds", 4, 1.0, None)))
    assert runs["factor"] == pytest.approx((0.04 / 0.02) ** 2, abs=0.01)


def test_runs_to_decide_floor_edges_and_reasons():
    # V = 1, floor 0.5; d / h = 1 / 2: needed 0.25 < floor -> no number of runs decides it
    runs, why = runs_to_decide(1.0, (-1.0, 3.0), 0.0, "above", design(("folds", 5, 0.5, None), floor=0.5))
    assert runs is None and why.startswith("a variance floor (0.707 of the 1 standard error)")
    # needed exactly equal to the floor: still none
    runs, why = runs_to_decide(1.0, (-1.0, 3.0), 0.0, "above", design(("folds", 5, 0.75, None), floor=0.25))
    assert runs is None and "variance floor" in why
    runs, why = runs_to_decide(1.0, (1.0, 3.0), 0.0, "above", design(("seeds", 3, 1.0, None)))
    assert runs is None and why == "the interval has no width on the threshold's side"
    runs, why = runs_to_decide(1.0, (0.0, 3.0), 0.0, "above", design(("seeds", 3, 0.0, None)))
    assert runs is None and why == "the interval records no variance to shrink"
    runs, why = runs_to_decide(1.0, (0.0, 3.0), 0.0, "above", {"parts": [], "floor": None})
    assert runs is None and why == "the interval records no variance to shrink"
    runs, why = runs_to_decide(0.0, (-1.0, 1.0), 0.0, "below", design(("seeds", 3, 1.0, None)))
    assert runs is None and why.startswith("the estimate sits on the threshold")
    # d larger than h: a factor below 1 (fewer runs would do) still asks for one more of each
    runs, _ = runs_to_decide(2.0, (1.0, 5.0), 0.0, "above", design(("seeds", 10, 1.0, "n")))
    assert runs == {"factor": 0.25, "units": {"seeds": 11}, "parameters": {"n": 11}}


def _claim(ev, **kw):
    base = dict(id="c", chapter="d", paper="P", where="T", paper_value=1, criterion="c", evidence=ev,
                threshold=0.0, direction="above")
    return empirical(**(base | kw))


def test_claim_records_carry_what_the_rules_give():
    ev = mean_evidence([1.0, -0.5, 2.0], parameter="n_seeds")  # inconclusive around 0
    rec = _claim(ev, paper_effect=0.5)
    assert (rec["verdict"], rec["outcome"]) == (INCONCLUSIVE, UNDECIDED)
    expected, _ = runs_to_decide(rec["estimate"], tuple(rec["interval"]), 0.0, "above", ev.design())
    assert rec["runs_to_decide"] == expected and "runs_to_decide_reason" not in rec
    rec = _claim(ev, paper_effect=5.0)  # the paper's effect outside the interval: no runs to decide
    assert rec["outcome"] == NOT_REPRODUCED and "runs_to_decide" not in rec
    held = _claim(mean_evidence([1.0, 1.2, 0.9]), paper_effect=1.0)
    assert (held["verdict"], held["outcome"]) == (HOLDS, REPRODUCES) and "runs_to_decide" not in held
    within = _claim(mean_evidence([0.01, 0.0, -0.01]), threshold=(-0.1, 0.1), direction="within")
    assert (within["verdict"], within["outcome"], within["threshold"]) == (HOLDS, REPRODUCES, [-0.1, 0.1])
    tied = _claim(Evidence(1.0, (1.0, 1.0), 3, "t", (Part("seeds", 3, 0.0),)))  # zero width, zero variance
    assert tied["outcome"] == UNDECIDED and tied["runs_to_decide_reason"] == "the interval has no width on the threshold's side"
    # not comparable, with or without numbers: verdict and outcome from the reason alone
    nc = _claim(mean_evidence([1.0, 1.2, 0.9]), reason="another dataset")
    assert (nc["verdict"], nc["outcome"]) == (NOT_COMPARABLE, OUT_OF_SCOPE) and nc["estimate"] == pytest.approx(31 / 30)
    assert validate(nc) == NOT_COMPARABLE
    with pytest.raises(ClaimError, match="is not above the threshold"):
        _claim(mean_evidence([1.0, 1.2, 0.9]), paper_effect=-1.0)
    with pytest.raises(ClaimError, match="an empirical claim with an estimate needs its 'design'"):
        validate({k: v for k, v in _claim(ev, paper_effect=0.5).items() if k != "design"})
    with pytest.raises(ClaimError, match="field 'headline' must be true or false"):
        validate(rec | {"headline": 1})
    with pytest.raises(ClaimError, match="field 'paper_effect' must be a finite number"):
        validate(rec | {"paper_effect": math.inf})
    with pytest.raises(ClaimError, match=r"field 'threshold' must be \[low, high\]"):
        validate(within | {"threshold": 0.1})
    with pytest.raises(ClaimError, match="the estimate 0.2 lies outside its interval"):
        validate(within | {"estimate": 0.2})
    with pytest.raises(ClaimError, match="field 'n' must be a positive int"):
        validate(held | {"n": True})
    one_set = {"parts": [{"unit": "test sets", "count": 1, "variance": 0.01, "parameter": None}], "floor": 0.0}
    assert validate(held | {"n": 1, "design": one_set}) == HOLDS  # one unit (one test set's bootstrap) is a record too
    with pytest.raises(ClaimError, match="field 'n' is 1 but its design counts 3 seeds"):
        validate(held | {"n": 1})  # n must count one of the design's sources of randomness
    with pytest.raises(ClaimError, match="field 'n' must be a positive int"):
        validate(held | {"n": 0})
    with pytest.raises(ClaimError, match="field 'estimate' must be a finite number"):  # numbers or a reason
        validate(held | {"estimate": None, "interval": None})
