"""The MultiModN chapter's experiments (MultiModN paper, Section 6 and Appendices B, E):
:func:`parity` runs experiments 1 and 2 with the E.4 transformer and the E.5 inference subsets,
:func:`missingness` experiment 4 (MNAR with a label-flipped test, MAR controls), :func:`sensitivity`
the Figure 9 hyper-parameter sweep, :func:`importance_table` and :func:`trajectories` the
interpretability of experiment 3, :func:`modularity_table` the Appendix B cross-checks.

Every model trains through :func:`mmrepro.runs.jobs.run_jobs` with the :class:`Repetitions`
objective: finished runs land in the run cache, and ``executor="ray"`` trains them as Ray tasks.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import math
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from mmrepro.core.data import MultimodalDataset, mar, mnar_flip
from mmrepro.papers.multimodn.batched import fit_many_multimodn
from mmrepro.papers.multimodn.benchmarks import (
    MODEL_KINDS,
    Benchmark,
    FoldRun,
    Model,
    bench_of,
    load_benchmark,
    make_model,
    target_means,
    task_metrics,
    with_only,
)
from mmrepro.papers.multimodn.interpret import cumulative_probabilities, importance_scores
from mmrepro.papers.multimodn.model import MultiModN
from mmrepro.papers.multimodn.modularity import modularity_networkx, modularity_score, paper_modularity
from mmrepro.papers.multimodn.train import evaluation_pairs
from mmrepro.runs.jobs import run_jobs
from mmrepro.runs.keys import dataset_fingerprint


def clusters(rows: pd.DataFrame) -> pd.Series:
    """Each row's fold among all folds of all repeats ("repeat/fold"; :attr:`FoldRun.cluster`)."""
    return rows["repeat"].astype(str) + "/" + rows["fold"].astype(str)


def paired_differences(rows: pd.DataFrame, a: str, b: str, metric: str, relative: bool = False) -> pd.DataFrame:
    """Per-run differences between models ``a`` and ``b`` on ``metric`` (paired on repeat, fold and init).

    ``rows`` has columns model, repeat, fold, init, metric, value (one setting: filter it first).  Returns
    columns repeat, fold, init, cluster, ``a``, ``b`` and ``diff`` = ``a - b``, or ``a / b - 1`` with
    ``relative``; runs where either value is missing or not finite are dropped.
    """
    sub = rows[(rows["metric"] == metric) & rows["model"].isin([a, b])]
    keys = ["repeat", "fold", "init"]
    if sub.duplicated([*keys, "model"]).any():
        raise ValueError(f"rows hold several {metric} values per (repeat, fold, init, model): filter to one setting first.")
    wide = sub.pivot(index=keys, columns="model", values="value")
    for model in (a, b):
        if model not in wide:
            raise ValueError(f"no {metric} rows for model {model!r}; models: {sorted(sub['model'].unique())}.")
    wide = wide[np.isfinite(wide[a]) & np.isfinite(wide[b])].reset_index()
    wide["diff"] = wide[a] / wide[b] - 1 if relative else wide[a] - wide[b]
    wide["cluster"] = clusters(wide)
    return wide[[*keys, "cluster", a, b, "diff"]]


# what a cached run was trained with: version 2 trains every kind stacked over runs (each run's own dropout
# stream) and the transformer's attention in its factored order; runs cached by earlier versions are not reused
TRAINING = 2
SETTINGS = ("state_size", "hidden", "dropout", "batch_size", "loss_weights")


@dataclass
class Trained:
    """One trained model of a repetition (plain data): its configuration and weight seed, the
    selected epoch, its validation score and history, and its parameters (kept: every model is
    scored on several test variants, and some are inspected, see :meth:`Repetitions.model`)."""

    config: dict
    seed: int
    score: float
    best_epoch: int
    history: list
    state: dict = field(repr=False, default_factory=dict)


