"""The reproduction scorecard: every claim of every executed chapter, decided by its interval.

Read by the scorecard page of the book and by ``mmrepro claims``. Every claim is validated on
load (:func:`mmrepro.publish.claims.validate`): a results file whose recorded verdict disagrees with its
interval, or a claim with a field missing, is refused with the file, the claim and the field.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from mmrepro.publish import claims as contract

_REQUIRED = ("notebook", "profile", "seed", "device", "mmrepro_version", "git_sha", "claims")
COUNT_COLUMNS = (*contract.EMPIRICAL_VERDICTS, "checks passed", "checks failed")
_CHECK_COLUMN = {contract.PASSES: "checks passed", contract.FAILS_CHECK: "checks failed"}
COLOURS = {contract.HOLDS: "#cdebcf", contract.FAILS: "#f6cccc", contract.INCONCLUSIVE: "#fbe9b7",
           contract.NOT_COMPARABLE: "#e4e4e4", contract.PASSES: "#cdebcf", contract.FAILS_CHECK: "#f6cccc"}
LINE_COLOURS = {contract.HOLDS: "#2e7d32", contract.FAILS: "#c62828", contract.INCONCLUSIVE: "#b7860b",
                contract.NOT_COMPARABLE: "#8a8a8a"}


def load_results(folder: Path) -> list[dict]:
    """Every ``*.json`` results file in ``folder``, each checked against the notebook and claim contracts."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no results folder {folder}: execute the chapters first (mmrepro book).")
    results = []
    for path in sorted(folder.glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} is not valid JSON ({err}); re-run that chapter.") from None
        missing = [k for k in _REQUIRED if k not in data]
        if missing:
            raise ValueError(f"{path.name} lacks {missing}; it was not written by mmrepro.publish.notebook.ChapterRun.save.")
        for record in data["claims"]:
            try:
                contract.validate(record)
            except contract.ClaimError as err:
                raise contract.ClaimError(f"{path.name}: {err}") from None
        results.append(data)
    return results


def _records(results: Iterable[Mapping[str, Any]]) -> list[dict]:
    return [dict(c, chapter=r["notebook"]) for r in results for c in r["claims"]]


def _paper_cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return ", ".join(_paper_cell(v) for v in value)
    return "—" if value is None else str(value)


def claim_rows(records: Iterable[Mapping[str, Any]], chapter: bool = True) -> pd.DataFrame:
    """One readable row per claim: (chapter,) claim, where, criterion, paper, ours [95 % interval], n,
    interval method, threshold, verdict."""
    rows = []
    for c in records:
        cells = contract.describe(c)
        rows.append({**({"chapter": c["chapter"]} if chapter else {}), "claim": c["id"], "where": c["where"],
                     "criterion": c["criterion"], "paper": _paper_cell(c["paper_value"]),
                     "ours [95 % interval]": cells["ours"], "n": cells["n"],
                     "interval": c.get("interval_method") or "", "threshold": cells["threshold"],
                     "verdict": cells["verdict"]})
    columns = [*(["chapter"] if chapter else []), "claim", "where", "criterion", "paper", "ours [95 % interval]",
               "n", "interval", "threshold", "verdict"]
    return pd.DataFrame(rows, columns=columns)


def in_words(records: Iterable[Mapping[str, Any]]) -> str:
    """The empirical claims in plain Markdown, grouped by verdict: for each, where the paper says it,
    our criterion and our estimate with its 95 % interval. Checks are left out (they pass or fail
    exactly and are tabled apart); a group without claims is not listed."""
    groups: dict[str, list[str]] = {}
    for c in records:
        if c["kind"] != "empirical":
            continue
        cells = contract.describe(c)
        groups.setdefault(c["verdict"], []).append(f"{c['where']}: {c['criterion']} — ours {cells['ours']}")
    lines = []
    for verdict in contract.EMPIRICAL_VERDICTS:
        if groups.get(verdict):
            lines.append(f"**{verdict.capitalize()}** ({len(groups[verdict])}):\n")
            lines.extend(f"- {item}" for item in groups[verdict])
            lines.append("")
    return "\n".join(lines) if lines else "No empirical claim was recorded."


