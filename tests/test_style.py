"""The book's matplotlib theme."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")


def test_font_fallback_notes_do_not_reach_the_pages(caplog, tmp_path):
    """A missing font family (CI's fresh environment lacked STIX for mathtext) is logged by matplotlib's
    font manager as a warning, which a notebook prints on its page; under the book's theme it is not."""
    import matplotlib.pyplot as plt

    from mmrepro.common import style

    style.use()
    fig = plt.figure()
    fig.text(0.5, 0.5, "a", family="NoSuchFontFamilyForMmrepro")
    fig.savefig(tmp_path / "x.png")
    plt.close(fig)
    assert not [r for r in caplog.records if r.name == "matplotlib.font_manager"]
