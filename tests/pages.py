"""What a reader must never see on a built page: Python warnings, tracebacks and raw Python values
(a string's repr, an object's ``<... at 0x...>``, ``np.float64(...)``) in place of formatted output."""
from __future__ import annotations

import re
from pathlib import Path

from bs4 import BeautifulSoup

# Text that only a leaked warning, traceback or repr would put on a page.
LEAKS = [
    (re.compile(r"\b[A-Z]\w*Warning\b: "), "a Python warning"),
    (re.compile(r"warnings\.warn\("), "a Python warning"),
    (re.compile(r"Traceback \(most recent call last\)"), "a traceback"),
    (re.compile(r"site-packages/|/tmp/ipykernel_|\.py:\d+: "), "a source path of a warning"),
    (re.compile(r"\bat 0x[0-9a-fA-F]{6,}"), "an object's repr"),
    (re.compile(r"<(?:Figure size|matplotlib\.|pandas\.|IPython\.core\.|[\w.]+ object)"), "an object's repr"),
    (re.compile(r"\bnp\.(?:float|int|bool_?|str_)\w*\("), "a NumPy scalar's repr"),
    (re.compile(r"^(?:Text|Line2D|array|tensor|Params)\(", re.M), "a Python value's repr"),
]
# A plain-text result that is a Python string's repr: 'text' or "text" (shown as code instead of prose).
RAW_STRING = re.compile(r"""^\s*(?:['"]).*(?:['"])\s*$""", re.S)


def problems(html: str) -> list[str]:
    """Every leak on one page, each as "what: the text (shortened)"."""
    soup = BeautifulSoup(html, "html.parser")
    main = soup.find("main") or soup
    found = []
    for out in main.select("div.output.stderr, div.output.traceback"):
        found.append(f"{'stderr' if 'stderr' in out['class'] else 'traceback'} output: {_short(out.get_text())}")
        out.decompose()  # reported once, not again by the patterns below
    for out in main.select("div.output.text_plain"):
        text = out.get_text()
        if RAW_STRING.match(text):
            found.append(f"a raw string as output: {_short(text)}")
            out.decompose()
    for hidden in main.select("div.cell_input, div.highlight-ipython3, div.highlight-python, div.highlight-bash, "
                              "div.highlight-text, div.highlight-default, nav, script, style"):
        if not hidden.find_parent("div", class_="cell_output"):
            hidden.decompose()
    for code in main.find_all("code"):  # identifiers quoted in prose are fine, unless in an output
        if not code.find_parent("div", class_="cell_output"):
            code.decompose()
    text = main.get_text(" ")
    for pattern, what in LEAKS:
        for m in pattern.finditer(text):
            found.append(f"{what}: {_short(text[max(0, m.start() - 60): m.end() + 100])}")
    return found


def _short(text: str, width: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def page_problems(html_root: Path) -> dict[str, list[str]]:
    """:func:`problems` of every page of a built book, by path (pages without any left out)."""
    found = {}
    for page in sorted(html_root.rglob("*.html")):
        rel = page.relative_to(html_root)
        if rel.parts[0] in ("_static", "_sources", "_vendor", "mathjax") or rel.name in ("genindex.html", "search.html"):
            continue
        if leaks := problems(page.read_text(encoding="utf-8")):
            found[str(rel)] = leaks
    return found
