"""Outcomes of empirical claims (replication-study criteria), the runs that would decide an undecided
claim, and the intervals that count seeds and test rows together -- each against a hand computation,
scipy, or a simulation with a known truth."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats as sst

from mmrepro.core.stats import (
    Evidence,
    Part,
    bounded_interval,
    clustered_evidence,
    hierarchical_evidence,
    mean_evidence,
    paired_evidence,
    seed_row_evidence,
)
from mmrepro.publish import claims, scorecard
from mmrepro.publish.claims import (
    CONTRADICTED,
    LARGER,
    NOT_REPRODUCED,
    REPRODUCES,
    SMALLER,
    UNDECIDED,
    ClaimError,
    outcome,
    runs_to_decide,
)

# ----------------------------------------------------------------------------- the outcome rule

@pytest.mark.parametrize("interval, threshold, direction, effect, expected", [
    ((0.5, 2.0), 0.0, "above", 1.0, REPRODUCES),             # beyond the threshold, the paper's effect inside
    ((0.5, 2.0), 0.0, "above", None, REPRODUCES),            # the paper gives no number
    ((0.5, 2.0), 0.0, "above", 2.0, REPRODUCES),             # an end equal to the paper's effect contains it
    ((0.1, 0.8), 0.0, "above", 2.4, SMALLER),                # wholly between the threshold and the paper's effect
    ((3.0, 5.0), 0.0, "above", 2.4, LARGER),
    ((-2.7, 2.1), 0.0, "above", 2.4, NOT_REPRODUCED),        # the review's fused-pbc_death-vs-base_3h
    ((-2.7, 2.6), 0.0, "above", 2.4, UNDECIDED),
    ((-2.7, 2.6), 0.0, "above", None, UNDECIDED),
    ((-3.0, 0.0), 0.0, "above", 2.4, CONTRADICTED),          # an upper end at the threshold: no improvement
    ((-3.0, -1.0), 0.0, "above", None, CONTRADICTED),
    ((0.0, 0.0), 0.0, "above", 2.4, UNDECIDED),              # zero width decides nothing
    ((1.0, 1.0), 0.0, "above", 1.0, UNDECIDED),
    ((-2.0, -0.5), 0.0, "below", -1.0, REPRODUCES),
    ((-0.8, -0.1), 0.0, "below", -2.0, SMALLER),             # nearer the threshold than the paper's effect
    ((-5.0, -3.0), 0.0, "below", -2.0, LARGER),
    ((-1.0, 3.0), 0.0, "below", -2.0, NOT_REPRODUCED),
    ((0.0, 3.0), 0.0, "below", -2.0, CONTRADICTED),
    ((-0.01, 0.015), (-0.02, 0.02), "within", None, REPRODUCES),
    ((-0.05, 0.01), (-0.02, 0.02), "within", None, UNDECIDED),
    ((0.03, 0.05), (-0.02, 0.02), "within", None, CONTRADICTED),
    ((-0.02, 0.02), (-0.02, 0.02), "within", None, REPRODUCES),  # ends on the margins are inside
])
def test_outcome_examples(interval, threshold, direction, effect, expected):
    assert outcome(interval, threshold, direction, effect) == expected


def test_a_paper_effect_on_the_wrong_side_is_refused():
    with pytest.raises(ValueError, match="is not above the threshold"):
        outcome((0.1, 0.5), 0.0, "above", -1.0)
    with pytest.raises(ValueError, match="is not below the threshold"):
        outcome((-0.5, -0.1), 0.0, "below", 0.0)


finite = st.floats(-100, 100, allow_nan=False)


@given(finite, finite, finite, st.floats(0.01, 50))
def test_outcome_agrees_with_the_verdict_and_mirrors(a, b, t, gap):
    lo, hi = sorted((a, b))
    effect = t + gap
    above = outcome((lo, hi), t, "above", effect)
    verdict = claims.decide((lo, hi), t, "above")
    assert (above in claims.REPRODUCING) == (verdict == claims.HOLDS)
    assert (above == CONTRADICTED) == (verdict == claims.FAILS)
    if above in (NOT_REPRODUCED, UNDECIDED):
        assert verdict == claims.INCONCLUSIVE and (above == UNDECIDED) == (lo <= effect <= hi or lo == hi)
    mirrored = outcome((-hi, -lo), -t, "below", -effect)
    assert mirrored == above


# ----------------------------------------------------------------------------- runs to decide

def test_runs_to_decide_by_hand_for_a_t_interval_over_seeds():
    # half-width 2 around 1 with the threshold at 0: the half-width must halve, so the variance quarter,
    # so 4 x the seeds (the t quantile also shrinks: "about")
    ev = Evidence(1.0, (-1.0, 3.0), 5, "t", (Part("seeds", 5, 0.8, "n_seeds"),))
    runs, why = runs_to_decide(1.0, (-1.0, 3.0), 0.0, "above", ev.design())
    assert why is None and runs == {"factor": 4.0, "units": {"seeds": 20}, "parameters": {"n_seeds": 20}}


def test_runs_to_decide_scales_every_source_and_respects_a_floor():
    design = {"parts": [{"unit": "seeds", "count": 10, "variance": 0.5, "parameter": "seeds"},
                        {"unit": "test rows", "count": 300, "variance": 0.5, "parameter": None}], "floor": 0.0}
    runs, _ = runs_to_decide(1.0, (-2.0, 4.0), 0.0, "above", design)  # h = 3, d = 1: 9 x the variance
    assert runs["factor"] == 9.0 and runs["units"] == {"seeds": 90, "test rows": 2700}
    assert runs["parameters"] == {"seeds": 90}
    # V = 1 of which a floor of 0.5: needed V* = 1 * (1/3)^2 = 0.11 < floor -> no number of folds decides it
    floored = {"parts": [{"unit": "folds", "count": 5, "variance": 0.5, "parameter": None}], "floor": 0.5}
    runs, why = runs_to_decide(1.0, (-2.0, 4.0), 0.0, "above", floored)
    assert runs is None and "variance floor" in why
    # V = 1 with floor 0.1; V* = 0.25 -> factor (1 - 0.1) / (0.25 - 0.1) = 6
    runs, _ = runs_to_decide(1.0, (-1.0, 3.0), 0.0, "above",
                             {"parts": [{"unit": "folds", "count": 5, "variance": 0.9, "parameter": "n_repeats"}],
                              "floor": 0.1})
    assert runs["factor"] == 6.0 and runs["units"] == {"folds": 30}


def test_runs_to_decide_edges():
    design = {"parts": [{"unit": "seeds", "count": 3, "variance": 1.0, "parameter": None}], "floor": 0.0}
    assert runs_to_decide(0.0, (-1.0, 1.0), 0.0, "above", design)[0] is None  # on the threshold
    # asymmetric interval: the side that faces the threshold counts (lower side 0.5 against distance 0.4)
    runs, _ = runs_to_decide(0.4, (-0.1, 3.0), 0.0, "above", design)
    assert runs["factor"] == pytest.approx((0.5 / 0.4) ** 2, abs=0.01)
    # within: inside the margins, the nearer margin decides
    runs, _ = runs_to_decide(0.01, (-0.03, 0.05), (-0.02, 0.02), "within", design)
    assert runs["factor"] == pytest.approx((0.04 / 0.01) ** 2, abs=0.01)


def test_an_undecided_record_carries_its_runs_and_they_are_validated():
    ev = mean_evidence([0.5, -0.2, 1.1, 0.3], unit="seeds", parameter="n_seeds")
    rec = claims.empirical(id="u", chapter="d", paper="P", where="T", paper_value=1, criterion="c", evidence=ev,
                           threshold=0.0, direction="above", paper_effect=0.5)
    assert rec["outcome"] == UNDECIDED and rec["runs_to_decide"]["parameters"]["n_seeds"] > 4
    assert claims.validate(rec) == claims.INCONCLUSIVE
    with pytest.raises(ClaimError, match="runs_to_decide contradicts"):
        claims.validate({**rec, "runs_to_decide": {"factor": 1.0, "units": {"seeds": 5}, "parameters": {}}})
    with pytest.raises(ClaimError, match="recorded outcome 'reproduces' contradicts"):
        claims.validate({**rec, "outcome": "reproduces"})
    with pytest.raises(ClaimError, match="the estimate 9 lies outside its interval"):
        claims.validate({**rec, "estimate": 9.0})


def test_a_headline_claim_needs_a_summary():
    ev = mean_evidence([1.0, 1.2, 0.9])
    with pytest.raises(ClaimError, match="a headline claim needs a 'summary'"):
        claims.empirical(id="h", chapter="d", paper="P", where="T", paper_value=1, criterion="c", evidence=ev,
                         threshold=0.0, direction="above", headline=True)


# ----------------------------------------------------------------------------- intervals over seeds and rows

def test_seed_row_evidence_by_hand():
    x = np.array([[1.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0], [1.0, 1.0, 1.0, 0.0]])  # 3 seeds x 4 rows
    ev = seed_row_evidence(x)
    seed_means, row_means = x.mean(1), x.mean(0)
    v_s, v_r = seed_means.var(ddof=1) / 3, row_means.var(ddof=1) / 4
    df = (v_s + v_r) ** 2 / (v_s**2 / 2 + v_r**2 / 3)
    half = sst.t.ppf(0.975, df) * math.sqrt(v_s + v_r)
    assert ev.estimate == pytest.approx(x.mean())
    assert ev.interval == pytest.approx((x.mean() - half, x.mean() + half))
    assert [p.unit for p in ev.parts] == ["seeds", "test rows"]
    assert [p.variance for p in ev.parts] == pytest.approx([v_s, v_r])


def test_with_no_row_variance_it_is_student_t_over_the_seeds():
    u = [0.80, 0.84, 0.79, 0.86, 0.83]
    ev = hierarchical_evidence(u, np.full(200, np.mean(u)), n_rows=300)
    ref = sst.t.interval(0.95, 4, loc=np.mean(u), scale=sst.sem(u))
    assert ev.interval == pytest.approx(ref)


def test_seed_and_row_intervals_cover_a_known_mean():
    """A simulated replication: K = 5 seeds, each scored on the same N = 200 test rows; correctness has a
    seed effect and a row effect. The interval counting both covers the true accuracy about 95 % of the
    time; t over the seeds alone, or a percentile over the 5 seed values, undercovers."""
    rng = np.random.default_rng(0)

    def accuracy_of(row_p, seed_shift):
        return np.clip(row_p[None, :] + seed_shift[:, None], 0, 1)

    # the mean accuracy over the populations of seeds and rows, by a large Monte Carlo draw
    truth = accuracy_of(np.clip(0.8 + rng.normal(0, 0.25, 4000), 0.02, 0.98), rng.normal(0, 0.03, 500)).mean()
    hits = {"both": 0, "seeds only": 0, "percentile over seeds": 0}
    trials = 300
    for _ in range(trials):
        row_p = np.clip(0.8 + rng.normal(0, 0.25, 200), 0.02, 0.98)  # each test row's difficulty
        p = accuracy_of(row_p, rng.normal(0, 0.03, 5))
        x = (rng.random((5, 200)) < p).astype(float)
        ev = seed_row_evidence(x)
        hits["both"] += ev.interval[0] <= truth <= ev.interval[1]
        seeds = mean_evidence(x.mean(1))
        hits["seeds only"] += seeds.interval[0] <= truth <= seeds.interval[1]
        boot = rng.choice(x.mean(1), size=(1000, 5)).mean(1)
        lo, hi = np.quantile(boot, [0.025, 0.975])
        hits["percentile over seeds"] += lo <= truth <= hi
    cover = {k: v / trials for k, v in hits.items()}
    assert 0.92 <= cover["both"] <= 0.98
    assert cover["seeds only"] < 0.92 and cover["percentile over seeds"] < 0.85


# ----------------------------------------------------------------------------- bounded intervals

@given(st.lists(st.floats(0.5, 1.0), min_size=2, max_size=8))
def test_bounded_intervals_stay_inside_and_never_end_at_the_estimate(values):
    ev = mean_evidence(values, bounds=(0.0, 1.0))
    lo, hi = ev.interval
    assert 0.0 <= lo <= ev.estimate <= hi <= 1.0
    if lo < hi:
        assert lo < ev.estimate < hi or ev.estimate in (0.0, 1.0)


def test_the_review_precision_case_no_longer_ends_at_its_estimate():
    values = [0.98, 0.98, 0.98, 0.875, 0.98, 0.98]
    ev = mean_evidence(values, bounds=(0.0, 1.0))
    assert ev.interval[0] < ev.estimate < ev.interval[1] < 1.0
    # delta method on the logit of the mean: the t half-width divided by p (1 - p)
    m, half = np.mean(values), sst.t.ppf(0.975, 5) * sst.sem(values)
    z = math.log(m / (1 - m))
    expect = [1 / (1 + math.exp(-(z + s * half / (m * (1 - m))))) for s in (-1, 1)]
    assert ev.interval == pytest.approx(expect)


def test_bounded_interval_at_the_bound_is_the_bound():
    assert bounded_interval(1.0, 0.1, (0.0, 1.0)) == ((1.0, 1.0), True)
    assert bounded_interval(0.5, 0.1, (0.0, 1.0)) == ((0.4, 0.6), False)


def test_repeated_cross_validation_floor_is_nadeau_bengio():
    rng = np.random.default_rng(3)
    values = rng.normal(0.02, 0.03, 15)  # 3 repeats x 5 folds
    folds = [(r, f) for r in range(3) for f in range(5)]
    ev = clustered_evidence(values, folds, test_train_ratio=0.125)
    s2 = values.var(ddof=1)
    half = sst.t.ppf(0.975, 14) * math.sqrt((1 / 15 + 0.125) * s2)
    assert ev.interval == pytest.approx((values.mean() - half, values.mean() + half))
    assert ev.floor == pytest.approx(0.125 * s2) and ev.parts[0].variance == pytest.approx(s2 / 15)


def test_paired_evidence_bounds_are_those_of_a_difference():
    # the bug a mutation found: bounds (0, w) instead of (-w, w) for a paired difference
    ev = paired_evidence([80, 82, 79], [81, 80, 79.5], bounds=(0, 100))
    ref = sst.t.interval(0.95, 2, loc=np.mean([-1, 2, -0.5]), scale=sst.sem([-1, 2, -0.5]))
    assert ev.interval == pytest.approx(ref)


# ----------------------------------------------------------------------------- the page and the terminal

def _record(cid, interval, effect=None, headline=False, summary=None):
    est = sum(interval) / 2
    return claims.empirical(id=cid, chapter="demo", paper="P", where="Table 1", paper_value=effect, criterion="c",
                            evidence=Evidence(est, interval, 5, "t", (Part("seeds", 5, 1.0, "seeds"),)),
                            threshold=0.0, direction="above", paper_effect=effect, headline=headline, summary=summary,
                            unit="points")


def test_in_brief_box_and_claim_lines(tmp_path):
    recs = [_record("a", (0.5, 2.0), 1.2, True, "A beats B"), _record("b", (-2.7, 2.1), 2.4, True, "C helps"),
            _record("c", (-0.8, 1.2), None)]
    html = scorecard.in_brief({"demo": [r for r in recs if r["headline"]]}, {"demo": "stand-in data"}, "book")
    assert html.startswith('<div id="in-brief"') and html.count("<li>") == 2
    assert "reproduces" in html and "not reproduced" in html and "stand-in data" in html
    assert "+1.25 points [+0.5, +2] vs paper +1.2" in html
    lines = [scorecard.claim_line(r) for r in recs]
    assert all(len(line) <= 120 for line in lines) and lines[2].startswith("c  undecided")
    payload = {"notebook": "demo", "profile": "book", "seed": 0, "device": "cpu", "mmrepro_version": "0",
               "git_sha": None, "claims": recs}
    (tmp_path / "demo.json").write_text(json.dumps(payload))
    results = scorecard.load_results(tmp_path)
    assert [c["id"] for c in scorecard.select(results, headline=True)] == ["a", "b"]
    assert [c["id"] for c in scorecard.select(results, outcome="undecided")] == ["c"]
    with pytest.raises(ValueError, match="--outcome must be one of"):
        scorecard.select(results, outcome="maybe")
    table = scorecard.undecided_table(results)
    assert list(table["claim"]) == ["c"] and table["price it"][0].startswith("mmrepro plan demo --profile book -p seeds ")
    counts = scorecard.outcome_counts(results)
    assert counts.loc["demo", "reproduces"] == 1 and counts.loc["all", "undecided"] == 1


def test_the_premise_rule(monkeypatch):
    import myst_nb

    from mmrepro.publish.notebook import ChapterRun, Params

    glued = {}
    monkeypatch.setattr(myst_nb, "glue", lambda key, value, display=True: glued.update({key: value}))
    run = ChapterRun(name="demo", params=Params({"profile": "book", "seed": 0}), device="cpu", seed=0, profile="book")
    common = dict(paper="P", where="Fig. 1", paper_value=35, criterion="c", threshold=0.0, direction="above")
    run.claim(id="lag-absent", evidence=mean_evidence([1.0, -2.0, 3.0, 0.5]), paper_effect=35.0, **common)
    run.claim(id="lag-small", evidence=mean_evidence([5.0, 6.0, 7.0, 6.5]), paper_effect=35.0, **common)
    a = run.claim(id="dep-a", evidence=mean_evidence([1.0, 2.0, 1.5]), premise="lag-absent", **common)
    b = run.claim(id="dep-b", evidence=mean_evidence([1.0, 2.0, 1.5]), premise="lag-small", **common)
    assert a["outcome"] == "not comparable" and a["reason"].startswith("premise absent: lag-absent is ")
    assert "(not reproduced)" in a["reason"] and a["premise"] == "lag-absent"  # 35 lies outside its interval
    assert b["outcome"] == "reproduces" and "present but smaller than the paper's" in b["premise_note"]
    with pytest.raises(ClaimError, match="its premise 'nope' must be recorded first"):
        run.claim(id="dep-c", evidence=mean_evidence([1.0, 2.0]), premise="nope", **common)
    run.claim(id="head", evidence=mean_evidence([1.0, 2.0, 1.5]), headline=True, summary="A beats B", **common)
    html = run.glue_in_brief("stand-in data")
    assert html.count("<li>") == 1 and "A beats B" in html and run.values["in_brief"] == html
