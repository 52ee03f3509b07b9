"""Stopping processes for good: a run that is interrupted takes every process it started with it.

A chapter's run starts a Jupyter kernel (in a session of its own, out of reach of the terminal's
Ctrl-C), a grading run starts the student's process, a build starts ``jupyter-book``: when they
are stopped, :func:`stop` asks them to end (SIGTERM), waits a few seconds, then kills what is left,
children included, so that nothing outlives the command (psutil, which ipykernel already needs).
"""
from __future__ import annotations

import contextlib
import os
import signal
from typing import Iterable, Iterator

import psutil

__all__ = ["descendants", "interrupt_once", "stop"]


_stopping = {"depth": 0, "fired": False}  # shared by nested `interrupt_once` blocks (handlers run in the main thread)


def _interrupt_first(signum: int, frame: object) -> None:
    """The handler of :func:`interrupt_once`: the first Ctrl-C or SIGTERM raises KeyboardInterrupt (named after
    the signal; empty for Ctrl-C, as Python's own), every later one is ignored."""
    if _stopping["fired"]:
        return
    _stopping["fired"] = True
    raise KeyboardInterrupt("" if signum == signal.SIGINT else signal.Signals(signum).name)


@contextlib.contextmanager
def interrupt_once() -> Iterator[None]:
    """Within this block the first Ctrl-C or SIGTERM raises KeyboardInterrupt and every later one is ignored
    until the outermost such block ends, so that the clean-up the first one starts (stopping kernels and
    chapters, keeping partial runs) is never cut short. The handler itself marks the stop, so a second
    signal that arrives before the ``except`` clause's first line is ignored too (ignoring signals inside
    the ``except`` clause left that window open: an impatient double Ctrl-C then skipped the clean-up and
    the command hung at exit, waiting for a chapter nobody had stopped). Outside the main thread, where
    handlers cannot change, it does nothing."""
    try:
        held = {s: signal.signal(s, _interrupt_first) for s in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread
        yield
        return
    _stopping["depth"] += 1
    try:
        yield
    finally:
        _stopping["depth"] -= 1
        if _stopping["depth"] == 0:
            _stopping["fired"] = False
        for s, handler in held.items():
            signal.signal(s, handler)


def descendants(pid: int | None = None) -> list[psutil.Process]:
    """Every living process below ``pid`` (default: this process), children first."""
    try:
        return psutil.Process(pid or os.getpid()).children(recursive=True)
    except psutil.Error:
        return []


def stop(processes: Iterable[psutil.Process | int], grace: float = 5.0, sig: int = signal.SIGTERM) -> list[int]:
    """Send ``sig`` to ``processes`` and to every process below them, wait up to ``grace`` seconds for them
    to end, kill those still running and reap them; returns the process ids that had to be killed."""
    family: dict[int, psutil.Process] = {}
    for proc in processes:
        try:
            proc = proc if isinstance(proc, psutil.Process) else psutil.Process(proc)
            family.setdefault(proc.pid, proc)
            for child in proc.children(recursive=True):
                family.setdefault(child.pid, child)
        except psutil.Error:
            continue
    for proc in family.values():
        try:
            proc.send_signal(sig)
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(list(family.values()), timeout=grace)
    for proc in alive:
        try:
            proc.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(alive, timeout=grace)
    return [p.pid for p in alive]