class Repetitions:
    """``objective(config, seed) -> Trained`` for one benchmark (the objective protocol of
    :mod:`mmrepro.runs.protocol`); ``seed`` initialises the weights and orders the batches.

    ``config``: ``model`` (a kind of :data:`MODEL_KINDS`), ``tasks``, ``select`` (selection tasks or None),
    ``data`` (the name of one of ``datasets``: a fold, or a fold with a missingness pattern),
    ``epochs`` and ``setting`` (changes to the benchmark's hyper-parameters, among
    :data:`SETTINGS`).  Transformers train with their E.4 batch size, the others with the
    benchmark's; every model trains as :func:`~mmrepro.papers.multimodn.fit_multimodn` does (Adam, clipping,
    validation-selected epoch), many at once (:meth:`many`).
    """

    def __init__(self, bench: Benchmark, datasets: Mapping[str, MultimodalDataset],
                 device: torch.device | str = "cpu") -> None:
        self.bench, self.datasets, self.device = bench, dict(datasets), torch.device(device)
        self._fingerprints: dict[str, str] = {}

    def setting(self, config: Mapping[str, Any]) -> Benchmark:
        """The benchmark with the config's ``setting`` applied."""
        changes = dict(config.get("setting") or {})
        bad = sorted(set(changes) - set(SETTINGS))
        if bad:
            raise ValueError(f"cannot change {bad} of a benchmark; valid: {SETTINGS}.")
        if "loss_weights" in changes:
            changes["loss_weights"] = tuple(changes["loss_weights"])
        return replace(self.bench, **changes)

    def __call__(self, config: dict, seed: int) -> Trained:
        return self.many([(config, seed)])[0]

    def many(self, jobs: Sequence[tuple[dict, int]]) -> list[Trained]:
        """Jobs of one :meth:`group`, each the run ``objective(config, seed)`` trains, together as one stacked
        model (:func:`mmrepro.papers.multimodn.batched.fit_many_multimodn`): each run on its own data (its fold,
        its missingness pattern) with its own batches, dropout stream, optimiser state and selected epoch."""
        groups = {self.group(c) for c, _ in jobs}
        if len(groups) != 1:
            raise ValueError(f"Repetitions.many trains jobs of one group, got {len(groups)}; split them by group")
        config = jobs[0][0]
        data = [self.datasets[c["data"]] for c, _ in jobs]
        bench = self.setting(config)
        models = []
        for ds, (_, seed) in zip(data, jobs):
            torch.manual_seed(seed)
            models.append(make_model(config["model"], ds, bench, config["tasks"]))
        batch = bench.transformer.batch_size if config["model"] == "Transformer" else bench.batch_size
        results = fit_many_multimodn(models, [ds.split("train") for ds in data], [ds.split("val") for ds in data],
                                     seeds=[s for _, s in jobs], epochs=config["epochs"], batch_size=batch,
                                     device=self.device, select_tasks=config["select"])
        return [Trained(dict(c), s, float(res.best_score), res.best_epoch, res.history,
                        {k: v.detach().cpu() for k, v in model.state_dict().items()})
                for (c, s), res, model in zip(jobs, results, models)]

    def group(self, config: dict) -> tuple:
        """Jobs that can share one stacked model: the same model kind, tasks, selection, epochs and setting
        (their data may differ: every dataset of a :class:`Repetitions` has the benchmark's modalities)."""
        return (config["model"], tuple(config["tasks"]), tuple(config["select"] or ()), config["epochs"],
                json.dumps(config.get("setting") or {}, sort_keys=True))

    def key(self, config: dict, seed: int) -> dict:
        name = config["data"]
        if name not in self._fingerprints:
            self._fingerprints[name] = dataset_fingerprint(self.datasets[name])
        return {"objective": "multimodn", "training": TRAINING, "bench": dataclasses.asdict(self.bench),
                "device": self.device.type,
                "data": self._fingerprints[name], "config": config, "seed": seed}

    def model(self, run: Trained) -> Model:
        """The trained model of ``run``, rebuilt and on the device, in eval mode."""
        c = run.config
        model = make_model(c["model"], self.datasets[c["data"]], self.setting(c), c["tasks"])
        model.load_state_dict(run.state)
        return model.to(self.device).eval()


def _config(kind: str, tasks: Sequence[str], data: str, epochs: int, select: Sequence[str] | None = None,
            setting: Mapping[str, Any] | None = None) -> dict:
    return {"model": kind, "tasks": list(tasks), "select": list(select) if select else None, "data": data,
            "epochs": int(epochs), "setting": {k: list(v) if isinstance(v, tuple) else v
                                               for k, v in (setting or {}).items()}}


