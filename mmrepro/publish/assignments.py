"""Classroom assignments from the chapters: student versions, autograder bundles and grading (otter-grader).

Single source. A chapter's exercises are its last section, ``## Exercises``, written in MyST with the
sphinx-exercise directives that the book renders (solutions folded)::

    ````{exercise} Lemma 1 in closed form, 2 points       graded: a solution code cell follows
    :label: mfh-ex-lemma1
    What to write ...
    ````
    ```{solution-start} mfh-ex-lemma1
    :class: dropdown
    ```
    (code cells; the lines between "# BEGIN SOLUTION" and "# END SOLUTION" are the answer)
    ```{solution-end}
    ```
    (code cells tagged `check` (public) or `hidden-check` + `remove-cell` (autograder only), each
     one function `def check_x(name, ...)` taking the student's functions by name, and a call to it)

    ````{exercise} Re-run a claim, 4 points              written: a markdown solution follows
    :label: mfh-ex-replicate
    ...
    ````
    ```{solution} mfh-ex-replicate
    :class: dropdown
    What a good answer says ...
    ```

:func:`assign` turns a chapter into an otter-assign master notebook (the chapter's body with every code
cell tagged ``otter_ignore``, so that grading runs only the exercises; one question per exercise) and
runs ``otter assign`` on it. The student version keeps the chapter and the public checks and replaces
each answer by ``...``; the hidden checks exist only in the autograder folder (otter's bundle, and the
questions' manifest ``<chapter>.json`` that :mod:`mmrepro.publish.grading` reads). :func:`grade` runs a
submission in a process of its own and the checks outside it (:mod:`mmrepro.publish.grading`).
"""
from __future__ import annotations

import builtins
import contextlib
import dis
import json
import os
import re
import shutil
import sys
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat

from mmrepro.publish.grading import IGNORE, AssignmentError, Limits, Report

__all__ = ["AssignmentError", "Question", "Exercises", "read_exercises", "without_solutions", "assign", "grade"]

HEADING = "## Exercises"
CHECK, HIDDEN = "check", "hidden-check"
_FENCE = re.compile(r"^(?P<fence>`{3,}|:{3,})\{(?P<name>[\w-]+)\}[ \t]*(?P<arg>.*)$")
_POINTS = re.compile(r",\s*(?P<points>\d+(?:\.\d+)?) points?\s*$")
_OTTER_DROPS = re.compile(r"(##\s*ignore\s*##\s*|#\s*ignore\s*)", re.IGNORECASE)  # otter assign drops such cells


@dataclass
class Question:
    """One exercise: ``graded`` (code, checked by its tests) or written (graded by the teacher)."""

    name: str
    title: str
    points: float
    statement: str
    solution: list[Any] = field(default_factory=list)   # code cells (graded) or markdown text (written)
    checks: list[Any] = field(default_factory=list)     # code cells tagged check / hidden-check
    graded: bool = True

    def prompt(self, number: int) -> str:
        points = f"{self.points:g} point{'' if self.points == 1 else 's'}"
        return f"### Exercise {number}: {self.title} ({points})\n\n{self.statement}".rstrip() + "\n"


@dataclass
class Exercises:
    """A chapter split at its exercises section: ``body`` cells, then ``items`` in order (markdown text,
    plain code cells and questions); ``kernelspec`` is the chapter's."""

    chapter: str
    body: list[Any]
    heading: Any
    items: list[Any]
    kernelspec: dict[str, Any]

    @property
    def questions(self) -> list[Question]:
        return [i for i in self.items if isinstance(i, Question)]


# ----------------------------------------------------------------------------- reading the source

