"""The reproduction scorecard: every claim of every executed chapter, decided by its interval.

Read by the scorecard page of the book and by ``mmrepro claims``. Every claim is validated on
load (:func:`mmrepro.publish.claims.validate`): a results file whose recorded verdict disagrees with its
interval, or a claim with a field missing, is refused with the file, the claim and the field.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from mmrepro.publish import claims as contract

_REQUIRED = ("notebook", "profile", "seed", "device", "mmrepro_version", "git_sha", "claims")
COUNT_COLUMNS = (*contract.EMPIRICAL_VERDICTS, "checks passed", "checks failed")
OUTCOME_COLUMNS = (*contract.OUTCOMES, "checks passed", "checks failed")
_CHECK_COLUMN = {contract.PASSES: "checks passed", contract.FAILS_CHECK: "checks failed"}
COLOURS = {contract.HOLDS: "#cdebcf", contract.FAILS: "#f6cccc", contract.INCONCLUSIVE: "#fbe9b7",
           contract.NOT_COMPARABLE: "#e4e4e4", contract.PASSES: "#cdebcf", contract.FAILS_CHECK: "#f6cccc"}
LINE_COLOURS = {contract.HOLDS: "#2e7d32", contract.FAILS: "#c62828", contract.INCONCLUSIVE: "#b7860b",
                contract.NOT_COMPARABLE: "#8a8a8a"}
# outcome -> (background, text colour): greens reproduce, red is contradicted, orange not reproduced
OUTCOME_COLOURS = {contract.REPRODUCES: ("#cdebcf", "#1b5e20"), contract.SMALLER: ("#e3f1d4", "#33691e"),
                   contract.LARGER: ("#e3f1d4", "#33691e"), contract.CONTRADICTED: ("#f6cccc", "#8e0000"),
                   contract.NOT_REPRODUCED: ("#fde0c5", "#8a3b00"), contract.UNDECIDED: ("#fbe9b7", "#6d5200"),
                   contract.OUT_OF_SCOPE: ("#e4e4e4", "#424242"), contract.PASSES: ("#cdebcf", "#1b5e20"),
                   contract.FAILS_CHECK: ("#f6cccc", "#8e0000")}
PAPERS = {"mfh": "The Modality Focusing Hypothesis", "mind": "MIND", "miles": "MILES", "multimodn": "MultiModN"}


def load_results(folder: Path) -> list[dict]:
    """Every ``*.json`` results file in ``folder``, each checked against the notebook and claim contracts."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no results folder {folder}: execute the chapters first (mmrepro book).")
    results = []
    for path in sorted(folder.glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"{path} is not valid JSON ({err}); re-run that chapter.") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path.name} is not a results file: it holds a {type(data).__name__}, not an object; "
                             "re-run that chapter.")
        missing = [k for k in _REQUIRED if k not in data]
        if missing:
            raise ValueError(f"{path.name} lacks {missing}; it was not written by mmrepro.publish.notebook.ChapterRun.save.")
        if not isinstance(data["claims"], list):
            raise ValueError(f"{path.name}: 'claims' must be a list of claim records, got "
                             f"{type(data['claims']).__name__}; re-run that chapter.")
        seen: dict[Any, int] = {}
        for i, record in enumerate(data["claims"], 1):
            if not isinstance(record, dict):
                raise ValueError(f"{path.name}: claim {i} is not a record (an object), got {type(record).__name__}; "
                                 "re-run that chapter.")
            try:
                contract.validate(record)
            except contract.ClaimError as err:
                raise contract.ClaimError(f"{path.name}: {err}") from None
            seen[record["id"]] = seen.get(record["id"], 0) + 1
        twice = [(cid, k) for cid, k in seen.items() if k > 1]
        if twice:
            raise contract.ClaimError(f"{path.name}: claim id {twice[0][0]!r} is recorded {twice[0][1]} times; every "
                                      "claim id must be unique within a results file.")
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
    """One readable row per claim: (chapter,) claim, where, criterion, paper, paper effect, ours [95 % interval],
    n, interval method, threshold, verdict, outcome and, for an undecided claim, the runs that would decide it."""
    rows = []
    for c in records:
        cells = contract.describe(c)
        rows.append({**({"chapter": c["chapter"]} if chapter else {}), "claim": c["id"], "where": c["where"],
                     "criterion": c["criterion"], "paper": _paper_cell(c["paper_value"]),
                     "paper effect": cells["paper effect"], "ours [95 % interval]": cells["ours"], "n": cells["n"],
                     "interval": c.get("interval_method") or "", "threshold": cells["threshold"],
                     "verdict": cells["verdict"], "outcome": cells["outcome"],
                     "to decide": contract.decide_hint(c) if cells["outcome"] == contract.UNDECIDED else "",
                     "note": c.get("reason") or c.get("premise_note") or ""})
    columns = [*(["chapter"] if chapter else []), "claim", "where", "criterion", "paper", "paper effect",
               "ours [95 % interval]", "n", "interval", "threshold", "verdict", "outcome", "to decide", "note"]
    return pd.DataFrame(rows, columns=columns)