def _train(objective: Repetitions, jobs: Sequence[tuple[dict, int]], executor: Any) -> list[tuple[Model, dict]]:
    """Every job through :func:`~mmrepro.runs.jobs.run_jobs`; each model with ``{"best_epoch", "epochs"}``
    (a best epoch at the last epoch says the model might still improve with more epochs)."""
    return [(objective.model(t), {"best_epoch": t.best_epoch, "epochs": t.config["epochs"]})
            for t in run_jobs(objective, jobs, executor)]


def _score(model: Model, data: MultimodalDataset, device: torch.device,
           means: Mapping[str, float] | None = None) -> dict[str, dict[str, float]]:
    pairs = evaluation_pairs(model, data, device=device)
    return {t: task_metrics(model.tasks[t].kind, *pairs[t], (means or {}).get(t)) for t in pairs}


def _rows(trained_model: Model, data: MultimodalDataset, device: torch.device,
          means: Mapping[str, float] | None = None, **labels: object) -> list[dict]:
    """Test metrics of ``trained_model`` on ``data`` as rows carrying ``labels`` (``means``: the regression
    targets' training means, for the MSE skill score)."""
    return [dict(labels, task=task, metric=k, value=v)
            for task, scores in _score(trained_model, data, device, means).items() for k, v in scores.items()]


Inspect = Callable[[str, Model, MultimodalDataset, FoldRun], object]


def _fold_name(run: FoldRun) -> str:
    return f"fold {run.fold} of {run.n_folds} (seed {run.seed})"


def parity(bench: Benchmark | str, repetitions: Sequence[FoldRun], epochs: int, device: torch.device | str = "cpu",
           kinds: Sequence[str] = MODEL_KINDS, multitask: Sequence[str] = ("MultiModN",),
           variants: Mapping[str, Mapping[str, Any]] | None = None, subsets_task: str | None = None,
           inspect: Inspect | None = None, transformer_epochs: int | None = None,
           transformer_inits: int | None = None,
           executor: Any = "local") -> tuple[pd.DataFrame, list[tuple[str, FoldRun, object]]]:
    """Experiments 1 and 2, the E.4 transformer and the E.5 inference subsets on one benchmark.

    For every run: a single-task model of every kind in ``kinds`` per task; with several tasks, one
    multi-task model of every kind in ``multitask`` (named ``"<kind> multi-task"``); one single-task
    MultiModN per task for every ``variants`` entry ``{name: setting}`` (changes to the benchmark's
    hyper-parameters, e.g. ``{"loss_weights": (1, 0)}``: without the state-change penalty).
    Transformers train for ``transformer_epochs`` (default ``epochs``; the paper trains them for 50),
    and only in the runs of each fold's first ``transformer_inits`` initialisations (default: every
    run; the paper trains one model per fold).  All are scored on the run's test fold.  With ``subsets_task``, that task's single-task
    MultiModN and P-Fusion are also scored with every non-empty proper subset of modalities at
    inference (E.5; the others absent).  ``inspect(name, model, data, run)`` is called for every
    trained model; what it returns (unless None) is collected, so that a caller keeps what it
    needs of a model (importance scores, trajectories) without keeping the model.  Every model
    trains through :func:`mmrepro.runs.jobs.run_jobs` on ``executor`` ("local" or "ray").

    Returns ``rows`` (benchmark, model, repeat, fold, init, best_epoch, epochs, inputs, task, metric, value)
    and the list of ``(model name, run, inspect result)``.
    """
    bench = bench_of(bench)
    device = torch.device(device)
    unknown = sorted((set(kinds) | set(multitask)) - set(MODEL_KINDS))
    if unknown:
        raise ValueError(f"unknown model kinds {unknown}; valid: {MODEL_KINDS}.")
    objective = Repetitions(bench, {_fold_name(r): load_benchmark(bench, r) for r in repetitions}, device)
    if transformer_inits is not None and (isinstance(transformer_inits, bool) or not isinstance(transformer_inits, int)
                                          or transformer_inits < 1):
        raise ValueError(f"transformer_inits must be an int >= 1 or None (every run), got {transformer_inits!r}.")
    n_epochs = {k: (transformer_epochs or epochs) if k == "Transformer" else epochs for k in MODEL_KINDS}
    names, jobs = [], []
    for r in repetitions:
        data = _fold_name(r)
        skip = set() if transformer_inits is None or r.init_index < transformer_inits else {"Transformer"}
        for task in bench.tasks:
            for kind in (k for k in kinds if k not in skip):
                names.append((kind, r, (task,)))
                jobs.append((_config(kind, [task], data, n_epochs[kind]), r.init))
            for name, setting in (variants or {}).items():
                names.append((name, r, (task,)))
                jobs.append((_config("MultiModN", [task], data, epochs, setting=setting), r.init))
        if len(bench.tasks) > 1:
            for kind in (k for k in multitask if k not in skip):
                names.append((f"{kind} multi-task", r, bench.tasks))
                jobs.append((_config(kind, bench.tasks, data, n_epochs[kind], bench.select), r.init))
    rows, inspected = [], []
    for (name, r, tasks), (model, fitted) in zip(names, _train(objective, jobs, executor)):
        ds = objective.datasets[_fold_name(r)]
        test = ds.split("test")
        labels = dict(benchmark=bench.name, model=name, repeat=r.repeat, fold=r.fold, init=r.init, **fitted)
        rows += _rows(model, test, device, target_means(ds), **labels, inputs="+".join(test.modalities))
        if subsets_task is not None and tasks == (subsets_task,) and name in ("MultiModN", "P-Fusion"):
            for k in range(1, len(test.modalities)):
                for keep in itertools.combinations(test.modalities, k):
                    rows += _rows(model, with_only(test, keep), device, **labels, inputs="+".join(keep))
        if inspect is not None:
            result = inspect(name, model, ds, r)
            if result is not None:
                inspected.append((name, r, result))
    return pd.DataFrame(rows), inspected


