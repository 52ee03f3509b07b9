"""``mmrepro plan`` prices stacked runs as the chapters train them (issue 28 item 4): the batching table, its
interpolation, and the chapters' plans against the same runs priced one at a time."""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch

from mmrepro.runs import cost
from mmrepro.runs.cost import BATCHING, Estimate, batching_speedup, stacked_units, stacks_of

ROOT = Path(__file__).resolve().parents[1]


def test_speedup_is_the_measured_table_interpolated_in_log_k():
    for kind, table in BATCHING.items():
        assert table[1] == 1.0 and batching_speedup(kind, 1) == 1.0
        for k, ratio in table.items():
            assert batching_speedup(kind, k) == pytest.approx(ratio)
        top = max(table)
        assert batching_speedup(kind, 4 * top) == table[top]  # held above the largest measured K
    lo, hi = BATCHING["resnet"][4], BATCHING["resnet"][16]
    assert batching_speedup("resnet", 8) == pytest.approx(lo + (hi - lo) * math.log(2) / math.log(4))
    assert batching_speedup(None, 16) == 1.0  # an unmeasured kind gets no credit


def test_bad_stacks_and_kinds_are_named():
    with pytest.raises(ValueError, match="no batching measurement for kind 'lstm'"):
        batching_speedup("lstm", 4)
    with pytest.raises(ValueError, match=r"k \(runs per stack\) must be an int >= 1, got 0"):
        batching_speedup("mlp", 0)


def test_a_runs_fixed_cost_is_paid_once_per_run_and_not_scaled(monkeypatch):
    """A probe run costs 5 s whatever its length plus 2 s per epoch (on a clock faked by ``timed``): the epoch is
    2 s scaled by the rows, the 5 s are each run's once; an estimate adds runs x 5 s to the epochs' price, and a
    probe that cannot separate them (no difference) keeps a tenth of one run as its epoch."""
    monkeypatch.setattr(cost, "timed", lambda fn: fn())
    assert cost.epoch_and_run_seconds(lambda e: 5.0 + 2.0 * e, 3.0) == pytest.approx((6.0, 5.0))
    assert cost.epoch_and_run_seconds(lambda e: 5.0, 3.0) == pytest.approx((1.5, 4.5))
    probe = cost.Cost("c", lambda: cost.epoch_and_run_seconds(lambda e: 5.0 + 2.0 * e, 3.0))
    plain = cost.Cost("p", lambda: 6.0)
    sections = [cost.Section("fixed", 4, 10, probe, units=2.0), cost.Section("plain", 4, 10, plain, units=2.0)]
    e = cost.estimate("x", {"profile": "book"}, sections, "cpu")
    assert e.seconds(sections[0]) == pytest.approx(2.0 * 10 * 6.0 + 4 * 5.0)
    assert e.seconds(sections[1]) == pytest.approx(2.0 * 10 * 6.0)


def test_stacks_of_one_cost_what_the_runs_cost_alone():
    assert stacked_units([1] * 7, "resnet") == 7 and stacked_units([16], None) == 16
    assert stacked_units([16, 0], "mlp") == pytest.approx(16 / BATCHING["mlp"][16])
    assert stacks_of(150) == [64, 64, 22] and stacks_of(5, 2) == [2, 2, 1]


def priced(sections, units_of=lambda s: s.units) -> float:
    """Total of ``sections`` with every probe at one second per epoch."""
    secs = [dataclasses.replace(s, units=units_of(s)) for s in sections]
    return Estimate("x", {}, "cpu", secs, {s.cost.name: 1.0 for s in secs if s.cost is not None}, 0.0).total_s


@pytest.mark.parametrize("profile", ["smoke", "book", "paper"])
def test_miles_plan_prices_its_stacks_and_counts_the_same_runs(monkeypatch, profile):
    from mmrepro.papers.miles.plan import sections
    from mmrepro.publish.planning import resolve

    plan = sections(resolve(ROOT / "notebooks" / "miles.md", profile), torch.device("cpu"))
    one_at_a_time = priced(plan, lambda s: None)
    assert priced(plan) < one_at_a_time  # stacked, as trained: cheaper
    monkeypatch.setattr(cost, "batching_speedup", lambda kind, k: 1.0)  # no speed-up: the old price exactly
    assert priced(sections(resolve(ROOT / "notebooks" / "miles.md", profile), torch.device("cpu"))) == one_at_a_time


def test_mind_plan_prices_its_stacks_and_counts_the_same_runs(monkeypatch):
    from mmrepro.papers.mind.plan import sections
    from mmrepro.publish.planning import resolve

    P = resolve(ROOT / "notebooks" / "mind.md", "smoke")
    plan = sections(P, torch.device("cpu"))
    one_at_a_time = priced(plan, lambda s: None)
    assert priced(plan) < one_at_a_time
    monkeypatch.setattr(cost, "batching_speedup", lambda kind, k: 1.0)
    assert priced(sections(P, torch.device("cpu"))) == one_at_a_time
