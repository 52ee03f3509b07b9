"""Seeds: re-train a selected configuration under several seeds and summarise with uncertainty.

Protocol (:func:`search_then_repeat`): the random search runs with the first seed; its winner
counts as that seed's run; the winning configuration is then re-trained with every further seed
and each re-trained model is evaluated on the test split once. Differences between methods are
paired by seed (:func:`paired_difference`); intervals are Student-t intervals over seeds.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from mmrepro.core.stats import t_interval
from mmrepro.runs.jobs import run_jobs
from mmrepro.runs.protocol import Objective
from mmrepro.runs.search import SearchResult, random_search

if TYPE_CHECKING:
    from mmrepro.runs.executors import Executor


def seeds_from(base: int, n: int) -> list[int]:
    """``n`` distinct seeds derived from a base seed: base, base+1, ..."""
    if n < 1:
        raise ValueError(f"need at least one seed, got n={n}")
    return [base + i for i in range(n)]


@dataclass
class Repeated:
    """The search (first seed) and one row per seed: ``seed``, ``val_score``, test metrics, and the
    candidate objects (``runs``, e.g. for learning curves)."""

    search: SearchResult
    rows: list[dict[str, Any]]
    runs: list[Any]

    def frame(self):
        import pandas as pd

        return pd.DataFrame(self.rows)


def search_then_repeat(objective: Objective, space: Mapping[str, Any], n_trials: int, seeds: Sequence[int],
                       keep_runs: bool = False, executor: str | Executor = "local") -> Repeated:
    """Random search with ``seeds[0]``, then the selected configuration with each further seed
    (all trials, then all repeats, through :func:`run_jobs` on ``executor``)."""
    if len(seeds) < 1 or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct and at least one, got {list(seeds)}")
    res = random_search(objective, space, n_trials, seeds[0], executor)
    rows = [{"seed": seeds[0], "val_score": float(res.best.score), **res.test}]
    runs = [res.best] if keep_runs else []
    repeats = run_jobs(objective, [(dict(res.best_config), int(s)) for s in seeds[1:]], executor)
    for s, cand in zip(seeds[1:], repeats):
        rows.append({"seed": s, "val_score": float(cand.score), **cand.evaluate_test()})
        if keep_runs:
            runs.append(cand)
    return Repeated(res, rows, runs)


def summarise(frame, by: Sequence[str], values: Sequence[str], level: float = 0.95):
    """Mean, standard deviation and t-interval bounds over seeds of each ``values`` column per ``by`` group:
    columns ``{v}``, ``{v}_sd``, ``{v}_lo``, ``{v}_hi`` and ``n``."""
    import pandas as pd

    missing = [c for c in (*by, *values) if c not in frame.columns]
    if missing:
        raise ValueError(f"columns {missing} are not in the frame (it has {list(frame.columns)})")
    out = []
    for key, g in frame.groupby(list(by), sort=False):
        row = dict(zip(by, key if isinstance(key, tuple) else (key,)))
        for v in values:
            m, lo, hi = t_interval(g[v].to_numpy(), level)
            row.update({v: m, f"{v}_sd": float(g[v].std(ddof=1)) if len(g) > 1 else math.nan,
                        f"{v}_lo": lo, f"{v}_hi": hi})
        row["n"] = len(g)
        out.append(row)
    return pd.DataFrame(out)


def paired_difference(frame, column: str, a: Any, b: Any, value: str, seed_col: str = "seed",
                      level: float = 0.95) -> dict[str, float]:
    """``value`` of rows with ``column == a`` minus rows with ``column == b``, paired on ``seed_col``:
    mean difference, t-interval, the number of pairs and how many pairs favour ``a``."""
    sa = frame[frame[column] == a].set_index(seed_col)[value]
    sb = frame[frame[column] == b].set_index(seed_col)[value]
    common = sa.index.intersection(sb.index)
    if len(common) == 0:
        raise ValueError(f"no seed has both {column}={a!r} and {column}={b!r}")
    d = (sa.loc[common] - sb.loc[common]).to_numpy(dtype=float)
    m, lo, hi = t_interval(d, level)
    return {"diff": m, "lo": lo, "hi": hi, "n": int(len(d)), "wins": int((d > 0).sum())}
