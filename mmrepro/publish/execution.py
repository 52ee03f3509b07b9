"""One run of one notebook: what it depends on (:func:`notebook_fingerprint`, so that an unchanged
notebook is reused), papermill executing it into a staging folder, and the commit that replaces the
previous output only when the run has finished (:func:`execute`).

Layout of the build folder (``<project>/_build`` unless told otherwise)::

    executed/<name>.ipynb   notebooks as papermill ran them, each with a record of what it was run from
    results/<name>.json     what each notebook reported (see mmrepro.publish.notebook), figures in results/<name>/
    failed/<name>.ipynb     the partial notebook of the last failed or interrupted run of <name>

A failed or interrupted run leaves the previous output as it was and keeps its partial notebook in ``failed/``.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import shutil
import signal
import tempfile
from pathlib import Path
from typing import Any, Iterator, Mapping

import nbformat

from mmrepro.common.files import locked, replace_dir, sha256_file, write_atomic
from mmrepro.publish.notebook import RUN_OUTPUT_ENV, ResultsConflict, check_profile, recorded_profile
from mmrepro.publish.parameters import BookError, Interrupted, is_chapter

KERNEL = "python3"

# ----------------------------------------------------------------------------- what a run depends on

def package_fingerprint() -> dict[str, Any]:
    """The mmrepro version, the digest of its source (:func:`mmrepro.runs.keys.code_digest`, as the run
    cache keys runs), and the versions of Python and of the libraries the results' numerics depend on."""
    from importlib.metadata import PackageNotFoundError, version

    from mmrepro.common.version import __version__
    from mmrepro.runs.keys import code_digest

    libraries = {}
    for name in ("torch", "numpy", "scipy", "scikit-learn", "pandas"):
        try:
            libraries[name] = version(name)
        except PackageNotFoundError:
            libraries[name] = None
    return {"version": __version__, "source": code_digest(), "libraries": libraries,
            "python": platform.python_version()}