def missingness(bench: Benchmark | str, task: str, modality: str, rates: Sequence[float],
                repetitions: Sequence[FoldRun], epochs: int, device: torch.device | str = "cpu",
                cls: int = 1, kinds: Sequence[str] = ("MultiModN", "P-Fusion"), executor: Any = "local") -> pd.DataFrame:
    """Experiment 4 (Section 6.4, Figures 5, 12, 13) on a binary ``task``.

    MNAR: in the training and validation rows, a fraction ``rate`` of class ``cls`` loses
    ``modality``; tested with no missingness (``test="none"``) and with the label-flipped pattern
    (``test="flip"``: the same fraction of class ``1 - cls`` loses it).  MAR control: the same
    fraction of all training/validation rows loses it, drawn from an observed covariate
    (:func:`mmrepro.core.data.mar`); tested with no missingness and with MAR at the same rate
    (``test="MAR"``).  Rate 0 is trained once and reported under both patterns.  The patterns
    are drawn with the run's ``init`` seed.  Every model trains through
    :func:`mmrepro.runs.jobs.run_jobs` on ``executor``.

    Returns rows (pattern, rate, test, model, repeat, fold, init, best_epoch, epochs, task, metric, value).
    """
    bench = bench_of(bench)
    device = torch.device(device)
    datasets, settings = {}, []  # (run, rate, data name, {(pattern, test): test split})
    for r in repetitions:
        fold = _fold_name(r)
        ds = datasets.setdefault(fold, load_benchmark(bench, r))
        clean = ds.split("test")
        for rate in rates:
            if rate == 0:
                settings.append((r, rate, fold, {("MNAR", "none"): clean, ("MNAR", "flip"): clean,
                                                 ("MAR", "none"): clean, ("MAR", "MAR"): clean}))
                continue
            flipped = mnar_flip(ds, modality, rate, task, cls, seed=r.init, test="flip")
            marred = ds
            for part in ("train", "val", "test"):
                marred = mar(marred, modality, rate, seed=r.init, rows=part)
            for pattern, data, tests in (("MNAR", flipped, {("MNAR", "none"): clean, ("MNAR", "flip"): flipped.split("test")}),
                                         ("MAR", marred, {("MAR", "none"): clean, ("MAR", "MAR"): marred.split("test")})):
                name = f"{fold}, {pattern} {modality} {rate:g} of class {cls}, pattern seed {r.init}"
                datasets[name] = data
                settings.append((r, rate, name, tests))
    objective = Repetitions(bench, datasets, device)
    jobs = [(_config(kind, [task], name, epochs), r.init) for r, _, name, _ in settings for kind in kinds]
    trained = iter(_train(objective, jobs, executor))
    rows = []
    for r, rate, _, tests in settings:
        for kind in kinds:
            model, fitted = next(trained)
            for (pattern, test_name), test in tests.items():
                rows += _rows(model, test, device, pattern=pattern, rate=rate, test=test_name, model=kind,
                              repeat=r.repeat, fold=r.fold, init=r.init, **fitted)
    return pd.DataFrame(rows)


