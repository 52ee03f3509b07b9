"""Random search with selection on validation and a single test evaluation (MILES Sec. IV-B).

The objective trains one configuration and returns a :class:`Candidate`: its validation score
(higher is better; for MILES the fused head's validation accuracy at the selected epoch) and a
way to evaluate it on the test split. :func:`random_search` trains every trial through
:func:`mmrepro.runs.jobs.run_jobs`, selects the best validation score (ties: the earlier
trial) and evaluates the winner on the test split exactly once.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

from mmrepro.runs.jobs import run_jobs
from mmrepro.runs.protocol import Candidate, Objective
from mmrepro.runs.space import sample

if TYPE_CHECKING:
    from mmrepro.runs.executors import Executor


@dataclass
class SearchResult:
    """The selected trial, its configuration, its (single) test evaluation and every trial's score."""

    best: Any
    best_config: dict[str, Any]
    best_trial: int
    test: dict[str, float]
    trials: list[dict[str, Any]] = field(default_factory=list)

    def frame(self):
        """One row per trial: ``trial``, the sampled values and ``val_score``."""
        import pandas as pd

        return pd.DataFrame(self.trials)


def random_search(objective: Objective, space: Mapping[str, Any], n_trials: int, seed: int = 0,
                  executor: str | Executor = "local") -> SearchResult:
    """Sample ``n_trials`` configurations from ``space`` (:func:`mmrepro.runs.space.sample`),
    train each with ``objective(config, seed)`` on ``executor`` (:func:`run_jobs`), select the best
    validation ``score`` and call its ``evaluate_test()`` once. A trial with a non-finite score is
    recorded but never selected."""
    if not isinstance(n_trials, int) or n_trials < 1:
        raise ValueError(f"n_trials must be a positive integer, got {n_trials!r}")
    configs = [sample(space, seed, k) for k in range(n_trials)]
    cands = run_jobs(objective, [(dict(c), seed) for c in configs], executor)
    best: Candidate | None = None
    best_config, best_trial, best_score = {}, -1, -math.inf
    trials = []
    for k, (config, cand) in enumerate(zip(configs, cands)):
        s = float(cand.score)
        trials.append({"trial": k, **config, "val_score": s})
        if math.isfinite(s) and s > best_score:
            best, best_config, best_trial, best_score = cand, config, k, s
    if best is None:
        raise RuntimeError(f"no trial of {n_trials} produced a finite validation score; "
                           "check the learning-rate range and the data")
    return SearchResult(best, best_config, best_trial, best.evaluate_test(), trials)
