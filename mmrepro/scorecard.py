"""The reproduction scorecard: every claim of every executed chapter in one table."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from mmrepro.notebook import VERDICTS

_REQUIRED = ("notebook", "profile", "seed", "device", "mmrepro_version", "git_sha", "claims")
_CLAIM_FIELDS = ("id", "paper", "where", "paper_value", "reproduced", "criterion", "verdict")


def load_results(folder: Path) -> list[dict]:
    """Every ``*.json`` results file in ``folder``, checked for the fields the contract requires."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no results folder {folder}: execute the chapters first (mmrepro book).")
    results = []
    for path in sorted(folder.glob("*.json")):
        data = json.loads(path.read_text())
        missing = [k for k in _REQUIRED if k not in data]
        if missing:
            raise ValueError(f"{path.name} lacks {missing}; it was not written by mmrepro.notebook.Run.save.")
        for claim in data["claims"]:
            if claim.get("verdict") not in VERDICTS.values():
                raise ValueError(f"{path.name}: claim {claim.get('id')!r} has verdict {claim.get('verdict')!r}.")
        results.append(data)
    return results


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return ", ".join(_cell(v) for v in value)
    return "—" if value is None else str(value)


def claims_table(results: list[dict]) -> pd.DataFrame:
    """One row per claim: chapter, paper, where, paper value, reproduced value, criterion, verdict."""
    rows = [{"chapter": r["notebook"], **{k: _cell(c[k]) if k in ("paper_value", "reproduced") else c[k]
                                          for k in _CLAIM_FIELDS}}
            for r in results for c in r["claims"]]
    return pd.DataFrame(rows, columns=["chapter", *_CLAIM_FIELDS])


def runs_table(results: list[dict]) -> pd.DataFrame:
    """Provenance of each chapter's run."""
    return pd.DataFrame([{"chapter": r["notebook"], "profile": r["profile"], "seed": r["seed"],
                          "device": r.get("device_name") or r["device"], "version": r["mmrepro_version"],
                          "git": (r["git_sha"] or "—")[:12] + ("-dirty" if str(r["git_sha"]).endswith("-dirty") else ""),
                          "minutes": f"{r.get('seconds', 0) / 60:.1f}", "claims": len(r["claims"])}
                         for r in results])


def verdict_counts(claims: pd.DataFrame) -> pd.DataFrame:
    """Claims per chapter and verdict (every verdict gets a column, even when zero)."""
    counts = pd.crosstab(claims["chapter"], claims["verdict"]).reindex(columns=list(VERDICTS.values()),
                                                                        fill_value=0)
    counts.loc["all"] = counts.sum()
    return counts


def styled(claims: pd.DataFrame):
    """One chapter's claims, verdict first after the claim, coloured (green holds, red not, grey n/a)."""
    colours = {"holds": "#d9f2d9", "does not hold": "#f8d7d7", "not comparable at this scale": "#e8e8e8"}
    table = claims[["id", "where", "verdict", "paper_value", "reproduced", "criterion"]].rename(
        columns={"id": "claim", "paper_value": "paper", "reproduced": "reproduced here"})
    return (table.style.hide(axis="index")
            .map(lambda v: f"background-color: {colours.get(v, 'transparent')}", subset=["verdict"])
            .set_table_styles([{"selector": "td, th", "props": "font-size: 0.8em; vertical-align: top;"},
                               {"selector": "td:nth-child(1), td:nth-child(3)",
                                "props": "white-space: nowrap;"}]))
