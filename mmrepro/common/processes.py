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
import threading
import time
from typing import Any, Iterable, Iterator

import psutil

__all__ = ["descendants", "interrupt_once", "interrupts_held", "stop"]


#: The longest clean-up a first signal starts (a chapter's grace, then killing what is left, with room): a
#: signal later than this after the first one means the first was lost and raises again.
CLEAN_UP_SECONDS = 15.0

# shared by nested blocks (handlers run in the main thread): how deep, when the first signal came (None: not
# yet), whether signals are held and which one arrived meanwhile
_stopping: dict[str, Any] = {"depth": 0, "first": None, "held": False, "pending": None}


def _interrupt_first(signum: int, frame: object) -> None:
    """The handler of :func:`interrupt_once`: the first Ctrl-C or SIGTERM raises KeyboardInterrupt (named after
    the signal; empty for Ctrl-C, as Python's own); later ones are ignored for :data:`CLEAN_UP_SECONDS`.
    Inside :func:`interrupts_held` it is noted and raised when the held section ends."""
    if _stopping["held"]:
        _stopping["pending"] = _stopping["pending"] or signum
        return
    first = _stopping["first"]
    if first is not None and time.monotonic() - first < CLEAN_UP_SECONDS:
        return
    _stopping["first"] = time.monotonic()
    raise KeyboardInterrupt("" if signum == signal.SIGINT else signal.Signals(signum).name)


@contextlib.contextmanager
def interrupt_once() -> Iterator[None]:
    """Within this block the first Ctrl-C or SIGTERM raises KeyboardInterrupt and the next ones are ignored,
    so that the clean-up the first one starts (stopping kernels and chapters, keeping partial runs) is never
    cut short. The handler itself marks the stop, so a second signal that arrives before the ``except``
    clause's first line is ignored too (ignoring signals inside the ``except`` clause left that window
    open: an impatient double Ctrl-C then skipped the clean-up and the command hung at exit, waiting for a
    chapter nobody had stopped). A signal :data:`CLEAN_UP_SECONDS` after the first raises again: the first
    was lost (Python drops an exception raised inside a finaliser), and the command must still stop.
    Nested blocks share the state, which the outermost one resets; on the way out the signals are ignored
    until the previous handlers are back. Outside the main thread, where handlers cannot change, it does
    nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: dict[int, Any] = {}
    _stopping["depth"] += 1
    if _stopping["depth"] == 1:
        _stopping.update(first=None, held=False, pending=None)
    try:
        for s in (signal.SIGINT, signal.SIGTERM):
            held[s] = signal.getsignal(s)
            signal.signal(s, _interrupt_first)
        yield
    finally:
        if _stopping["depth"] == 1:  # a signal from here on is ignored: the handlers go back one by one
            _stopping["first"] = time.monotonic()
        for s, handler in held.items():
            if handler is not None:  # None: a handler set outside Python, which cannot be put back
                signal.signal(s, handler)
        _stopping["depth"] -= 1
        if _stopping["depth"] == 0:
            _stopping.update(first=None, held=False, pending=None)


@contextlib.contextmanager
def interrupts_held() -> Iterator[None]:
    """Inside :func:`interrupt_once`: a Ctrl-C or SIGTERM that arrives in this section (starting a process,
    before its pid is known to the clean-up) is raised when the section ends, not inside it."""
    _stopping["held"] = True
    try:
        yield
    finally:
        _stopping["held"] = False
        signum, _stopping["pending"] = _stopping["pending"], None
    if signum is not None:
        _interrupt_first(signum, None)


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
