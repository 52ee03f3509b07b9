"""The run layer: the objective protocol (run_jobs, groups, many), the run cache, executors."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import pytest

from mmrepro.experiments import LogUniform, random_search, run_jobs, search_then_repeat
from mmrepro.experiments.jobs import check_jobs, groups


@dataclass
class Toy:
    """A plain-data candidate whose scores are a known function of (config, seed)."""

    config: dict
    seed: int
    score: float
    test: dict = field(default_factory=dict)

    def evaluate_test(self):
        return dict(self.test)


class ToyObjective:
    """Counts the runs it trains; ``batched`` adds ``many`` and ``group`` (by ``width``)."""

    def __init__(self):
        self.trained: list[tuple] = []

    def __call__(self, config, seed):
        self.trained.append((tuple(sorted(config.items())), seed))
        s = -abs(math.log10(config["lr"]) + 3) + 0.01 * seed
        return Toy(dict(config), seed, s, {"fusion": 1 + s})


class BatchedToy(ToyObjective):
    def __init__(self):
        super().__init__()
        self.calls: list[int] = []

    def many(self, jobs):
        self.calls.append(len(jobs))
        return [ToyObjective.__call__(self, c, s) for c, s in jobs]

    def group(self, config):
        return config.get("width", 0)


def test_run_jobs_keeps_order_and_batches_by_group():
    jobs = [({"lr": 1e-3, "width": w}, s) for s, w in enumerate([1, 2, 1, 2, 1])]
    plain, batched = ToyObjective(), BatchedToy()
    a = run_jobs(plain, jobs)
    b = run_jobs(batched, jobs)
    assert [c.seed for c in a] == [0, 1, 2, 3, 4] and a == b
    assert batched.calls == [3, 2]  # one `many` call per width
    assert groups(batched, jobs) == [[0, 2, 4], [1, 3]]
    assert run_jobs(plain, []) == []


def test_searches_are_the_same_with_and_without_many():
    space = {"lr": LogUniform(1e-5, 1e-1)}
    a = search_then_repeat(ToyObjective(), space, 6, [3, 4, 5], keep_runs=True)
    b = search_then_repeat(BatchedToy(), space, 6, [3, 4, 5], keep_runs=True)
    assert a.rows == b.rows and a.search.trials == b.search.trials
    assert random_search(BatchedToy(), space, 4, 1).best_config == random_search(ToyObjective(), space, 4, 1).best_config


def test_bad_jobs_and_executors_are_named():
    with pytest.raises(TypeError, match="job 1"):
        check_jobs([({"lr": 1}, 0), ({"lr": 1}, "0")])
    with pytest.raises(ValueError, match="executor='nope'"):
        run_jobs(ToyObjective(), [({"lr": 1e-3}, 0)], executor="nope")

    class Short(BatchedToy):
        def many(self, jobs):
            return []

    with pytest.raises(RuntimeError, match="returned 0 candidates for 1 jobs"):
        run_jobs(Short(), [({"lr": 1e-3}, 0)])