def in_words(records: Iterable[Mapping[str, Any]]) -> str:
    """The empirical claims in plain Markdown, grouped by outcome: for each, where the paper says it, our
    criterion and our estimate with its 95 % interval against the paper's. Checks are left out (they pass or
    fail exactly and are tabled apart); an outcome without claims is not listed."""
    groups: dict[str, list[str]] = {}
    for c in records:
        if c["kind"] != "empirical":
            continue
        groups.setdefault(c["outcome"], []).append(f"{c['where']}: {c['criterion']} — ours {estimate_text(c)}")
    lines = []
    for result in contract.OUTCOMES:
        if groups.get(result):
            lines.append(f"**{result.capitalize()}** ({len(groups[result])}):\n")
            lines.extend(f"- {item}" for item in groups[result])
            lines.append("")
    return "\n".join(lines) if lines else "No empirical claim was recorded."


def claims_table(results: list[dict]) -> pd.DataFrame:
    """Every claim of every results file (see :func:`claim_rows`), with its kind."""
    records = _records(results)
    table = claim_rows(records)
    table.insert(2, "kind", [c["kind"] for c in records])
    return table


def _claim_counts(results: list[dict], columns: Iterable[str], field: str) -> pd.DataFrame:
    """Per chapter: empirical claims per value of ``field`` ("verdict" or "outcome"), then checks passed and
    failed; every column of ``columns``, even when zero, and a row "all"."""
    counts = {}
    for r in results:
        row = dict.fromkeys(columns, 0)
        for c in r["claims"]:
            row[c[field] if c["kind"] == "empirical" else _CHECK_COLUMN[c["verdict"]]] += 1
        counts[r["notebook"]] = row
    table = pd.DataFrame.from_dict(counts, orient="index", columns=list(columns))
    table.loc["all"] = table.sum()
    table.index.name = "chapter"
    return table


def verdict_counts(results: list[dict]) -> pd.DataFrame:
    """Per chapter: empirical claims per verdict, then checks passed and failed (every column, even when zero)."""
    return _claim_counts(results, COUNT_COLUMNS, "verdict")


def _commit(sha: str | None) -> str:
    """A results file's commit, short ("5adae11"), with "+ changes" when the checkout had uncommitted changes."""
    if not sha:
        return "—"
    return sha.removesuffix("-dirty")[:7] + (" + changes" if sha.endswith("-dirty") else "")


def runs_table(results: list[dict]) -> pd.DataFrame:
    """Provenance of each chapter's run: profile, seed, wall and CPU minutes (the notebook's own process; NaN in a
    results file from before CPU time was recorded), claims, commit, device and package version."""
    return pd.DataFrame([{"chapter": r["notebook"], "profile": r["profile"], "seed": r["seed"],
                          "wall minutes": round(float(r.get("seconds") or 0) / 60, 1),
                          "CPU minutes": round(float(r.get("cpu_seconds", math.nan)) / 60, 1),
                          "claims": len(r["claims"]),
                          "commit": _commit(r["git_sha"]), "device": r.get("device_name") or r["device"],
                          "mmrepro": r["mmrepro_version"]} for r in results],
                        columns=["chapter", "profile", "seed", "wall minutes", "CPU minutes", "claims", "commit",
                                 "device", "mmrepro"])


