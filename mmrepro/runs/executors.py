"""Executors: where the chunks of jobs of :func:`mmrepro.runs.jobs.run_jobs` are trained.

``"local"`` trains them one after another in this process; ``"ray"`` makes each chunk a Ray task
(:class:`RayExecutor`), on a local Ray instance or on the cluster named by ``RAY_ADDRESS``. An
executor has two methods: ``chunk_size(objective, n)`` (how many jobs of a group of ``n`` go into
one call of :func:`~mmrepro.runs.protocol.train_chunk`) and ``run(objective, chunks)``, which
yields ``(chunk index, candidates)`` as chunks finish, in any order.

Ray is an optional extra (``pip install -e ".[cluster]"``): it is imported only when a Ray
executor runs. A local instance started here is ended by :func:`stop_ray` (which
:meth:`mmrepro.publish.notebook.ChapterRun.save` calls at the end of every chapter), so no Ray
process or session folder outlives the run.
"""
from __future__ import annotations

import atexit
import contextlib
import logging
import math
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any, Iterator, Protocol, Sequence

from mmrepro.runs.protocol import Job, Objective, train_chunk

EXECUTORS = ("local", "ray")
MAX_CHUNK = 64  # jobs per `many` call: the largest K batched training is measured at


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
        for i, chunk in enumerate(chunks):
            yield i, train_chunk(objective, chunk)


def _ray():
    try:
        import ray
    except ImportError:
        raise ImportError('executor="ray" needs Ray, an optional extra of mmrepro: pip install -e ".[cluster]" '
                          '(or pip install "ray[default]"), or use executor="local"') from None
    return ray


_LOCAL: dict[str, str] = {}  # the local Ray instance this process started: {"temp": its temp folder}


def start_ray() -> Any:
    """Ray, connected: to the cluster named by ``RAY_ADDRESS`` or started with ``ray start`` on this machine
    (both left running), else to a local instance started here, in a temp folder of its own, which
    :func:`stop_ray` ends (at the latest when this process exits, or after a notebook cell that fails).
    Ray's start-up messages and warnings go to its session logs, not to the notebook."""
    ray = _ray()
    if ray.is_initialized():
        return ray
    from ray._private.services import canonicalize_bootstrap_address

    options = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}
    address = canonicalize_bootstrap_address(None)  # RAY_ADDRESS, else the cluster of `ray start`, else None
    if address is None:
        _LOCAL["temp"] = tempfile.mkdtemp(prefix="mmrepro-ray-")
        options.update(address="local", _temp_dir=_LOCAL["temp"])
        atexit.register(stop_ray)
        _stop_after_failed_cell()
    # a local instance's processes inherit this, so their stray output stays in its temp folder too
    log = Path(_LOCAL["temp"]) / "mmrepro-ray-start.log" if "temp" in _LOCAL else os.devnull
    with open(log, "a") as sink, warnings.catch_warnings(), _fd_redirected(sink):
        warnings.simplefilter("ignore")
        ray.init(**options)
    return ray


def stop_ray() -> None:
    """End the local Ray instance :func:`start_ray` started (its processes and its temp folder); a
    cluster it joined is only disconnected from. Nothing when Ray is not running."""
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ray.shutdown()
    temp = _LOCAL.pop("temp", None)
    if temp is not None:
        shutil.rmtree(temp, ignore_errors=True)


@contextlib.contextmanager
def _fd_redirected(sink: Any) -> Iterator[None]:
    """Send what is written to stdout and stderr, by Python or by the processes and libraries writing to
    the file descriptors directly, to ``sink`` (a notebook kernel would show it as cell output)."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    saved = []
    try:
        for fd in (1, 2):
            saved.append((fd, os.dup(fd)))
            os.dup2(sink.fileno(), fd)
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            yield
    finally:
        for fd, copy in saved:
            os.dup2(copy, fd)
            os.close(copy)


def _stop_after_failed_cell() -> None:
    """In a notebook kernel, stop Ray after a cell that raises: papermill ends the run there and kills the
    kernel, which would leave Ray's processes and session folder behind."""
    with contextlib.suppress(ImportError):
        from IPython import get_ipython

        shell = get_ipython()
        if shell is None:
            return

        def after(result: Any) -> None:
            if not result.success:
                stop_ray()
                shell.events.unregister("post_run_cell", after)

        shell.events.register("post_run_cell", after)


