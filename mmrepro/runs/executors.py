"""Executors: where the chunks of jobs of :func:`mmrepro.experiments.jobs.run_jobs` are trained.

``"local"`` trains them one after another in this process. An executor has two methods:
``chunk_size(objective, n)`` (how many jobs of a group of ``n`` go into one call of
:func:`~mmrepro.experiments.jobs.train_chunk`) and ``run(objective, chunks)``, which yields
``(chunk index, candidates)`` as chunks finish, in any order.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator, Protocol, Sequence

if TYPE_CHECKING:
    from mmrepro.experiments.jobs import Job, Objective

EXECUTORS = ("local",)
MAX_CHUNK = 64  # jobs per `many` call: the largest K batched training is measured at (issue #12)


class Executor(Protocol):
    def chunk_size(self, objective: Objective, n: int) -> int: ...

    def run(self, objective: Objective, chunks: Sequence[Sequence[Job]]) -> Iterator[tuple[int, list[Any]]]: ...


class LocalExecutor:
    """Chunks trained in this process, in order. Without ``objective.many`` every job is its own
    chunk (so each finished run is handed back, and cached, at once); with it, up to
    :data:`MAX_CHUNK` jobs of a group share one batched call."""

    def chunk_size(self, objective: Objective, n: int) -> int:
        return max(1, min(n, MAX_CHUNK)) if hasattr(objective, "many") else 1

    def run(self, objective: Objective, chunks: Sequence[Sequence[Job]]) -> Iterator[tuple[int, list[Any]]]:
        from mmrepro.experiments.jobs import train_chunk

        for i, chunk in enumerate(chunks):
            yield i, train_chunk(objective, chunk)


def resolve_executor(executor: str | Executor) -> Executor:
    """An executor from its name (:data:`EXECUTORS`), or the executor object itself."""
    if isinstance(executor, str):
        if executor == "local":
            return LocalExecutor()
        raise ValueError(f"executor={executor!r} is not one of {', '.join(EXECUTORS)}")
    if not (hasattr(executor, "run") and hasattr(executor, "chunk_size")):
        raise TypeError(f"executor must be one of {EXECUTORS} or an object with run() and chunk_size(), "
                        f"got {executor!r}")
    return executor
