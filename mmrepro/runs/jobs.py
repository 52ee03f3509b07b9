"""Running a list of jobs: the run cache first, then the executor, each result stored as it lands
(:func:`run_jobs`, the one way the package trains many runs; the protocol is :mod:`mmrepro.runs.protocol`)."""
from __future__ import annotations

from typing import Any, Iterable

from mmrepro.runs.cache import RunCache, resolve_cache
from mmrepro.runs.executors import Executor, resolve_executor
from mmrepro.runs.protocol import Candidate, Job, Objective, check_jobs, groups


def run_jobs(objective: Objective, jobs: Iterable[Job], executor: str | Executor = "local",
             cache: bool | RunCache | None = True) -> list[Candidate]:
    """Train every ``(config, seed)`` job with ``objective``; candidates in the order of ``jobs``.

    ``executor``: ``"local"`` (this process), ``"ray"`` (Ray tasks; needs ``pip install -e ".[cluster]"``)
    or an :class:`mmrepro.runs.executors.Executor`. ``cache``: True uses the run cache
    (:func:`mmrepro.runs.cache.default_cache`) for objectives that have ``key``; False none; or a
    :class:`mmrepro.runs.cache.RunCache`. Cached runs are loaded, not trained; the others are
    grouped (``objective.group``), split into chunks of the executor's size and trained by
    :func:`train_chunk`, each stored as soon as its chunk returns, so that an interrupted call,
    repeated, trains only what is missing.
    """
    jobs = check_jobs(jobs)
    runner = resolve_executor(executor)
    store = resolve_cache(cache) if hasattr(objective, "key") else None
    results: list[Any] = [None] * len(jobs)
    keys: list[Any] = [None] * len(jobs)
    todo = []
    for i, (config, seed) in enumerate(jobs):
        if store is not None:
            keys[i] = store.key(objective.key(dict(config), seed))
            results[i] = store.load(keys[i])
        if results[i] is None:
            todo.append(i)
    chunks = []
    for g in groups(objective, [jobs[i] for i in todo]):
        size = runner.chunk_size(objective, len(g))
        chunks += [[todo[j] for j in g[k:k + size]] for k in range(0, len(g), size)]
    for c, cands in runner.run(objective, [[jobs[i] for i in chunk] for chunk in chunks]):
        for i, cand in zip(chunks[c], cands):
            if store is not None:
                store.save(keys[i], cand)
            results[i] = cand
    return results
