"""Build the Jupyter Book: run the chapters that changed (side by side, :func:`build_book`), stage the
executed notebooks with the book's pages and the vendored MathJax, and render the HTML with warnings as
errors. ``site/`` in the build folder holds the staged sources, ``site/_build/html/`` the rendered book;
one notebook's run is :mod:`mmrepro.publish.execution`.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import nbformat

from mmrepro.common.files import replace_dir, write_atomic
from mmrepro.common.processes import interrupt_once, interrupts_held
from mmrepro.publish.execution import check_profiles, execute, notebook_fingerprint, prepare_build, stale_reason
from mmrepro.publish.notebook import PROFILES
from mmrepro.publish.parameters import (
    BookError,
    Interrupted,
    check_parameters,
    is_chapter,
    is_notebook,
    notebooks,
    parameters,
    parameters_of_cell,
    profile_values,
    root_or_fail,
    toc_files,
    with_profiles,
)

MATHJAX = Path("node_modules") / "mathjax" / "es5"


def ensure_mathjax(root: Path) -> Path:
    """MathJax 3 from npm (package.json) so the book renders formulas without a CDN."""
    target = root / MATHJAX
    if not (target / "tex-chtml.js").is_file():
        npm = shutil.which("npm")
        if npm is None:
            raise BookError("MathJax is not installed and npm is missing: install Node.js/npm, "
                            "then run `npm install` in the project folder.")
        subprocess.run([npm, "install", "--no-audit", "--no-fund", "--no-package-lock"], cwd=root, check=True)
    return target


def _hide_parameter_cells(nb) -> int:
    """Tag the declared and the injected parameters cells ``remove-cell``; the index after the last of them."""
    after = 0
    for i, cell in enumerate(nb.cells):
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        if {"parameters", "injected-parameters"} & set(tags):
            after = i + 1
            if "remove-cell" not in tags:
                tags.append("remove-cell")
    return after


def parameters_dropdown(results: dict[str, Any]) -> str:
    """A folded MyST dropdown listing the run's parameters: name, value and where the value came from."""
    sources = results.get("param_sources", {})
    lines = [":::{dropdown} Parameters of this run", f"Profile `{results['profile']}`, seed {results['seed']}, "
             f"device {results.get('device_name') or results['device']}. Change any of them with "
             "`mmrepro run NAME -p NAME VALUE` or `papermill ... -p NAME VALUE` (see *Running the notebooks*).",
             "", "| parameter | value | source |", "| --- | --- | --- |"]
    for name, value in results["params"].items():
        shown = repr(value).replace("|", "\\|")
        lines.append(f"| `{name}` | `{shown}` | {sources.get(name, '—')} |")
    return "\n".join([*lines, ":::"])


def _read_executed(path: Path) -> Any:
    """An executed notebook, or BookError in one line when the file is not a notebook."""
    try:
        return nbformat.read(path, as_version=4)
    except (OSError, ValueError, TypeError, AttributeError, KeyError) as err:  # nbformat's errors for non-notebooks
        raise BookError(f"{path} is not a readable notebook ({type(err).__name__}: {str(err)[:200]}); run "
                        "`mmrepro book` without --no-execute to execute it again.") from None


