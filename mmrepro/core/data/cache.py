"""Verified cache entries: the one place where the package saves and loads torch objects for reuse.

:func:`save_verified` writes ``torch.save`` bytes behind a header holding their SHA-256, atomically
(:func:`mmrepro.common.files.write_atomic`); :func:`load_verified` checks the digest before anything is
unpickled (``weights_only=True``) and raises :class:`CorruptEntry` when it does not match, so a flipped
bit or a truncated file is recomputed instead of trusted. :func:`load_state_checked` loads a saved
``state_dict`` only when every name, shape and dtype matches the model, before any weight is touched.

The preprocessing cache (:func:`cached`, entries keyed by the source checksum and the options) and the
MIND teacher cache use these; so can any other cache (e.g. finished runs). Entries live under
:func:`~mmrepro.core.data.storage.cache_root` (never in the raw data folder, which may be read-only).
"""
from __future__ import annotations

import hashlib
import io
import json
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from mmrepro.common.files import sha256_bytes, write_bytes_atomic
from mmrepro.core.data.storage import DataError, cache_root

ENTRY_FORMAT = 3  # bump when a preprocessing step or the entry format changes, so old entries are not reused
MAGIC = b"mmrepro-verified-entry sha256="
_HEADER = len(MAGIC) + 64 + 1  # magic, hex digest, newline


class CorruptEntry(DataError):
    """A cache entry is unreadable, truncated or does not match its digest: recompute it."""


def save_verified(value: Any, path: Path) -> Path:
    """``torch.save(value)`` to ``path`` behind a SHA-256 header, atomically; returns ``path``.

    ``value`` should hold tensors, numbers, strings, lists and dicts (what ``weights_only`` loads)."""
    buffer = io.BytesIO()
    torch.save(value, buffer)
    payload = buffer.getvalue()
    return write_bytes_atomic(Path(path), MAGIC + sha256_bytes(payload).encode() + b"\n" + payload)


def load_verified(path: Path) -> Any:
    """The value :func:`save_verified` wrote to ``path``.

    Raises FileNotFoundError when there is no entry, and :class:`CorruptEntry` (naming the file and
    what is wrong) when its header or digest does not match or it cannot be read back."""
    path = Path(path)
    data = path.read_bytes()
    if not data.startswith(MAGIC) or len(data) < _HEADER or data[_HEADER - 1:_HEADER] != b"\n":
        raise CorruptEntry(f"cache entry {path} has no verification header (written by an older version, "
                           "or not a cache entry)")
    digest, payload = data[len(MAGIC):_HEADER - 1].decode("ascii", "replace"), data[_HEADER:]
    if sha256_bytes(payload) != digest:
        raise CorruptEntry(f"cache entry {path} does not match its SHA-256 (corrupt or truncated)")
    try:
        return torch.load(io.BytesIO(payload), weights_only=True)
    except Exception as e:  # noqa: BLE001 - a verified but unloadable entry (e.g. another torch version)
        raise CorruptEntry(f"cache entry {path} cannot be loaded ({e})") from e


def load_state_checked(model: torch.nn.Module, state: Mapping[str, Any], source: str = "checkpoint") -> None:
    """``model.load_state_dict(state)`` only when ``state`` has exactly the model's entries with the same
    shapes and dtypes; otherwise :class:`CorruptEntry` naming the first difference, with the model
    untouched (``load_state_dict`` itself copies the matching tensors before it reports a mismatch)."""
    own = model.state_dict()
    if not isinstance(state, Mapping):
        raise CorruptEntry(f"{source} holds a {type(state).__name__}, not a state dict")
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if missing or unexpected:
        raise CorruptEntry(f"{source} does not fit the model: missing {missing[:3]}, unexpected {unexpected[:3]}")
    for name, mine in own.items():
        theirs = state[name]
        if not isinstance(theirs, torch.Tensor) or theirs.shape != mine.shape or theirs.dtype != mine.dtype:
            got = f"{tuple(theirs.shape)} {theirs.dtype}" if isinstance(theirs, torch.Tensor) else type(theirs).__name__
            raise CorruptEntry(f"{source} does not fit the model: {name} is {got}, the model has "
                               f"{tuple(mine.shape)} {mine.dtype}")
    model.load_state_dict(state)


def cache_key(**parts: Any) -> str:
    """A stable hex key from JSON-serialisable parts (source digests, options, seed)."""
    text = json.dumps({"format": ENTRY_FORMAT, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def cached(kind: str, key: str, build: Callable[[], dict], root: Path | None = None) -> dict:
    """Load entry ``kind-key`` from the cache, or ``build()`` it and store it.

    An entry that fails verification or cannot be read is recomputed (with a warning saying why);
    an unwritable cache folder only warns."""
    folder = cache_root() if root is None else Path(root)
    path = folder / f"{kind}-{key}.pt"
    if path.exists():
        try:
            return load_verified(path)
        except (CorruptEntry, OSError) as e:
            warnings.warn(f"{e}; recomputing it", stacklevel=2)
    value = build()
    try:
        save_verified(value, path)
    except OSError as e:
        warnings.warn(f"could not write preprocessing cache {path} ({e}); set MMREPRO_CACHE to a writable folder",
                      stacklevel=2)
    return value