def claims_table(results: list[dict]) -> pd.DataFrame:
    """Every claim of every results file (see :func:`claim_rows`), with its kind."""
    records = _records(results)
    table = claim_rows(records)
    table.insert(2, "kind", [c["kind"] for c in records])
    return table


def verdict_counts(results: list[dict]) -> pd.DataFrame:
    """Per chapter: empirical claims per verdict, then checks passed and failed (every column, even when zero)."""
    counts = {}
    for r in results:
        row = dict.fromkeys(COUNT_COLUMNS, 0)
        for c in r["claims"]:
            row[c["verdict"] if c["kind"] == "empirical" else _CHECK_COLUMN[c["verdict"]]] += 1
        counts[r["notebook"]] = row
    table = pd.DataFrame.from_dict(counts, orient="index", columns=list(COUNT_COLUMNS))
    table.loc["all"] = table.sum()
    table.index.name = "chapter"
    return table


def runs_table(results: list[dict]) -> pd.DataFrame:
    """Provenance of each chapter's run."""
    return pd.DataFrame([{"chapter": r["notebook"], "profile": r["profile"], "seed": r["seed"],
                          "device": r.get("device_name") or r["device"], "version": r["mmrepro_version"],
                          "git": (r["git_sha"] or "—")[:12] + ("-dirty" if str(r["git_sha"]).endswith("-dirty") else ""),
                          "minutes": f"{r.get('seconds', 0) / 60:.1f}", "claims": len(r["claims"])}
                         for r in results])


def styled(rows: pd.DataFrame):
    """A claims table (from :func:`claim_rows`) for the page: the claim with where it is in the paper, the
    criterion, the paper's value, ours with its interval, n with how the interval was computed, the
    threshold and the verdict (coloured). A "not comparable" reason is given once, under the table."""
    from html import escape

    reasons = sorted({v.split(" (", 1)[1][:-1] for v in rows["verdict"] if v.startswith(contract.NOT_COMPARABLE + " (")})
    marks = {r: "*" * (i + 1) for i, r in enumerate(reasons)}

    def verdict(v: str) -> str:
        if v.startswith(contract.NOT_COMPARABLE + " ("):
            return f"{contract.NOT_COMPARABLE}{marks[v.split(' (', 1)[1][:-1]]}"
        return v

    small = '<br><span style="color:#666">{}</span>'
    shown = pd.DataFrame({
        "claim": [f"<code>{escape(c)}</code>" + small.format(escape(w)) for c, w in zip(rows["claim"], rows["where"])],
        "criterion": rows["criterion"].map(escape), "paper": rows["paper"].map(escape),
        "ours [95 % interval]": rows["ours [95 % interval]"].map(escape),
        "n": [escape(n) + (small.format(escape(m)) if m else "") for n, m in zip(rows["n"], rows["interval"])],
        "threshold": rows["threshold"].map(escape), "verdict": rows["verdict"].map(verdict)})

    def colour(v: str) -> str:
        key = next((k for k in COLOURS if v.rstrip("*") == k), None)
        return f"background-color: {COLOURS[key]}" if key else ""

    styler = (shown.style.hide(axis="index").map(colour, subset=["verdict"])
              .set_table_styles([{"selector": "td, th", "props": "font-size: 0.78em; vertical-align: top;"},
                                 {"selector": "td:nth-child(2)", "props": "min-width: 16em;"}]))
    if reasons:
        styler = styler.set_caption("<br>".join(f"{marks[r]} {escape(r)}" for r in reasons)).set_table_styles(
            [{"selector": "caption", "props": "caption-side: bottom; font-size: 0.78em; text-align: left;"}],
            overwrite=False)
    return styler


