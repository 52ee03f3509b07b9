"""Execute the chapters with papermill and build the Jupyter Book from the executed copies.

Layout of the build folder (``<project>/_build`` unless told otherwise)::

    executed/<name>.ipynb   notebooks as papermill ran them, each with a record of what it was run from
    results/<name>.json     what each notebook reported (see mmrepro.notebook), figures in results/<name>/
    failed/<name>.ipynb     the partial notebook of the last failed or interrupted run of <name>
    site/                   the staged book sources: executed notebooks + pages + vendored MathJax
    site/_build/html/       the rendered book

A run never touches the previous output until it has finished: papermill writes into a staging folder
inside the build folder, and only a notebook that ran to its end replaces ``executed/<name>.ipynb``, its
results file and its figures (each by a rename). A failed or interrupted run leaves them as they were and
keeps its partial notebook in ``failed/``.

``mmrepro book`` reuses a notebook's executed copy when nothing it was run from has changed: see
:func:`fingerprint`.
"""
from __future__ import annotations

import ast
import concurrent.futures as cf
import contextlib
import json
import multiprocessing
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import nbformat
import yaml

from mmrepro.files import replace_dir, sha256_file, write_atomic
from mmrepro.notebook import (PROFILES, RUN_OUTPUT_ENV, ParameterError, coerce_parameter, project_root,
                              resolve_parameters)

KERNEL = "python3"
MATHJAX = Path("node_modules") / "mathjax" / "es5"


class BookError(RuntimeError):
    """The book or one of its notebooks could not be built."""


class Interrupted(BookError):
    """A run was stopped by Ctrl-C or SIGTERM; the message says what was kept."""


@dataclass(frozen=True)
class Parameter:
    """A parameter as declared in a notebook's ``parameters`` cell."""

    name: str
    type: str
    default: str
    help: str


def root_or_fail(root: Path | None = None) -> Path:
    found = project_root(root)
    if found is None:
        raise BookError("no _toc.yml found here or above: run mmrepro from the project checkout.")
    return found


def is_notebook(path: Path) -> bool:
    """A MyST page is a notebook when its front matter names a jupytext kernelspec."""
    text = path.read_text(encoding="utf-8")
    if not text.startswith("---"):
        return False
    front = yaml.safe_load(text.split("---", 2)[1]) or {}
    return "kernelspec" in front


def toc_files(root: Path) -> list[Path]:
    """Every page of ``_toc.yml`` in reading order, as ``.md`` paths."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    pages: list[str] = [toc["root"]]

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "file" in node:
                pages.append(node["file"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk({k: v for k, v in toc.items() if k != "root"})
    missing = [p for p in pages if not (root / f"{p}.md").is_file()]
    if missing:
        raise BookError(f"_toc.yml lists {missing} but there is no such .md file; fix _toc.yml.")
    return [root / f"{p}.md" for p in pages]


def notebooks(root: Path) -> list[Path]:
    """The executable pages of the book (chapters, then pages such as the scorecard)."""
    return [p for p in toc_files(root) if is_notebook(p)]


def find_notebook(name_or_path: str, root: Path) -> Path:
    candidate = Path(name_or_path)
    if candidate.suffix == ".md" and candidate.is_file():
        return candidate.resolve()
    for path in notebooks(root):
        if path.stem == name_or_path:
            return path
    names = ", ".join(p.stem for p in notebooks(root))
    raise BookError(f"no notebook called {name_or_path!r}; choose one of: {names}.")


def parameters(path: Path) -> list[Parameter]:
    """The declared parameters of a notebook (what ``papermill --help-notebook`` would show)."""
    import jupytext
    from papermill.translators import PythonTranslator

    nb = jupytext.read(path)
    for cell in nb.cells:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            found = [Parameter(p.name, p.inferred_type_name, p.default, p.help)
                     for p in PythonTranslator.inspect(cell)]
            declared = [n.target.id for n in ast.parse(cell.source).body
                        if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)]
            unread = [n for n in declared if n not in {p.name for p in found}]
            if unread:  # papermill skips such lines with a printed warning, so they could not be set
                raise BookError(f"papermill cannot read parameter(s) {unread} in {path.name}: write each as "
                                "`name: type = value  # comment` on one line, with no '=' in the comment.")
            return found
    raise BookError(f"{path} has no cell tagged 'parameters'.")


def parse_value(text: str) -> Any:
    """A command-line parameter value: a Python literal when it is one, else the string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


