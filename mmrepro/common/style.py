"""One figure style for every chapter: a seaborn theme, set once by :func:`mmrepro.publish.notebook.start`.

Figures are drawn at the width the book shows them (:data:`PAGE_WIDTH` inches at :data:`DPI`), so
that titles, ticks and legends read at the page's default width without zooming. Statistical
plots go through seaborn (points per seed with mean and interval, lines with bands over seeds,
heatmaps); :func:`colours` gives every method, modality or head the same colour in every figure.
"""
from __future__ import annotations

from typing import Iterable, Sequence

PAGE_WIDTH = 8.0  # inches: the text column of the book's HTML page at DPI
DPI = 100
FONT_SCALE = 0.95


def use() -> None:
    """Apply the book's theme (whitegrid, colour-blind palette, readable font sizes) to matplotlib. Its font
    manager's notes that a mathtext font (STIX) falls back to DejaVu Sans go to the log only at ERROR level:
    the fallback is expected on machines without the STIX fonts, and the notes would print on the pages."""
    import logging

    import seaborn as sns

    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)

    sns.set_theme(context="notebook", style="whitegrid", palette="colorblind", font_scale=FONT_SCALE,
                  rc={"figure.dpi": DPI, "savefig.dpi": 2 * DPI, "figure.figsize": (PAGE_WIDTH, 3.6),
                      "axes.titlesize": 11, "axes.titleweight": "bold", "axes.labelsize": 10,
                      "legend.fontsize": 9, "legend.title_fontsize": 9, "xtick.labelsize": 9,
                      "ytick.labelsize": 9})


def subplots(nrows: int = 1, ncols: int = 1, height: float = 3.4, width: float = PAGE_WIDTH, **kwargs):
    """``plt.subplots`` at the page width, ``height`` inches per row of panels."""
    import matplotlib.pyplot as plt

    return plt.subplots(nrows, ncols, figsize=(width, height * nrows), **kwargs)


def colours(names: Iterable[str], palette: str = "colorblind") -> dict[str, tuple[float, float, float]]:
    """A fixed colour per name, in the order given (pass the full list of methods once and reuse it)."""
    import seaborn as sns

    names = list(dict.fromkeys(names))
    return dict(zip(names, sns.color_palette(palette, max(len(names), 1))))


def wrap_labels(labels: Sequence[str], width: int = 14) -> list[str]:
    """Long tick labels broken over lines so they do not overlap at the page width."""
    import textwrap

    return ["\n".join(textwrap.wrap(str(s), width)) or str(s) for s in labels]
