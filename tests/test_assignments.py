"""Classroom assignments: the exercises sections parse, `mmrepro assign` writes student, solution and
autograder versions, and `mmrepro grade` (otter-grader, locally) scores them as it must."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import nbformat
import pytest

from mmrepro.publish import assignments, parameters
from mmrepro.publish.assignments import AssignmentError, read_exercises
from mmrepro.publish.cli import main

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = Path(__file__).parent / "fixtures" / "exercises.md"
CHAPTERS = [p for p in parameters.notebooks(ROOT) if p.parent.name == "notebooks"]
PAPERMILL = Path(sys.executable).parent / "papermill"


@pytest.fixture(scope="module")
def fixture_assigned(tmp_path_factory) -> Path:
    """The fixture chapter's assignment, written by `mmrepro assign`."""
    out = tmp_path_factory.mktemp("fixture-assignment")
    assert main(["assign", str(FIXTURE), "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def assigned(tmp_path_factory) -> Path:
    """One `mmrepro assign` of every chapter."""
    out = tmp_path_factory.mktemp("assignment")
    assignments.assign(CHAPTERS, out)
    return out


def solution_lines(path: Path) -> set[str]:
    """The answer lines of a chapter's exercises (between the solution markers) that occur nowhere else in it."""
    inside, outside, keep = set(), set(), False
    for line in path.read_text().splitlines():
        if "# BEGIN SOLUTION" in line or "# END SOLUTION" in line:
            keep = "BEGIN" in line
            continue
        (inside if keep else outside).add(line.strip())
    return {line for line in inside - outside if len(line) > 3}


def solve(student: Path, solution: Path, question: str, out: Path) -> Path:
    """The student notebook with the answer cell of ``question`` taken from the solution notebook."""
    def answer_index(nb) -> int:
        checks = [i for i, c in enumerate(nb.cells) if c.source.strip() == f'grader.check("{question}")']
        assert len(checks) == 1, question
        return checks[0] - 1

    nb, sol = nbformat.read(student, as_version=4), nbformat.read(solution, as_version=4)
    nb.cells[answer_index(nb)].source = sol.cells[answer_index(sol)].source
    nbformat.write(nb, out)
    return out


def run_student(path: Path, tmp_path: Path) -> Path:
    """Execute a student notebook with papermill (profile smoke) from its own folder, as a student would."""
    done = tmp_path / f"{path.stem}-run.ipynb"
    env = {**os.environ, "MMREPRO_RESULTS": str(tmp_path / "results")}
    subprocess.run([str(PAPERMILL), str(path), str(done), "-p", "profile", "smoke", "--cwd", str(path.parent),
                    "--engine", "mmrepro"],
                   env=env, check=True, capture_output=True, text=True)
    return done


# ----------------------------------------------------------------------------- the fixture chapter

def test_fixture_exercises_are_read():
    ex = read_exercises(FIXTURE)
    assert [(q.name, q.points, q.graded) for q in ex.questions] == [
        ("fixture-mean", 2.0, True), ("fixture-clip", 1.0, True), ("fixture-written", 3.0, False)]
    assert ex.questions[0].title == "A mean" and "mean_of(values)" in ex.questions[0].statement
    assert [len(q.checks) for q in ex.questions] == [2, 1, 0]
    assert ex.body[0].source.startswith("# Exercises fixture")


def write_chapter(tmp_path: Path, exercises: str) -> Path:
    head = FIXTURE.read_text().split("## Exercises")[0]
    path = tmp_path / "broken.md"
    path.write_text(head + exercises)
    return path


GOOD = FIXTURE.read_text().split("## Exercises")[1]


def test_a_chapter_without_exercises_is_refused(tmp_path):
    path = tmp_path / "plain.md"
    path.write_text(FIXTURE.read_text().replace("## Exercises", "## Practice"))
    with pytest.raises(AssignmentError, match="has no '## Exercises' section"):
        read_exercises(path)


@pytest.mark.parametrize("change, message", [
    (lambda s: s + "\n## Afterword\n\nMore text.\n", "must be the chapter's last section; found '## Afterword'"),
    (lambda s: s.replace("A mean, 2 points", "A mean"), "needs a ':label:' and its points"),
    (lambda s: s.replace(":label: fixture-clip", ":label: fixture-mean"), "two exercises are labelled 'fixture-mean'"),
    (lambda s: s.replace("[hidden-check, remove-cell]", "[hidden-check]"), "must also be tagged 'remove-cell'"),
    (lambda s: s.replace("    import numpy as np\n    from mmrepro.publish.exercises import agree\n    agree(clip_to",
                         "    from mmrepro.publish.exercises import agree\n    agree(clip_to"), "uses ['np'] from the notebook"),
    (lambda s: s.replace("    # BEGIN SOLUTION\n    values = np.asarray(values, dtype=float)\n    return np.minimum",
                         "    values = np.asarray(values, dtype=float)\n    return np.minimum").replace(
        "high)\n    # END SOLUTION", "high)"), "no '# BEGIN SOLUTION' / '# END SOLUTION' lines"),
    (lambda s: s.replace("```{solution-start} fixture-clip", "```{solution-start} fixture-mean"),
     "must directly follow the exercise with that label"),
    (lambda s: s.replace("```{solution} fixture-written\n:class: dropdown\n\nNothing: the fixture's body does not "
                         "depend on the seed.\n```\n", ""), "a graded exercise needs a solution"),
])
def test_malformed_exercises_are_refused_with_a_reason(tmp_path, change, message):
    path = write_chapter(tmp_path, "## Exercises" + change(GOOD))
    with pytest.raises(AssignmentError, match=re.escape(message)):
        read_exercises(path)


def test_fixture_assignment_files(fixture_assigned):
    student = nbformat.read(fixture_assigned / "student" / "exercises.ipynb", as_version=4)
    solution = nbformat.read(fixture_assigned / "solution" / "exercises.ipynb", as_version=4)
    manifest = json.loads((fixture_assigned / "autograder" / "exercises.json").read_text())
    assert [q["name"] for q in manifest["questions"]] == ["fixture-mean", "fixture-clip", "fixture-written"]
    assert "check_mean_hidden" not in json.dumps(student) and "check_mean_hidden" in json.dumps(solution)
    with zipfile.ZipFile(fixture_assigned / "autograder" / "exercises-autograder.zip") as bundle:
        assert "check_mean_hidden" in bundle.read("tests/fixture-mean.py").decode()
    assert "_Type your answer here" in json.dumps(student)
    model_answer = "does not depend on the seed"
    assert model_answer in json.dumps(solution) and model_answer not in json.dumps(student)


def test_a_failed_assign_leaves_the_folder_as_it_was(tmp_path):
    out = tmp_path / "out"
    (out / "student").mkdir(parents=True)
    (out / "student" / "exercises.ipynb").write_text("the teacher's copy")
    broken = write_chapter(tmp_path, "## Exercises" + GOOD.replace("[hidden-check, remove-cell]", "[hidden-check]"))
    with pytest.raises(AssignmentError):
        assignments.assign([FIXTURE, broken], out)
    assert (out / "student" / "exercises.ipynb").read_text() == "the teacher's copy"
    assert sorted(p.name for p in out.rglob("*")) == ["exercises.ipynb", "student"]


def test_fixture_grading_from_the_command_line(fixture_assigned, tmp_path, capsys):
    ag = str(fixture_assigned / "autograder")
    one = solve(fixture_assigned / "student" / "exercises.ipynb", fixture_assigned / "solution" / "exercises.ipynb",
                "fixture-clip", tmp_path / "one.ipynb")
    assert main(["grade", str(one), "--autograder", ag]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1] == "score: 1 / 3"
    assert re.search(r"fixture-mean\s+0 / 2\s+failed: AssertionError: mean_of\(\[1, 2, 3\]\): got None", lines[1])
    assert re.search(r"fixture-clip\s+1 / 1\s+all checks pass", lines[2])
    assert re.search(r"fixture-written\s+manual\s+written answer \(3 points\): graded by the teacher", lines[3])


def test_grade_refuses_what_it_cannot_grade(fixture_assigned, tmp_path, capsys):
    plain = tmp_path / "plain.ipynb"
    nbformat.write(nbformat.v4.new_notebook(), plain)
    assert main(["grade", str(plain), "--autograder", str(fixture_assigned / "autograder")]) == 2
    assert "is not a notebook written by `mmrepro assign`" in capsys.readouterr().err
    assert main(["grade", str(fixture_assigned / "student" / "exercises.ipynb"), "--autograder", str(tmp_path)]) == 2
    assert "holds no autograder for 'exercises'" in capsys.readouterr().err


# ----------------------------------------------------------------------------- grading a submission it cannot forge

def submit(assigned: Path, answers: dict[str, str], out: Path, before: str = "") -> Path:
    """The fixture's student notebook with the answer cells of ``answers`` (question -> source) replaced, and a
    code cell ``before`` the first exercise (what a student may add anywhere)."""
    nb = nbformat.read(assigned / "student" / "exercises.ipynb", as_version=4)
    for question, source in answers.items():
        at = [i for i, c in enumerate(nb.cells) if c.source.strip() == f'grader.check("{question}")']
        nb.cells[at[0] - 1].source = source
    if before:
        first = next(i for i, c in enumerate(nb.cells) if c.source.startswith("### Exercise 1"))
        nb.cells.insert(first, nbformat.v4.new_code_cell(before))
    nbformat.write(nb, out)
    return out


def notes_of(report) -> dict[str, str]:
    return {r[0]: r[3] for r in report.rows}


READS_THE_CHECKS = """
import glob, os
found = 0
for pattern in ("tests/*.py", "*/tests/*.py", "../**/tests/*.py", "**/*.json", "../*.json", "../**/*.py",
                os.path.join(os.environ.get("TMPDIR", "/tmp"), "**", "*.py"), "/tmp/mmrepro-*/**/*"):
    for path in glob.glob(pattern, recursive=True):
        try:
            found += "check_mean_hidden" in open(path, errors="ignore").read()
        except OSError:
            pass

def mean_of(values):
    return float(found)  # how many files holding the hidden check it could read
"""


def test_a_submission_cannot_read_the_hidden_checks(fixture_assigned, tmp_path):
    """The submission runs in an empty folder of its own and the checks never enter its process: it finds
    no file holding a hidden check (its answer reports how many it read: 0)."""
    report = assignments.grade(submit(fixture_assigned, {"fixture-mean": READS_THE_CHECKS}, tmp_path / "s.ipynb"),
                               fixture_assigned / "autograder")
    assert "expected 2.0, got 0.0" in notes_of(report)["fixture-mean"], report.text()
    assert "check_mean_hidden" not in report.text() and report.score == 0


REWRITES_THE_CHECKS = r"""
import glob, json, os, re, zipfile
EMPTY = "from otter.test_files import test_case\n\nOK_FORMAT = False\nname = {name!r}\npoints = {points}\n\n" \
        "@test_case(points=None, hidden=False)\ndef check(mean_of=None, clip_to=None):\n    pass\n"
for path in glob.glob("tests/*.py") + glob.glob("../**/tests/*.py", recursive=True):
    name = os.path.basename(path)[:-3]
    open(path, "w").write(EMPTY.format(name=name, points=2))
for folder in AUTOGRADERS:  # a student who found the teacher's folder (its path is in the grader's command line)
    manifest = os.path.join(folder, "exercises.json")
    data = json.load(open(manifest))
    for q in data["questions"]:
        for check in q.get("checks", []):
            check["source"] = f"def {check['function']}(*args):\n    pass\n"
    json.dump(data, open(manifest, "w"))
    bundle = os.path.join(folder, "exercises-autograder.zip")
    with zipfile.ZipFile(bundle) as z:
        files = {n: z.read(n) for n in z.namelist()}
    with zipfile.ZipFile(bundle, "w") as z:
        for n, data in files.items():
            z.writestr(n, EMPTY.format(name=n[6:-3], points=2) if n.startswith("tests/") else data)
"""


def test_a_submission_that_rewrites_the_checks_scores_zero_on_them(fixture_assigned, tmp_path):
    """Wrong answers (42, and an unanswered clip) and a cell that rewrites every check it can find as an empty
    body (otter's test files, and the teacher's autograder folder itself): the checks were read before the
    submission started and run outside it, so it scores 0 on them, and the report names the tampering."""
    import shutil

    teacher = tmp_path / "autograder"
    shutil.copytree(fixture_assigned / "autograder", teacher)
    tamper = f"AUTOGRADERS = [{str(teacher)!r}]\n" + REWRITES_THE_CHECKS
    answers = {"fixture-mean": "def mean_of(values):\n    return 42\n"}
    report = assignments.grade(submit(fixture_assigned, answers, tmp_path / "s.ipynb", before=tamper), teacher)
    assert report.score == 0 and report.possible == 3, report.text()
    assert "tampering: the autograder's files" in report.text() and "changed while the submission ran" in report.text()
    rewritten = json.loads((teacher / "exercises.json").read_text())["questions"][0]["checks"]
    assert all(c["source"].endswith("pass\n") for c in rewritten)  # the attempt itself did happen


def test_a_stalling_cell_costs_only_what_depends_on_it(fixture_assigned, tmp_path):
    """`while True: pass` in the cell of one answer: that cell is stopped at the limit per cell, the next
    cells run in a new process, the solved exercise keeps its points and the report says why."""
    from mmrepro.publish.grading import Limits

    solution = nbformat.read(fixture_assigned / "solution" / "exercises.ipynb", as_version=4)
    clip = next(c.source for c in solution.cells if c.source.startswith("def clip_to"))
    answers = {"fixture-mean": "def mean_of(values):\n    return sum(values) / len(values)\n\nwhile True:\n    pass\n",
               "fixture-clip": clip}
    started = time.monotonic()
    report = assignments.grade(submit(fixture_assigned, answers, tmp_path / "s.ipynb"), fixture_assigned / "autograder",
                               limits=Limits(cell_seconds=5, total_seconds=240))
    assert time.monotonic() - started < 200
    notes = notes_of(report)
    assert notes["fixture-mean"].startswith("not answered: `mean_of` is not defined: cell ") and \
        "did not finish within 5 s" in notes["fixture-mean"], report.text()
    assert notes["fixture-clip"] == "all checks pass" and report.score == 1
    assert any("was stopped: did not finish within 5 s" in n for n in report.notes)


def test_the_grader_names_the_submissions_own_error(fixture_assigned, tmp_path):
    """A syntax error in a graded function is named with its line (not "expected a function, got None"); a
    function that kills its own process costs that question only."""
    answers = {"fixture-mean": "def mean_of(values):\n    total = sum(values\n    return total / len(values)\n",
               "fixture-clip": "import os\n\ndef clip_to(values, low, high):\n    os._exit(3)\n"}
    report = assignments.grade(submit(fixture_assigned, answers, tmp_path / "s.ipynb"), fixture_assigned / "autograder")
    notes = notes_of(report)
    assert re.fullmatch(r"not answered: `mean_of` is not defined: cell \d+, which defines it, raised SyntaxError: "
                        r".+ \(line \d\)", notes["fixture-mean"]), report.text()
    assert notes["fixture-clip"] == "failed: stopped: its process ended (exit code 3)", report.text()
    assert report.score == 0


def test_a_submission_that_is_not_a_notebook_is_one_line(tmp_path, fixture_assigned, capsys):
    for content in ('{"cells": 5}', "[1, 2]", "not json"):
        (tmp_path / "bad.ipynb").write_text(content)
        assert main(["grade", str(tmp_path / "bad.ipynb"), "--autograder", str(fixture_assigned / "autograder")]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"mmrepro: error: cannot read the submission {tmp_path / 'bad.ipynb'}") and \
            len(err.strip().splitlines()) == 1, err


def test_fixture_student_version_runs_to_the_end(fixture_assigned, tmp_path):
    done = nbformat.read(run_student(fixture_assigned / "student" / "exercises.ipynb", tmp_path), as_version=4)
    checks = [c for c in done.cells if c.source.startswith("grader.check(")]
    assert len(checks) == 2 and all("Test case failed" in json.dumps(c.outputs) for c in checks)
    assert json.loads((tmp_path / "results" / "exercises.json").read_text())["profile"] == "smoke"


# ----------------------------------------------------------------------------- every chapter

@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_exercises(chapter):
    questions = read_exercises(chapter).questions
    graded = [q for q in questions if q.graded]
    assert len(graded) >= 3 and len(questions) - len(graded) >= 1, "three graded exercises and a written one"
    for q in graded:
        tags = [set(c.metadata.get("tags", [])) for c in q.checks]
        assert any("check" in t for t in tags) and any("hidden-check" in t for t in tags), q.name


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_student_version_is_papermill_ready_without_solutions(assigned, chapter):
    path = assigned / "student" / f"{chapter.stem}.ipynb"
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata["kernelspec"]["name"] == "python3" and nb.metadata["otter"]["assignment_name"] == chapter.stem
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and "profile: str" in tagged[0].source
    text = [line.strip() for c in nb.cells for line in c.source.splitlines()]
    text += [line.strip() for t in nb.metadata["otter"]["tests"].values() for line in t.splitlines()]
    leaked = solution_lines(chapter) & set(text)
    assert not leaked, f"solution lines in the student version: {sorted(leaked)[:3]}"
    hidden = [c for q in read_exercises(chapter).questions for c in q.checks if "hidden-check" in c.metadata["tags"]]
    names = [re.match(r"def (\w+)", c.source).group(1) for c in hidden]
    assert names and not any(n in json.dumps(nb) for n in names), "hidden checks in the student version"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_solution_scores_full_marks(assigned, chapter):
    report = assignments.grade(assigned / "solution" / f"{chapter.stem}.ipynb", assigned / "autograder")
    assert report.possible == sum(q.points for q in read_exercises(chapter).questions if q.graded)
    assert report.score == report.possible, report.text()


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_student_version_runs_with_smoke_and_scores_zero(assigned, chapter, tmp_path):
    done = run_student(assigned / "student" / f"{chapter.stem}.ipynb", tmp_path)
    report = assignments.grade(done, assigned / "autograder")
    assert report.score == 0 and report.possible > 0, report.text()
    assert json.loads((tmp_path / "results" / f"{chapter.stem}.json").read_text())["profile"] == "smoke"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_one_solved_exercise_scores_its_points(assigned, chapter, tmp_path):
    graded = [q for q in read_exercises(chapter).questions if q.graded]
    question = graded[len(chapter.stem) % len(graded)]  # a different exercise from chapter to chapter
    one = solve(assigned / "student" / f"{chapter.stem}.ipynb", assigned / "solution" / f"{chapter.stem}.ipynb",
                question.name, tmp_path / "one.ipynb")
    report = assignments.grade(one, assigned / "autograder")
    assert report.score == question.points, report.text()
    assert {r[0]: r[1] for r in report.rows}[question.name] == question.points


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_the_book_without_solutions_keeps_every_exercise_and_check(chapter):
    """What `mmrepro book --no-solutions` stages: no solution line and no model answer, every exercise and
    every public check cell still there."""
    import jupytext

    nb = jupytext.read(chapter)
    course = assignments.without_solutions(nb)
    lines = {line.strip() for c in course.cells for line in c.source.splitlines()}
    assert not solution_lines(chapter) & lines
    text = json.dumps([c.source for c in course.cells])
    assert "{solution" not in text and "BEGIN SOLUTION" not in text
    assert text.count("{exercise}") == json.dumps([c.source for c in nb.cells]).count("{exercise}") >= 4
    public = [c.source for c in nb.cells if "check" in c.metadata.get("tags", [])]
    assert public and all(source in [c.source for c in course.cells] for source in public)
