"""A Sphinx extension of the book: exercises numbered within each chapter.

sphinx-exercise numbers exercises as Sphinx numbers figures, across the whole book when the table of
contents is not numbered (the second chapter's exercises would be 5 to 8), while the student notebooks
that ``mmrepro assign`` writes number each chapter's exercises from 1
(:meth:`mmrepro.publish.assignments.Question.prompt`). Once Sphinx has numbered them, this restarts the
count on every page, so that "Exercise 2" of a chapter is the same exercise in the book, in its
solution's title and in the student notebook. Enabled in ``_config.yml`` (``sphinx.extra_extensions``).
"""
from __future__ import annotations

from typing import Any

FIGTYPE = "exercise"  # the enumerable node type sphinx-exercise registers


def number_per_page(numbers: dict[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
    """One page's exercise numbers ``{node id: number}`` counted again from 1, in their order on the page
    (a section prefix, where the table of contents numbers sections, is kept)."""
    counters: dict[tuple[int, ...], int] = {}
    renumbered = {}
    for ident, number in sorted(numbers.items(), key=lambda item: item[1]):
        prefix = tuple(number[:-1])
        counters[prefix] = counters.get(prefix, 0) + 1
        renumbered[ident] = (*prefix, counters[prefix])
    return renumbered


def renumber(app: Any, env: Any) -> list[str]:
    """``env-get-updated`` handler, run after Sphinx's own figure numbering: the pages whose numbers changed."""
    changed = []
    for docname, by_type in env.toc_fignumbers.items():
        numbers = by_type.get(FIGTYPE)
        if numbers and (fresh := number_per_page(numbers)) != numbers:
            by_type[FIGTYPE] = fresh
            changed.append(docname)
    return changed


def setup(app: Any) -> dict[str, Any]:
    app.connect("env-get-updated", renumber, priority=900)  # Sphinx numbers figures at the default 500
    return {"parallel_read_safe": True, "parallel_write_safe": True}
