"""Every notebook with its smoke parameters, the -W book build, and the rendered pages offline."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from mmrepro.publish import book, claims, parameters, scorecard

from .browser import chromium, inspect_pages
from .pages import page_problems

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = [p for p in parameters.notebooks(ROOT) if p.parent.name == "notebooks"]


@pytest.fixture(scope="session")
def built(tmp_path_factory) -> Path:
    """Execute every notebook with profile=smoke (the chapters all at once, as `mmrepro book` runs them)
    and build the book with -W; returns the build folder."""
    out = tmp_path_factory.mktemp("build")
    book.build_book(ROOT, profile="smoke", build=out, jobs=None)
    return out


def test_every_notebook_source_is_in_the_toc():
    sources = {p.resolve() for p in (ROOT / "notebooks").glob("*.md")}
    assert sources == {p.resolve() for p in CHAPTERS}, "a notebook in notebooks/ is missing from _toc.yml"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_results_file(built, chapter):
    data = json.loads((built / "results" / f"{chapter.stem}.json").read_text())
    assert data["profile"] == "smoke" and data["params"]["profile"] == "smoke"
    assert data["notebook"] == chapter.stem
    for key in ("seed", "device", "mmrepro_version", "git_sha"):
        assert data[key] is not None, key
    assert data["values"], "a chapter must report its numbers"
    assert data["claims"], "a chapter must check at least one claim"
    for claim in data["claims"]:
        claims.validate(claim)  # every field present, the verdict the one its interval gives
        if claim["kind"] == "empirical":
            assert claim["reason"], "a smoke run's empirical claims are not comparable with the paper"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_has_explorer_and_static_fallback(built, chapter):
    """Every chapter has an explorer: ipywidgets controls that ran in the executed notebook (a widget
    view in the cell's outputs, removed from the page because the offline book has no widget
    JavaScript), and a static figure of the same view glued under a key ending in
    ``explorer_static`` that the page shows as an image."""
    nb = json.loads((built / "executed" / f"{chapter.stem}.ipynb").read_text())
    cells = [c for c in nb["cells"] if c["cell_type"] == "code"
             and any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in c["outputs"])]
    assert cells, f"{chapter.stem} has no explorer (no cell created ipywidgets controls when the notebook ran)"
    for cell in cells:
        assert "remove-output" in cell["metadata"].get("tags", [])
    figures = json.loads((built / "results" / f"{chapter.stem}.json").read_text())["values"]
    static = [k for k, v in figures.items() if k.endswith("explorer_static") and isinstance(v, dict) and "figure" in v]
    assert static, f"{chapter.stem} glues no explorer_static figure"
    page = (built / "site" / "_build" / "html" / "notebooks" / f"{chapter.stem}.html").read_text()
    assert "widget-view" not in page
    figure = re.search(rf'<figure[^>]*id="{chapter.stem}-explorer".*?</figure>', page, re.S)
    assert figure and "<img" in figure.group(0), f"the page shows no static explorer figure ({chapter.stem}-explorer)"


def test_scorecard_lists_every_claim(built):
    runs = scorecard.load_results(built / "results")
    html = (built / "site" / "_build" / "html" / "book" / "scorecard.html").read_text()
    ids = [c["id"] for r in runs for c in r["claims"]]
    assert ids and all(i in html for i in ids)


def test_executed_notebooks_are_what_the_book_shows(built):
    html = (built / "site" / "_build" / "html" / "notebooks")
    for chapter in CHAPTERS:
        assert (html / f"{chapter.stem}.html").is_file()
        assert not (built / "site" / "notebooks" / f"{chapter.stem}.md").exists()


def test_pages_render_offline(built, tmp_path):
    if chromium() is None:
        if os.environ.get("MMREPRO_REQUIRE_BROWSER"):
            pytest.fail("MMREPRO_REQUIRE_BROWSER is set but no chromium was found")
        pytest.skip("no chromium: install Debian's chromium to check the rendered pages")
    html = built / "site" / "_build" / "html"
    pages = [html / "book" / "intro.html", html / "book" / "scorecard.html", html / "book" / "teachers.html",
             *[html / "notebooks" / f"{c.stem}.html" for c in CHAPTERS]]
    reports = inspect_pages(pages, screenshot_dir=ROOT / "_build" / "screenshots")  # kept for review
    for report in reports:
        assert not report.external, f"{report.url} reached for the network: {report.external[:5]}"
        assert not report.failed, f"{report.url} has missing assets: {report.failed[:5]}"
        assert not report.broken_images, f"{report.url} has broken images: {report.broken_images[:5]}"
        assert report.raw_tex == 0, f"{report.url}: {report.raw_tex} formulas were not typeset"
    for report in reports[3:]:  # the chapters
        assert report.images > 0, f"{report.url} shows no figure"
        assert report.math > 0, f"{report.url} shows no typeset math"


def test_built_pages_show_no_warning_traceback_or_raw_value(built):
    """No page of the built book shows a Python warning, a traceback, stderr output or a raw Python value
    (a string's repr, ``<... at 0x...>``, ``np.float64(...)``) where formatted output belongs."""
    found = page_problems(built / "site" / "_build" / "html")
    assert not found, "\n".join(f"{page}:\n  " + "\n  ".join(leaks[:8]) for page, leaks in found.items())


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_exercises_are_numbered_as_in_the_student_notebook(built, chapter):
    """Exercise N on the chapter's page is Exercise N of the student notebook `mmrepro assign` writes."""
    from bs4 import BeautifulSoup

    from mmrepro.publish import assignments

    page = BeautifulSoup((built / "site" / "_build" / "html" / "notebooks" / f"{chapter.stem}.html").read_text(),
                         "html.parser")
    book_numbers = {div["id"]: int(re.match(r"Exercise (\d+)", div.select_one("p.admonition-title").get_text(
        " ", strip=True)).group(1)) for div in page.select("div.exercise")}
    exercises = assignments.read_exercises(chapter)
    student = [c.source.splitlines()[0] for c in assignments.master_notebook(exercises).cells
               if c.cell_type == "markdown" and c.source.startswith("### Exercise ")]
    assert len(student) == len(exercises.questions) == len(book_numbers) > 0
    for prompt, question in zip(student, exercises.questions):
        number = int(re.match(r"### Exercise (\d+):", prompt).group(1))
        assert book_numbers[question.name] == number, (question.name, book_numbers, student)


def test_commands_on_the_built_pages_name_real_parameters(built):
    """Every `mmrepro run|plan CHAPTER ... -p NAME VALUE` a built page prints (the scorecard's commands
    that price the runs deciding an undecided claim, the chapters' own) is accepted by that chapter."""
    from bs4 import BeautifulSoup

    command = re.compile(r"mmrepro (?:run|plan) (\w+)((?: --?[\w-]+(?: [^\s-][^\s]*)?)*)")
    chapters = {c.stem: c for c in CHAPTERS}
    wrong = []
    for page in sorted((built / "site" / "_build" / "html").rglob("*.html")):
        text = BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser").get_text(" ")
        for m in command.finditer(text):
            if m.group(1) not in chapters:
                continue
            options = re.findall(r"-p (\w+) (\S+)", m.group(2))
            profile = re.search(r"--profile (\w+)", m.group(2))
            given = {n: parameters.parse_value(v) for n, v in options if not re.fullmatch(r"[A-Z_]+", v)}
            given.pop("device", None)  # no CUDA on a test machine
            if profile:
                given["profile"] = profile.group(1)
            try:
                parameters.static_parameters(chapters[m.group(1)], given)
            except (ValueError, parameters.BookError) as err:
                wrong.append(f"{page.name}: `{m.group(0)}`: {err}")
    assert not wrong, "\n".join(wrong)