def oriented(record: Mapping[str, Any]) -> tuple[float, float, float]:
    """An empirical claim's (estimate, low, high) moved so the threshold is 0 and the paper's side positive,
    in units of the interval's half-width (so every interval spans 2 and is decided when it misses 0).
    For a ``within`` claim the distance is to the nearer margin, positive inside it."""
    est, (lo, hi), thr = record["estimate"], record["interval"], record["threshold"]
    half = max((hi - lo) / 2, 1e-12)
    if record["direction"] == "above":
        z = (est - thr) / half
    elif record["direction"] == "below":
        z = (thr - est) / half
    else:
        z = min(est - thr[0], thr[1] - est) / half
    return z, z - 1, z + 1


def interval_figure(results: list[dict], clip: float = 6.0):
    """Per chapter, every decided-or-not empirical claim's interval against its threshold (at 0), the
    paper's side shaded, coloured by verdict; intervals in units of their half-width (see :func:`oriented`)."""
    import matplotlib.pyplot as plt

    chapters = [(r["notebook"], [c for c in r["claims"] if c["kind"] == "empirical" and c["estimate"] is not None])
                for r in results]
    chapters = [(name, cs) for name, cs in chapters if cs]
    if not chapters:
        fig, ax = plt.subplots(figsize=(6, 1))
        ax.text(0.5, 0.5, "no empirical claim with an interval", ha="center", va="center")
        ax.axis("off")
        return fig
    heights = [max(len(cs), 2) for _, cs in chapters]
    fig, axes = plt.subplots(len(chapters), 1, figsize=(9, 0.17 * sum(heights) + 1.0 * len(chapters)),
                             gridspec_kw={"height_ratios": heights}, squeeze=False)
    for ax, (name, cs) in zip(axes[:, 0], chapters):
        ax.axvspan(0, clip + 0.5, color="#e8f4e8", zorder=0)
        ax.axvline(0, color="0.3", lw=1)
        for i, c in enumerate(cs):
            z, lo, hi = oriented(c)
            colour = LINE_COLOURS[c["verdict"]]
            left, right = max(lo, -clip), min(hi, clip)
            if left < right:
                ax.plot([left, right], [i, i], color=colour, lw=2.2, solid_capstyle="butt")
            if abs(z) > clip:  # beyond the plotted range: an arrow at the edge it points past
                ax.plot([np.sign(z) * clip], [i], ">" if z > 0 else "<", color=colour, ms=5)
            else:
                ax.plot([z], [i], "o", color=colour, ms=4)
        ax.set_yticks(range(len(cs)), [c["id"] for c in cs], fontsize=6.5)
        ax.set_ylim(len(cs) - 0.5, -0.5)
        ax.set_xlim(-clip - 0.5, clip + 0.5)
        ax.set_title(name, loc="left", fontsize=10, fontweight="bold")
        ax.tick_params(axis="x", labelsize=8)
    axes[-1, 0].set_xlabel("estimate − threshold, in half-widths of its 95 % interval (paper's side shaded, "
                           f"clipped at ±{clip:g})", fontsize=8.5)
    handles = [plt.Line2D([], [], color=v, lw=2.2, label=k) for k, v in LINE_COLOURS.items()]
    axes[0, 0].legend(handles=handles, fontsize=7.5, loc="lower right", ncol=2, framealpha=0.9)
    fig.tight_layout()
    return fig


def terminal_report(results: list[dict], width: int = 200) -> str:
    """The scorecard as text: counts per chapter, then every claim (``mmrepro claims``)."""
    with pd.option_context("display.width", width, "display.max_colwidth", 48, "display.max_rows", None):
        parts = [f"{sum(len(r['claims']) for r in results)} claims from {len(results)} chapter(s), "
                 f"profile(s) {', '.join(sorted({r['profile'] for r in results}))}", "",
                 verdict_counts(results).to_string(), ""]
        for r in results:
            rows = claim_rows(_records([r]), chapter=False)
            parts += [f"== {r['notebook']} ({r['profile']}, seed {r['seed']}, {r['git_sha'] or 'no git'})",
                      rows.drop(columns=["criterion", "interval"]).to_string(index=False), ""]
    return "\n".join(parts)