def device_type(objective: Objective) -> str:
    """``cuda`` when the objective trains on a CUDA device (its ``device`` attribute), else ``cpu``."""
    import torch

    return torch.device(getattr(objective, "device", "cpu")).type


def _train_task(objective: Objective, jobs: Sequence[Job], threads: int) -> list[Any]:
    """One Ray task: a chunk trained on a worker with the threads it was given, deterministic kernels
    requested as :func:`mmrepro.common.device.seed_everything` does for the notebook."""
    import torch

    from mmrepro.common.device import deterministic_kernels

    torch.set_num_threads(threads)
    deterministic_kernels()
    return train_chunk(objective, jobs)


class RayExecutor:
    """Chunks as Ray tasks, each asking for ``num_cpus`` CPUs (and as many torch threads) and, when
    the objective trains on CUDA, ``gpu_fraction`` of a GPU (small models share a GPU). A chunk
    holds about ``len(group) / slots`` jobs, where ``slots`` is how many such tasks the cluster runs
    at once (at most :data:`MAX_CHUNK`; with ``objective.many`` the chunk is one batched call). A
    task that fails (worker lost, CUDA or OS error) is retried up to ``max_retries`` times.

    :func:`start_ray` joins the cluster named by ``RAY_ADDRESS`` (or one started on this machine with
    ``ray start``), else starts a local instance that :func:`stop_ray` ends; worker output stays in Ray's
    session logs."""

    def __init__(self, num_cpus: float = 1, gpu_fraction: float = 0.25, max_retries: int = 3) -> None:
        if num_cpus <= 0 or not 0 < gpu_fraction <= 1 or max_retries < 0:
            raise ValueError(f"need num_cpus > 0, 0 < gpu_fraction <= 1 and max_retries >= 0, "
                             f"got {num_cpus}, {gpu_fraction}, {max_retries}")
        self.num_cpus, self.gpu_fraction, self.max_retries = num_cpus, gpu_fraction, max_retries

    def _ray(self):
        return start_ray()

    def _gpus(self, objective: Objective) -> float:
        return self.gpu_fraction if device_type(objective) == "cuda" else 0.0

    def chunk_size(self, objective: Objective, n: int) -> int:
        total = self._ray().cluster_resources()
        gpus = self._gpus(objective)
        slots = total.get("GPU", 0) / gpus if gpus else total.get("CPU", 1) / self.num_cpus
        return max(1, min(MAX_CHUNK, math.ceil(n / max(1, int(slots)))))

    def run(self, objective: Objective, chunks: Sequence[Sequence[Job]]) -> Iterator[tuple[int, list[Any]]]:
        ray = self._ray()
        task = ray.remote(_train_task).options(
            num_cpus=self.num_cpus, num_gpus=self._gpus(objective), max_retries=self.max_retries,
            retry_exceptions=[RuntimeError, OSError])
        shared = ray.put(objective)
        threads = max(1, int(self.num_cpus))
        pending = {task.remote(shared, list(chunk), threads): i for i, chunk in enumerate(chunks)}
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    yield pending.pop(ref), ray.get(ref)
        finally:
            for ref in pending:  # the caller stopped early (an error, an interrupt): do not leave work behind
                ray.cancel(ref)


def resolve_executor(executor: str | Executor) -> Executor:
    """An executor from its name (:data:`EXECUTORS`), or the executor object itself."""
    if isinstance(executor, str):
        if executor == "local":
            return LocalExecutor()
        if executor == "ray":
            return RayExecutor()
        raise ValueError(f"executor={executor!r} is not one of {', '.join(EXECUTORS)}")
    if not (hasattr(executor, "run") and hasattr(executor, "chunk_size")):
        raise TypeError(f"executor must be one of {EXECUTORS} or an object with run() and chunk_size(), "
                        f"got {executor!r}")
    return executor
