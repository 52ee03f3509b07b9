"""Atomic file replacement and digests: nothing half-written is ever left where it would be trusted.

Every file the package writes for later use (results, figures, executed notebooks, cache entries,
downloads) goes to a temporary file beside its target and is renamed over it only when complete;
``os.replace`` is atomic on one file system, so a reader sees the old file or the new one, never a mix.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterator

CHUNK = 1 << 16


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def temp_beside(path: Path, suffix: str = ".part") -> Path:
    """A new empty temporary file in ``path``'s folder (created if needed), named after ``path``, with the
    permissions a plainly created file would get (``mkstemp`` alone makes it private to the user)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
    except (AttributeError, OSError):  # no fchmod (Windows)
        pass
    finally:
        os.close(fd)
    return Path(name)


def write_atomic(path: Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it over ``path``.

    If ``write`` raises (or the process is interrupted), ``path`` keeps its previous content and the
    temporary file is removed."""
    path = Path(path)
    tmp = temp_beside(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_bytes_atomic(path: Path, data: bytes) -> Path:
    """``path.write_bytes(data)``, atomically (see :func:`write_atomic`)."""
    return write_atomic(path, lambda tmp: tmp.write_bytes(data))


def replace_dir(new: Path | None, target: Path) -> None:
    """Put folder ``new`` in place of folder ``target`` (``new=None``: remove ``target``).

    The old folder is renamed aside first and deleted only after ``new`` is in place, so the swap
    is two renames: at no moment does ``target`` hold a mix of old and new files."""
    aside = None
    if target.exists():
        aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        os.replace(target, aside / target.name)
    if new is not None:
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(new, target)
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[Path]:
    """Hold an exclusive lock on ``folder`` (created if needed) while the block runs, so that writers
    taking it (two runs committing into one results folder) go one at a time instead of interleaving
    their renames. The lock is ``flock`` on the folder itself (no lock file to leave behind), released
    when the block ends or the process dies; where ``fcntl`` is missing (Windows) it does nothing."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield folder
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield folder
    finally:
        os.close(fd)


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()
