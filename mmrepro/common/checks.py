"""Argument checks shared by the library's entry points.

Each raises TypeError (wrong type) or ValueError (wrong value) with a message that names the argument,
says what was wrong and what is accepted, e.g. ``seed=-1 is out of range: it must be an integer in
[0, 4294967295]``.
"""
from __future__ import annotations

import math
import os
from numbers import Integral, Real
from typing import Any

TASK_KINDS = ("binary", "multiclass", "multilabel", "regression")  # what a target can be, in every layer
MAX_SEED = 2**32 - 1  # what numpy's legacy seeding accepts; derived seeds (seed + k) stay far from torch's 2**63


def _range(low: float | None, high: float | None, low_open: bool = False, high_open: bool = False) -> str:
    """The range as text with its leading space (' in [low, high]', ' >= low', ...), '' without bounds."""
    if low is not None and high is not None:
        return f" in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    if low is not None:
        return f" {'>' if low_open else '>='} {low}"
    if high is not None:
        return f" {'<' if high_open else '<='} {high}"
    return ""


def check_int(name: str, value: Any, low: int | None = None, high: int | None = None) -> int:
    """``value`` as an int when it is an integer (not a bool) in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an integer{_range(low, high)}, got {value!r} ({type(value).__name__})")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name}={value} is out of range: it must be an integer{_range(low, high)}")
    return int(value)


def check_number(name: str, value: Any, low: float | None = None, high: float | None = None, *,
                 low_open: bool = False, high_open: bool = False) -> float:
    """``value`` as a float when it is a finite real number (not a bool) in the given range."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a number{_range(low, high, low_open, high_open)}, got {value!r} "
                        f"({type(value).__name__})")
    v = float(value)
    bad = (not math.isfinite(v)
           or (low is not None and (v < low or (low_open and v == low)))
           or (high is not None and (v > high or (high_open and v == high))))
    if bad:
        raise ValueError(f"{name}={value!r} is out of range: it must be a finite number"
                         f"{_range(low, high, low_open, high_open)}")
    return v


def check_seed(seed: Any, name: str = "seed") -> int:
    """A seed: an integer in [0, MAX_SEED]."""
    return check_int(name, seed, 0, MAX_SEED)


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def check_threads(threads: Any, name: str = "threads") -> int:
    """A thread count between 1 and the cores available here (more threads than cores only slows
    small models down and can time a notebook out)."""
    cores = available_cores()
    try:
        return check_int(name, threads, 1, cores)
    except ValueError:
        raise ValueError(f"{name}={threads} is out of range: this machine gives the process {cores} CPU core(s); "
                         f"use an integer in [1, {cores}]") from None