def _blocks(text: str) -> list[tuple[str, str, str, dict[str, str], str]]:
    """Split markdown into ("text", raw, "", {}, "") and ("directive", raw, name, options, body) parts;
    the directive's argument is stored in ``options["arg"]``."""
    lines, parts, plain = text.split("\n"), [], []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i].strip())
        if not m:
            plain.append(lines[i])
            i += 1
            continue
        close = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == m["fence"]), None)
        if close is None:
            raise AssignmentError(f"the {{{m['name']}}} directive opened by {lines[i].strip()!r} is never closed")
        if "\n".join(plain).strip():
            parts.append(("text", "\n".join(plain).strip(), "", {}, ""))
        plain = []
        inner = lines[i + 1:close]
        options = {"arg": m["arg"].strip()}
        while inner and inner[0].startswith(":"):
            key, _, value = inner.pop(0)[1:].partition(":")
            options[key.strip()] = value.strip()
        parts.append(("directive", "\n".join(lines[i:close + 1]), m["name"], options, "\n".join(inner).strip()))
        i = close + 1
    if "\n".join(plain).strip():
        parts.append(("text", "\n".join(plain).strip(), "", {}, ""))
    return parts


def _globals_used(code: Any) -> set[str]:
    names = {i.argval for i in dis.get_instructions(code) if i.opname in ("LOAD_GLOBAL", "LOAD_NAME")}
    for const in code.co_consts:
        if hasattr(const, "co_code"):
            names |= _globals_used(const)
    return names


def _check_cell(cell: Any, where: str) -> None:
    """A check cell is otter's exception-based test: one function (taking the student's functions by
    name, importing what it uses) and a call to it; otter runs the function alone in its test file."""
    import ast

    tree = ast.parse(cell.source)
    if not tree.body or not isinstance(tree.body[0], ast.FunctionDef) or len(tree.body) > 2:
        raise AssignmentError(f"{where}: a check cell holds one function definition and a call to it.")
    module = compile(ast.Module(body=[tree.body[0]], type_ignores=[]), "<check>", "exec")
    code = next(c for c in module.co_consts if hasattr(c, "co_code"))
    missing = sorted(_globals_used(code) - set(dir(builtins)))
    if missing:
        raise AssignmentError(f"{where}: check {tree.body[0].name}() uses {missing} from the notebook; the grader "
                              "runs it alone: import them inside the function or take them as parameters.")


def _tags(cell: Any) -> set[str]:
    return set(cell.get("metadata", {}).get("tags", []))


