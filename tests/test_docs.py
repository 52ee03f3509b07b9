"""What the README, the book's pages and the chapters tell readers to type: every `-p NAME VALUE` names a
parameter of the chapter it is for, with a value that chapter accepts; and the checks of the built pages
(tests/pages.py, run over the smoke book in test_book.py) find what they look for."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from mmrepro.common.device import resolve_device
from mmrepro.publish import parameters
from mmrepro.publish.notebook import ParameterError

from .pages import problems

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = {p.stem: p for p in parameters.notebooks(ROOT) if p.parent.name == "notebooks"}
DOCS = [ROOT / "README.md", *sorted((ROOT / "book").glob("*.md")), *CHAPTERS.values()]

# `-p NAME VALUE` (the value quoted, or up to a space, backquote, table bar or comma)
OPTION = re.compile(r"""(?<![\w-])-p\s+([A-Za-z_]\w*)(?:\s+("[^"]*"|'[^']*'|[^\s`|,]+))?""")
# where a command names its chapter: `mmrepro run|plan NAME`, `papermill [dir/]NAME.ipynb`
COMMAND = re.compile(r"\bmmrepro\s+(?:run|plan)\s+([\w./-]+)|\bpapermill\s+(?:--\S+\s+)*(?:\S*/)?(\w+)\.ipynb")
PROFILE = re.compile(r"--profile\s+(\w+)")
PLACEHOLDER = re.compile(r"^[A-Z][A-Z_]*$|[{}]")  # NAME, VALUE, N, DIR; {P.n_inits} in an f-string
GENERIC = "any chapter"


def _chapter_of_row(line: str) -> str | None:
    first = line.strip().strip("|").split("|")[0].strip().lower()
    return first if first in CHAPTERS else None


def usages(path: Path) -> list[tuple[int, str, dict[str, str], str | None]]:
    """Every run of `-p` options in ``path``: (line, chapter or GENERIC, {name: value text}, --profile)."""
    found = []
    own = path.stem if path in CHAPTERS.values() else None
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if "-p " not in line:
            continue
        starts = [(m.start(), m.group(1) or m.group(2)) for m in COMMAND.finditer(line)]
        segments = ([(line[a:b], chapter) for (a, chapter), (b, _) in zip(starts, [*starts[1:], (len(line), None)])]
                    if starts else [(line, _chapter_of_row(line) or own or GENERIC)])
        if starts and starts[0][0] > 0:
            segments.insert(0, (line[:starts[0][0]], _chapter_of_row(line) or own or GENERIC))
        for text, chapter in segments:
            options = {m.group(1): (m.group(2) or "") for m in OPTION.finditer(text)}
            if options and not PLACEHOLDER.match(chapter.split("/")[-1]) and "NAME" not in options:
                profile = PROFILE.search(text)
                found.append((number, Path(chapter).stem if chapter.endswith(".md") else chapter, options,
                              profile.group(1) if profile else None))
    return found


def _value(text: str):
    return parameters.parse_value(text[1:-1] if text[:1] in "\"'" and text[-1:] == text[:1] else text)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_documented_parameter_exists(doc):
    """Each `-p NAME VALUE` the page shows is accepted by its chapter, as `mmrepro run` checks it before a
    kernel starts (unknown names, types, choices, the notebook's own checks); a `-p` that names no chapter
    must be a parameter of some chapter."""
    every = {name for path in CHAPTERS.values() for name in (p.name for p in parameters.parameters(path))}
    wrong = []
    for line, chapter, options, profile in usages(doc):
        where = f"{doc.relative_to(ROOT)}:{line}"
        if chapter == GENERIC:
            wrong += [f"{where}: -p {n} is a parameter of no chapter" for n in options if n not in every]
            continue
        if chapter not in CHAPTERS:
            if not (ROOT / "tests" / "fixtures" / f"{chapter}.md").is_file():
                wrong.append(f"{where}: {chapter!r} is not a chapter (one of {sorted(CHAPTERS)})")
            continue
        values = {n: _value(v) for n, v in options.items() if v and not PLACEHOLDER.match(v)}
        values.update({n: None for n in options if n not in values})  # names without a value: names only
        given = {n: v for n, v in values.items() if v is not None and n != "device"}  # no CUDA on a test machine
        if profile:
            given["profile"] = profile
        declared = {p.name for p in parameters.parameters(CHAPTERS[chapter])}
        unknown = sorted(set(values) - declared)
        if unknown:
            wrong.append(f"{where}: {chapter} has no parameter(s) {unknown}")
            continue
        try:
            parameters.static_parameters(CHAPTERS[chapter], given)
        except (ParameterError, parameters.BookError) as err:
            wrong.append(f"{where}: {chapter} rejects {given}: {err}")
        if "device" in values and values["device"] not in (None, "cuda") and not str(values["device"]).startswith("cuda"):
            try:
                resolve_device(values["device"])
            except ValueError as err:
                wrong.append(f"{where}: {err}")
    assert not wrong, "\n".join(wrong)