def stage(root: Path, build: Path, site: Path | None = None, solutions: bool = True) -> Path:
    """Copy the pages, the executed notebooks and MathJax into ``site`` (default ``build/site``) for Sphinx;
    ``solutions=False`` leaves the exercises' solutions out (:func:`~mmrepro.publish.assignments.without_solutions`:
    a book for a course)."""
    from mmrepro.publish.assignments import without_solutions

    site = site or build / "site"
    if site.exists():
        shutil.rmtree(site)
    site.mkdir(parents=True)
    for name in ("_config.yml", "_toc.yml", "references.bib"):
        if (root / name).is_file():
            shutil.copy2(root / name, site / name)
    for page in toc_files(root):
        rel = page.relative_to(root)
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        if is_notebook(page):
            executed = build / "executed" / f"{page.stem}.ipynb"
            if not executed.is_file():
                raise BookError(f"{rel} has not been executed; run `mmrepro book` without --no-execute.")
            nb = _read_executed(executed)
            if not nb.metadata.get("mmrepro", {}).get("complete"):
                raise BookError(f"{executed} is not a completed run; run `mmrepro book` without --no-execute.")
            if not solutions:
                nb = without_solutions(nb)
            after = _hide_parameter_cells(nb)
            results = build / "results" / f"{page.stem}.json"
            if is_chapter(page, root) and results.is_file():  # chapters: a folded parameters table instead
                nb.cells.insert(after, nbformat.v4.new_markdown_cell(parameters_dropdown(json.loads(results.read_text()))))
            nbformat.write(nb, (site / rel).with_suffix(".ipynb"))
        else:
            shutil.copy2(page, site / rel)
    for extra in (root / "book").glob("*"):
        if extra.suffix in {".png", ".svg", ".css"}:
            shutil.copy2(extra, site / "book" / extra.name)
    if (root / "_static").is_dir():  # the book's stylesheet (html_static_path in _config.yml)
        shutil.copytree(root / "_static", site / "_static")
    shutil.copytree(ensure_mathjax(root), site / "_vendor" / "mathjax")
    return site


def _jupyter_book() -> str:
    """The jupyter-book executable of this environment (beside the running Python), else on PATH."""
    beside = Path(sys.executable).parent / "jupyter-book"
    found = str(beside) if beside.is_file() else shutil.which("jupyter-book")
    if found is None:
        raise BookError("jupyter-book is not installed in this environment: pip install -e . again.")
    return found


def render(site: Path, root: Path, keep: Path) -> None:
    """Build the HTML of the staged ``site`` with jupyter-book (``-W --keep-going``) in a session of its own;
    Ctrl-C or SIGTERM stops it and everything it started within seconds (:class:`Interrupted`, which says
    that the book in ``keep`` is left as it was)."""
    from mmrepro.common.processes import stop

    with interrupt_once():  # a second Ctrl-C must not cut the clean-up short
        with interrupts_held():  # not before the process is known
            proc = subprocess.Popen([_jupyter_book(), "build", str(site), "-W", "--keep-going"], cwd=root,
                                    start_new_session=True)
        try:
            code = proc.wait()
        except KeyboardInterrupt as err:
            stop([proc.pid], grace=5.0)
            proc.wait()
            raise Interrupted(f"interrupted ({str(err) or 'Ctrl-C'}) while jupyter-book built the HTML; the executed "
                              f"notebooks are kept and the previous book in {keep} is left as it was") from None
    if code != 0:
        raise BookError(f"the book build reported warnings or errors (exit {code}); see above.")


def _last_seconds(build: Path, name: str) -> float | None:
    """How long the last completed run of ``name`` in this build took (its results file), if known."""
    with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
        return float(json.loads((build / "results" / f"{name}.json").read_text())["seconds"])
    return None


def raise_interrupt(signum: int, frame: object) -> None:
    """A signal handler that stops the run as Ctrl-C does (KeyboardInterrupt named after the signal)."""
    raise KeyboardInterrupt(signal.Signals(signum).name)


GRACE = 5.0  # seconds a stopped chapter has to keep its partial run before it is killed


def _chapter_process(conn: Any, run: Any, args: tuple) -> None:
    """The body of a chapter's own process: ``run(*args)`` (:func:`execute`), its outcome sent through
    ``conn`` as ("executed", None) or ("failed", BookError). The process has its own process group (the
    terminal's Ctrl-C reaches only ``mmrepro book``, which passes it on as SIGTERM); SIGTERM stops the
    run as Ctrl-C does, keeping its partial notebook in failed/. It runs exactly one chapter, so a
    signal never finds it idle inside a shared queue's lock (what made a process pool hang)."""
    os.setpgrp()
    signal.signal(signal.SIGTERM, raise_interrupt)
    name = Path(args[0]).stem
    try:
        try:
            run(*args)
        finally:  # from here on the outcome is sent, whatever arrives
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
        outcome: tuple[str, BookError | None] = ("executed", None)
    except BookError as err:
        outcome = ("failed", err)
    except KeyboardInterrupt as err:
        outcome = ("failed", Interrupted(f"{name} interrupted ({str(err) or 'Ctrl-C'}) as it ended"))
    except BaseException as err:  # noqa: BLE001 - reported as the chapter's failure, never a traceback
        outcome = ("failed", BookError(f"{name} could not be run ({type(err).__name__}: {err})"))
    conn.send(outcome)
    conn.close()


