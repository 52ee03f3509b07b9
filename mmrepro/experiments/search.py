"""Random search with selection on validation and a single test evaluation (MILES Sec. IV-B).

The objective trains one configuration and returns a :class:`Candidate`: its validation score
(higher is better; for MILES the fused head's validation accuracy at the selected epoch) and a
way to evaluate it on the test split. :func:`random_search` keeps only the best candidate so far
(ties: the earlier trial) and evaluates the winner on the test split exactly once.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol

from mmrepro.experiments.space import sample


class Candidate(Protocol):
    """A trained configuration: ``score`` (validation, higher is better) and ``evaluate_test()``."""

    score: float

    def evaluate_test(self) -> dict[str, float]: ...


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


def random_search(objective: Callable[[dict[str, Any], int], Candidate], space: Mapping[str, Any],
                  n_trials: int, seed: int = 0) -> SearchResult:
    """Sample ``n_trials`` configurations from ``space`` (:func:`mmrepro.experiments.space.sample`),
    train each with ``objective(config, seed)``, select the best validation ``score`` and call its
    ``evaluate_test()`` once. A trial with a non-finite score is recorded but never selected."""
    if not isinstance(n_trials, int) or n_trials < 1:
        raise ValueError(f"n_trials must be a positive integer, got {n_trials!r}")
    best, best_config, best_trial, best_score = None, {}, -1, -math.inf
    trials = []
    for k in range(n_trials):
        config = sample(space, seed, k)
        cand = objective(dict(config), seed)
        s = float(cand.score)
        trials.append({"trial": k, **config, "val_score": s})
        if math.isfinite(s) and s > best_score:
            best, best_config, best_trial, best_score = cand, config, k, s
    if best is None:
        raise RuntimeError(f"no trial of {n_trials} produced a finite validation score; "
                           "check the learning-rate range and the data")
    return SearchResult(best, best_config, best_trial, best.evaluate_test(), trials)
