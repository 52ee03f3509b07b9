"""Experiment runners of the MultiModN chapter (MultiModN paper, Section 6 and Appendix E).

The paper's datasets (MIMIC, EDU, Weather2k) are replaced by open stand-ins from
:mod:`mmrepro.data`: PBC (static labs) and pbcseq (lab visits as a time series) for MIMIC, the
2013 NYC airport weather for Weather2k, and Titanic (the reference code's quick start).  Each
:class:`Benchmark` fixes the tasks and the Table 3 style hyper-parameters; :func:`parity` runs
experiments 1, 2 and the E.5 inference subsets, :func:`missingness` experiment 4 (MNAR with a
label-flipped test, MAR controls), :func:`importance_table` and :func:`trajectory_table` the
interpretability of experiment 3, :func:`modularity_table` the Appendix B cross-checks.

Repetitions: a *split* is a fresh seeded train/validation/test partition drawn by the loader
(``load_dataset(name, seed=split)``; the loaders fit their standardisation on that split's
training rows), a *seed* re-initialises the weights.  The paper uses 5 seeds x 5 folds of an
80-10-10 K-fold split; repeated seeded 70/15/15 hold-out splits play the role of the folds here.
Confidence intervals (:func:`mean_ci`) are Student-t intervals of the mean over all runs.
"""
from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass, field, replace
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import scipy.stats
import torch

from .. import metrics
from ..data import MultimodalDataset, load_dataset, mar, mnar_flip
from ..experiments.jobs import run_jobs
from ..runs.keys import dataset_fingerprint
from ..stats import t_interval
from . import (MultiModN, PFusion, cumulative_probabilities, evaluation_pairs, fit,
               importance_scores, modularity_networkx, modularity_score, paper_modularity)

__all__ = ["Benchmark", "BENCHMARKS", "load_benchmark", "restrict", "make_model", "task_metrics",
           "mean_ci", "summarise", "paired_differences", "with_only", "thin_time", "parity", "missingness",
           "importance_table", "trajectory_table", "modularity_table", "runs", "Repetitions", "Trained"]


@dataclass(frozen=True)
class Benchmark:
    """One dataset setting: loader and options, tasks, and the hyper-parameters (paper Table 3).

    ``cohort`` names a boolean row mask in ``meta`` that restricts the rows (PBC: the 312 trial
    patients, who have every modality, as the paper keeps the MIMIC patients with all four);
    ``select`` are the tasks whose validation metrics select the multi-task model (Table 3);
    ``time_every`` keeps every k-th time step of the sequence modalities (:func:`thin_time`).
    """

    name: str
    dataset: str
    tasks: tuple[str, ...]
    state_size: int
    hidden: int
    dropout: float
    batch_size: int
    options: Mapping[str, object] = field(default_factory=dict)
    cohort: str | None = None
    select: tuple[str, ...] | None = None
    time_every: int = 1


BENCHMARKS: dict[str, Benchmark] = {
    # MIMIC row of Table 3: batch 16, dropout 0.2, hidden 32, state 50.
    "pbc": Benchmark("pbc", "pbc", ("death_5y", "stage"), 50, 32, 0.2, 16, cohort="trial"),
    "pbcseq": Benchmark("pbcseq", "pbc", ("death_5y",), 50, 32, 0.2, 16, options={"labs": "series"},
                        cohort="trial"),
    # Weather row of Table 3 (batch 128 -> 64 for 700 training windows); selection on the 24 h task.
    "nyc_weather": Benchmark("nyc_weather", "nyc_weather", ("temp_24h", "temp_72h", "humid_48h", "visib_48h"),
                             20, 32, 0.1, 64, select=("temp_24h",)),
    # No Table 3 row: the "medium" setting of the paper's Figure 9 grid (hidden 32, state 20), batch 16.
    "titanic": Benchmark("titanic", "titanic", ("survived",), 20, 32, 0.1, 16),
}