def _stop_chapters(running: dict[Any, tuple[Any, Path]], why: str) -> list[str]:
    """Stop every running chapter process (SIGTERM: each keeps its partial run in failed/), kill those still
    running after :data:`GRACE` seconds and whatever they started (kernels); one message per chapter."""
    from multiprocessing.connection import wait

    from mmrepro.common.processes import descendants, stop

    running = {conn: (proc, path) for conn, (proc, path) in running.items() if proc.pid is not None}  # started
    below = [child for proc, _ in running.values() for child in descendants(proc.pid)]
    for proc, _ in running.values():
        with contextlib.suppress(OSError):
            os.kill(proc.pid, signal.SIGTERM)
    said, deadline = [], time.monotonic() + GRACE
    waiting = dict(running)
    while waiting and time.monotonic() < deadline:
        for conn in wait(list(waiting), timeout=max(deadline - time.monotonic(), 0)):
            proc, path = waiting.pop(conn)
            try:
                kind, err = conn.recv()
                if err is not None:  # a chapter that finished meanwhile was not stopped
                    said.append(str(err))
            except (EOFError, OSError):
                said.append(f"{path.stem} stopped ({why}) before it reported; executed/ and results/ hold only "
                            "its completed runs")
    for proc, path in waiting.values():
        said.append(f"{path.stem} did not stop within {GRACE:g} s of {why} and was killed; executed/ and results/ "
                    "hold only its completed runs")
    for proc, _ in running.values():
        if proc.is_alive():
            proc.kill()
        proc.join()
    stop(below, grace=2.0)  # kernels the chapters left behind
    return said


def _run_all(runs: list[tuple[Path, dict[str, Any]]], build: Path, profile: str, root: Path,
             jobs: int) -> dict[str, BookError | None]:
    """Execute ``runs`` (path, fingerprint), ``jobs`` at a time, each in a process of its own (one kernel
    each), the longest by its last recorded runtime first; ``{name: None or the error}``, printed as
    each ends. Ctrl-C or SIGTERM stops every run within seconds (each keeps its partial notebook in
    failed/; one still running after :data:`GRACE` seconds is killed, with its kernel) and raises
    :class:`Interrupted` naming each stopped chapter; a second signal meanwhile is ignored."""
    import multiprocessing
    from multiprocessing.connection import wait

    runs = sorted(runs, key=lambda r: -(_last_seconds(build, r[0].stem) or 0.0))  # stable: toc order otherwise
    outcome: dict[str, BookError | None] = {}

    def done(path: Path, err: BookError | None) -> None:
        outcome[path.stem] = err
        rel = path.relative_to(root)
        print(f"failed   {rel}: {err}" if err else f"executed {rel}", flush=True)

    if jobs == 1 or len(runs) == 1:
        for path, parts in runs:
            try:
                execute(path, build, {"profile": profile}, root, record={"fingerprint": parts})
                done(path, None)
            except Interrupted:
                raise
            except BookError as err:
                done(path, err)
        return outcome
    # forkserver: each chapter's process is forked from a clean server that imported this module once
    # (spawn would import it again for every chapter; a plain fork would copy this process's threads)
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    pending, running = list(runs), {}
    with interrupt_once():  # a second Ctrl-C (or one that arrives with the first) is ignored
        try:
            while pending or running:
                while pending and len(running) < jobs:
                    path, parts = pending.pop(0)
                    receive, send = context.Pipe(duplex=False)
                    args = (path, build, {"profile": profile}, root, {"fingerprint": parts})
                    proc = context.Process(target=_chapter_process, args=(send, execute, args),
                                           name=f"mmrepro-{path.stem}")
                    with interrupts_held():  # a chapter whose pid the clean-up does not know would run on
                        running[receive] = (proc, path)
                        proc.start()
                    send.close()
                for conn in wait(list(running)):
                    proc, path = running.pop(conn)
                    try:
                        kind, err = conn.recv()
                    except (EOFError, OSError):
                        kind, err = "failed", BookError(f"{path.name} could not be run: its process ended without a "
                                                        f"result (exit code {proc.exitcode})")
                    proc.join()
                    done(path, err if kind == "failed" else None)
        except KeyboardInterrupt as err:
            why = str(err) or "Ctrl-C"
            said = _stop_chapters(running, why)
            raise Interrupted("; ".join(said) or f"interrupted ({why}) between chapters; executed/ and results/ hold "
                              "only completed runs") from None
    return outcome


