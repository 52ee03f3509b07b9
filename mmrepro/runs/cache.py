"""The run cache: every finished run stored under a key of everything that determines it.

:func:`mmrepro.runs.jobs.run_jobs` asks an objective for ``key(config, seed)`` (architecture,
objective or method with hyper-parameters, dataset and split fingerprint, seed, epochs, batch
size, device type) and adds the cache format, the package version, a digest of the package's
source (:func:`mmrepro.runs.keys.code_digest`) and the torch version. The SHA-256 of that JSON
names the entry; a later notebook run, book build or interrupted sweep with the same key loads the
run instead of training it.

Where: ``$MMREPRO_RUN_CACHE`` if set (``off`` disables the cache), else the per-user cache folder
``<user cache>/mmrepro/runs`` (platformdirs, beside the data cache). One file per run,
``<objective>/<sha256>.run``, written atomically behind a SHA-256 of its bytes
(:func:`mmrepro.core.data.cache.save_verified`, the package's one verified store); an entry that fails
that check (or whose stored key differs) is reported, removed and recomputed. Loading an entry
updates its modification time, so ``mmrepro cache clear --older-than DAYS`` removes runs unused for
that long.
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import os
import re
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs
import torch

from mmrepro.core.data.cache import CorruptEntry, load_verified, save_verified
from mmrepro.runs.keys import code_digest

RUN_CACHE_FORMAT = 2  # bump when the entry layout changes (2: entries in mmrepro.core.data.cache's verified format)
ENV = "MMREPRO_RUN_CACHE"
SUFFIX = ".run"


def run_cache_dir() -> Path | None:
    """``$MMREPRO_RUN_CACHE`` (None when it is ``off``), else ``<user cache>/mmrepro/runs``."""
    env = os.environ.get(ENV, "").strip()
    if env.lower() == "off":
        return None
    return Path(env).expanduser() if env else Path(platformdirs.user_cache_dir("mmrepro")) / "runs"


@dataclass(frozen=True)
class RunKey:
    """A run's full key (canonical JSON) and its SHA-256; ``kind`` is the objective's name."""

    kind: str
    text: str
    digest: str


def _plain(value: Any, where: str) -> Any:
    """``value`` if it is plain data (what ``weights_only`` loads), else TypeError naming ``where``."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v, f"{where}[{i}]") for i, v in enumerate(value))
    if isinstance(value, dict) and all(isinstance(k, (str, int)) for k in value):
        return {k: _plain(v, f"{where}[{k!r}]") for k, v in value.items()}
    raise TypeError(f"{where} is a {type(value).__name__}: a cached run holds only numbers, strings, lists, "
                    "dicts and tensors (keep models out of candidates, or store their state_dict)")


