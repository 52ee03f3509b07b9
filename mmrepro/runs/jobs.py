"""Running a list of jobs: the run cache first, then the executor, each result stored as it lands
(:func:`run_jobs`, the one way the package trains many runs; the protocol is :mod:`mmrepro.runs.protocol`)."""
from __future__ import annotations

from typing import Any, Iterable

from mmrepro.runs.cache import RunCache, resolve_cache
from mmrepro.runs.executors import Executor, resolve_executor
from mmrepro.runs.keys import fingerprint
from mmrepro.runs.protocol import Candidate, Job, Objective, check_jobs, groups


def run_jobs(objective: Objective, jobs: Iterable[Job], executor: str | Executor = "local",
             cache: bool | RunCache | None = True) -> list[Candidate]:
    """Train every ``(config, seed)`` job with ``objective``; candidates in the order of ``jobs``.

    ``executor``: ``"local"`` (this process), ``"ray"`` (Ray tasks; needs ``pip install -e ".[cluster]"``)
    or an :class:`mmrepro.runs.executors.Executor`. ``cache``: True uses the run cache
    (:func:`mmrepro.runs.cache.default_cache`) for objectives that have ``key``; False none; or a
    :class:`mmrepro.runs.cache.RunCache`. The jobs are grouped (``objective.group``) and split into
    chunks of the executor's size; a chunk whose runs are all cached is loaded, not trained, the others
    are trained by :func:`train_chunk`, each stored as soon as its chunk returns, so that an
    interrupted call, repeated, trains only the chunks that were not finished.

    The numbers do not depend on what the cache held. A run's last bits depend on the stack it is
    trained in (``many`` over several jobs: kernels block the runs' channels together, so the stack's
    size, order and other runs matter; tests/test_runs.py), and the chunks are made from *all* the
    jobs of the call. So the cache key of an objective with ``many`` names the run's stack (its jobs
    and the run's place in it), and a chunk with any run missing is trained whole: a call gives what
    it gives from an empty cache, and reuses runs of earlier calls that stacked them the same way.
    """
    jobs = check_jobs(jobs)
    runner = resolve_executor(executor)
    store = resolve_cache(cache) if hasattr(objective, "key") else None
    chunks = []
    for g in groups(objective, jobs):
        size = runner.chunk_size(objective, len(g))
        chunks += [g[k:k + size] for k in range(0, len(g), size)]
    results: list[Any] = [None] * len(jobs)
    keys: list[Any] = [None] * len(jobs)
    stacked = hasattr(objective, "many")  # else a chunk's runs are trained one by one: only the missing ones
    for chunk in chunks if store is not None else []:
        stack = fingerprint([[dict(jobs[i][0]), jobs[i][1]] for i in chunk])
        for place, i in enumerate(chunk):
            parts = objective.key(dict(jobs[i][0]), jobs[i][1])
            if stacked:
                parts = {**parts, "stack": {"jobs": stack, "runs": len(chunk), "place": place}}
            keys[i] = store.key(parts)
            results[i] = store.load(keys[i])
    todo = [chunk if stacked else missing for chunk in chunks if (missing := [i for i in chunk if results[i] is None])]
    for c, cands in runner.run(objective, [[jobs[i] for i in chunk] for chunk in todo]):
        for i, cand in zip(todo[c], cands):
            if store is not None:
                store.save(keys[i], cand)
            results[i] = cand
    return results