def test_documented_parameters_are_found():
    """The scan sees the commands it must check (so that the test above can fail)."""
    teachers = usages(ROOT / "book" / "teachers.md")
    assert any(chapter == "multimodn" and "n_repeats" in options for _, chapter, options, _ in teachers)
    assert any(chapter == "mind" and "paired_fraction" in options for _, chapter, options, _ in teachers)
    readme = usages(ROOT / "README.md")
    assert any(chapter == "miles" and options.get("executor") == "ray" and profile == "paper"
               for _, chapter, options, profile in readme)


def test_page_checks_find_warnings_and_raw_strings():
    """tests/pages.py flags what issue 30 saw on the published pages, and leaves clean pages alone."""
    def out(kind: str, text: str) -> str:
        return (f'<main><div class="cell docutils container"><div class="cell_output docutils container">'
                f'<div class="output {kind}"><pre>{text}</pre></div></div></div></main>')

    warning = ("/home/u/.venv/lib/python3.12/site-packages/sklearn/metrics/_classification.py:2480: "
               "UserWarning: y_pred contains classes not in y_true")
    assert problems(out("stderr", warning))
    assert problems(out("stream", warning))  # a warning printed to stdout is still a warning
    assert problems(out("text_plain", "'Figure 2c: the state after each encoder'"))
    assert problems(out("text_plain", "&lt;Figure size 640x480 with 1 Axes&gt;"))
    assert problems("<main><p>accuracy np.float64(0.91)</p></main>")
    assert problems(out("text_plain", "&lt;pandas.io.formats.style.Styler at 0x7f3a2b1c9d00&gt;"))
    clean = ('<main><p>The UserWarning class is named in <code>warnings.warn(UserWarning)</code> only.</p>'
             '<div class="cell_output"><div class="output stream"><pre>epoch 1: 0.91</pre></div></div></main>')
    assert problems(clean) == []


def test_exercises_are_numbered_per_page():
    """The book's exercises restart at 1 on every page (mmrepro.publish.sphinx_numbers), as in the
    student notebooks; the page's order is kept, and a section prefix with it."""
    from mmrepro.publish.sphinx_numbers import number_per_page, renumber

    assert number_per_page({"ex-b": (6,), "ex-a": (5,), "ex-c": (8,)}) == {"ex-a": (1,), "ex-b": (2,), "ex-c": (3,)}
    assert number_per_page({"x": (3, 7), "y": (3, 8), "z": (4, 9)}) == {"x": (3, 1), "y": (3, 2), "z": (4, 1)}

    class Env:
        toc_fignumbers = {"notebooks/mfh": {"exercise": {"a": (1,), "b": (2,)}, "figure": {"f": (1,)}},
                          "notebooks/mind": {"exercise": {"c": (3,), "d": (4,)}, "figure": {"g": (2,)}}}

    env = Env()
    assert renumber(None, env) == ["notebooks/mind"]
    assert env.toc_fignumbers["notebooks/mind"] == {"exercise": {"c": (1,), "d": (2,)}, "figure": {"g": (2,)}}