def runs_styled(results: list[dict]):
    """:func:`runs_table` for the page: numbers right-aligned, the commit in monospace on one line, and the
    device and package version said once under the table when every run shares them."""
    from html import escape

    table = runs_table(results)
    shared = [c for c in ("device", "mmrepro") if table[c].nunique() == 1]
    caption = "; ".join([f"{'device' if c == 'device' else 'mmrepro version'}: {escape(str(table[c].iloc[0]))}"
                         for c in shared] + ["commit: the git commit each chapter ran from (+ changes: with "
                                             "uncommitted changes); CPU minutes: the notebook's own process "
                                             "(the runs it trains itself; Ray workers' time is not included)"])
    table = table.drop(columns=shared)
    styler = (table.style.hide(axis="index").format({"wall minutes": "{:.1f}", "CPU minutes": "{:.1f}"}, na_rep="—")
              .set_table_attributes('class="runs-table"')
              .set_properties(subset=["seed", "wall minutes", "CPU minutes", "claims"], **{"text-align": "right"})
              .set_properties(subset=["commit"], **{"font-family": "monospace", "white-space": "nowrap"})
              .set_table_styles([{"selector": "caption", "props": "caption-side: bottom; font-size: 0.85em; "
                                                                  "text-align: left;"}]))
    return styler.set_caption(caption)