def read_exercises(path: Path) -> Exercises:
    """Read a chapter's MyST source and parse its exercises section (see the module docstring)."""
    import jupytext

    nb = jupytext.read(path)
    if "kernelspec" not in nb.metadata:
        raise AssignmentError(f"{path.name} is not a notebook: its front matter names no kernelspec.")
    where = f"{path.name}, section {HEADING!r}"
    starts = [(i, m.start()) for i, c in enumerate(nb.cells) if c.cell_type == "markdown"
              for m in [re.search(rf"^{HEADING}\s*$", c.source, re.M)] if m]
    if not starts:
        raise AssignmentError(f"{path.name} has no {HEADING!r} section: the exercises are its last section.")
    start, offset = starts[0]
    if nb.cells[start].source[:offset].strip():  # the heading opens the cell of the exercises
        before = nbformat.v4.new_markdown_cell(nb.cells[start].source[:offset].rstrip())
        nb.cells[start].source = nb.cells[start].source[offset:]
        nb.cells.insert(start, before)
        start += 1
    later = [m.group(0) for c in nb.cells[start + 1:] if c.cell_type == "markdown"
             for m in [re.search(r"^#{1,2} .*$", c.source, re.M)] if m]
    if later:
        raise AssignmentError(f"{where} must be the chapter's last section; found {later[0]!r} after it.")
    items: list[Any] = []
    q: Question | None = None
    state = "none"  # none | statement | solution | checks | written
    for cell in nb.cells[start + 1:]:
        if cell.cell_type == "code":
            tags = _tags(cell)
            if state == "solution":
                q.solution.append(cell)
            elif tags & {CHECK, HIDDEN}:
                if q is None or not q.graded or state not in ("checks",) or not q.solution:
                    raise AssignmentError(f"{where}: a cell tagged {sorted(tags & {CHECK, HIDDEN})} must follow "
                                          "an exercise's solution-start/solution-end block.")
                if HIDDEN in tags and "remove-cell" not in tags:
                    raise AssignmentError(f"{where}, exercise {q.name!r}: a {HIDDEN!r} cell must also be tagged "
                                          "'remove-cell' so that the book does not show it.")
                _check_cell(cell, f"{where}, exercise {q.name!r}")
                q.checks.append(cell)
            else:
                state = "none"
                items.append(cell)
            continue
        for kind, raw, name, options, body in _blocks(cell.source):
            if kind == "directive" and name == "exercise":
                title, label = options["arg"], options.get("label", "")
                points = _POINTS.search(title)
                if not label or not points:
                    raise AssignmentError(f"{where}: exercise {title!r} needs a ':label:' and its points at the end "
                                          "of its title, e.g. 'Lemma 1 in closed form, 2 points'.")
                if label in {x.name for x in items if isinstance(x, Question)}:
                    raise AssignmentError(f"{where}: two exercises are labelled {label!r}.")
                q = Question(label, title[:points.start()].strip(), float(points["points"]), body)
                items.append(q)
                state = "statement"
            elif kind == "directive" and name in ("solution-start", "solution"):
                if q is None or state != "statement" or options["arg"] != q.name:
                    raise AssignmentError(f"{where}: a {{{name}}} {options['arg']!r} must directly follow "
                                          "the exercise with that label.")
                if name == "solution":
                    q.graded, q.solution, state = False, [body], "written"
                else:
                    state = "solution"
            elif kind == "directive" and name == "solution-end":
                if state != "solution" or not q.solution:
                    raise AssignmentError(f"{where}: a {{solution-end}} without a solution-start and code cells.")
                if not any("# BEGIN SOLUTION" in c.source for c in q.solution):
                    raise AssignmentError(f"{where}, exercise {q.name!r}: no '# BEGIN SOLUTION' / '# END SOLUTION' "
                                          "lines in its solution cells: nothing to replace in the student version.")
                state = "checks"
            elif state == "solution":
                raise AssignmentError(f"{where}, exercise {q.name!r}: only code cells may sit between "
                                      "solution-start and solution-end.")
            else:
                state = "none"
                items.append(raw)
    for question in (x for x in items if isinstance(x, Question)):
        if question.graded and not any(CHECK in _tags(c) for c in question.checks):
            raise AssignmentError(f"{where}, exercise {question.name!r}: a graded exercise needs a solution and at "
                                  f"least one cell tagged {CHECK!r}; a written one a {{solution}} directive.")
    if not any(isinstance(x, Question) for x in items):
        raise AssignmentError(f"{where} holds no exercise.")
    return Exercises(path.stem, nb.cells[:start], nb.cells[start], items, dict(nb.metadata["kernelspec"]))


def without_solutions(nb: Any) -> Any:
    """A copy of notebook ``nb`` (a chapter, executed or not) without its exercises' solutions: the code cells
    between ``{solution-start}`` and ``{solution-end}``, those two directives and every ``{solution}``
    directive (a written exercise's model answer) are removed; exercises, checks and everything else stay.
    ``mmrepro book --no-solutions`` stages the chapters through it (a book for a course)."""
    import copy

    out, inside = copy.deepcopy(nb), False
    cells = []
    for cell in out.cells:
        if cell.cell_type != "markdown":
            if not inside:
                cells.append(cell)
            continue
        if "{solution" not in cell.source:
            if not inside:
                cells.append(cell)
            continue
        kept = []
        for kind, raw, name, _, _ in _blocks(cell.source):
            if kind == "directive" and name == "solution-start":
                inside = True
            elif kind == "directive" and name == "solution-end":
                inside = False
            elif not inside and not (kind == "directive" and name == "solution"):
                kept.append(raw)
        if kept:
            cell.source = "\n\n".join(kept)
            cells.append(cell)
    out.cells = cells
    return out