def runs(n_splits: int, n_seeds: int, base_seed: int = 0) -> list[tuple[int, int]]:
    """All (split seed, weight seed) pairs: ``n_splits`` x ``n_seeds`` repetitions."""
    if n_splits < 1 or n_seeds < 1:
        raise ValueError(f"need n_splits >= 1 and n_seeds >= 1, got {n_splits}, {n_seeds}.")
    return [(base_seed + s, base_seed + k) for s in range(n_splits) for k in range(n_seeds)]


def restrict(ds: MultimodalDataset, rows: torch.Tensor) -> MultimodalDataset:
    """Rows selected by a boolean mask, keeping the splits (renumbered to the kept rows)."""
    if rows.dtype != torch.bool or rows.shape != (ds.n,):
        raise ValueError(f"rows must be a bool mask of shape ({ds.n},), got {rows.dtype} {tuple(rows.shape)}.")
    keep = rows.nonzero().flatten()
    position = torch.full((ds.n,), -1, dtype=torch.int64)
    position[keep] = torch.arange(len(keep))
    splits = {s: position[idx][position[idx] >= 0] for s, idx in ds.splits.items()}
    return replace(ds.subset(keep), splits=splits)


def load_benchmark(bench: Benchmark | str, split: int) -> MultimodalDataset:
    """The benchmark's dataset with the loader's split drawn by seed ``split`` (cohort applied)."""
    bench = _bench(bench)
    ds = load_dataset(bench.dataset, seed=split, **dict(bench.options))
    if bench.cohort is not None:
        ds = restrict(ds, ds.meta[bench.cohort].bool())
    if bench.time_every != 1:
        ds = thin_time(ds, bench.time_every)
    return replace(ds, name=bench.name)


def thin_time(ds: MultimodalDataset, every: int) -> MultimodalDataset:
    """Keep time steps ``every-1, 2*every-1, ...`` of every sequence modality (so the last step of a
    full window is kept); a length ``L`` becomes ``L // every``.  A cheaper, coarser time series."""
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ValueError(f"every must be a positive int, got {every!r}.")
    x, lengths = dict(ds.x), dict(ds.lengths)
    for m, length in ds.lengths.items():
        if ds.x[m].shape[1] < every:
            raise ValueError(f"modality {m!r} has {ds.x[m].shape[1]} time steps, fewer than every={every}.")
        x[m] = ds.x[m][:, every - 1::every]
        lengths[m] = length // every
    return replace(ds, x=x, lengths=lengths)


def _bench(bench: Benchmark | str) -> Benchmark:
    if isinstance(bench, Benchmark):
        return bench
    if bench not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {bench!r}; valid: {sorted(BENCHMARKS)}")
    return BENCHMARKS[bench]


def make_model(kind: str, ds: MultimodalDataset, bench: Benchmark, tasks: Sequence[str]) -> MultiModN | PFusion:
    """A MultiModN (any number of tasks) or a single-task P-Fusion for ``ds``'s modalities.

    P-Fusion's embedding per modality is ``ceil(state_size / |M|)`` wide, so that the fused vector
    matches MultiModN's state (paper Appendix B, "architecture alignment").
    """
    feats = {m: int(v.shape[-1]) for m, v in ds.x.items()}
    seq = [m for m in feats if ds.meta.get("modality_kinds", {}).get(m) == "sequence"]
    specs = {t: ds.tasks[t] for t in tasks}
    if kind == "MultiModN":
        return MultiModN(feats, specs, sequence_modalities=seq, state_size=bench.state_size,
                         hidden=bench.hidden, dropout=bench.dropout)
    if kind == "P-Fusion":
        return PFusion(feats, specs, sequence_steps={m: int(ds.x[m].shape[1]) for m in seq},
                       embedding_size=math.ceil(bench.state_size / len(feats)), hidden=bench.hidden,
                       dropout=bench.dropout)
    raise ValueError(f"unknown model kind {kind!r}; valid: 'MultiModN', 'P-Fusion'.")