def _record_data(build: Path, names: Sequence[str], before: Mapping[str, Any]) -> dict[str, Any]:
    """The data fingerprint after this build's chapters ran, written into the records of those that
    ran: files a chapter downloads (content pinned by the shipped SHA-256 manifests) are part of the
    data the next build sees, so they must not make these chapters look out of date. Anything else
    about the data that changed during the runs (its folder, the manifests, the data packages) is
    left as each run recorded it, and then does make them run again."""
    from mmrepro.core.data.storage import data_fingerprint

    after = data_fingerprint()
    if after == before or any(after[k] != before[k] for k in after if k != "files_sha256"):
        return after
    for name in names:
        executed = build / "executed" / f"{name}.ipynb"
        nb = nbformat.read(executed, as_version=4)
        nb.metadata["mmrepro"]["fingerprint"]["data"] = after
        write_atomic(executed, lambda tmp: nbformat.write(nb, str(tmp)))
    return after


def build_book(root: Path | None = None, profile: str = "book", build: Path | None = None,
               execute_notebooks: bool = True, force: bool = False, jobs: int | None = 1,
               solutions: bool = True) -> Path:
    """Execute the notebooks with ``profile`` and build the HTML book with ``-W --keep-going``.

    A notebook whose executed copy was run from the same :func:`~mmrepro.publish.execution.notebook_fingerprint` is reused (``force``: run
    every notebook again). The chapters run ``jobs`` at a time (None: all at once), each in its own
    process; a failing chapter does not stop the others, and nothing of theirs is lost. The pages that summarise the
    chapters (the scorecard) run afterwards, only when every chapter succeeded, and the book is built
    only then. Prints one line per notebook: reused (and why not, when it runs), executed, failed or
    skipped. The HTML is built in a new folder that replaces ``build/site`` only once it is complete
    (a failed build is kept in ``build/site-failed``); ``solutions=False`` leaves the exercises'
    solutions out of it (a book for a course; the notebooks run as always)."""
    if profile not in PROFILES:
        raise BookError(f"profile {profile!r} is not one of {', '.join(PROFILES)}.")
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
        raise BookError(f"jobs must be a whole number >= 1 (chapters run at a time) or None (all at once), "
                        f"got {jobs!r}.")
    root = root_or_fail(root)
    build = prepare_build(build or root / "_build")
    outcome: dict[str, list[str]] = {"reused": [], "executed": [], "failed": [], "skipped": []}
    paths = notebooks(root)
    if execute_notebooks:
        check_profiles(build, [p.stem for p in paths], profile)
    if not execute_notebooks:
        for path in paths:
            executed = build / "executed" / f"{path.stem}.ipynb"
            reason = stale_reason(executed, notebook_fingerprint(path, check_parameters(path, {"profile": profile}), root,
                                                        build), build / "results" / f"{path.stem}.json")
            if reason and executed.is_file():
                print(f"note: {path.relative_to(root)} is shown as last executed, although {reason}", flush=True)
    else:
        from mmrepro.core.data.storage import data_fingerprint

        chapters = [p for p in paths if is_chapter(p, root)]
        data = data_fingerprint()
        for group in (chapters, [p for p in paths if p not in chapters]):  # summaries see the chapters' results
            if group is not chapters and outcome["failed"]:
                for path in group:
                    print(f"skipped  {path.relative_to(root)}: it summarises the chapters, and "
                          f"{', '.join(outcome['failed'])} failed", flush=True)
                    outcome["skipped"].append(path.stem)
                continue
            runs = []
            for path in group:
                parts = notebook_fingerprint(path, check_parameters(path, {"profile": profile}), root, build, data)
                reason = "--force" if force else stale_reason(build / "executed" / f"{path.stem}.ipynb", parts,
                                                              build / "results" / f"{path.stem}.json")
                if reason is None:
                    print(f"reused   {path.relative_to(root)} (nothing it depends on changed)", flush=True)
                    outcome["reused"].append(path.stem)
                else:
                    print(f"running  {path.relative_to(root)} (profile={profile}; {reason})", flush=True)
                    runs.append((path, parts))
            at_once = (jobs or len(runs) or 1) if group is chapters else 1
            for name, err in _run_all(runs, build, profile, root, at_once).items():
                outcome["failed" if err else "executed"].append(name)
            if group is chapters:  # every chapter this build shows now stands for the data as the runs left it
                data = _record_data(build, outcome["executed"] + outcome["reused"], data)
        print("notebooks: " + "; ".join(f"{k} {', '.join(sorted(v, key=[p.stem for p in paths].index))}"
                                        for k, v in outcome.items() if v), flush=True)
    if outcome["failed"]:
        raise BookError(f"{', '.join(outcome['failed'])} failed (see above); the book was not built. The other "
                        "notebooks' executed copies and results are kept: the next `mmrepro book` reuses them "
                        "and runs only what failed or changed.")
    site, failed = build / "site", build / "site-failed"
    new = Path(tempfile.mkdtemp(prefix=".site-", dir=build))  # the previous book stays until this one is built
    try:
        render(stage(root, build, new, solutions), root, site)
    except Interrupted:
        shutil.rmtree(new, ignore_errors=True)
        raise
    except BookError as err:
        replace_dir(new, failed)
        raise BookError(f"{str(err).rstrip('.;')}; this build is in {failed}, the previous book in {site} is "
                        "left as it was.") from None
    except BaseException:
        shutil.rmtree(new, ignore_errors=True)
        raise
    replace_dir(new, site)
    shutil.rmtree(failed, ignore_errors=True)
    return site / "_build" / "html"