# ----------------------------------------------------------------------------- otter's master notebook

def _raw(text: str) -> Any:
    return nbformat.v4.new_raw_cell(text)


def _code(cell: Any, source: str | None = None) -> Any:
    meta = {k: v for k, v in cell.get("metadata", {}).items() if k != "tags"}
    tags = [t for t in cell.get("metadata", {}).get("tags", []) if t not in (CHECK, HIDDEN)]
    return nbformat.v4.new_code_cell(cell.source if source is None else source,
                                     metadata={**meta, **({"tags": tags} if tags else {})})


def master_notebook(ex: Exercises) -> Any:
    """The otter-assign master notebook (format v1) of a chapter's exercises."""
    config = {"name": ex.chapter, "init_cell": False, "check_all_cell": False, "export_cell": False,
              "run_tests": False, "generate": True, "tests": {"files": False, "ok_format": False}}
    cells = [_raw("# ASSIGNMENT CONFIG\n" + json.dumps(config, indent=1))]
    for cell in ex.body:
        if cell.cell_type == "code" and cell.source.strip() and _OTTER_DROPS.match(cell.source.split("\n")[0]):
            raise AssignmentError(f"{ex.chapter}: otter-grader would drop the code cell starting "
                                  f"{cell.source.splitlines()[0]!r}; reword its first line.")
        if cell.cell_type == "code":
            cell = _code(cell)
            cell.metadata["tags"] = [*cell.metadata.get("tags", []), IGNORE]
        cells.append(cell)
    cells += [ex.heading, nbformat.v4.new_code_cell(
        f'# the checks of the exercises: grader.check("name") after each one\nimport otter\n'
        f'grader = otter.Notebook("{ex.chapter}.ipynb")')]
    number = 0
    for item in ex.items:
        if isinstance(item, str):
            cells.append(nbformat.v4.new_markdown_cell(item))
        elif not isinstance(item, Question):
            cells.append(_code(item))
        else:
            number += 1
            head = {"name": item.name, "points": item.points, **({} if item.graded else {"manual": True})}
            cells += [_raw("# BEGIN QUESTION\n" + "\n".join(f"{k}: {json.dumps(v)}" for k, v in head.items())),
                      nbformat.v4.new_markdown_cell(item.prompt(number)), _raw("# BEGIN SOLUTION")]
            if item.graded:
                cells += [_code(c) for c in item.solution]
                cells += [_raw("# END SOLUTION"), _raw("# BEGIN TESTS")]
                cells += [_code(c, ("# HIDDEN\n" if HIDDEN in _tags(c) else "") + c.source) for c in item.checks]
                cells.append(_raw("# END TESTS"))
            else:
                cells += [nbformat.v4.new_markdown_cell(item.solution[0]), _raw("# END SOLUTION")]
            cells.append(_raw("# END QUESTION"))
    return nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": ex.kernelspec,
                                                           "language_info": {"name": "python"}})


# ----------------------------------------------------------------------------- assign

def _otter() -> Any:
    try:
        import otter  # noqa: F401
    except ImportError:
        raise AssignmentError("otter-grader is not installed: pip install 'mmrepro[classroom]' "
                              "(or pip install otter-grader==7.0.0).") from None
    return otter


