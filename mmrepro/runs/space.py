"""Search spaces for random hyper-parameter search (MILES Sec. IV-B: "we randomly sample 80
combinations of hyper-parameters per model ... using the recommended ranges").

A space maps a name to a distribution (:class:`LogUniform`, :class:`Uniform`, :class:`Choice`) or
to a fixed value. :func:`sample` draws every name from its own random stream keyed by
(seed, trial, name), so trial ``k`` of two methods gets the *same* value for a shared name such
as ``lr`` (common random numbers: method comparisons are not confounded by luckier draws).
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np


@dataclass(frozen=True)
class LogUniform:
    """log(value) uniform on [log(low), log(high)] (learning rates)."""

    low: float
    high: float

    def __post_init__(self) -> None:
        if not (0 < self.low <= self.high and math.isfinite(self.high)):
            raise ValueError(f"LogUniform needs 0 < low <= high < inf, got low={self.low}, high={self.high}")

    def draw(self, rng: np.random.Generator) -> float:
        return float(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))


@dataclass(frozen=True)
class Uniform:
    """Uniform on [low, high]."""

    low: float
    high: float

    def __post_init__(self) -> None:
        if not (self.low <= self.high and math.isfinite(self.low) and math.isfinite(self.high)):
            raise ValueError(f"Uniform needs finite low <= high, got low={self.low}, high={self.high}")

    def draw(self, rng: np.random.Generator) -> float:
        return float(rng.uniform(self.low, self.high))


@dataclass(frozen=True)
class Choice:
    """One of ``options``, equally likely."""

    options: tuple[Any, ...]

    def __init__(self, options: Sequence[Any]) -> None:
        if len(options) == 0:
            raise ValueError("Choice needs at least one option")
        object.__setattr__(self, "options", tuple(options))

    def draw(self, rng: np.random.Generator) -> Any:
        return self.options[int(rng.integers(len(self.options)))]


DISTRIBUTIONS = (LogUniform, Uniform, Choice)


def stream(seed: int, trial: int, name: str) -> np.random.Generator:
    """The random stream of one hyper-parameter in one trial (independent of the other names)."""
    digest = hashlib.sha256(f"{seed}/{trial}/{name}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def sample(space: Mapping[str, Any], seed: int, trial: int) -> dict[str, Any]:
    """One configuration: every distribution in ``space`` drawn, fixed values copied."""
    if trial < 0:
        raise ValueError(f"trial must be >= 0, got {trial}")
    return {name: (d.draw(stream(seed, trial, name)) if isinstance(d, DISTRIBUTIONS) else d)
            for name, d in space.items()}
