"""The chapters as the command line sees them: which notebooks the book holds (``_toc.yml``), the
parameters each declares, and those parameters resolved and checked without a kernel
(:func:`static_parameters`), so that a bad value stops a run before anything starts."""
from __future__ import annotations

import ast
import contextlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import yaml

from mmrepro.publish.notebook import (
    PROFILES,
    ParameterError,
    coerce_parameter,
    project_root,
    resolve_parameters,
)


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


ROOT_ENV = "MMREPRO_ROOT"  # the project checkout, for commands run outside it


def installed_checkout() -> Path | None:
    """The checkout this mmrepro package is imported from (``pip install -e``), when it holds a book."""
    checkout = Path(__file__).resolve().parents[2]
    return checkout if (checkout / "_toc.yml").is_file() else None


def locate_root(root: Path | str | None = None, near: Path | None = None) -> tuple[Path, str]:
    """The project (the folder holding ``_toc.yml``) and how it was found, trying in turn: ``root``
    (``--root``) and ``$MMREPRO_ROOT`` (each that folder or one above it), the project that holds
    ``near`` (a notebook given by path), the working folder and those above it, and the checkout the
    package is installed from (``pip install -e``). BookError when none is a project."""
    for given, name in ((root, "--root"), (os.environ.get(ROOT_ENV) or None, ROOT_ENV)):
        if given is not None:
            found = project_root(Path(given).expanduser())
            if found is None:
                raise BookError(f"{name} {given} is not an mmrepro project (no _toc.yml there or above): give "
                                "the folder of your checkout, the one holding _toc.yml and notebooks/.")
            return found, name
    if near is not None and (found := project_root(Path(near).resolve().parent)) is not None:
        return found, "notebook"
    if (found := project_root()) is not None:
        return found, "cwd"
    if (found := installed_checkout()) is not None:
        return found, "installed"
    raise BookError(f"no mmrepro project here: {Path.cwd()} and the folders above it hold no _toc.yml, and the "
                    "installed package is not inside a checkout. Run mmrepro in your checkout (the folder with "
                    f"_toc.yml and notebooks/), or pass --root DIR, or set {ROOT_ENV}=DIR.")


def root_or_fail(root: Path | str | None = None, near: Path | None = None) -> Path:
    """:func:`locate_root`'s project folder."""
    return locate_root(root, near)[0]


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

    nb = jupytext.read(path)
    for cell in nb.cells:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            found = parameters_of_cell(cell)
            declared = [n.target.id for n in ast.parse(cell.source).body
                        if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)]
            unread = [n for n in declared if n not in {p.name for p in found}]
            if unread:  # papermill skips such lines with a printed warning, so they could not be set
                raise BookError(f"papermill cannot read parameter(s) {unread} in {path.name}: write each as "
                                "`name: type = value  # comment` on one line, with no '=' in the comment.")
            return found
    raise BookError(f"{path} has no cell tagged 'parameters'.")