def annotate_parameters(source: str, values: Mapping[str, Mapping[str, Any]]) -> str:
    """A parameters cell with what each profile sets appended to the comment of every parameter a profile
    fills (:func:`~mmrepro.publish.parameters.with_profiles`), so that ``papermill --help-notebook`` shows it."""
    lines = []
    for line in source.splitlines():
        name = line.split(":", 1)[0].strip()
        if name in values and not line.startswith((" ", "\t")):
            code, _, comment = line.partition("#")
            line = f"{code.rstrip()}  # {with_profiles(comment.strip(), values[name])}"
        lines.append(line)
    return "\n".join(lines)


def export(paths: list[Path], out: Path) -> list[Path]:
    """Write each MyST notebook as an unexecuted ``.ipynb`` that plain papermill can run (kernelspec, a cell
    tagged ``parameters`` with typed, commented parameters, each comment ending with what the ``smoke``,
    ``book`` and ``paper`` profiles set); returns the written paths."""
    import jupytext

    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in paths:
        declared = parameters(path)  # fails with a clear message when papermill could not read a parameter
        nb = jupytext.read(path)
        nb.metadata.pop("jupytext", None)
        nb.metadata["language_info"] = {"name": "python"}
        values = profile_values(path)
        for cell in nb.cells:
            if "parameters" in cell.get("metadata", {}).get("tags", []):
                cell.source = annotate_parameters(cell.source, values)
                read = [p.name for p in parameters_of_cell(cell)]
                if read != [p.name for p in declared]:  # papermill must still read every parameter
                    raise BookError(f"exporting {path.name}: papermill reads {read} after the profile values were "
                                    f"added, {[p.name for p in declared]} before.")
        written.append(write_atomic(out / f"{path.stem}.ipynb", lambda tmp: nbformat.write(nb, str(tmp))))
    return written
