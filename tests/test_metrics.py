"""Tests for mmrepro.core.metrics: utilisation (MIND eq. 6, MILES eqs. 4-5), score, bootstrap_ci."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.stats
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from mmrepro.core.metrics import (
    METRICS,
    BootstrapResult,
    bootstrap_ci,
    bootstrap_indices,
    conditional_utilization,
    d_util,
    delta_ab,
    interval,
    resampled_scores,
    score,
    unimodal_gap,
)


# --------------------------------------------------------------------------- utilisation
def test_conditional_utilization_scalar_values():
    u_a, u_b = conditional_utilization(0.8, 0.6, 0.7)
    assert isinstance(u_a, float) and isinstance(u_b, float)
    assert u_a == pytest.approx((0.8 - 0.7) / 0.8)
    assert u_b == pytest.approx((0.8 - 0.6) / 0.8)


def test_conditional_utilization_outside_unit_interval_is_kept():
    u_a, u_b = conditional_utilization(0.5, 0.9, 0.2)  # unimodal head A beats the fusion head
    assert u_b == pytest.approx(-0.8) and u_a == pytest.approx(0.6)
    u_a, _ = conditional_utilization(-0.5, 0.1, 0.4)  # a metric that can be negative (e.g. R^2)
    assert u_a == pytest.approx(1.8)
    assert d_util(1.8, -0.8) == pytest.approx(2.6)  # d_util beyond [-1, 1] is not clipped


def test_conditional_utilization_arrays_broadcast_and_torch():
    m_ab = np.array([0.8, 0.5, 1.0])
    u_a, u_b = conditional_utilization(m_ab, 0.4, torch.tensor([0.2, 0.6, 1.0], dtype=torch.float64))
    np.testing.assert_allclose(u_a, (m_ab - np.array([0.2, 0.6, 1.0])) / m_ab)
    np.testing.assert_allclose(u_b, (m_ab - 0.4) / m_ab)


def test_conditional_utilization_errors():
    with pytest.raises(ValueError, match="m_ab == 0"):
        conditional_utilization(np.array([0.5, 0.0]), 0.2, 0.3)
    with pytest.raises(ValueError, match="incompatible shapes"):
        conditional_utilization(np.ones(3), np.ones(2), 1.0)
    with pytest.raises(TypeError, match="m_a must be a number"):
        conditional_utilization(0.5, "high", 0.3)


def test_delta_helpers():
    assert delta_ab(0.1, 0.4) == pytest.approx(0.3)
    assert delta_ab(0.4, 0.1) == pytest.approx(0.3)
    assert d_util(0.1, 0.4) == pytest.approx(-0.3)
    np.testing.assert_allclose(d_util(np.array([0.5, -0.2]), 0.1), [0.4, -0.3])
    assert unimodal_gap(0.62, 0.75) == pytest.approx(-0.13)  # weaker modality overtook the stronger


# --------------------------------------------------------------------------- score
def _data(kind: str, n: int = 80, n_out: int = 3, seed: int = 0, decimals: int = 1):
    rng = np.random.default_rng(seed)
    if kind == "binary":
        y = rng.integers(0, 2, n)
        y[:2] = [0, 1]
        return y, np.round(np.clip(0.3 * y + rng.random(n) * 0.7, 0, 1), decimals)
    if kind == "multilabel":
        y = (rng.random((n, n_out)) < 0.4).astype(int)
        y[0], y[1] = 0, 1
        return y, np.round(np.clip(0.3 * y + rng.random(y.shape) * 0.7, 0, 1), decimals)
    if kind == "multiclass":
        y = rng.integers(0, n_out, n)
        y[:n_out] = np.arange(n_out)
        logits = np.round(rng.normal(size=(n, n_out)) + np.eye(n_out)[y], decimals)
        p = np.exp(logits)
        return y, p / p.sum(axis=1, keepdims=True)
    y = rng.normal(size=n)
    return y, y + rng.normal(scale=0.5, size=n)


def test_score_matches_sklearn():
    y, s = _data("binary")
    assert score("auroc", y, s, "binary") == skm.roc_auc_score(y, s)
    assert score("f1_macro", y, s, "binary") == skm.f1_score(y, s >= 0.5, average="macro")
    assert score("accuracy", y, s, "binary", threshold=0.7) == skm.accuracy_score(y, s >= 0.7)
    y, s = _data("multilabel")
    assert score("auprc", y, s, "multilabel") == skm.average_precision_score(y, s, average="macro")
    y, p = _data("multiclass")
    assert score("balanced_accuracy", y, p, "multiclass") == skm.balanced_accuracy_score(y, p.argmax(1))
    assert score("auroc", y, p, "multiclass") == skm.roc_auc_score(y, p, multi_class="ovr")
    y, s = _data("regression")
    assert score("mse", torch.tensor(y), torch.tensor(s), "regression") == skm.mean_squared_error(y, s)


def test_score_errors():
    y, s = _data("binary")
    with pytest.raises(ValueError, match="unknown metric 'auc'; valid: accuracy, f1_macro"):
        score("auc", y, s, "binary")
    with pytest.raises(ValueError, match="unknown task_kind 'multi'"):
        score("accuracy", y, s, "multi")
    with pytest.raises(ValueError, match="not defined for task_kind 'regression'"):
        score("auroc", y, s, "regression")
    with pytest.raises(ValueError, match="y_true has 80 samples but y_score has 79"):
        score("auroc", y, s[:-1], "binary")
    with pytest.raises(ValueError, match="only 0 and 1"):
        score("auroc", y + 1, s, "binary")
    with pytest.raises(ValueError, match="unknown targets"):
        score("auroc", np.where(np.arange(80) == 3, np.nan, y), s, "binary")
    with pytest.raises(ValueError, match=r"label\(s\)/class\(es\) \[0\] have only one class"):
        score("auroc", np.ones(80), s, "binary")
    with pytest.raises(ValueError, match="y_score contains NaN"):
        score("accuracy", y, np.full(80, np.nan), "binary")


# --------------------------------------------------------------------------- fast path == sklearn
def _sklearn_replicates(name, y, s, kind, idx):
    """Plain loop: scikit-learn on every resample; undefined (one-class) resamples -> NaN."""
    out = []
    for rows in idx:
        try:
            out.append(score(name, y[rows], s[rows], kind))
        except ValueError as exc:
            assert "only one class" in str(exc)
            out.append(np.nan)
    return np.array(out)


CASES = [(name, kind) for name, kinds in METRICS.items() for kind in kinds]


@pytest.mark.parametrize("name,kind", CASES)
def test_fast_path_equals_sklearn_on_every_resample(name, kind):
    y, s = _data(kind, n=40, decimals=1)  # rounded scores: many ties
    idx = bootstrap_indices(len(y), 60, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = _sklearn_replicates(name, y, s, kind, idx)
    fast = resampled_scores(name, y, s, kind, idx, 0.5)
    np.testing.assert_array_equal(np.isnan(fast), np.isnan(ref))
    np.testing.assert_allclose(fast, ref, rtol=0, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(4, 30),
    n_labels=st.integers(1, 3),
    levels=st.integers(1, 6),
    seed=st.integers(0, 2**16),
    name=st.sampled_from(["auroc", "auprc", "f1_macro", "f1_micro", "accuracy"]),
)
def test_fast_path_property_multilabel_ties(n, n_labels, levels, seed, name):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, (n, n_labels))
    y[0], y[1] = 0, 1
    s = rng.integers(0, levels, (n, n_labels)) / max(1, levels - 1)  # few distinct values: heavy ties
    idx = bootstrap_indices(n, 15, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = _sklearn_replicates(name, y, s, "multilabel", idx)
    fast = resampled_scores(name, y, s, "multilabel", idx, 0.5)
    np.testing.assert_array_equal(np.isnan(fast), np.isnan(ref))
    np.testing.assert_allclose(fast, ref, rtol=0, atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(3, 30), n_classes=st.integers(2, 4), seed=st.integers(0, 2**16),
       name=st.sampled_from(["balanced_accuracy", "f1_macro", "f1_micro", "accuracy"]))
def test_fast_path_property_multiclass_labels(n, n_classes, seed, name):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n)
    pred = rng.integers(0, n_classes, n)  # 1-D predicted labels
    idx = bootstrap_indices(n, 15, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = _sklearn_replicates(name, y, pred, "multiclass", idx)
    np.testing.assert_allclose(resampled_scores(name, y, pred, "multiclass", idx, 0.5), ref, rtol=0, atol=1e-12)


# --------------------------------------------------------------------------- bootstrap_ci
def test_bootstrap_equals_plain_loop_on_same_indices():
    y, s = _data("multilabel", n=120, n_out=3, decimals=2)
    idx = bootstrap_indices(len(y), 150, seed=7)
    reps = np.array([np.mean([skm.roc_auc_score(y[r, j], s[r, j]) for j in range(3)]) for r in idx])
    point = skm.roc_auc_score(y, s, average="macro")
    lo_q, hi_q = np.quantile(reps, [0.025, 0.975])
    for method, expected in [("percentile", (point, lo_q, hi_q)), ("basic", (point, 2 * point - hi_q, 2 * point - lo_q))]:
        res = bootstrap_ci("auroc", y, s, n_boot=150, method=method, seed=7)
        np.testing.assert_allclose(tuple(res), expected, rtol=0, atol=1e-12)
        np.testing.assert_allclose(res.replicates, reps, rtol=0, atol=1e-12)
    # the general (callable) path on the same indices gives the same interval
    general = bootstrap_ci(lambda a, b: skm.roc_auc_score(a, b, average="macro"), y, s, n_boot=150, method="basic", seed=7)
    np.testing.assert_allclose(tuple(general), tuple(res), rtol=0, atol=1e-12)


def test_basic_interval_is_medfuse_pivotal_form():
    reps = np.random.default_rng(0).normal(0.8, 0.02, 1000)
    low, high = interval(0.79, reps, 0.95, "basic")
    assert high == pytest.approx(0.79 - np.percentile(reps - 0.79, 2.5))
    assert low == pytest.approx(0.79 - np.percentile(reps - 0.79, 97.5))


def _auroc_rankdata(y, s, axis=-1):
    """Batched AUROC from scipy's mid-ranks (Mann-Whitney U / (P N)): an independent reference."""
    ranks = scipy.stats.rankdata(s, axis=axis)
    n_pos = y.sum(axis=axis)
    n_neg = y.shape[axis] - n_pos
    return ((ranks * y).sum(axis=axis) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


@pytest.mark.parametrize("method", ["percentile", "basic"])
def test_bootstrap_agrees_with_scipy_in_distribution(method):
    # AUROC near 1 has a skewed bootstrap distribution, so percentile and basic intervals differ
    # by ~14 % of their width here and the 5 % tolerance tells them apart.
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    s = np.round(0.55 * y + 0.7 * rng.random(200), 2) / 1.25  # probabilities in [0, 1]
    assert _auroc_rankdata(y, s) == pytest.approx(skm.roc_auc_score(y, s), abs=1e-12)
    ours = bootstrap_ci("auroc", y, s, n_boot=4000, method=method, seed=1)
    ref = {
        m: scipy.stats.bootstrap(
            (y, s), _auroc_rankdata, paired=True, vectorized=True, n_resamples=4000, method=m,
            confidence_level=0.95, rng=np.random.default_rng(2),
        ).confidence_interval
        for m in ("percentile", "basic")
    }
    width = ours.high - ours.low
    assert abs(ours.low - ref[method].low) < 0.05 * width
    assert abs(ours.high - ref[method].high) < 0.05 * width
    other = ref["basic" if method == "percentile" else "percentile"]
    assert abs(ours.low - other.low) > 0.1 * width


def test_bootstrap_result_tuple_api_and_determinism():
    y, s = _data("binary")
    res = bootstrap_ci("accuracy", y, s, n_boot=200)
    point, low, high = res
    assert isinstance(res, tuple) and isinstance(res, BootstrapResult)
    assert (res.point, res.low, res.high) == (point, low, high)
    assert low <= point <= high and res.n_boot == 200 and res.n_dropped == 0 and res.method == "percentile"
    assert "n_dropped=0" in repr(res)
    assert tuple(bootstrap_ci("accuracy", y, s, n_boot=200)) == tuple(res)
    assert tuple(bootstrap_ci("accuracy", y, s, n_boot=200, seed=1)) != tuple(res)
    assert tuple(bootstrap_ci("accuracy", torch.tensor(y), torch.tensor(s), n_boot=200)) == tuple(res)


def test_one_class_resamples_are_dropped_and_counted():
    y = np.array([1, 0, 0, 0, 0, 0, 0, 0])  # one positive: many resamples miss it
    s = np.linspace(0, 1, 8)
    idx = bootstrap_indices(8, 400, seed=0)
    expected_dropped = int((y[idx].sum(axis=1) == 0).sum())
    assert 0 < expected_dropped < 400
    for name in ("auroc", "auprc"):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no RuntimeWarning from 0/0 either
            res = bootstrap_ci(name, y, s, n_boot=400, seed=0)
        assert res.n_dropped == expected_dropped
        assert len(res.replicates) == 400 - expected_dropped and np.all(np.isfinite(res.replicates))
        assert np.isfinite(res.low) and np.isfinite(res.high)
    # a callable that returns NaN on those resamples is treated the same way
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = bootstrap_ci(skm.roc_auc_score, y, s, n_boot=400, seed=0)
    assert res.n_dropped == expected_dropped


def test_all_resamples_undefined_raises():
    calls = []

    def defined_on_full_data_only(a, b):
        calls.append(len(a))
        return 0.5 if len(calls) == 1 else float("nan")

    with pytest.raises(ValueError, match="undefined on all 5 resamples"):
        bootstrap_ci(defined_on_full_data_only, np.arange(4.0), np.arange(4.0), n_boot=5)


def test_bootstrap_errors():
    y, s = _data("binary")
    with pytest.raises(ValueError, match="level must be a number strictly between 0 and 1"):
        bootstrap_ci("auroc", y, s, level=1.0)
    with pytest.raises(ValueError, match="level must be"):
        bootstrap_ci("auroc", y, s, level=95)
    with pytest.raises(ValueError, match="n_boot must be a positive integer, got 0"):
        bootstrap_ci("auroc", y, s, n_boot=0)
    with pytest.raises(ValueError, match="unknown method 'bca'; valid: 'percentile', 'basic'"):
        bootstrap_ci("auroc", y, s, method="bca")
    with pytest.raises(ValueError, match=r"unknown metric 'roc'; valid: accuracy, .*auroc.*\(or pass a callable\)"):
        bootstrap_ci("roc", y, s)
    with pytest.raises(ValueError, match="y_true has 80 samples but y_score has 70"):
        bootstrap_ci("auroc", y, s[:70])
    with pytest.raises(ValueError, match="same number of rows"):
        bootstrap_ci(skm.roc_auc_score, y, s[:70])
    with pytest.raises(TypeError, match="metric must be a metric name"):
        bootstrap_ci(3, y, s)
    with pytest.raises(ValueError, match="task_kind applies to metric names only"):
        bootstrap_ci(skm.roc_auc_score, y, s, task_kind="binary")
    with pytest.raises(ValueError, match="metric is nan on the full data"):
        bootstrap_ci(lambda a, b: float("nan"), y, s)
    with pytest.raises(ValueError, match="cannot infer the task kind"):
        bootstrap_ci("accuracy", np.array([0.0, 1.0, 2.5, 3.0]), np.array([0.0, 1.0, 2.0, 2.0]))
    with pytest.raises(TypeError, match="seed must be an integer"):
        bootstrap_ci("auroc", y, s, seed=0.5)


@pytest.mark.parametrize("y, s, match", [
    (np.array([]), np.array([]), "y_true is empty: bootstrap_ci needs at least one row"),
    (np.array([0.0, 1.0, np.nan, 1.0]), np.array([0.1, 0.8, 0.5, 0.7]), "y_true contains NaN or inf"),
    (np.array([0, 1, 0, 1]), np.array([-2.0, 3.0, -1.0, 0.5]), r"binary y_score must hold probabilities in \[0, 1\], "
     r"got values in \[-2, 3\]: apply a sigmoid"),
])
def test_bootstrap_names_empty_unknown_labels_and_scores_outside_0_1(y, s, match):
    with pytest.raises(ValueError, match=match):
        bootstrap_ci("auroc", y, s, n_boot=10)
    if "sigmoid" in match:
        with pytest.raises(ValueError, match=match):
            score("auroc", y, s, "binary")


def test_task_kind_inference():
    for kind in ("binary", "multilabel", "multiclass"):
        y, s = _data(kind)
        assert bootstrap_ci("f1_macro", y, s, n_boot=20).point == score("f1_macro", y, s, kind)
    y, pred = np.array([0, 1, 2, 2, 1]), np.array([0, 2, 2, 1, 1])
    assert bootstrap_ci("accuracy", y, pred, n_boot=20).point == 0.6
    y, s = _data("regression")
    assert bootstrap_ci("mse", y, s, n_boot=20).point == score("mse", y, s, "regression")


def test_balanced_accuracy_of_a_fold_without_a_predicted_class_is_sklearns_and_silent():
    """A small test fold may lack a class the model predicts: sklearn's value (mean recall over the fold's
    classes), without its warning reaching the published page."""
    import warnings

    from sklearn.metrics import balanced_accuracy_score

    y_true = np.array([0, 0, 1, 1])
    scores = np.array([[0.9, 0.05, 0.05], [0.1, 0.1, 0.8], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value = score("balanced_accuracy", y_true, scores, "multiclass")
    assert value == balanced_accuracy_score(y_true, [0, 2, 1, 1]) == 0.75