# ----------------------------------------------------------------------------- checks before a kernel starts

def _code_cells(path: Path) -> list[Any]:
    import jupytext

    return [c for c in jupytext.read(path).cells if c.cell_type == "code"]


def _start_arguments(cells: list[Any], namespace: dict[str, Any]) -> dict[str, Any] | None:
    """The ``profiles``, ``choices`` and ``checks`` of the notebook's ``start(...)`` call, evaluated in
    ``namespace`` (the parameters, plus the imports and literal constants of the statements before the
    call in its cell); None when the notebook calls no ``start`` or its arguments need more than that."""
    for cell in cells:
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:  # IPython magics
            continue
        for stmt in tree.body:
            call = getattr(stmt, "value", None)
            func = getattr(call, "func", None)
            name = getattr(func, "id", None) or getattr(func, "attr", None)
            if isinstance(stmt, (ast.Assign, ast.Expr)) and isinstance(call, ast.Call) and name == "start":
                nodes = {"profiles": call.args[2] if len(call.args) > 2 else None,
                         **{k.arg: k.value for k in call.keywords if k.arg in ("profiles", "choices", "checks")}}
                try:
                    return {k: eval(compile(ast.Expression(v), "<start arguments>", "eval", dont_inherit=True), namespace)  # noqa: S307
                            for k, v in nodes.items() if v is not None}
                except Exception:  # noqa: BLE001 - needs the kernel (e.g. an imported name): checked there
                    return None
            if isinstance(stmt, (ast.Import, ast.ImportFrom)):
                try:
                    exec(compile(ast.Module([stmt], []), "<imports>", "exec", dont_inherit=True), namespace)  # noqa: S102
                except Exception:  # noqa: BLE001 - checked in the kernel instead
                    return None
            if isinstance(stmt, ast.Assign) and all(isinstance(t, ast.Name) for t in stmt.targets):
                with contextlib.suppress(ValueError, SyntaxError, TypeError):
                    value = ast.literal_eval(stmt.value)
                    namespace.update({t.id: value for t in stmt.targets})
    return None


