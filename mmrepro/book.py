"""Execute the chapters with papermill and build the Jupyter Book from the executed copies.

Layout of the build folder (``<project>/_build`` unless told otherwise)::

    executed/<name>.ipynb   notebooks as papermill ran them
    results/<name>.json     what each notebook reported (see mmrepro.notebook)
    site/                   the staged book sources: executed notebooks + pages + vendored MathJax
    site/_build/html/       the rendered book
"""
from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import yaml

from mmrepro.notebook import PROFILES, project_root

KERNEL = "python3"
MATHJAX = Path("node_modules") / "mathjax" / "es5"


class BookError(RuntimeError):
    """The book or one of its notebooks could not be built."""


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


def execute(path: Path, build: Path, params: dict[str, Any], root: Path) -> Path:
    """Run one notebook through papermill (converted from MyST by jupytext) into ``build/executed``."""
    import jupytext
    import papermill

    out = build / "executed" / f"{path.stem}.ipynb"
    out.parent.mkdir(parents=True, exist_ok=True)
    env_before = os.environ.get("MMREPRO_RESULTS")
    os.environ["MMREPRO_RESULTS"] = str(build / "results")
    try:
        papermill.execute_notebook(jupytext.read(path), str(out), parameters=params,
                                   kernel_name=KERNEL, cwd=str(root), progress_bar=False)
    except papermill.PapermillExecutionError as err:
        raise BookError(f"{path.name} failed ({err.ename}: {err.evalue}); the partial run is in {out}.") from None
    finally:
        if env_before is None:
            os.environ.pop("MMREPRO_RESULTS", None)
        else:
            os.environ["MMREPRO_RESULTS"] = env_before
    return out


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
            after = _hide_parameter_cells(nb)
            results = build / "results" / f"{page.stem}.json"
            if rel.parts[0] == "notebooks" and results.is_file():  # chapters: a folded parameters table instead
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


def build_book(root: Path | None = None, profile: str = "book", build: Path | None = None,
               execute_notebooks: bool = True) -> Path:
    """Execute every notebook with ``profile`` and build the HTML book with ``-W --keep-going``."""
    if profile not in PROFILES:
        raise BookError(f"profile {profile!r} is not one of {', '.join(PROFILES)}.")
    root = root_or_fail(root)
    build = (build or root / "_build").resolve()
    if execute_notebooks:
        results = build / "results"
        if results.exists():
            shutil.rmtree(results)  # the scorecard must only see this build's runs
        for path in notebooks(root):
            print(f"executing {path.relative_to(root)} (profile={profile})", flush=True)
            execute(path, build, {"profile": profile}, root)
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
        target = out / f"{path.stem}.ipynb"
        tmp = target.with_suffix(".ipynb.tmp")
        nbformat.write(nb, tmp)
        tmp.replace(target)
        written.append(target)
    return written
