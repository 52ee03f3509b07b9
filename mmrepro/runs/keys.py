"""Fingerprints for run keys: data, splits and the package's own source.

An objective's ``key(config, seed)`` names its data by :func:`dataset_fingerprint` (a digest of
the rows it trains, selects and tests on), and the run cache adds :func:`code_digest`, so that a
change to any line of the package retrains rather than reusing runs of the old code.
"""
from __future__ import annotations

import dataclasses
import hashlib
import math
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch


def _feed(h: Any, value: Any) -> None:
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}:".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(value, np.ndarray):
        a = np.ascontiguousarray(value)
        h.update(f"A{a.dtype}{a.shape}:".encode() + a.tobytes())
    elif isinstance(value, Mapping):
        h.update(f"M{len(value)}:".encode())
        for k in sorted(value, key=str):
            _feed(h, str(k))
            _feed(h, value[k])
    elif isinstance(value, (list, tuple)):
        h.update(f"L{len(value)}:".encode())
        for v in value:
            _feed(h, v)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        _feed(h, {f.name: getattr(value, f.name) for f in dataclasses.fields(value)})
    elif value is None or isinstance(value, (bool, int, str)):
        h.update(f"{type(value).__name__}:{value!r};".encode())
    elif isinstance(value, float):
        h.update(f"float:{value!r};".encode() if math.isfinite(value) else f"float:{value};".encode())
    else:
        raise TypeError(f"cannot fingerprint a value of type {type(value).__name__}")


def fingerprint(*values: Any) -> str:
    """SHA-256 (16 hex) of tensors, arrays, numbers, strings and containers of them, exact to the bit."""
    h = hashlib.sha256()
    for v in values:
        _feed(h, v)
    return h.hexdigest()[:16]


def dataset_fingerprint(ds: Any) -> str:
    """Digest of what training on a :class:`~mmrepro.core.data.MultimodalDataset` sees: its name, inputs,
    presence, lengths, targets, tasks and split indices (not its free-form metadata)."""
    return fingerprint(ds.name, ds.x, ds.present, ds.lengths, ds.y, ds.tasks, ds.splits)


@lru_cache(maxsize=1)
def code_digest() -> str:
    """SHA-256 (16 hex) of every ``.py`` file of the installed ``mmrepro`` package (paths and bytes)."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]
