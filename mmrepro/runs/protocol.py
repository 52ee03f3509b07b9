"""The objective protocol: how every search and seed repeat of the package trains its runs.

An *objective* trains one configuration with one seed and returns a :class:`Candidate`::

    objective(config: dict, seed: int) -> Candidate

A *job* is one ``(config, seed)`` pair; :func:`mmrepro.runs.jobs.run_jobs` runs a list of jobs and returns their
candidates in the same order. It is the one way the package runs many runs: the random search
(:func:`mmrepro.runs.search.random_search`), the seed repeats
(:func:`mmrepro.runs.repeat.search_then_repeat`), MIND's student search and MultiModN's
repetitions all go through it, so caching, batching and distribution apply to all of them.

An objective may offer three optional methods

``objective.key(config, seed) -> dict``
    A JSON-able description of everything that determines the run: architecture, objective or
    method and its hyper-parameters, dataset name, options and a fingerprint of the split, seed,
    epochs, batch size, device type. With it, finished runs are stored in the run cache
    (:mod:`mmrepro.runs.cache`, which adds the package version and a digest of its source) and a
    later call with the same key loads them instead of training; without it nothing is cached.
``objective.many(jobs: list[tuple[dict, int]]) -> list[Candidate]``
    Trains several jobs at once (batched training). It must give the same candidates as
    ``[objective(c, s) for c, s in jobs]``, within the equivalence tolerances of tests/test_batched.py.
``objective.group(config) -> Hashable``
    Jobs whose configurations have equal groups may share one ``many`` call (the same
    architecture, say). Without it every job of the call is in one group.

and an optional attribute ``objective.device``, the torch device it trains on (a Ray executor asks
for a share of a GPU when it is CUDA).

Candidates that go through the run cache or a Ray executor must be *plain data*: a dataclass whose
fields are numbers, strings, lists, dicts, tuples, tensors or None — the validation score, the
selected epoch, the per-epoch history, the balancing decisions and the test-split metrics (or
predictions) computed at training time but revealed only by ``evaluate_test()``. Keeping model
weights is opt-in, for the few runs a chapter inspects afterwards.
"""
from __future__ import annotations

import numbers
from typing import Any, Hashable, Iterable, Protocol, Sequence

Job = tuple[dict[str, Any], int]


class Candidate(Protocol):
    """A trained configuration: ``score`` (validation, higher is better) and ``evaluate_test()``."""

    score: float

    def evaluate_test(self) -> dict[str, Any]: ...


class Objective(Protocol):
    """``objective(config, seed) -> Candidate``; ``key``, ``many`` and ``group`` are optional
    (see the module docstring)."""

    def __call__(self, config: dict[str, Any], seed: int) -> Candidate: ...


def check_jobs(jobs: Iterable[Job]) -> list[Job]:
    """Validate jobs: each a ``(config dict, integer seed)`` pair; returned with fresh dicts and int seeds."""
    out = []
    for i, job in enumerate(jobs):
        if not (isinstance(job, tuple) and len(job) == 2 and isinstance(job[0], dict)
                and isinstance(job[1], numbers.Integral) and not isinstance(job[1], bool)):
            raise TypeError(f"job {i} must be a (config: dict, seed: int) pair, got {job!r}")
        out.append((dict(job[0]), int(job[1])))
    return out


def train_chunk(objective: Objective, jobs: Sequence[Job]) -> list[Candidate]:
    """Train ``jobs`` (one group) with ``objective.many`` when the objective has it, else one by one."""
    many = getattr(objective, "many", None)
    if many is not None:
        out = list(many([(dict(c), s) for c, s in jobs]))
        if len(out) != len(jobs):
            raise RuntimeError(f"{type(objective).__name__}.many returned {len(out)} candidates for {len(jobs)} jobs")
        return out
    return [objective(dict(c), s) for c, s in jobs]


def groups(objective: Objective, jobs: Sequence[Job]) -> list[list[int]]:
    """Indices of ``jobs`` by ``objective.group(config)``, in order of first appearance."""
    group = getattr(objective, "group", None)
    if group is None:
        return [list(range(len(jobs)))] if jobs else []
    found: dict[Hashable, list[int]] = {}
    for i, (config, _) in enumerate(jobs):
        found.setdefault(group(dict(config)), []).append(i)
    return list(found.values())