def _quietly(func, *args, **kwargs):
    """Run an otter command with everything it and its kernels print captured (file descriptors 1 and 2);
    the captured text goes into the error when it fails."""
    with tempfile.TemporaryFile(mode="w+") as sink:
        sys.stdout.flush()
        sys.stderr.flush()
        saved = os.dup(1), os.dup(2)
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # otter's own deprecation warnings say nothing to a teacher
                return func(*args, **kwargs)
        except Exception as err:
            sink.seek(0)
            raise AssignmentError(f"otter-grader failed ({type(err).__name__}: {err}); its output:\n"
                                  f"{sink.read()[-2000:]}") from None
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def assign(paths: list[Path], out: Path) -> list[Path]:
    """Write, for every chapter, ``out/student/<chapter>.ipynb``, ``out/solution/<chapter>.ipynb`` and
    ``out/autograder/<chapter>-autograder.zip`` plus ``<chapter>.json`` (its questions). Everything is
    built in a temporary folder first: a failure leaves ``out`` as it was. Returns the written files."""
    _otter()
    from otter.assign import main as otter_assign

    parsed = [(path, read_exercises(path)) for path in paths]
    written = []
    with tempfile.TemporaryDirectory(prefix="mmrepro-assign-") as tmp:
        staged = Path(tmp) / "out"
        for path, ex in parsed:
            work = Path(tmp) / ex.chapter
            work.mkdir()
            nbformat.write(master_notebook(ex), work / f"{ex.chapter}.ipynb")
            result = work / "result"
            _quietly(otter_assign, str(work / f"{ex.chapter}.ipynb"), str(result), no_pdfs=True, no_run_tests=True)
            _check_body(ex, nbformat.read(result / "student" / f"{ex.chapter}.ipynb", as_version=4))
            targets = {staged / "student" / f"{ex.chapter}.ipynb": result / "student" / f"{ex.chapter}.ipynb",
                       staged / "solution" / f"{ex.chapter}.ipynb": result / "autograder" / f"{ex.chapter}.ipynb",
                       staged / "autograder" / f"{ex.chapter}-autograder.zip": next((result / "autograder").glob("*.zip"))}
            for target, source in targets.items():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target)
            manifest = {"chapter": ex.chapter, "grader": 1, "questions": [
                {"name": q.name, "title": q.title, "points": q.points, "graded": q.graded,
                 **({"checks": [_check_record(c) for c in q.checks]} if q.graded else {})} for q in ex.questions]}
            (staged / "autograder" / f"{ex.chapter}.json").write_text(json.dumps(manifest, indent=1))
            written += [*targets, staged / "autograder" / f"{ex.chapter}.json"]
        final = []
        for path in written:
            target = out / path.relative_to(staged)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
            final.append(target)
    return final


def _check_record(cell: Any) -> dict[str, Any]:
    """A check cell as the grader keeps it: its function's name and source (the call after it is the
    grader's to make), and whether it is hidden."""
    import ast

    definition = ast.parse(cell.source).body[0]
    return {"function": definition.name, "hidden": HIDDEN in _tags(cell),
            "source": ast.get_source_segment(cell.source, definition)}


def _check_body(ex: Exercises, student: Any) -> None:
    """The student version must hold the chapter's body unchanged (otter assign may not touch it)."""
    sources = [c.source for c in student.cells]
    body = [c.source for c in ex.body]
    if sources[:len(body)] != body:
        raise AssignmentError(f"{ex.chapter}: otter assign changed the chapter's body; the student version "
                              "would not be the chapter.")


# ----------------------------------------------------------------------------- grade

def grade(submission: Path, autograder: Path | None = None, root: Path | None = None,
          limits: Limits | None = None) -> Report:
    """Grade ``submission`` (:mod:`mmrepro.publish.grading`: its code in a process of its own, the checks
    outside it) against ``autograder`` (a folder written by :func:`assign`; default: one built now from
    the chapter's source in this checkout, read and removed before the submission runs)."""
    from mmrepro.publish import grading

    if autograder is not None:
        return grading.grade(Path(submission), Path(autograder), limits)
    from mmrepro.publish import parameters

    nb, chapter = grading.read_submission(Path(submission))
    with tempfile.TemporaryDirectory(prefix="mmrepro-grade-") as tmp:
        assign([parameters.find_notebook(chapter, parameters.root_or_fail(root))], Path(tmp))
        questions = grading.load_checks(Path(tmp) / "autograder", chapter)
    return grading.grade_questions(nb, chapter, questions, None, limits)
