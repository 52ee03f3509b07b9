"""Preprocessing cache: tensors keyed by the source checksum and the options.

Entries live in :func:`~mmrepro.data.storage.cache_root` (never in the raw data
folder, which may be read-only) and are written atomically, so a crash never
leaves a half-written entry that a later load would trust.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable

import torch

from .storage import cache_root

FORMAT = 2  # bump when a preprocessing step changes, so old entries are not reused


def save_atomic(value: Any, path: Path) -> None:
    """``torch.save`` to a temporary file beside ``path``, renamed into place only when complete,
    so that an interrupted write never leaves a half-written entry that would be trusted."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    try:
        torch.save(value, tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def cache_key(**parts: Any) -> str:
    """A stable hex key from JSON-serialisable parts (source digests, options, seed)."""
    text = json.dumps({"format": FORMAT, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def cached(kind: str, key: str, build: Callable[[], dict], root: Path | None = None) -> dict:
    """Load entry ``kind-key`` from the cache, or ``build()`` it and store it.

    A corrupt entry is rebuilt; an unwritable cache folder only warns.
    """
    folder = cache_root() if root is None else Path(root)
    path = folder / f"{kind}-{key}.pt"
    if path.is_file():
        try:
            return torch.load(path, weights_only=True)
        except Exception as e:  # noqa: BLE001 - any unreadable entry is rebuilt
            warnings.warn(f"cache entry {path} is unreadable ({e}); rebuilding it", stacklevel=2)
    value = build()
    try:
        save_atomic(value, path)
    except OSError as e:
        warnings.warn(f"could not write preprocessing cache {path} ({e}); set MMREPRO_CACHE to a writable folder",
                      stacklevel=2)
    return value