SENSITIVE = ("state_size", "hidden", "dropout", "batch_size")


def sensitivity(bench: Benchmark | str, task: str, grid: Mapping[str, Sequence[float]], repetitions: Sequence[FoldRun],
                epochs: int, device: torch.device | str = "cpu", executor: Any = "local") -> pd.DataFrame:
    """Figure 9: single-task MultiModN with one hyper-parameter of ``bench`` changed at a time.

    ``grid`` maps parameters among :data:`SENSITIVE` to the values to try; every other setting
    stays the benchmark's (the centre, also trained once).  Returns rows (parameter, setting,
    repeat, fold, init, best_epoch, epochs, task, metric, value); the centre appears under every parameter
    with its own value.
    """
    bench = bench_of(bench)
    device = torch.device(device)
    bad = sorted(set(grid) - set(SENSITIVE))
    if bad:
        raise ValueError(f"cannot vary {bad}; valid parameters: {SENSITIVE}.")
    settings: dict[tuple[str, Any], dict] = {("centre", None): {}}
    for param, values in grid.items():
        for v in values:
            if v != getattr(bench, param):
                settings[(param, v)] = {param: type(getattr(bench, param))(v)}
    objective = Repetitions(bench, {_fold_name(r): load_benchmark(bench, r) for r in repetitions}, device)
    keys = [(key, r) for key in settings for r in repetitions]
    jobs = [(_config("MultiModN", [task], _fold_name(r), epochs, setting=settings[key]), r.init) for key, r in keys]
    rows = []
    for ((param, value), r), (model, fitted) in zip(keys, _train(objective, jobs, executor)):
        scored = _rows(model, objective.datasets[_fold_name(r)].split("test"), device, repeat=r.repeat, fold=r.fold,
                       init=r.init, **fitted)
        for p in grid if param == "centre" else [param]:
            rows += [dict(row, parameter=p, setting=getattr(bench, p) if param == "centre" else value)
                     for row in scored]
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


def trajectories(model: MultiModN, data: MultimodalDataset, positive: Mapping[str, Sequence[int]] | None = None,
                 device: torch.device | str = "cpu") -> pd.DataFrame:
    """Cumulative probability (Figure 4 CP) of every sample along the encoding sequence.

    Long table: row (sample index in ``data``), task, step (0 = prior), label (``"prior"``, the
    modality, ``modality@t`` for time steps), probability (P(y=1), P(class in ``positive[task]``), or
    the regression value; a skipped step repeats the previous value) and target (the binary label,
    1 if the class is in ``positive[task]``, or the value; NaN when unknown).
    """
    d = data.to(device)
    traj = cumulative_probabilities(model, d.x, d.present, d.lengths or None)
    frames = []
    for task, p in traj.probabilities.items():
        kind = model.tasks[task].kind
        prob = _scalar(kind, p, (positive or {}).get(task)).cpu().numpy()
        y = d.y[task].cpu()
        if kind == "multiclass":
            target = torch.where(y >= 0, torch.isin(y, torch.tensor(list(positive[task]))).double(),
                                 torch.tensor(math.nan, dtype=torch.float64))
        else:
            target = y.double()
        n, k = prob.shape
        frames.append(pd.DataFrame({"row": np.repeat(np.arange(n), k), "task": task, "step": np.tile(np.arange(k), n),
                                    "label": np.tile(traj.step_labels, n), "probability": prob.ravel(),
                                    "target": np.repeat(target.numpy(), k)}))
    return pd.concat(frames, ignore_index=True)


