"""The MultiModN chapter's claims (mmrepro.papers.multimodn.findings): the corrected repeated cross-validation
interval against a hand computation, the skill premises, the paper's margins at 90 %, the sensitivity table."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mmrepro.papers.multimodn import findings as FD
from mmrepro.publish.claims import decide
from mmrepro.publish.claims import runs_to_decide as runs_needed
from mmrepro.publish.notebook import ChapterRun, Params


def book_run() -> ChapterRun:
    return ChapterRun(name="multimodn", params=Params({}), device="cpu", seed=0, profile="book")


def test_corrected_repeated_cv_interval_by_hand():
    """Two repeats of a 3-fold partition, two initialisations per fold: the mean of the six fold means, variance
    (1/6 + 0.125) s^2 of those means, t with 5 degrees of freedom (Bouckaert & Frank 2004)."""
    values = [0.10, 0.14, 0.02, 0.00, 0.05, 0.09, -0.03, 0.01, 0.20, 0.16, 0.07, 0.05]
    units = ["0/0", "0/0", "0/1", "0/1", "0/2", "0/2", "1/0", "1/0", "1/1", "1/1", "1/2", "1/2"]
    design = FD.Design(test_train=0.125, n_repeats=2, n_folds=3)
    ev, reason = design.evidence(values, units, level=0.90)
    means = [0.12, 0.01, 0.07, -0.01, 0.18, 0.06]
    s2 = np.var(means, ddof=1)
    half = stats.t.ppf(0.95, 5) * math.sqrt((1 / 6 + 0.125) * s2)
    assert reason is None and ev.n == 6
    assert ev.estimate == pytest.approx(np.mean(means))
    assert ev.interval == pytest.approx((np.mean(means) - half, np.mean(means) + half))
    assert ev.floor == pytest.approx(0.125 * s2)  # the shared training rows: no repeat removes it
    part, folds = ev.parts
    assert (part.unit, part.count, part.parameter) == ("repeats", 2, "n_repeats")
    assert (folds.unit, folds.count, folds.variance) == ("folds", ev.n, 0.0)  # the interval's units, n
    assert part.variance == pytest.approx(s2 / 6)
    # more repeats shrink 1/J only: the runs that would decide a claim count repeats, or say it cannot be done
    runs, why = runs_needed(ev.estimate, ev.interval, 0.0, "above", ev.design())
    assert runs is not None and runs["parameters"]["n_repeats"] > 2 and why is None
    far, why = runs_needed(ev.estimate, ev.interval, ev.estimate - 0.2 * (ev.interval[1] - ev.estimate), "above",
                           ev.design())
    assert far is None and "floor" in why
    assert FD.Design(0.125, 2, 3).evidence([0.1], ["0/0"])[0] is None  # one fold: no interval, a reason


def rows_for(models: dict[str, list[float]], metric: str) -> pd.DataFrame:
    rows = []
    for model, values in models.items():
        for i, v in enumerate(values):
            rows.append({"model": model, "repeat": i // 5, "fold": i % 5, "init": i, "metric": metric, "value": v})
    return pd.DataFrame(rows)


def test_parity_needs_skill_of_both_models_and_reads_the_90_percent_interval():
    run = book_run()
    cmp = FD.Comparisons(run, FD.Design(0.125, 2, 5))
    rng = np.random.default_rng(0)
    good = list(0.80 + 0.02 * rng.standard_normal(10))
    close = [v + 0.005 + 0.01 * e for v, e in zip(good, rng.standard_normal(10))]
    chance = list(0.50 + 0.02 * rng.standard_normal(10))
    rec = cmp.compare("exp1-parity-a", "Table 1", "matches", rows_for({"M": good, "P": close}, "bac"), "M", "P", "bac",
                      "task a", skill=(("a",), "Table 1", 2))
    assert rec["premise"] in {"skill-a-m-bac", "skill-a-p-bac"} and rec["outcome"] == "reproduces"
    assert "90 %" in rec["interval_method"] and rec["threshold"] == [-0.04, 0.04]
    t90 = stats.t.ppf(0.95, 9)
    diffs = np.array(good) - np.array(close)
    half = t90 * math.sqrt((1 / 10 + 0.125) * np.var(diffs, ddof=1))
    assert rec["interval"] == pytest.approx([diffs.mean() - half, diffs.mean() + half])
    both_chance = cmp.compare("exp1-parity-b", "Table 1", "matches", rows_for({"M": chance, "P": chance[::-1]}, "bac"),
                              "M", "P", "bac", "task b", skill=(("b",), "Table 1", 2))
    assert both_chance["outcome"] == "not comparable" and both_chance["premise"] == "skill-b-m-bac"
    assert "premise absent" in both_chance["reason"]
    one = cmp.compare("exp1-parity-c", "Table 1", "matches", rows_for({"M": good, "P": chance}, "bac"), "M", "P",
                      "bac", "task c", skill=(("c",), "Table 1", 2))
    assert one["premise"] == "skill-c-p-bac" and one["outcome"] == "not comparable"
    table = FD.margin_sensitivity(cmp, decide)
    assert table["claim"].tolist() == ["exp1-parity-a"]  # not comparable claims are left out
    assert table.loc[0, "paper's margin"] == "±0.04" and table.loc[0, "strict margin"] == "±0.02"


def test_mse_skill_and_relative_margin():
    run = book_run()
    cmp = FD.Comparisons(run, FD.Design(0.125, 2, 5))
    skill = rows_for({"M": [0.6] * 5 + [0.65] * 5, "P": [0.55] * 5 + [0.62] * 5}, "mse_skill")
    mse = rows_for({"M": [0.40, 0.41] * 5, "P": [0.44, 0.39] * 5}, "mse")
    rec = cmp.compare("e4-x", "E.4", "no worse", pd.concat([skill, mse]), "M", "P", "mse", "weather", how="no worse",
                      skill=(("w",), "Table 1", 2))
    assert rec["direction"] == "below" and rec["threshold"] == 25.0 and rec["unit"] == "%"
    assert rec["outcome"] == "reproduces" and run.claims[0]["id"] == "skill-w-m-mse"
    assert run.claims[0]["threshold"] == 0.0 and "MSE skill score" in run.claims[0]["criterion"]
