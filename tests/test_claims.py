"""The claim contract: verdicts decided by intervals, records validated field by field, and the
intervals themselves (mmrepro.core.stats) cross-checked against scipy."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import scipy.stats
from hypothesis import example, given
from hypothesis import strategies as st
from scipy import stats as sst

from mmrepro.core.stats import (
    Evidence,
    clustered_evidence,
    mean_evidence,
    paired_bootstrap_evidence,
    paired_evidence,
    t_interval,
)
from mmrepro.publish import claims, scorecard
from mmrepro.publish.claims import ClaimError, decide, validate

finite = st.floats(-1e6, 1e6, allow_nan=False)


@given(finite, finite, finite)
def test_above_holds_only_when_the_whole_interval_is_above(a, b, t):
    lo, hi = sorted((a, b))
    verdict = decide((lo, hi), t, "above")
    expected = "holds" if lo > t else "does not hold" if hi <= t else "inconclusive"
    assert verdict == ("inconclusive" if lo == hi else expected)  # a zero-width interval decides nothing


@given(finite, finite, finite)
def test_below_is_above_mirrored(a, b, t):
    lo, hi = sorted((a, b))
    mirrored = {"holds": "holds", "does not hold": "does not hold", "inconclusive": "inconclusive"}
    below = decide((lo, hi), t, "below")
    above_of_negated = decide((-hi, -lo), -t, "above")
    assert below == mirrored[above_of_negated] or (below, above_of_negated) in {
        ("does not hold", "does not hold")}
    if hi < t and lo < hi:
        assert below == "holds"
    if lo > t and lo < hi:
        assert below == "does not hold"


@given(finite, finite, st.floats(0, 1e3), st.floats(0, 1e3))
def test_within_a_margin(a, b, m1, m2):
    lo, hi = sorted((a, b))
    margin = (-m1, m2)
    verdict = decide((lo, hi), margin, "within")
    inside = margin[0] <= lo and hi <= margin[1]
    outside = hi < margin[0] or lo > margin[1]
    expected = "holds" if inside else "does not hold" if outside else "inconclusive"
    assert verdict == ("inconclusive" if lo == hi else expected)


def test_verdict_rule_examples():
    assert decide((0.1, 0.4), 0.0, "above") == "holds"
    assert decide((-27.1, 23.8), 0.0, "above") == "inconclusive"  # MILES' best-fused interval of the review
    assert decide((-0.2, 0.0), 0.0, "above") == "does not hold"  # an upper end at the threshold is no improvement
    assert decide((0.0, 0.0), 0.0, "above") == "inconclusive"  # zero width: exact (a check) or too coarse, never decisive
    assert decide((-0.3, -0.1), 0.0, "below") == "holds"
    assert decide((-0.01, 0.015), (-0.02, 0.02), "within") == "holds"
    assert decide((-0.05, 0.01), (-0.02, 0.02), "within") == "inconclusive"
    assert decide((0.03, 0.05), (-0.02, 0.02), "within") == "does not hold"
    with pytest.raises(ValueError, match="direction must be one of"):
        decide((0, 1), 0.0, "greater")


def record(**changes):
    base = claims.empirical(id="c1", chapter="demo", paper="P", where="T1", paper_value=0.9,
                            criterion="MILES beats vanilla", evidence=Evidence(0.5, (0.2, 0.8), 5, "t over seeds"),
                            threshold=0.0, direction="above", unit="points")
    base.update(changes)
    return base


def test_a_record_with_a_contradicting_verdict_is_refused():
    assert validate(record()) == "holds"
    with pytest.raises(ClaimError, match="claim 'c1': recorded verdict 'does not hold' contradicts its fields, "
                                         "which give 'holds'"):
        validate(record(verdict="does not hold"))


@pytest.mark.parametrize("field", ["estimate", "interval", "n", "interval_method", "threshold", "direction",
                                   "criterion", "verdict"])
def test_a_missing_field_is_named(field):
    broken = record()
    del broken[field]
    with pytest.raises(ClaimError, match=rf"claim 'c1': field\(s\) \['{field}'\] missing"):
        validate(broken)


@pytest.mark.parametrize("changes, message", [
    ({"interval": [1.0]}, r"field 'interval' must be \[low, high\]"),
    ({"interval": [0.9, 0.1]}, "field 'interval' has low 0.9 above high 0.1"),
    ({"interval": [None, 1.0]}, "field 'interval' must be a finite number"),
    ({"n": 0}, "field 'n' must be a positive int"),
    ({"n": 2.5}, "field 'n' must be a positive int"),
    ({"direction": "up"}, "field 'direction' must be one of"),
    ({"kind": "opinion"}, "field 'kind' must be one of"),
    ({"threshold": [0, 1]}, "field 'threshold' must be a finite number"),
    ({"interval_method": ""}, "field 'interval_method' must say how"),
    ({"reason": ""}, "field 'reason' must be a sentence"),
    ({"where": " "}, "field 'where' must be a non-empty string"),
])
def test_malformed_fields_are_named(changes, message):
    with pytest.raises(ClaimError, match=message):
        validate(record(**changes))


def test_not_comparable_needs_a_reason_and_checks_pass_or_fail():
    nc = claims.empirical(id="c2", chapter="demo", paper="P", where="T", paper_value=1, criterion="c", evidence=None,
                          threshold=0, direction="above", reason="S-MNIST is not available")
    assert nc["verdict"] == "not comparable at this scale" and validate(nc) == nc["verdict"]
    with pytest.raises(ClaimError, match="recorded verdict 'holds' contradicts"):
        validate({**nc, "verdict": "holds"})
    ok = claims.check(id="c3", chapter="demo", paper="P", where="L1", paper_value="x", criterion="c", passed=True,
                      observed="3e-12")
    assert validate(ok) == "passes"
    with pytest.raises(ClaimError, match="contradicts"):
        validate({**ok, "passed": False})
    with pytest.raises(ClaimError, match=r"field\(s\) \['observed'\] missing"):
        validate({k: v for k, v in ok.items() if k != "observed"})


def test_scorecard_refuses_a_results_file_with_a_wrong_verdict(tmp_path):
    payload = {"notebook": "demo", "profile": "book", "seed": 0, "device": "cpu", "mmrepro_version": "0",
               "git_sha": None, "claims": [record(verdict="holds", interval=[-1.0, 1.0])]}
    (tmp_path / "demo.json").write_text(json.dumps(payload))
    with pytest.raises(ClaimError, match="demo.json: claim 'c1': recorded verdict 'holds' contradicts"):
        scorecard.load_results(tmp_path)


def test_describe_and_oriented_figure_coordinates():
    cells = claims.describe(record())
    assert cells == {"ours": "0.5 points [0.2, 0.8]", "n": "5", "threshold": "> 0 points", "verdict": "holds",
                     "paper effect": "—", "outcome": "reproduces"}
    z, lo, hi = scorecard.oriented(record())
    assert (z, lo, hi) == pytest.approx((0.5 / 0.3, 0.5 / 0.3 - 1, 0.5 / 0.3 + 1))
    below = record(direction="below", verdict="does not hold")
    assert scorecard.oriented(below)[0] == pytest.approx(-0.5 / 0.3)
    within = claims.empirical(id="w", chapter="d", paper="P", where="T", paper_value=0, criterion="c",
                              evidence=Evidence(0.01, (0.0, 0.02), 10, "t"), threshold=(-0.02, 0.02),
                              direction="within")
    z, lo, hi = scorecard.oriented(within)
    assert within["verdict"] == "holds" and lo >= 0  # decided lines miss 0 on the paper's side


# ----------------------------------------------------------------------------- intervals

def test_t_interval_matches_scipy():
    v = [0.81, 0.84, 0.79, 0.86, 0.83]
    m, lo, hi = t_interval(v)
    ref = sst.t.interval(0.95, len(v) - 1, loc=np.mean(v), scale=sst.sem(v))
    assert (lo, hi) == pytest.approx(ref) and m == pytest.approx(np.mean(v))


def test_paired_evidence_matches_scipys_paired_t_test():
    rng = np.random.default_rng(0)
    a = rng.normal(80, 2, 7)
    b = a - rng.normal(1.0, 0.5, 7)
    ev = paired_evidence(a, b)
    ci = sst.ttest_rel(a, b).confidence_interval(0.95)
    assert ev.interval == pytest.approx((ci.low, ci.high)) and ev.n == 7
    assert "paired seeds" in ev.method


@given(st.lists(st.floats(0, 100), min_size=2, max_size=8))
@example([100.0, 4.3285179523032493e-187])  # a value at a bound beside one a hair from the other
def test_bounded_intervals_stay_in_range(values):
    ev = mean_evidence(values, bounds=(0, 100))
    assert 0 <= ev.interval[0] <= ev.estimate <= ev.interval[1] <= 100


def test_a_crossing_interval_moves_to_the_logit_scale():
    ev = mean_evidence([99.0, 100.0, 96.0], bounds=(0, 100))
    plain = t_interval([99.0, 100.0, 96.0])
    assert plain[2] > 100  # the review's [96.4, 100.6] % kind of interval
    assert ev.interval[1] <= 100 and "logit" in ev.method
    assert paired_evidence([1.0, 1.0], [0.0, 0.1], bounds=(0, 1)).interval[1] <= 1


def test_evidence_needs_two_units_and_finite_values():
    with pytest.raises(ValueError, match="at least 2 independent units, got 1"):
        mean_evidence([0.5])
    with pytest.raises(ValueError, match="every value must be finite"):
        mean_evidence([0.5, math.nan])
    with pytest.raises(ValueError, match="outside the stated bounds"):
        mean_evidence([0.5, 1.5], bounds=(0, 1))
    with pytest.raises(ValueError, match="must pair up"):
        paired_evidence([1, 2, 3], [1, 2])


def test_clustered_evidence_counts_clusters_not_runs():
    values = [0.80, 0.82, 0.70, 0.72, 0.90, 0.88]
    folds = [0, 0, 1, 1, 2, 2]
    ev = clustered_evidence(values, folds)
    m, lo, hi = t_interval([0.81, 0.71, 0.89])
    assert ev.n == 3 and ev.estimate == pytest.approx(m) and ev.interval == pytest.approx((lo, hi))
    # Nadeau-Bengio: variance (1/K + n_test/n_train) s^2, checked against scipy's t quantile directly
    means = np.array([0.81, 0.71, 0.89])
    half = scipy.stats.t.ppf(0.975, 2) * np.sqrt((1 / 3 + 0.25) * means.var(ddof=1))
    nb = clustered_evidence(values, folds, test_train_ratio=0.25)
    assert nb.interval == pytest.approx((m - half, m + half)) and "Nadeau-Bengio" in nb.method
    with pytest.raises(ValueError, match="test_train_ratio"):
        clustered_evidence(values, folds, test_train_ratio=0)


def test_paired_bootstrap_uses_the_same_resamples_for_both_models():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 300)
    sa = np.clip(y * 0.6 + rng.normal(0.2, 0.25, 300), 0, 1)
    ev_same = paired_bootstrap_evidence("auroc", y, sa, sa, "binary", n_boot=200)
    assert ev_same.estimate == 0 and ev_same.interval == (0.0, 0.0)  # identical models: no spread at all
    sb = np.clip(y * 0.3 + rng.normal(0.35, 0.25, 300), 0, 1)
    ev = paired_bootstrap_evidence("auroc", y, sa, sb, "binary", n_boot=500, seed=3)
    assert ev.interval[0] > 0 and ev.n == 300 and -1 <= ev.interval[0] <= ev.interval[1] <= 1
    assert ev == paired_bootstrap_evidence("auroc", y, sa, sb, "binary", n_boot=500, seed=3)


def test_n_must_be_a_count_of_the_design_and_ids_unique_in_a_results_file(tmp_path):
    """n counts independent units of one of the evidence's sources of randomness (its design): 10**9 seeds
    behind an interval of 5 is refused; two claims with one id in one results file are refused."""
    assert validate(record(n=5)) == "holds"
    with pytest.raises(ClaimError, match=r"claim 'c1': field 'n' is 1000000000 but its design counts 5 units: "
                                         r"n must be the count of one of its sources of randomness"):
        validate(record(n=10**9))
    broken = record()
    del broken["design"]
    with pytest.raises(ClaimError, match="claim 'c1': an empirical claim with an estimate needs its 'design'"):
        validate(broken)
    payload = {"notebook": "demo", "profile": "book", "seed": 0, "device": "cpu", "mmrepro_version": "0",
               "git_sha": None, "claims": [record(), record()]}
    (tmp_path / "demo.json").write_text(json.dumps(payload))
    with pytest.raises(ClaimError, match=r"demo.json: claim id 'c1' is recorded 2 times; every claim id must be "
                                         "unique"):
        scorecard.load_results(tmp_path)