class RunCache:
    """Finished runs under ``root`` (see the module docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def key(self, parts: dict[str, Any]) -> RunKey:
        """The full key of an objective's ``key(config, seed)`` dict."""
        from mmrepro.common.version import __version__

        full = {"cache_format": RUN_CACHE_FORMAT, "mmrepro": __version__, "code": code_digest(),
                "torch": torch.__version__, **parts}
        try:
            text = json.dumps(full, sort_keys=True, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise TypeError(f"an objective's key must be JSON-able with finite numbers ({e}): {parts!r}") from None
        kind = re.sub(r"[^A-Za-z0-9_.-]", "_", str(parts.get("objective", "runs"))) or "runs"
        return RunKey(kind, text, hashlib.sha256(text.encode()).hexdigest())

    def path(self, key: RunKey) -> Path:
        return self.root / key.kind / f"{key.digest}{SUFFIX}"

    def load(self, key: RunKey) -> Any | None:
        """The cached candidate of ``key``, or None (not cached, or a corrupt entry, removed with a warning)."""
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            entry = load_verified(path)
            if entry.get("key") != key.text:
                raise CorruptEntry(f"{path} holds a different run's key")
            module, _, name = entry["type"].partition(":")
            cls = getattr(importlib.import_module(module), name)
            if not dataclasses.is_dataclass(cls):
                raise CorruptEntry(f"{path} names {entry['type']}, which is not a candidate dataclass")
            cand = cls(**entry["fields"])
        except (CorruptEntry, OSError, KeyError, AttributeError, TypeError, ImportError) as e:
            warnings.warn(f"run cache entry {path} is unusable ({e}); training the run again", stacklevel=3)
            path.unlink(missing_ok=True)
            return None
        try:
            os.utime(path)  # "last used", for clear --older-than
        except OSError as e:  # a read-only cache is still a cache
            warnings.warn(f"could not mark run cache entry {path} as used ({e}); `mmrepro cache clear --older-than` "
                          "may count it as unused", stacklevel=3)
        return cand

    def save(self, key: RunKey, candidate: Any) -> None:
        """Store a finished run; an unwritable cache folder only warns."""
        if not dataclasses.is_dataclass(candidate):
            raise TypeError(f"a cached run must be a dataclass of plain data, got {type(candidate).__name__}")
        fields = {f.name: _plain(getattr(candidate, f.name), f"{type(candidate).__name__}.{f.name}")
                  for f in dataclasses.fields(candidate)}
        entry = {"key": key.text, "type": f"{type(candidate).__module__}:{type(candidate).__qualname__}",
                 "fields": fields}
        try:
            save_verified(entry, self.path(key))
        except OSError as e:
            warnings.warn(f"could not store run in {self.root} ({e}); set {ENV} to a writable folder", stacklevel=3)

    def entries(self) -> list[Path]:
        return sorted(self.root.glob(f"*/*{SUFFIX}")) if self.root.is_dir() else []

    def info(self) -> list[dict[str, Any]]:
        """One row per objective kind: ``kind``, ``runs``, ``bytes``, ``oldest`` and ``newest`` use (epoch s)."""
        rows: dict[str, dict[str, Any]] = {}
        for p in self.entries():
            st = p.stat()
            r = rows.setdefault(p.parent.name, {"kind": p.parent.name, "runs": 0, "bytes": 0,
                                                "oldest": st.st_mtime, "newest": st.st_mtime})
            r["runs"] += 1
            r["bytes"] += st.st_size
            r["oldest"], r["newest"] = min(r["oldest"], st.st_mtime), max(r["newest"], st.st_mtime)
        return list(rows.values())

    def clear(self, older_than_days: float | None = None) -> tuple[int, int]:
        """Remove every entry (or those unused for more than ``older_than_days``) and stale temporary
        files; returns (entries removed, bytes freed). OSError (a read-only cache) names the folder."""
        if older_than_days is not None and older_than_days < 0:
            raise ValueError(f"older_than_days must be >= 0, got {older_than_days}")
        cutoff = time.time() - 86400 * older_than_days if older_than_days is not None else None
        n = freed = 0
        try:
            for p in self.entries():
                st = p.stat()
                if cutoff is None or st.st_mtime < cutoff:
                    p.unlink(missing_ok=True)
                    n, freed = n + 1, freed + st.st_size
            for p in self.root.glob("*/.*.part") if self.root.is_dir() else []:
                if time.time() - p.stat().st_mtime > 86400:
                    p.unlink(missing_ok=True)
        except OSError as e:
            raise OSError(e.errno, f"cannot remove runs from {self.root} ({e.strerror or e}); {n} removed before "
                                   f"that") from None
        return n, freed


def size_text(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return ""


def describe_cache(cache: RunCache | None) -> str:
    """``mmrepro cache info``: where the cache is and, per objective, runs, size and last use."""
    if cache is None:
        return f"the run cache is off ({ENV}=off): every run is trained"
    lines = [f"run cache: {cache.root}", f"(set {ENV} to another folder to move it, or to off to switch it off)"]
    rows = cache.info()
    if not rows:
        return "\n".join(lines + ["empty"])
    when = lambda t: time.strftime("%Y-%m-%d %H:%M", time.localtime(t))  # noqa: E731
    width = max(len("objective"), *(len(r["kind"]) for r in rows))
    lines.append(f"{'objective':<{width}}  {'runs':>7}  {'size':>9}  {'first used':<16}  last used")
    for r in rows:
        lines.append(f"{r['kind']:<{width}}  {r['runs']:>7}  {size_text(r['bytes']):>9}  {when(r['oldest']):<16}  "
                     f"{when(r['newest'])}")
    total = size_text(sum(r["bytes"] for r in rows))
    lines.append(f"{'total':<{width}}  {sum(r['runs'] for r in rows):>7}  {total:>9}")
    return "\n".join(lines)


def default_cache() -> RunCache | None:
    """The run cache at :func:`run_cache_dir`, or None when it is switched off."""
    root = run_cache_dir()
    return None if root is None else RunCache(root)


def resolve_cache(cache: bool | RunCache | None) -> RunCache | None:
    """``True``: :func:`default_cache`; ``False``/``None``: no cache; a :class:`RunCache`: itself."""
    if cache is True:
        return default_cache()
    if cache is False or cache is None:
        return None
    if isinstance(cache, RunCache):
        return cache
    raise TypeError(f"cache must be True, False or a RunCache, got {cache!r}")
