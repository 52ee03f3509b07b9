"""Where data lives, and how it is downloaded, verified and extracted safely.

Nothing unverified is ever placed where it would be trusted: downloads go to a
temporary file beside the target and are renamed into place only after their
length and SHA-256 were checked; archives are extracted into a staging folder,
rejecting members whose paths would leave it.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from importlib import resources
from pathlib import Path
from typing import Callable

import platformdirs

_APP = "mmrepro"
CHUNK = 1 << 16


class DataError(RuntimeError):
    """A data file is missing, corrupt or could not be fetched."""


def data_root() -> Path:
    """Raw data folder: ``$MMREPRO_DATA`` if set, else the per-user cache ``.../mmrepro/data``."""
    env = os.environ.get("MMREPRO_DATA")
    return Path(env).expanduser() if env else Path(platformdirs.user_cache_dir(_APP)) / "data"


def cache_root() -> Path:
    """Preprocessing cache: ``$MMREPRO_CACHE`` if set, else the per-user cache ``.../mmrepro/prep``."""
    env = os.environ.get("MMREPRO_CACHE")
    return Path(env).expanduser() if env else Path(platformdirs.user_cache_dir(_APP)) / "prep"


def offline() -> bool:
    """True when ``$MMREPRO_OFFLINE`` is 1/true/yes: never try the network."""
    return os.environ.get("MMREPRO_OFFLINE", "").strip().lower() in ("1", "true", "yes")


def read_manifest(name: str) -> dict[str, str]:
    """The SHA-256 manifest ``manifests/<name>.sha256`` shipped in the package: file name -> hex digest."""
    text = resources.files(__package__).joinpath("manifests").joinpath(f"{name}.sha256").read_text()
    out = {}
    for line in text.splitlines():
        if line.strip():
            digest, fname = line.split(maxsplit=1)
            out[fname.strip()] = digest.lower()
    return out


def manifest_digest(manifest: dict[str, str]) -> str:
    """One SHA-256 over a manifest: identifies the exact source bytes for cache keys."""
    h = hashlib.sha256()
    for fname in sorted(manifest):
        h.update(f"{manifest[fname]}  {fname}\n".encode())
    return h.hexdigest()


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def verify_files(folder: Path, manifest: dict[str, str]) -> None:
    """Raise DataError naming the first file under ``folder`` that is missing or whose SHA-256 differs."""
    for fname, digest in manifest.items():
        path = folder / fname
        if not path.is_file():
            raise DataError(f"{path} is missing")
        got = sha256_file(path)
        if got != digest:
            raise DataError(
                f"{path} has SHA-256 {got}, expected {digest}: the file is corrupt or not the published version; "
                "delete it so that it is downloaded again, or replace it with the original"
            )


def _tmp_beside(dest: Path, suffix: str = ".part") -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=suffix, dir=dest.parent)
    os.close(fd)
    return Path(name)


def download(url: str, dest: Path, sha256: str | None = None, timeout: float = 60.0) -> Path:
    """Fetch ``url`` to ``dest`` atomically.

    The bytes go to a temporary file beside ``dest``; a transfer shorter than
    the announced Content-Length, a network error or a SHA-256 mismatch raises
    DataError and removes the temporary file, so ``dest`` only ever holds a
    complete, verified download.
    """
    if offline():
        raise DataError(f"cannot download {url}: MMREPRO_OFFLINE is set")
    tmp = _tmp_beside(dest)
    try:
        h, got = hashlib.sha256(), 0
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp, open(tmp, "wb") as out:
                expected = resp.headers.get("Content-Length")
                for block in iter(lambda: resp.read(CHUNK), b""):
                    out.write(block)
                    h.update(block)
                    got += len(block)
        except http.client.IncompleteRead as e:
            raise DataError(f"download of {url} was cut off after {got} bytes ({e!r}); try again") from e
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as e:
            raise DataError(f"download of {url} failed ({e}); check the connection or set MMREPRO_DATA") from e
        if expected is not None and got != int(expected):
            raise DataError(f"download of {url} was cut off: {got} of {expected} bytes received; try again")
        if sha256 is not None and h.hexdigest() != sha256:
            raise DataError(f"download of {url} has SHA-256 {h.hexdigest()}, expected {sha256}; not accepted")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def safe_extract(archive: Path, target: Path, keep: Callable[[str], bool] = lambda name: True) -> list[Path]:
    """Extract regular files of a tar archive for which ``keep(member_name)`` holds into ``target``.

    Members with absolute paths, ``..`` components or resolving outside
    ``target`` raise DataError before anything is written; links and devices
    are refused. A truncated or corrupt archive raises DataError.
    """
    target = target.resolve()
    written: list[Path] = []
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for m in members:
                out = (target / m.name).resolve()
                if os.path.isabs(m.name) or ".." in Path(m.name).parts or not out.is_relative_to(target):
                    raise DataError(f"{archive}: member {m.name!r} would be written outside {target}; archive refused")
                if (m.issym() or m.islnk() or m.isdev()) and keep(m.name):
                    raise DataError(f"{archive}: member {m.name!r} is a link or device; archive refused")
            for m in members:
                if not m.isfile() or not keep(m.name):
                    continue
                out = target / m.name
                out.parent.mkdir(parents=True, exist_ok=True)
                src = tar.extractfile(m)
                with open(out, "wb") as f:
                    shutil.copyfileobj(src, f)
                written.append(out)
    except (tarfile.TarError, EOFError, OSError) as e:
        raise DataError(f"{archive} is truncated or not a valid tar archive ({e})") from e
    return written


def missing_message(what: str, folder: Path, layout: str, url: str, why: str) -> str:
    """The standard 'how to get the files' message."""
    return (
        f"{what} not found in {folder} and could not be downloaded from {url} ({why}). "
        "Connect to the internet (and unset MMREPRO_OFFLINE) so it is fetched and verified on first use, "
        f"or set MMREPRO_DATA to a folder that already holds it as <MMREPRO_DATA>/{layout}."
    )