def modularity_table(n_modalities: Iterable[int], n_tasks: Iterable[int]) -> pd.DataFrame:
    """Q of Appendix B for every (|M|, |T|): closed form, networkx on the module graph, and the
    expression printed in the paper."""
    rows = [dict(M=m, T=t, closed_form=modularity_score(m, t), networkx=modularity_networkx(m, t),
                 paper=paper_modularity(m, t))
            for m in n_modalities for t in n_tasks]
    return pd.DataFrame(rows)


POSITIVE = {"stage": [2, 3]}  # PBC stage read as P(stage 3 or 4), advanced disease (Exp. 3)


def inspect_multitask(device: torch.device | str) -> Inspect:
    """What Exp. 3 (Section 6.3, Figure 4) needs of a multi-task PBC MultiModN, computed while the model
    exists: the training prevalences, the importance table on the validation and test rows and the test
    trajectories (with each row's patient id)."""
    def inspect(name: str, model: Model, data: MultimodalDataset, run: FoldRun) -> dict | None:
        if name != "MultiModN multi-task":
            return None
        train, test = data.split("train"), data.split("test")
        stage = train.y["stage"][train.y["stage"] >= 0]
        prevalence = {"death_5y": float(torch.nanmean(train.y["death_5y"])),
                      "stage": float(torch.isin(stage, torch.tensor(POSITIVE["stage"])).double().mean())}
        importance = pd.concat([importance_table(model, data.split(s), POSITIVE, device).assign(split=s)
                                for s in ("val", "test")])
        traj = trajectories(model, test, POSITIVE, device)
        traj["patient"] = test.meta["patient_id"][torch.tensor(traj["row"].to_numpy(copy=True))].numpy()
        return {"importance": importance, "trajectories": traj, "prevalence": prevalence}

    return inspect


def chapter_parity(benches: Mapping[str, Benchmark], repetitions: Sequence[FoldRun], epochs: int,
                   device: torch.device | str, transformer_epochs: int, transformer_inits: int,
                   executor: Any = "local") -> tuple[pd.DataFrame, dict[str, list]]:
    """The chapter's Exp. 1, 2, E.4 and E.5 runs (:func:`parity` on every benchmark): multi-task MultiModN
    and transformer on PBC and weather, the E.5 subsets and the Exp. 3 inspection on PBC, Titanic's
    MultiModN also without the state-change penalty. Returns all rows and the inspection per benchmark."""
    settings = {
        "pbc": dict(multitask=("MultiModN", "Transformer"), subsets_task="death_5y", inspect=inspect_multitask(device)),
        "pbcseq": {},
        "nyc_weather": dict(multitask=("MultiModN", "Transformer")),
        "titanic": dict(variants={"MultiModN without penalty": {"loss_weights": (1.0, 0.0)}}),
    }
    rows, inspected = [], {}
    for name, kw in settings.items():
        part, inspected[name] = parity(benches[name], repetitions, epochs, device, transformer_epochs=transformer_epochs,
                                       transformer_inits=transformer_inits, executor=executor, **kw)
        rows.append(part)
    return pd.concat(rows, ignore_index=True), inspected


def inspected_frames(inspected: Sequence[tuple[str, FoldRun, dict]]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The Exp. 3 inspections of :func:`inspect_multitask` over runs as three tables (importance,
    trajectories, prevalence), each with the run's fold and init."""
    def label(frame: pd.DataFrame, r: FoldRun) -> pd.DataFrame:
        return frame.assign(repeat=r.repeat, fold=r.fold, init=r.init, cluster=r.cluster)

    imp = pd.concat([label(d["importance"], r) for _, r, d in inspected], ignore_index=True)
    traj = pd.concat([label(d["trajectories"], r) for _, r, d in inspected], ignore_index=True)
    prev = pd.DataFrame([dict(repeat=r.repeat, fold=r.fold, init=r.init, cluster=r.cluster, task=t, prevalence=v)
                         for _, r, d in inspected for t, v in d["prevalence"].items()])
    return imp, traj, prev