def static_parameters(path: Path, params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """What a run of notebook ``path`` with ``params`` would get, without running it: the values the
    notebook sees (the defaults of its parameters cell updated with ``params``) and, for a notebook that
    calls ``start``, the parameters ``start`` would resolve (None when it calls none, or its checks
    need the kernel's state).

    Checks unknown names, types (:func:`mmrepro.notebook.coerce_parameter`) and, through the same
    :func:`~mmrepro.notebook.resolve_parameters` as ``start``, profiles, choices, checks and the device;
    raises :class:`~mmrepro.notebook.ParameterError` for anything ``start`` would reject."""
    parameters(path)  # every declared parameter must be one papermill can set
    cells = _code_cells(path)
    at = next(i for i, c in enumerate(cells) if "parameters" in c.get("metadata", {}).get("tags", []))
    namespace: dict[str, Any] = {}
    try:
        exec(compile(cells[at].source, f"{path.name}, parameters cell", "exec", dont_inherit=True), namespace)  # noqa: S102
    except Exception as err:  # noqa: BLE001
        raise BookError(f"the parameters cell of {path.name} does not run ({type(err).__name__}: {err}).") from None
    declared = dict(namespace.get("__annotations__", {}))
    unknown = sorted(set(params) - set(declared))
    if unknown:
        raise ParameterError(f"unknown parameter(s) {unknown} for {path.stem}; it accepts: {sorted(declared)}.")
    namespace.update(params)
    values = {name: namespace.get(name) for name in declared}
    for name, value in params.items():
        coerce_parameter(name, value, declared[name])
    contract = _start_arguments(cells[at + 1:], namespace)
    if contract is None or "profiles" not in contract:
        return values, None
    try:
        resolved = resolve_parameters(declared, values, contract["profiles"], set(params),
                                      contract.get("choices"), contract.get("checks"))
    except ParameterError:
        raise
    except Exception:  # noqa: BLE001 - a check that needs the kernel's state: start() runs it there
        return values, None
    from mmrepro.device import resolve_device

    try:
        resolve_device(resolved["device"])
    except ValueError as err:
        raise ParameterError(str(err)) from None
    return values, resolved


def check_parameters(path: Path, params: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`static_parameters` before a run: the values the notebook will see, or BookError saying
    what is wrong and that nothing was run."""
    try:
        return static_parameters(path, params)[0]
    except ParameterError as err:
        raise BookError(f"{path.stem}: {str(err).rstrip('.')}; nothing was run.") from None


# ----------------------------------------------------------------------------- what a run depends on

def is_chapter(path: Path, root: Path) -> bool:
    """Chapters live in ``notebooks/``; the other executable pages (the scorecard) read their results."""
    try:
        return path.resolve().relative_to(root.resolve()).parts[0] == "notebooks"
    except ValueError:  # a notebook outside the project (mmrepro run path/to/x.md)
        return True


def package_fingerprint() -> dict[str, Any]:
    """The mmrepro version, the digest of its source (:func:`mmrepro.runs.keys.code_digest`, as the run
    cache keys runs), and the versions of Python and of the libraries the results' numerics depend on."""
    from importlib.metadata import PackageNotFoundError, version

    from mmrepro import __version__
    from mmrepro.runs.keys import code_digest

    libraries = {}
    for name in ("torch", "numpy", "scipy", "scikit-learn", "pandas"):
        try:
            libraries[name] = version(name)
        except PackageNotFoundError:
            libraries[name] = None
    return {"version": __version__, "source": code_digest(), "libraries": libraries,
            "python": platform.python_version()}


def fingerprint(path: Path, values: Mapping[str, Any], root: Path, build: Path,
                data: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Everything a notebook's run depends on; an executed notebook is reused while this is unchanged.

    * ``source``: SHA-256 of the notebook's MyST file;
    * ``parameters``: every parameter value the notebook sees (defaults included);
    * ``package``: :func:`package_fingerprint` (mmrepro version and source, library versions);
    * ``data``: :func:`mmrepro.data.storage.data_fingerprint` (the data folder's files, the data packages),
      unless given (a build computes it once);
    * ``machine``: the platform and whether CUDA is available (``device="auto"`` depends on it);
    * ``results`` (pages outside ``notebooks/``, such as the scorecard): SHA-256 of every results file
      they summarise."""
    import torch

    from mmrepro.data.storage import data_fingerprint

    parts: dict[str, Any] = {
        "source": sha256_file(path),
        "parameters": json.loads(json.dumps(dict(values), sort_keys=True, default=repr)),
        "package": package_fingerprint(),
        "data": dict(data) if data is not None else data_fingerprint(),
        "machine": {"system": platform.system(), "cpu": platform.machine(), "cuda": torch.cuda.is_available()},
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
    except (OSError, ValueError, nbformat.reader.NotJSONError):
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


def _commit(stage: Path, build: Path, name: str, record: dict[str, Any]) -> Path:
    """Move a finished run's figures, results file and executed notebook into place (each by a rename;
    the notebook last, with a record of the results file it belongs to); drop an earlier failed run's
    partial notebook."""
    results = build / "results"
    results.mkdir(parents=True, exist_ok=True)
    figures, result = stage / "results" / name, stage / "results" / f"{name}.json"
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


def execute(path: Path, build: Path, params: dict[str, Any], root: Path,
            record: Mapping[str, Any] | None = None) -> Path:
    """Run one notebook through papermill (converted from MyST by jupytext) into ``build/executed``.

    The run happens in a staging folder; only when the notebook ran to its end are its executed copy,
    results file and figures moved into place (``record``, e.g. the run's :func:`fingerprint`, is stored
    in the notebook's metadata). Otherwise the previous output is left as it was, the partial notebook is
    kept in ``build/failed/<name>.ipynb``, and BookError (:class:`Interrupted` for Ctrl-C / SIGTERM) says so."""
    import jupytext
    import papermill

    from mmrepro import papermill_engine

    build = prepare_build(build)
    name = path.stem
    executed = build / "executed" / f"{name}.ipynb"
    stage = Path(tempfile.mkdtemp(prefix=f".run-{name}-", dir=build))
    partial = stage / f"{name}.ipynb"
    env = {"MMREPRO_RESULTS": str(build / "results"), RUN_OUTPUT_ENV: str(stage / "results")}
    try:
        try:
            with _environment(env):
                # the kernel is stopped at once when the run ends or is interrupted: a graceful shutdown
                # interrupts running code first, and the kernel then prints a traceback of its own
                papermill.execute_notebook(jupytext.read(path), str(partial), parameters=params,
                                           kernel_name=KERNEL, cwd=str(root), progress_bar=False,
                                           shutdown_kernel="immediate", engine_name=papermill_engine.ENGINE)
        except KeyboardInterrupt as err:
            why = str(err) or "Ctrl-C"
            raise Interrupted(f"{name} interrupted ({why}): {_kept(executed, partial, build, name)}.") from None
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


def stage(root: Path, build: Path) -> Path:
    """Copy the pages, the executed notebooks and MathJax into ``build/site`` for Sphinx."""
    site = build / "site"
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
            nb = nbformat.read(executed, as_version=4)
            if not nb.metadata.get("mmrepro", {}).get("complete"):
                raise BookError(f"{executed} is not a completed run; run `mmrepro book` without --no-execute.")
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
    shutil.copytree(ensure_mathjax(root), site / "_vendor" / "mathjax")
    return site


def _jupyter_book() -> str:
    """The jupyter-book executable of this environment (beside the running Python), else on PATH."""
    beside = Path(sys.executable).parent / "jupyter-book"
    found = str(beside) if beside.is_file() else shutil.which("jupyter-book")
    if found is None:
        raise BookError("jupyter-book is not installed in this environment: pip install -e . again.")
    return found


def _last_seconds(build: Path, name: str) -> float | None:
    """How long the last completed run of ``name`` in this build took (its results file), if known."""
    with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
        return float(json.loads((build / "results" / f"{name}.json").read_text())["seconds"])
    return None


def raise_interrupt(signum: int, frame: object) -> None:
    """A signal handler that stops the run as Ctrl-C does (KeyboardInterrupt named after the signal)."""
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _worker_init() -> None:
    """A chapter worker runs in its own process group (a terminal's Ctrl-C reaches only `mmrepro book`,
    which passes it on) and stops on SIGTERM as cleanly as on Ctrl-C, keeping its partial run in failed/."""
    os.setpgrp()
    signal.signal(signal.SIGTERM, raise_interrupt)


def _run_all(runs: list[tuple[Path, dict[str, Any]]], build: Path, profile: str, root: Path,
             jobs: int) -> dict[str, BookError | None]:
    """Execute ``runs`` (path, fingerprint), ``jobs`` at a time, each in its own process (one kernel
    each), the longest by its last recorded runtime first; ``{name: None or the error}``, printed as
    each ends. Ctrl-C or SIGTERM stops every run (each keeps its partial notebook in failed/) and
    raises :class:`Interrupted`."""
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
    pool = cf.ProcessPoolExecutor(max_workers=min(jobs, len(runs)), initializer=_worker_init,
                                  mp_context=multiprocessing.get_context("spawn"))
    futures: dict[cf.Future, Path] = {}
    try:
        for path, parts in runs:
            futures[pool.submit(execute, path, build, {"profile": profile}, root, {"fingerprint": parts})] = path
        for future in cf.as_completed(futures):
            try:
                future.result()
                done(futures[future], None)
            except BookError as err:
                done(futures[future], err)
    except KeyboardInterrupt as err:
        for proc in list(getattr(pool, "_processes", {}).values()):
            with contextlib.suppress(OSError):
                proc.terminate()  # SIGTERM: the run stops as on Ctrl-C
        pool.shutdown(wait=True, cancel_futures=True)
        kept = [str(f.exception()) for f in futures if f.done() and not f.cancelled()
                and isinstance(f.exception(), Interrupted)]
        raise Interrupted("; ".join(kept) or f"interrupted ({err or 'Ctrl-C'}); executed/ and results/ hold "
                          "only completed runs") from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return outcome


def _record_data(build: Path, names: Sequence[str], before: Mapping[str, Any]) -> dict[str, Any]:
    """The data fingerprint after this build's chapters ran, written into the records of those that
    ran: files a chapter downloads (content pinned by the shipped SHA-256 manifests) are part of the
    data the next build sees, so they must not make these chapters look out of date. Anything else
    about the data that changed during the runs (its folder, the manifests, the data packages) is
    left as each run recorded it, and then does make them run again."""
    from mmrepro.data.storage import data_fingerprint

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
               execute_notebooks: bool = True, force: bool = False, jobs: int | None = 1) -> Path:
    """Execute the notebooks with ``profile`` and build the HTML book with ``-W --keep-going``.

    A notebook whose executed copy was run from the same :func:`fingerprint` is reused (``force``: run
    every notebook again). The chapters run ``jobs`` at a time (None: all at once), each in its own
    process; a failing chapter does not stop the others, and nothing of theirs is lost. The pages that summarise the
    chapters (the scorecard) run afterwards, only when every chapter succeeded, and the book is built
    only then. Prints one line per notebook: reused (and why not, when it runs), executed, failed or
    skipped."""
    if profile not in PROFILES:
        raise BookError(f"profile {profile!r} is not one of {', '.join(PROFILES)}.")
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
        raise BookError(f"jobs must be a whole number >= 1 (chapters run at a time) or None (all at once), "
                        f"got {jobs!r}.")
    root = root_or_fail(root)
    build = prepare_build(build or root / "_build")
    outcome: dict[str, list[str]] = {"reused": [], "executed": [], "failed": [], "skipped": []}
    paths = notebooks(root)
    if not execute_notebooks:
        for path in paths:
            executed = build / "executed" / f"{path.stem}.ipynb"
            reason = stale_reason(executed, fingerprint(path, check_parameters(path, {"profile": profile}), root,
                                                        build), build / "results" / f"{path.stem}.json")
            if reason and executed.is_file():
                print(f"note: {path.relative_to(root)} is shown as last executed, although {reason}", flush=True)
    else:
        from mmrepro.data.storage import data_fingerprint

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
                parts = fingerprint(path, check_parameters(path, {"profile": profile}), root, build, data)
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
    site = stage(root, build)
    done = subprocess.run([_jupyter_book(), "build", str(site), "-W", "--keep-going"], cwd=root)
    if done.returncode != 0:
        raise BookError(f"the book build reported warnings or errors (exit {done.returncode}); see above.")
    return site / "_build" / "html"


def export(paths: list[Path], out: Path) -> list[Path]:
    """Write each MyST notebook as an unexecuted ``.ipynb`` that plain papermill can run (kernelspec, a cell
    tagged ``parameters`` with typed, commented parameters); returns the written paths."""
    import jupytext

    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in paths:
        parameters(path)  # fails with a clear message when papermill could not read a parameter
        nb = jupytext.read(path)
        nb.metadata.pop("jupytext", None)
        nb.metadata["language_info"] = {"name": "python"}
        written.append(write_atomic(out / f"{path.stem}.ipynb", lambda tmp: nbformat.write(nb, str(tmp))))
    return written