def parameters_of_cell(cell: Any) -> list[Parameter]:
    """The parameters papermill reads from a ``parameters`` cell (name, type, default, comment)."""
    from papermill.translators import PythonTranslator

    return [Parameter(p.name, p.inferred_type_name, p.default, p.help) for p in PythonTranslator.inspect(cell)]


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

    Checks unknown names, types (:func:`mmrepro.publish.notebook.coerce_parameter`) and, through the same
    :func:`~mmrepro.publish.notebook.resolve_parameters` as ``start``, profiles, choices, checks and the device;
    raises :class:`~mmrepro.publish.notebook.ParameterError` for anything ``start`` would reject."""
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
    defaults = {name: namespace.get(name) for name in declared}
    namespace.update(params)
    values = {name: namespace.get(name) for name in declared}
    for name, value in params.items():
        coerce_parameter(name, value, declared[name])
    contract = _start_arguments(cells[at + 1:], namespace)
    if contract is None or "profiles" not in contract:
        return values, None
    try:
        resolved = resolve_parameters(declared, values, contract["profiles"], set(params),
                                      contract.get("choices"), contract.get("checks"), defaults)
    except ParameterError:
        raise
    except Exception:  # noqa: BLE001 - a check that needs the kernel's state: start() runs it there
        return values, None
    from mmrepro.common.device import resolve_device

    try:
        resolve_device(resolved["device"])
    except ValueError as err:
        raise ParameterError(str(err)) from None
    return values, resolved


def profile_values(path: Path) -> dict[str, dict[str, Any]]:
    """What each profile sets for the parameters the notebook leaves at None, read from its
    ``start(..., profiles=...)`` call without a kernel (as :func:`static_parameters` reads it):
    ``{name: {profile: value}}``, the profiles in the order smoke, book, paper. Empty when the notebook
    calls no ``start`` or its profiles need the kernel."""
    cells = _code_cells(path)
    at = next((i for i, c in enumerate(cells) if "parameters" in c.get("metadata", {}).get("tags", [])), None)
    if at is None:
        return {}
    namespace: dict[str, Any] = {}
    try:
        exec(compile(cells[at].source, f"{path.name}, parameters cell", "exec", dont_inherit=True), namespace)  # noqa: S102
    except Exception:  # noqa: BLE001 - static_parameters reports it
        return {}
    declared = dict(namespace.get("__annotations__", {}))
    contract = _start_arguments(cells[at + 1:], namespace)
    profiles = (contract or {}).get("profiles")
    if not isinstance(profiles, Mapping):
        return {}
    found: dict[str, dict[str, Any]] = {}
    for name in declared:
        if namespace.get(name) is None:
            per = {p: profiles[p][name] for p in PROFILES if isinstance(profiles.get(p), Mapping) and name in profiles[p]}
            if per:
                found[name] = per
    return found


def _shown(value: Any, width: int = 40) -> str:
    """A profile's value as typed after ``-p NAME`` (a string bare unless it holds a comma or a space); a long
    list as its length and ends, a long dict as its keys with the number of values of each."""
    if isinstance(value, str):
        text = repr(value) if ("," in value or " " in value) else value
    else:
        text = repr(value)
    if len(text) > width and isinstance(value, list) and value:
        text = f"{len(value)} values, {value[0]!r} to {value[-1]!r}"
    elif len(text) > width and isinstance(value, dict):
        text = "{" + ", ".join(f"{k} ×{len(v)}" if isinstance(v, (list, tuple)) else str(k) for k, v in value.items()) + "}"
    return text.replace("=", ":")  # papermill stops reading a parameter's comment at an '='


# A parenthesis at the end of a parameter's comment that lists profile values by hand, e.g. "(profile: smoke 2, book 5)"
_HANDWRITTEN = re.compile(r"\s*\((?:profiles?:?\s|smoke\s|book\s|paper\s)[^()]*(?:\([^()]*\)[^()]*)*\)\s*$")


def with_profiles(help_text: str, values: Mapping[str, Any] | None) -> str:
    """A parameter's comment followed by what each profile sets, e.g. ``runs per setting (smoke 2, book 5,
    paper 10)``, or ``(every profile: 0.0)``; a hand-written list of profile values at the comment's end is
    replaced, so that the two cannot disagree."""
    if not values:
        return help_text
    shown = {p: _shown(v) for p, v in values.items()}
    if len(values) == len(PROFILES) and len(set(shown.values())) == 1:
        note = f"(every profile: {next(iter(shown.values()))})"
    else:
        sep = "; " if any("," in t for t in shown.values()) else ", "
        note = "(" + sep.join(f"{p} {t}" for p, t in shown.items()) + ")"
    base = _HANDWRITTEN.sub("", help_text).rstrip()
    return f"{base} {note}" if base else note


def check_parameters(path: Path, params: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`static_parameters` before a run: the values the notebook will see, or BookError saying
    what is wrong and that nothing was run."""
    try:
        return static_parameters(path, params)[0]
    except ParameterError as err:
        raise BookError(f"{path.stem}: {str(err).rstrip('.')}; nothing was run.") from None


def is_chapter(path: Path, root: Path) -> bool:
    """Chapters live in ``notebooks/``; the other executable pages (the scorecard) read their results."""
    try:
        return path.resolve().relative_to(root.resolve()).parts[0] == "notebooks"
    except ValueError:  # a notebook outside the project (mmrepro run path/to/x.md)
        return True