def notebook_fingerprint(path: Path, values: Mapping[str, Any], root: Path, build: Path,
                data: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Everything a notebook's run depends on; an executed notebook is reused while this is unchanged.

    * ``source``: SHA-256 of the notebook's MyST file;
    * ``parameters``: every parameter value the notebook sees (defaults included);
    * ``package``: :func:`package_fingerprint` (mmrepro version and source, library versions);
    * ``data``: :func:`mmrepro.core.data.storage.data_fingerprint` (the data folder's files, the data packages),
      unless given (a build computes it once);
    * ``machine``: the platform, whether CUDA is available (``device="auto"`` depends on it) and the vector
      instructions torch's CPU kernels use (an AVX2 and an AVX-512 machine round differently);
    * ``results`` (pages outside ``notebooks/``, such as the scorecard): SHA-256 of every results file
      they summarise."""
    import torch

    from mmrepro.core.data.storage import data_fingerprint

    parts: dict[str, Any] = {
        "source": sha256_file(path),
        "parameters": json.loads(json.dumps(dict(values), sort_keys=True, default=repr)),
        "package": package_fingerprint(),
        "data": dict(data) if data is not None else data_fingerprint(),
        "machine": {"system": platform.system(), "cpu": platform.machine(), "cuda": torch.cuda.is_available(),
                    "vector": torch.backends.cpu.get_cpu_capability()},
    }
    if not is_chapter(path, root):
        parts["results"] = {p.name: sha256_file(p) for p in sorted((build / "results").glob("*.json"))}
    return parts


_CHANGES = {"source": "its source changed", "parameters": "its parameters differ",
            "package": "the mmrepro package or a library changed", "data": "the data changed",
            "machine": "the machine changed", "results": "the chapters' results changed"}


def _record(executed: Path) -> dict[str, Any] | None:
    try:
        return nbformat.read(executed, as_version=4).metadata.get("mmrepro")
    except (OSError, ValueError, TypeError, AttributeError, KeyError):  # not a notebook (nbformat's errors vary)
        return None


def stale_reason(executed: Path, expected: Mapping[str, Any], results: Path) -> str | None:
    """Why the executed notebook cannot stand for a run with fingerprint ``expected`` (None: it can)."""
    if not executed.is_file():
        return "it has not been executed yet"
    record = _record(executed)
    if not record or not record.get("complete"):
        return "its executed copy is not a completed run of this version of mmrepro"
    old = record.get("fingerprint") or {}
    for key in expected:
        if old.get(key) != expected[key]:
            return _CHANGES.get(key, f"{key} changed")
    digest = record.get("results_sha256")
    if digest != (sha256_file(results) if results.is_file() else None):
        return "its results file changed or is missing"
    return None


# ----------------------------------------------------------------------------- one run

def prepare_build(build: Path) -> Path:
    """The build folder, created if needed; BookError if it cannot be (a file in its place, permissions)."""
    build = Path(build).resolve()
    if build.exists() and not build.is_dir():
        raise BookError(f"the build folder {build} is a file: pass --build a folder (it is created if missing).")
    try:
        build.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise BookError(f"cannot create the build folder {build} ({err}); pass --build a folder you can write.") from None
    return build


@contextlib.contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold Ctrl-C / SIGTERM while the finished run's files are moved into place (they arrive afterwards)."""
    held = {signal.SIGINT, signal.SIGTERM}
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, held)


def check_profiles(build: Path, names: list[str], profile: str) -> None:
    """BookError, before anything runs, when the build folder holds results of ``names`` from runs of
    another profile than ``profile``: a `smoke` run never replaces a `book` run's results (nor the reverse)."""
    clashes = [n for n in names if recorded_profile(build / "results" / f"{n}.json") not in (None, profile)]
    if clashes:
        try:
            check_profile(build / "results" / f"{clashes[0]}.json", profile, clashes[0])
        except ResultsConflict as err:
            more = f" ({len(clashes) - 1} more chapter(s) too: {', '.join(clashes[1:])})" if clashes[1:] else ""
            raise BookError(f"{str(err).rstrip('.')}{more}; nothing was run.") from None


def _commit(stage: Path, build: Path, name: str, record: dict[str, Any]) -> Path:
    """Move a finished run's figures, results file and executed notebook into place (each by a rename;
    the notebook last, with a record of the results file it belongs to); drop an earlier failed run's
    partial notebook. Commits into one build folder take its results folder's lock one at a time, and a
    results file of another profile is not replaced (BookError)."""
    results = build / "results"
    figures, result = stage / "results" / name, stage / "results" / f"{name}.json"
    with locked(results):
        profile = recorded_profile(result)
        if profile is not None:
            try:
                check_profile(results / result.name, profile, name)
            except ResultsConflict as err:
                raise BookError(str(err)) from None
        replace_dir(figures if figures.is_dir() else None, results / name)
        if result.is_file():
            os.replace(result, results / result.name)
        else:  # a page that writes no results: a results file of an earlier version would not be its own
            (results / result.name).unlink(missing_ok=True)
        target = results / result.name
        nb = nbformat.read(stage / f"{name}.ipynb", as_version=4)
        nb.metadata["mmrepro"] = {**record, "complete": True,
                                  "results_sha256": sha256_file(target) if target.is_file() else None}
        executed = build / "executed" / f"{name}.ipynb"
        executed.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(executed, lambda tmp: nbformat.write(nb, str(tmp)))
        (build / "failed" / f"{name}.ipynb").unlink(missing_ok=True)  # an earlier failure's partial run is obsolete
    return executed


def _short(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.relative_to(Path.cwd()))
    return str(path)


# The kernel's own log (its start-up warning that it talks over local TCP unencrypted) is kept to errors.
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=ERROR"]


def execute(path: Path, build: Path, params: dict[str, Any], root: Path,
            record: Mapping[str, Any] | None = None, progress: bool = False) -> Path:
    """Run one notebook through papermill (converted from MyST by jupytext) into ``build/executed``;
    ``progress`` shows a progress bar of the cells run on stderr, named after the section being run.

    The run happens in a staging folder; only when the notebook ran to its end are its executed copy,
    results file and figures moved into place (``record``, e.g. the run's :func:`fingerprint`, is stored
    in the notebook's metadata). Otherwise the previous output is left as it was, the partial notebook is
    kept in ``build/failed/<name>.ipynb``, and BookError (:class:`Interrupted` for Ctrl-C / SIGTERM) says so."""
    import jupytext
    import papermill

    from mmrepro.common.processes import descendants, interrupt_once, stop
    from mmrepro.publish import papermill_engine

    build = prepare_build(build)
    name = path.stem
    executed = build / "executed" / f"{name}.ipynb"
    stage = Path(tempfile.mkdtemp(prefix=f".run-{name}-", dir=build))
    partial = stage / f"{name}.ipynb"
    env = {"MMREPRO_RESULTS": str(build / "results"), RUN_OUTPUT_ENV: str(stage / "results")}
    before = {p.pid for p in descendants()}
    try:
        with interrupt_once():  # a second Ctrl-C must not cut the clean-up short
            try:
                with _environment(env):
                    # the kernel is stopped at once when the run ends or is interrupted: a graceful shutdown
                    # interrupts running code first, and the kernel then prints a traceback of its own
                    bar = {"desc": name, "unit": "cell", "leave": False, "dynamic_ncols": True} if progress else False
                    papermill.execute_notebook(jupytext.read(path), str(partial), parameters=params,
                                               kernel_name=KERNEL, cwd=str(root), progress_bar=bar,
                                               shutdown_kernel="immediate", engine_name=papermill_engine.ENGINE,
                                               extra_arguments=KERNEL_ARGUMENTS)
            except KeyboardInterrupt as err:
                why = str(err) or "Ctrl-C"
                logging.getLogger("asyncio").setLevel(logging.CRITICAL)  # the kernel's tasks, cancelled with it
                stop([p for p in descendants() if p.pid not in before], grace=2.0)  # a kernel still starting
                kept = _kept(executed, partial, build, name)
                raise Interrupted(f"{name} interrupted ({why}): {kept}.") from None
            except papermill.PapermillExecutionError as err:
                raise BookError(f"{path.name} failed ({err.ename}: {err.evalue}); "
                                f"{_kept(executed, partial, build, name)}.") from None
            except Exception as err:  # noqa: BLE001 - a dead kernel, a missing kernel spec, ...
                raise BookError(f"{path.name} could not be run ({type(err).__name__}: {err}); "
                                f"{_kept(executed, partial, build, name)}.") from None
        with _signals_deferred():
            return _commit(stage, build, name, dict(record or {}))
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _kept(executed: Path, partial: Path, build: Path, name: str) -> str:
    """Keep a failed run's partial notebook in ``failed/`` and say what was kept."""
    kept = (f"the previous {_short(executed)} and its results are kept unchanged" if executed.is_file()
            else "nothing was written to executed/ or results/")
    if partial.is_file():
        failed = build / "failed" / f"{name}.ipynb"
        failed.parent.mkdir(parents=True, exist_ok=True)
        os.replace(partial, failed)
        return f"{kept}; the partial run is in {_short(failed)}"
    return f"{kept}; the kernel had not started, so there is no partial notebook"