def styled(rows: pd.DataFrame):
    """A claims table (from :func:`claim_rows`) for the page, in five columns that fit the text column: the
    claim (our criterion, then its id on one line and where the paper says it), the paper's value, ours with
    its interval and n, the threshold, and the outcome (coloured, with the runs that would decide an
    undecided claim). How the intervals were computed is said under the table (a letter after n tells
    which, when they differ); a "not comparable" reason is given once, as a note under the table."""
    from html import escape

    notes = sorted({n for n in rows["note"] if n})
    marks = {r: "*" * (i + 1) if i < 3 else f"[{i + 1}]" for i, r in enumerate(notes)}
    methods = sorted({m for m in rows["interval"] if m})
    letters = {m: chr(ord("a") + i) for i, m in enumerate(methods)} if len(methods) > 1 else {}
    small = '<br><span class="claim-sub" style="color:#666;font-size:0.88em">{}</span>'

    def outcome(o: str, hint: str, note: str) -> str:
        return badge(o) + (marks[note] if note else "") + (small.format(escape(hint)) if hint else "")

    def ours(o: str, n: str, m: str) -> str:
        which = f" ({letters[m]})" if m in letters else ""
        value, bracket, interval = o.partition(" [")  # the interval on a line of its own, never broken
        if not n:  # a check's observation is shown as it is
            return escape(o)
        text = escape(value) + (f'<br><span style="white-space:nowrap">[{escape(interval)}</span>' if bracket else "")
        return text + small.format(f"n = {escape(n)}{which}")

    shown = pd.DataFrame({
        "claim": [escape(c) + small.format(f'<code class="claim-id">{escape(i)}</code> · {escape(w)}')
                  for c, i, w in zip(rows["criterion"], rows["claim"], rows["where"])],
        "paper": rows["paper"].map(escape),
        "ours [95 % interval]": [ours(o, n, m) for o, n, m in zip(rows["ours [95 % interval]"], rows["n"],
                                                                   rows["interval"])],
        "threshold": rows["threshold"].map(escape),
        "outcome": [outcome(o, h, n) for o, h, n in zip(rows["outcome"], rows["to decide"], rows["note"])]})
    styler = (shown.style.hide(axis="index")
              .set_table_attributes('class="claims-table"')
              .set_table_styles([{"selector": "td, th", "props": "font-size: 0.78em; vertical-align: top; "
                                                              "padding: 0.3em 0.4em;"},
                                 {"selector": "td:nth-child(1)", "props": "min-width: 16em;"},
                                 {"selector": "caption", "props": "caption-side: bottom; font-size: 0.78em; "
                                                                  "text-align: left;"}]))
    if len(methods) == 1:
        intervals = [f"Intervals: {escape(methods[0])}."]
    else:
        intervals = [f"({letters[m]}) {escape(m)}" for m in methods]
    caption = intervals + [f"{marks[r]} {escape(r)}" for r in notes]
    if caption:
        styler = styler.set_caption("<br>".join(caption))
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
    """Per chapter, every empirical claim's interval against its threshold (at 0), the paper's side shaded,
    coloured by outcome; intervals in units of their half-width (see :func:`oriented`). Drawn at the text
    column's width (about 7 inches) so that its labels are shown at their size; the legend sits above the
    plots, clear of the intervals."""
    import matplotlib.pyplot as plt

    chapters = [(r["notebook"], [c for c in r["claims"] if c["kind"] == "empirical" and c["estimate"] is not None])
                for r in results]
    chapters = [(name, cs) for name, cs in chapters if cs]
    if not chapters:
        fig, ax = plt.subplots(figsize=(6, 1))
        ax.text(0.5, 0.5, "no empirical claim with an interval", ha="center", va="center")
        ax.axis("off")
        return fig
    used = [o for o in contract.OUTCOMES if any(c["outcome"] == o for _, cs in chapters for c in cs)]
    legend_rows = -(-len(used) // 3)
    heights = [max(len(cs), 2) for _, cs in chapters]
    top = 0.35 + 0.25 * legend_rows  # inches above the first plot: the legend
    height = 0.22 * sum(heights) + 0.85 * len(chapters) + 0.5 + top
    fig, axes = plt.subplots(len(chapters), 1, figsize=(7.2, height), gridspec_kw={"height_ratios": heights},
                             squeeze=False)
    for ax, (name, cs) in zip(axes[:, 0], chapters):
        ax.axvspan(0, clip + 0.5, color="#e8f4e8", zorder=0)
        ax.axvline(0, color="0.3", lw=1)
        for i, c in enumerate(cs):
            z, lo, hi = oriented(c)
            colour = OUTCOME_COLOURS[c["outcome"]][1]
            left, right = max(lo, -clip), min(hi, clip)
            if left < right:
                ax.plot([left, right], [i, i], color=colour, lw=2.2, solid_capstyle="butt")
            if abs(z) > clip:  # beyond the plotted range: an arrow at the edge it points past
                ax.plot([np.sign(z) * clip], [i], ">" if z > 0 else "<", color=colour, ms=6)
            else:
                ax.plot([z], [i], "o", color=colour, ms=4.5)
        ax.set_yticks(range(len(cs)), [c["id"] for c in cs], fontsize=9)
        ax.set_ylim(len(cs) - 0.5, -0.5)
        ax.set_xlim(-clip - 0.5, clip + 0.5)
        ax.set_title(f"{PAPERS.get(name, name)} ({name})", loc="left", fontsize=11, fontweight="bold")
        ax.tick_params(axis="x", labelsize=9)
        ax.grid(axis="y", visible=False)
    axes[-1, 0].set_xlabel("estimate − threshold, in half-widths of its 95 % interval\n(the paper's side shaded; "
                           f"clipped at ±{clip:g})", fontsize=9.5)
    handles = [plt.Line2D([], [], color=OUTCOME_COLOURS[o][1], lw=2.5, label=o) for o in used]
    fig.legend(handles=handles, fontsize=9.5, loc="upper center", ncol=min(len(handles), 3), frameon=False,
               bbox_to_anchor=(0.5, 1.0))
    fig.tight_layout(rect=(0, 0, 1, 1 - top / height))
    return fig


def terminal_report(results: list[dict], width: int = 120) -> str:
    """The scorecard as text (``mmrepro claims``): outcome counts per chapter, then one line per claim."""
    parts = [f"{sum(len(r['claims']) for r in results)} claims from {len(results)} chapter(s), "
             f"profile(s) {', '.join(sorted({r['profile'] for r in results}))}", "", counts_text(results, width), ""]
    for r in results:
        parts.append(f"== {r['notebook']} ({r['profile']}, seed {r['seed']}, {r['git_sha'] or 'no git'})")
        parts += [claim_line(c, width) for c in _records([r])]
        parts.append("")
    return "\n".join(parts)


def counts_text(results: list[dict], width: int = 120, total: bool = True) -> str:
    """:func:`outcome_counts` as a terminal table, the columns that are zero everywhere left out (the
    two "reproduces, …" outcomes shortened to "smaller" and "larger"); ``total``: with the "all" row."""
    counts = outcome_counts(results)
    if not total:
        counts = counts.drop(index="all")
    counts.columns = [c.replace("reproduces, ", "").replace(" effect", "") for c in counts.columns]
    with pd.option_context("display.width", width, "display.max_columns", None):
        return counts.loc[:, (counts != 0).any()].to_string()


def _duration(result: Mapping[str, Any]) -> str:
    """A run's wall time in minutes, and its CPU time where recorded, as the scorecard's runs table gives them."""
    wall = f"{float(result.get('seconds') or 0) / 60:.1f} min"
    return wall if result.get("cpu_seconds") is None else f"{wall} ({float(result['cpu_seconds']) / 60:.1f} CPU-min)"


def run_summary(result: Mapping[str, Any], build: Path | None = None) -> str:
    """What ``mmrepro run`` prints when a chapter has run: its claims counted by outcome
    (:func:`outcome_counts`), its headline claims in a few words (:func:`headline_summary`) and the
    command that lists every claim."""
    name = result["notebook"]
    head = (f"{name}, {result['profile']} profile, seed {result['seed']}, "
            f"{_duration(result)}")
    if not result["claims"]:
        return f"{head}: no claims recorded"
    row = outcome_counts([dict(result)]).loc[name]
    empirical = {o: int(row[o]) for o in contract.OUTCOMES if row[o]}
    passed, failed = int(row["checks passed"]), int(row["checks failed"])
    lines = [f"{head}: {len(result['claims'])} claims",
             f"  empirical claims ({sum(empirical.values())}): "
             + (" · ".join(f"{o} {n}" for o, n in empirical.items()) or "none"),
             f"  checks ({passed + failed}): {passed} passed" + (f", {failed} FAILED" if failed else "")]
    if any(c.get("headline") for c in result["claims"]):
        lines.append(f"  headline claims: {headline_summary(result)}")
    if result["profile"] == "smoke":
        lines.append("  (smoke: only checks that the code runs; no claim is compared)")
    where = f" --build {build}" if build is not None else ""
    lines.append(f"every claim: mmrepro claims{where} --chapter {name}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- outcomes

def badge(outcome: str) -> str:
    """An outcome (or check verdict) as a small coloured label (HTML)."""
    from html import escape

    bg, fg = OUTCOME_COLOURS.get(outcome, ("#eeeeee", "#222222"))
    return (f'<span class="outcome" style="background:{bg};color:{fg};padding:0 0.35em;border-radius:3px;'
            f'white-space:nowrap;font-size:0.9em">{escape(outcome)}</span>')


def _signed(value: float, signed: bool) -> str:
    text = contract.number(value)
    return f"+{text}" if signed and value > 0 else text.replace("-", "−")


def estimate_text(record: Mapping[str, Any]) -> str:
    """Our estimate with its interval against the paper's number, in the claim's unit (one line)."""
    if record.get("estimate") is None:
        return "no estimate"
    unit = f" {record['unit']}" if record.get("unit") else ""
    signed = record["direction"] != "within" and record["threshold"] == 0
    lo, hi = record["interval"]
    text = f"{_signed(record['estimate'], signed)}{unit} [{_signed(lo, signed)}, {_signed(hi, signed)}]"
    if record.get("paper_effect") is not None:
        text += f" vs paper {_signed(record['paper_effect'], signed)}"
    return text


def in_brief(headlines: Mapping[str, Iterable[Mapping[str, Any]]], caveats: Mapping[str, str], profile: str,
             titles: bool = False) -> str:
    """The "In brief" box (HTML, an element with id ``in-brief``): per chapter, one line per headline claim
    (its outcome, what the paper claims, our estimate and interval against the paper's number), then the
    chapter's main caveat. ``titles`` puts each chapter's paper above its lines (the scorecard's box)."""
    from html import escape

    parts = [f'<div id="in-brief" class="in-brief"><p><strong>In brief</strong> — does it reproduce? The paper\'s '
             f'headline claims at the <code>{escape(profile)}</code> profile (95 % intervals).</p>']
    for chapter, records in headlines.items():
        records = list(records)
        if titles:
            parts.append(f"<p><strong>{escape(PAPERS.get(chapter, chapter))}</strong></p>")
        parts.append("<ul>")
        if not records:
            parts.append("<li>no headline claim was recorded</li>")
        for c in records:
            why = f' <span style="color:#666">({escape(c["reason"])})</span>' if c.get("reason") else ""
            parts.append(f"<li>{badge(c['outcome'])} {escape(c.get('summary') or c['criterion'])}: "
                         f"{escape(estimate_text(c))}{why}</li>")
        parts.append("</ul>")
        if caveats.get(chapter):
            parts.append(f'<p style="font-size:0.92em"><em>Caveat:</em> {escape(caveats[chapter])}</p>')
    parts.append("</div>")
    return "\n".join(parts)


def headline_summary(result: Mapping[str, Any] | None) -> str:
    """A chapter's headline claims in a few words ("2 of 4 reproduce; 1 undecided, 1 not reproduced")."""
    if result is None:
        return "not run in this build"
    outcomes = [c["outcome"] for c in result["claims"] if c.get("headline")]
    if not outcomes:
        return "no headline claim recorded"
    good = sum(o in contract.REPRODUCING for o in outcomes)
    rest = [f"{n} {o}" for o in contract.OUTCOMES if o not in contract.REPRODUCING and (n := outcomes.count(o))]
    return f"{good} of {len(outcomes)} reproduce" + (f"; {', '.join(rest)}" if rest else "")


def outcome_counts(results: list[dict]) -> pd.DataFrame:
    """Per chapter: empirical claims per outcome, then checks passed and failed (every column, even when zero)."""
    return _claim_counts(results, OUTCOME_COLUMNS, "outcome")


def plan_command(chapter: str, profile: str, record: Mapping[str, Any]) -> str:
    """The ``mmrepro plan`` command that prices the runs an undecided claim would need ("" when none is set
    by a parameter)."""
    params = (record.get("runs_to_decide") or {}).get("parameters") or {}
    if not params:
        return ""
    return f"mmrepro plan {chapter} --profile {profile} " + " ".join(f"-p {k} {v}" for k, v in params.items())


def undecided_table(results: list[dict]) -> pd.DataFrame:
    """Every undecided claim with about how many runs would decide it and the command that prices them."""
    rows = []
    for r in results:
        for c in r["claims"]:
            if c["kind"] == "empirical" and c["outcome"] == contract.UNDECIDED:
                rows.append({"chapter": r["notebook"], "claim": c["id"], "ours vs paper": estimate_text(c),
                             "runs to decide": contract.decide_hint(c),
                             "price it": plan_command(r["notebook"], r["profile"], c)})
    return pd.DataFrame(rows, columns=["chapter", "claim", "ours vs paper", "runs to decide", "price it"])


def claim_line(record: Mapping[str, Any], width: int = 120) -> str:
    """One claim on one terminal line of at most ``width`` characters: id, outcome, estimate [interval] vs paper."""
    head = f"{record['id']}  {record['outcome'] if record['kind'] == 'empirical' else 'check ' + record['verdict']}"
    tail = estimate_text(record) if record["kind"] == "empirical" else str(record["observed"])
    line = f"{head}  {tail}"
    return line if len(line) <= width else line[: width - 1] + "…"


def select(results: list[dict], *, chapter: str | None = None, headline: bool = False,
           outcome: str | None = None) -> list[dict]:
    """The claims of ``results`` (with their chapter) that pass the filters of ``mmrepro claims``."""
    if outcome is not None and outcome not in (*contract.OUTCOMES, *contract.CHECK_VERDICTS):
        raise ValueError(f"--outcome must be one of {', '.join(contract.OUTCOMES)} (or a check's passes / fails), "
                         f"got {outcome!r}")
    out = []
    for c in _records(results):
        if chapter is not None and c["chapter"] != chapter:
            continue
        if headline and not c.get("headline"):
            continue
        if outcome is not None and (c["outcome"] if c["kind"] == "empirical" else c["verdict"]) != outcome:
            continue
        out.append(c)
    return out