def task_metrics(kind: str, y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """AUROC and balanced accuracy (binary, multiclass), or MSE and the AUROC of the prediction
    for ``y > 0`` (regression: the target binarised at its training mean, as Figure 2c binarises
    humidity).  An undefined AUROC (one class in the test set) is NaN."""
    def auroc(yt: np.ndarray, yp: np.ndarray, k: str) -> float:
        try:
            return metrics.score("auroc", yt, yp, k)
        except ValueError:
            return math.nan

    if kind == "regression":  # AUROC depends only on the scores' order: their ranks are the [0, 1] scores it needs
        ranks = scipy.stats.rankdata(y_pred) / max(len(y_pred), 1)
        return {"mse": metrics.score("mse", y_true, y_pred, kind),
                "auroc": auroc((y_true > 0).astype(np.float64), ranks, "binary")}
    if kind not in ("binary", "multiclass"):
        raise ValueError(f"task kind {kind!r} is not used in this chapter (binary, multiclass, regression).")
    return {"auroc": auroc(y_true, y_pred, kind),
            "bac": metrics.score("balanced_accuracy", y_true, y_pred, kind)}


def mean_ci(values: Iterable[float], level: float = 0.95) -> tuple[float, float, float]:
    """Mean and Student-t interval over the finite values (:func:`mmrepro.stats.t_interval`);
    NaN values are ignored, and no finite value gives (nan, nan, nan)."""
    v = [float(x) for x in values if np.isfinite(x)]
    return t_interval(v, level) if v else (math.nan, math.nan, math.nan)


def summarise(rows: pd.DataFrame, by: Sequence[str], level: float = 0.95) -> pd.DataFrame:
    """``mean``, ``low``, ``high`` (:func:`mean_ci`) and ``n`` of ``value`` per group of ``by``."""
    out = []
    for key, grp in rows.groupby(list(by), sort=False):
        mean, low, high = mean_ci(grp["value"], level)
        out.append(dict(zip(by, key if isinstance(key, tuple) else (key,)),
                        mean=mean, low=low, high=high, n=int(np.isfinite(grp["value"]).sum())))
    return pd.DataFrame(out)


def paired_differences(rows: pd.DataFrame, a: str, b: str, metric: str, relative: bool = False) -> pd.DataFrame:
    """Per-run differences between models ``a`` and ``b`` on ``metric`` (paired on split and seed).

    ``rows`` has columns model, split, seed, metric, value (one setting: filter it first).  Returns
    columns split, seed, ``a``, ``b`` and ``diff`` = ``a - b``, or ``a / b - 1`` with ``relative``;
    runs where either value is missing or not finite are dropped.
    """
    sub = rows[(rows["metric"] == metric) & rows["model"].isin([a, b])]
    if sub.duplicated(["split", "seed", "model"]).any():
        raise ValueError(f"rows hold several {metric} values per (split, seed, model): filter to one setting first.")
    wide = sub.pivot(index=["split", "seed"], columns="model", values="value")
    for model in (a, b):
        if model not in wide:
            raise ValueError(f"no {metric} rows for model {model!r}; models: {sorted(sub['model'].unique())}.")
    wide = wide[np.isfinite(wide[a]) & np.isfinite(wide[b])].reset_index()
    wide["diff"] = wide[a] / wide[b] - 1 if relative else wide[a] - wide[b]
    return wide[["split", "seed", a, b, "diff"]]


def with_only(ds: MultimodalDataset, keep: Iterable[str]) -> MultimodalDataset:
    """``ds`` with every modality outside ``keep`` marked absent (MultiModN skips it, P-Fusion pads it)."""
    keep = set(keep)
    unknown = keep - set(ds.x)
    if unknown:
        raise ValueError(f"modalities {sorted(unknown)} are not in {ds.modalities}.")
    present = {m: p if m in keep else torch.zeros_like(p) for m, p in ds.present.items()}
    return replace(ds, present=present)


@dataclass
class Trained:
    """One trained MultiModN or P-Fusion (a repetition, plain data): its configuration and weight
    seed, the selected epoch, its validation score and history, and its parameters (kept: every
    model is scored on several test variants, and some are inspected, see :meth:`Repetitions.model`)."""

    config: dict
    seed: int
    score: float
    best_epoch: int
    history: list
    state: dict = field(repr=False, default_factory=dict)


class Repetitions:
    """``objective(config, seed) -> Trained`` for one benchmark (the objective protocol of
    :mod:`mmrepro.experiments.jobs`). ``config``: ``model`` ("MultiModN" or "P-Fusion"), ``tasks``,
    ``select`` (selection tasks or None) and ``data``, the name of one of ``datasets`` (a split, or
    a split with a missingness pattern)."""

    def __init__(self, bench: Benchmark, datasets: Mapping[str, MultimodalDataset], epochs: int,
                 device: torch.device | str = "cpu") -> None:
        self.bench, self.datasets, self.epochs, self.device = bench, dict(datasets), epochs, torch.device(device)
        self._fingerprints: dict[str, str] = {}

    def __call__(self, config: dict, seed: int) -> Trained:
        ds = self.datasets[config["data"]]
        torch.manual_seed(seed)
        model = make_model(config["model"], ds, self.bench, config["tasks"])
        res = fit(model, ds.split("train"), ds.split("val"), epochs=self.epochs, batch_size=self.bench.batch_size,
                  seed=seed, device=self.device, select_tasks=config["select"])
        return Trained(dict(config), seed, float(res.best_score), res.best_epoch, res.history,
                       {k: v.detach().cpu() for k, v in model.state_dict().items()})

    def key(self, config: dict, seed: int) -> dict:
        name = config["data"]
        if name not in self._fingerprints:
            self._fingerprints[name] = dataset_fingerprint(self.datasets[name])
        return {"objective": "multimodn", "bench": dataclasses.asdict(self.bench), "epochs": self.epochs,
                "device": self.device.type, "data": self._fingerprints[name], "config": config, "seed": seed}

    def model(self, run: Trained) -> MultiModN | PFusion:
        """The trained model of ``run``, rebuilt and on the device, in eval mode."""
        c = run.config
        model = make_model(c["model"], self.datasets[c["data"]], self.bench, c["tasks"])
        model.load_state_dict(run.state)
        return model.to(self.device).eval()


def _score(model: MultiModN | PFusion, data: MultimodalDataset, device: torch.device) -> dict[str, dict[str, float]]:
    pairs = evaluation_pairs(model, data, device=device)
    return {t: task_metrics(model.tasks[t].kind, *pairs[t]) for t in pairs}


def parity(bench: Benchmark | str, repetitions: Sequence[tuple[int, int]], epochs: int,
           device: torch.device | str = "cpu", multitask: bool = True,
           subsets_task: str | None = None, executor: str = "local") -> tuple[pd.DataFrame, dict]:
    """Experiments 1, 2 and E.5 on one benchmark.

    For every repetition (split, seed): a single-task MultiModN and a single-task P-Fusion per
    task, and (``multitask`` with several tasks) one multi-task MultiModN; all scored on the test
    split.  With ``subsets_task``, the two single-task models of that task are also scored with
    every non-empty subset of modalities at inference (E.5; the others absent).  Every model
    trains through :func:`mmrepro.experiments.run_jobs` on ``executor`` ("local" or "ray").

    Returns ``rows`` (columns benchmark, task, model, split, seed, metric, value, inputs) and the
    models ``{(split, seed): {(model name, task or "all"): model}}``.
    """
    bench = _bench(bench)
    device = torch.device(device)
    objective = Repetitions(bench, {f"split {s}": load_benchmark(bench, s) for s in dict.fromkeys(
        split for split, _ in repetitions)}, epochs, device)
    names, jobs = [], []
    for split, seed in repetitions:
        for task in bench.tasks:
            for kind in ("MultiModN", "P-Fusion"):
                names.append((split, seed, kind, task))
                jobs.append(({"model": kind, "tasks": [task], "select": None, "data": f"split {split}"}, seed))
        if multitask and len(bench.tasks) > 1:
            names.append((split, seed, "MultiModN multi-task", "all"))
            jobs.append(({"model": "MultiModN", "tasks": list(bench.tasks),
                          "select": list(bench.select) if bench.select else None, "data": f"split {split}"}, seed))
    models: dict = {}
    for (split, seed, name, task), run in zip(names, run_jobs(objective, jobs, executor)):
        models.setdefault((split, seed), {})[(name, task)] = objective.model(run)
    rows = []
    for (split, seed), trained in models.items():
        ds = objective.datasets[f"split {split}"]
        test = ds.split("test")
        all_inputs = "+".join(ds.modalities)
        for (name, _), model in trained.items():
            for task, scores in _score(model, test, device).items():
                rows += [dict(benchmark=bench.name, task=task, model=name, split=split, seed=seed, metric=k,
                              value=v, inputs=all_inputs) for k, v in scores.items()]
        if subsets_task is not None:
            for r in range(1, len(ds.modalities)):
                for keep in itertools.combinations(ds.modalities, r):
                    for kind in ("MultiModN", "P-Fusion"):
                        scores = _score(trained[(kind, subsets_task)], with_only(test, keep), device)[subsets_task]
                        rows += [dict(benchmark=bench.name, task=subsets_task, model=kind, split=split, seed=seed,
                                      metric=k, value=v, inputs="+".join(keep)) for k, v in scores.items()]
    return pd.DataFrame(rows), models


def missingness(bench: Benchmark | str, task: str, modality: str, rates: Sequence[float],
                repetitions: Sequence[tuple[int, int]], epochs: int, device: torch.device | str = "cpu",
                cls: int = 1, executor: str = "local") -> pd.DataFrame:
    """Experiment 4 (Section 6.4, Figures 5, 12, 13) on a binary ``task``.

    MNAR: in the training and validation rows, a fraction ``rate`` of class ``cls`` loses
    ``modality``; tested with no missingness (``test="none"``) and with the label-flipped pattern
    (``test="flip"``: the same fraction of class ``1 - cls`` loses it).  MAR control: the same
    fraction of all training/validation rows loses it, drawn from an observed covariate
    (:func:`mmrepro.data.mar`); tested with no missingness and with MAR at the same rate
    (``test="MAR"``).  Rate 0 is trained once and reported under both patterns.  Every model
    trains through :func:`mmrepro.experiments.run_jobs` on ``executor``.

    Returns rows (pattern, rate, test, model, split, seed, metric, value).
    """
    bench = _bench(bench)
    device = torch.device(device)
    datasets, settings = {}, []  # settings: (split, seed, rate, data name, {(pattern, test): test split})
    for split, seed in repetitions:
        ds = load_benchmark(bench, split)
        clean_test = ds.split("test")
        datasets[f"split {split}"] = ds
        for rate in rates:
            if rate == 0:
                settings.append((split, seed, rate, f"split {split}",
                                 {("MNAR", "none"): clean_test, ("MNAR", "flip"): clean_test,
                                  ("MAR", "none"): clean_test, ("MAR", "MAR"): clean_test}))
                continue
            flipped = mnar_flip(ds, modality, rate, task, cls, seed=seed, test="flip")
            marred = ds
            for part in ("train", "val", "test"):
                marred = mar(marred, modality, rate, seed=seed, rows=part)
            for pattern, data, tests in (("MNAR", flipped, {("MNAR", "none"): clean_test,
                                                             ("MNAR", "flip"): flipped.split("test")}),
                                         ("MAR", marred, {("MAR", "none"): clean_test,
                                                          ("MAR", "MAR"): marred.split("test")})):
                name = f"split {split}, seed {seed}, {pattern} {modality} {rate:g} of class {cls}"
                datasets[name] = data
                settings.append((split, seed, rate, name, tests))
    objective = Repetitions(bench, datasets, epochs, device)
    jobs = [({"model": kind, "tasks": [task], "select": None, "data": name}, seed)
            for split, seed, rate, name, _ in settings for kind in ("MultiModN", "P-Fusion")]
    trained = iter(run_jobs(objective, jobs, executor))
    rows = []
    for split, seed, rate, _, tests in settings:
        for kind in ("MultiModN", "P-Fusion"):
            model = objective.model(next(trained))
            for (pattern, test_name), test in tests.items():
                rows += [dict(pattern=pattern, rate=rate, test=test_name, model=kind, split=split,
                              seed=seed, metric=k, value=v)
                         for k, v in _score(model, test, device)[task].items()]
    return pd.DataFrame(rows)


def _scalar(kind: str, prob: torch.Tensor, positive: Sequence[int] | None) -> torch.Tensor:
    """One number per prediction: P(y=1) (binary), P(class in ``positive``) (multiclass), the value."""
    if kind == "multiclass":
        if not positive:
            raise ValueError("a multiclass task needs `positive` classes to summarise its probabilities.")
        return prob[..., list(positive)].sum(-1)
    return prob[..., 0]


def importance_table(model: MultiModN, data: MultimodalDataset, positive: Mapping[str, Sequence[int]] | None = None,
                     device: torch.device | str = "cpu") -> pd.DataFrame:
    """Importance score (Section 6.3, Figure 4 IMC) per task and modality, averaged over ``data``.

    Each encoder alone on ``s0``, minus the prior's prediction, in probability (or regression)
    units; multiclass tasks as P(class in ``positive[task]``).  Rows: task, modality, importance
    (mean), mean_abs (mean absolute change), n (samples where the modality was present).
    """
    d = data.to(device)
    scores = importance_scores(model, d.x, d.present, d.lengths or None)
    rows = []
    for task, s in scores.items():
        s = _scalar(model.tasks[task].kind, s, (positive or {}).get(task))
        for j, m in enumerate(model.modalities):
            v = s[:, j]
            v = v[~torch.isnan(v)]
            rows.append(dict(task=task, modality=m, importance=float(v.mean()) if len(v) else math.nan,
                             mean_abs=float(v.abs().mean()) if len(v) else math.nan, n=int(len(v))))
    return pd.DataFrame(rows)


def trajectory_table(model: MultiModN, data: MultimodalDataset, row: int,
                     positive: Mapping[str, Sequence[int]] | None = None,
                     device: torch.device | str = "cpu") -> pd.DataFrame:
    """Cumulative probability (Figure 4 CP) of one sample: a task x step table, steps from the
    prior through every encoder (``modality@t`` for time steps); skipped steps repeat the last value."""
    one = data.subset(torch.tensor([row])).to(device)
    traj = cumulative_probabilities(model, one.x, one.present, one.lengths or None)
    table = {task: _scalar(model.tasks[task].kind, p[0], (positive or {}).get(task)).cpu().numpy()
             for task, p in traj.probabilities.items()}
    return pd.DataFrame(table, index=traj.step_labels).T


def modularity_table(n_modalities: Iterable[int], n_tasks: Iterable[int]) -> pd.DataFrame:
    """Q of Appendix B for every (|M|, |T|): closed form, networkx on the module graph, and the
    expression printed in the paper."""
    rows = [dict(M=m, T=t, closed_form=modularity_score(m, t), networkx=modularity_networkx(m, t),
                 paper=paper_modularity(m, t))
            for m in n_modalities for t in n_tasks]
    return pd.DataFrame(rows)
