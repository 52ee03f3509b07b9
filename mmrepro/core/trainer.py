"""One training loop for every method: supervised, MIND/TS/MKE distillation and the balancing methods.

:func:`fit` trains a :class:`~mmrepro.core.models.MultimodalNet` on a :class:`~mmrepro.core.data.MultimodalDataset`
with Adam (default) and one optimiser parameter group per modality branch plus ``"fusion"``.
Each epoch it logs every head's loss and metrics on the training rows (from the training passes
themselves) and on the validation set, the conditional utilisation rates u (MIND eq. 6 / MILES
eq. 4) and delta (MILES eq. 5), each group's learning rate and what the balancing method did;
it keeps the checkpoint with the best validation score and stops early on request.
When the data fit on the device (always on CPU; under half the free memory on CUDA), batches are
index slices of device tensors, with no DataLoader; otherwise rows stay in host memory and each
batch is sliced there and copied over.

:func:`fit_many` trains K runs of one architecture -- different seeds, learning rates, settings of
one balancing method, objective weights -- as one stacked model
(:class:`~mmrepro.core.models.stacked.StackedMultimodalNet`, optimiser :class:`~mmrepro.core.optim.RunOptimizer`).
Every run keeps its own data order, random streams (dropout masks, OGM-GE and MKE noise:
:class:`~mmrepro.core.models.stacked.RunStreams`), parameters, optimiser state, learning rates,
balancing-method state, BatchNorm statistics, checkpoint and early stopping, so it gives the numbers
``fit`` gives with its seed, whichever runs it is trained with (tests/test_batched.py). ``fit`` is
``fit_many`` with one run: both share every line below.

MedFuse is ``MultimodalNet(..., fusion="lstm", multihead=False)`` with the default objective,
MedFuse-3H the same with ``multihead=True``; UME is :func:`mmrepro.core.models.ume_proba` over unimodal
models trained here one by one.
"""
from __future__ import annotations

import copy
import math
import numbers
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import Tensor
from tqdm.auto import tqdm

from mmrepro.common.checks import check_int, check_number, check_seed
from mmrepro.common.device import resolve_device, seed_everything
from mmrepro.core.balancing.base import BalancingMethod
from mmrepro.core.data.base import MultimodalDataset, Task
from mmrepro.core.losses import Supervised, supervised_loss
from mmrepro.core.metrics import LOWER_IS_BETTER, check_metric, conditional_utilization, score_runs
from mmrepro.core.models.ensemble import soft_targets
from mmrepro.core.models.fusion import FUSION_HEAD, MultimodalNet, check_present, probabilities
from mmrepro.core.models.stacked import RunCheckpoints, RunStreams, Stacked, StackedMultimodalNet
from mmrepro.core.optim import RunOptimizer

DEFAULT_METRICS = {
    "binary": ("auroc", "auprc", "accuracy"),
    "multilabel": ("auroc", "auprc"),
    "multiclass": ("accuracy", "f1_macro"),
    "regression": ("mse",),
}
DEFAULT_SELECT = {"binary": "auroc", "multilabel": "auroc", "multiclass": "accuracy", "regression": "mse"}


@dataclass
class Batch:
    """A slice of rows for every run: inputs, presence, lengths, targets, teacher soft targets
    (each (K, B, ...)), row ids (K, B) and ``noise``, the runs' Gaussian noise (:meth:`RunStreams.noise`)."""

    x: dict[str, Tensor]
    present: dict[str, Tensor]
    lengths: dict[str, Tensor]
    y: Tensor
    soft: dict[str, Tensor]
    idx: Tensor
    noise: Callable[..., Tensor] | None = None


@dataclass
class FitResult:
    """The trained model (best checkpoint loaded), the per-epoch logs and the selection outcome."""

    model: MultimodalNet
    history: list[dict[str, Any]]
    best_epoch: int
    best_score: float
    method: BalancingMethod
    info: dict[str, Any] = field(default_factory=dict)

    def frame(self):
        """The history as a pandas DataFrame (one row per epoch)."""
        import pandas as pd

        return pd.DataFrame(self.history)


def _task_of(data, task: str | None):
    if task is None:
        if len(data.tasks) != 1:
            raise ValueError(f"the dataset has tasks {list(data.tasks)}; pass task=<name>")
        task = next(iter(data.tasks))
    if task not in data.tasks:
        raise ValueError(f"unknown task {task!r}; valid: {list(data.tasks)}")
    return data.tasks[task]


_SETTINGS = {
    "epochs": lambda v: check_int("epochs", v, 1),
    "batch_size": lambda v: check_int("batch_size", v, 1),
    "eval_batch_size": lambda v: check_int("eval_batch_size", v, 1),
    "lr": lambda v: check_number("lr", v, 0, low_open=True),
    "weight_decay": lambda v: check_number("weight_decay", v, 0),
    "momentum": lambda v: check_number("momentum", v, 0, 1, high_open=True),
    "seed": check_seed,
    "patience": lambda v: v is None or check_int("patience", v, 1),
}


def _check_split(model: MultimodalNet, data: Any, name: str, task: Task) -> None:
    if not isinstance(data, MultimodalDataset):
        raise TypeError(f"{name} must be a MultimodalDataset (e.g. data.split({name!r})), got {type(data).__name__}")
    try:
        data.validate()  # its tensors may have been replaced since it was built
    except ValueError as err:
        raise ValueError(f"{name} was changed after it was built ({err}); build a new dataset instead of editing "
                         "its tensors (MultimodalDataset(...), or data.subset(rows) to keep some rows)") from None
    if data.n == 0:
        hint = "; pass val=None to keep the last epoch instead" if name == "val" else ""
        raise ValueError(f"{name} has no rows: pass a non-empty split{hint}")
    if task.name not in data.tasks or data.tasks[task.name].kind != task.kind:
        raise ValueError(f"{name} has no {task.kind} task {task.name!r}; its tasks: {list(data.tasks)}")
    missing = [m for m in model.modalities if m not in data.x]
    if missing:
        raise ValueError(f"{name} lacks modalities {missing}; the model encodes {model.modalities}")
    dtype = next(model.parameters()).dtype
    for m in model.modalities:
        x = data.x[m]
        if x.dtype != dtype:
            raise TypeError(f"{name}.x[{m!r}] is {x.dtype} but the model's parameters are {dtype}: convert the "
                            f"inputs (x.to({dtype})) or the model (model.to({x.dtype}))")
        try:
            check_present(m, x, data.present[m], data.lengths.get(m))
        except ValueError as err:
            raise ValueError(f"{name}.{err}") from None
    y = data.y[task.name]
    task.check_targets(y, f"{name}.y[{task.name!r}]")
    known = y >= 0 if task.kind == "multiclass" else ~torch.isnan(y)
    if not bool(known.any()):
        what = "nothing to train on" if name == "train" else "nothing to select a checkpoint on; pass val=None"
        raise ValueError(f"{name} has no known target for task {task.name!r} (all {data.n} rows are unknown): {what}")


def check_fit_inputs(model: MultimodalNet, train: Any, val: Any = None, task: str | None = None,
                     **settings: Any) -> Task:
    """Validate what :func:`fit` (or a batched variant) is given, before anything is trained; return the task.

    ``train`` / ``val`` must be non-empty MultimodalDatasets with the model's modalities and task, inputs of
    the model's dtype and finite wherever present, and targets as the task's convention says
    (:meth:`~mmrepro.core.data.Task.check_targets`). ``settings`` are any of ``epochs``, ``batch_size``,
    ``eval_batch_size``, ``lr``, ``weight_decay``, ``momentum``, ``seed``, ``patience``. Every error is a
    TypeError or ValueError naming the argument, what is wrong and what is accepted."""
    if not isinstance(model, MultimodalNet):
        raise TypeError(f"model must be a mmrepro.core.models.MultimodalNet, got {type(model).__name__}")
    for name, value in settings.items():
        if name not in _SETTINGS:
            raise TypeError(f"unknown setting {name!r}; check_fit_inputs checks {sorted(_SETTINGS)}")
        _SETTINGS[name](value)
    if not isinstance(train, MultimodalDataset):
        raise TypeError(f"train must be a MultimodalDataset (e.g. data.split('train')), got {type(train).__name__}")
    t = _task_of(train, task)
    if (model.kind, model.n_outputs) != (t.kind, t.n_outputs):
        raise ValueError(f"the model predicts {model.kind} x {model.n_outputs} but task {t.name!r} is "
                         f"{t.kind} x {t.n_outputs}")
    for name, data in (("train", train), ("val", val)):
        if data is not None:
            _check_split(model, data, name, t)
    return t


def _nbytes(data) -> int:
    return sum(t.numel() * t.element_size() for d in (data.x, data.present, data.lengths, data.y) for t in d.values())


def _fits_on(device: torch.device, nbytes: int) -> bool:
    if device.type != "cuda":
        return True
    free, _ = torch.cuda.mem_get_info(device)
    return nbytes < 0.5 * free


def _bounds(n: int, batch_size: int) -> list[tuple[int, int]]:
    """Consecutive batches of ``n`` rows; a one-row remainder joins the previous batch, since
    BatchNorm cannot train on a single row."""
    bounds = [*range(0, n, batch_size), n]
    if len(bounds) > 2 and bounds[-1] - bounds[-2] == 1:
        del bounds[-2]
    return list(zip(bounds[:-1], bounds[1:]))


class _Rows:
    """Rows of one split, kept on ``device`` when they fit, sliced into :class:`Batch` objects."""

    def __init__(self, data, task: str, device: torch.device) -> None:
        self.on_device = _fits_on(device, _nbytes(data))
        store = device if self.on_device else torch.device("cpu")
        self.device = device
        self.x = {m: v.to(store) for m, v in data.x.items()}
        self.present = {m: v.to(store) for m, v in data.present.items()}
        self.lengths = {m: v.to(store) for m, v in data.lengths.items()}
        self.y = data.y[task].to(store)
        self.soft: dict[str, Tensor] = {}  # teacher soft targets per modality, filled by fit
        self.n = self.y.shape[0]

    def take(self, idx: Tensor, runs: int | None = None, noise: Callable[..., Tensor] | None = None) -> Batch:
        """Rows ``idx``: (K, B), each run its own rows, or (B,) shared by ``runs`` runs (a view
        with the run axis) or by a lone model (``runs=None``, no run axis)."""
        idx = idx.to(self.y.device)
        mv = (lambda t: t) if self.on_device else (lambda t: t.to(self.device, non_blocking=True))  # noqa: E731
        if runs is None or idx.dim() == 2:
            get = lambda v: mv(v[idx])  # noqa: E731
        else:
            get = lambda v: mv(v[idx]).expand(runs, *idx.shape, *v.shape[1:])  # noqa: E731
        sel = lambda d: {k: get(v) for k, v in d.items()}  # noqa: E731
        return Batch(sel(self.x), sel(self.present), sel(self.lengths), get(self.y), sel(self.soft), idx, noise)


def _checked(metrics: Sequence[str], kind: str) -> tuple[str, ...]:
    """Metric names minus "loss" (always logged), each checked to exist for ``kind`` (a typo would
    otherwise be scored NaN every epoch)."""
    names = tuple(m for m in metrics if m != "loss")
    for name in names:
        check_metric(name, kind)
    return names


def _score_heads(logits: Mapping[str, Tensor], masks: Mapping[str, Tensor], y: Tensor, kind: str,
                 metrics: Sequence[str]) -> list[dict[str, float]]:
    """``{head}/{metric}`` and ``{head}/loss`` of every head for each run, on the run's valid rows
    (NaN when undefined): logits (K, N, C), masks (K, N), y (K, N) or (K, N, L)."""
    runs = y.shape[0]
    known = y >= 0 if kind == "multiclass" else ~torch.isnan(y.reshape(*y.shape[:2], -1)).any(dim=-1)
    out: list[dict[str, float]] = [{} for _ in range(runs)]
    for h, z in logits.items():
        ok = masks[h] & known
        n_ok = ok.sum(dim=-1).tolist()
        loss = supervised_loss(z, y, kind, masks[h]).tolist()
        scores = {name: score_runs(name, y, probabilities(z.float(), kind), kind, ok) for name in metrics}
        for k in range(runs):
            out[k][f"{h}/loss"] = loss[k] if n_ok[k] else math.nan
            out[k].update({f"{h}/{name}": v[k] for name, v in scores.items()})
    return out


@torch.no_grad()
def predict_logits(model: MultimodalNet, rows: _Rows, batch_size: int = 1024, idx: Tensor | None = None,
                   runs: int | None = None) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Every head's logits and masks over all rows (or rows ``idx`` (K, n) per run), in eval mode.
    A stacked model of ``runs`` runs gets (and returns) the run axis first."""
    was_training = model.training
    model.eval()
    logits: dict[str, list[Tensor]] = {}
    masks: dict[str, list[Tensor]] = {}
    order = torch.arange(rows.n) if idx is None else idx
    for lo, hi in _bounds(order.shape[-1], batch_size):
        b = rows.take(order[..., lo:hi], runs)
        out = model(b.x, b.present, b.lengths)
        for h in out.logits:
            logits.setdefault(h, []).append(out.logits[h])
            masks.setdefault(h, []).append(out.mask[h])
    model.train(was_training)
    return {h: torch.cat(v, dim=-2) for h, v in logits.items()}, {h: torch.cat(v, dim=-1) for h, v in masks.items()}


@torch.no_grad()
def recompute_batchnorm(model: MultimodalNet, rows: _Rows, batch_size: int = 1024, idx: Tensor | None = None,
                        runs: int | None = None) -> None:
    """Set every BatchNorm layer's running statistics to the average of its batch statistics over
    ``rows`` (or rows ``idx`` (K, n) per run of a stacked model of ``runs`` runs) under the current
    weights ("precise BN", Wu & Johnson 2021): with few steps per epoch and a high learning rate the
    running averages lag far behind the weights, and evaluation with them is noise. Batch i is taken
    with momentum 1 / (i + 1), i.e. a cumulative average (torch's ``momentum=None``); the global
    random stream is left as it was, so the training that follows is unchanged."""
    norms = [m for mod in model.modules()
             for m in (mod.template.modules() if isinstance(mod, Stacked) else [mod])
             if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    was_training, momenta = model.training, [m.momentum for m in norms]
    order = torch.arange(rows.n) if idx is None else idx
    model.train()
    try:
        with torch.random.fork_rng(devices=[rows.device] if rows.device.type == "cuda" else []):
            for i, (lo, hi) in enumerate(_bounds(order.shape[-1], batch_size)):
                for m in norms:
                    m.momentum = 1.0 / (i + 1)
                b = rows.take(order[..., lo:hi], runs)
                model(b.x, b.present, b.lengths)
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        model.train(was_training)


def evaluate(model: MultimodalNet, data, task: str | None = None, metrics: Sequence[str] | None = None,
             device: str | torch.device | None = None, batch_size: int = 1024) -> dict[str, float]:
    """Loss and metrics of every head on ``data`` (e.g. the test split): keys ``{head}/{metric}``."""
    t = _task_of(data, task)
    dev = next(model.parameters()).device if device is None else resolve_device(device)
    model.to(dev)
    rows = _Rows(data, t.name, dev)
    logits, masks = predict_logits(model, rows, batch_size)
    one = lambda d: {h: v.unsqueeze(0) for h, v in d.items()}  # noqa: E731
    return _score_heads(one(logits), one(masks), rows.y.unsqueeze(0), t.kind,
                        _checked(metrics or DEFAULT_METRICS[t.kind], t.kind))[0]


class Trainer:
    """What a balancing method sees of one run: ``model`` (the run's network: its structure; while
    training, the weights live in the stacked model), ``optimizer`` (``param_groups`` named after the
    modalities and ``"fusion"``), ``base_lr`` (group -> initial rate) and the current ``epoch``."""

    def __init__(self, model: MultimodalNet, optimizer: Any, method: BalancingMethod) -> None:
        self.model, self.optimizer, self.method = model, optimizer, method
        self.base_lr = {g["name"]: g["lr"] for g in optimizer.param_groups}
        self.epoch = 0

    def lrs(self) -> dict[str, float]:
        return {g["name"]: g["lr"] for g in self.optimizer.param_groups}


@dataclass
class StackedTrainer:
    """What a per-batch balancing hook (:meth:`BalancingMethod.before_step`) sees: the stacked
    model, every run's :class:`Trainer`, the runs' Gaussian noise (:meth:`RunStreams.noise`) and the epoch."""

    model: StackedMultimodalNet
    trainers: list[Trainer]
    noise: Callable[..., Tensor]
    epoch: int = 0


def stack_setting(values: Sequence[Any], device: torch.device, dtype: torch.dtype) -> Any:
    """One setting of K runs as the stacked computation uses it: the value itself when every run has
    the same, else (numbers) a (K,) tensor, or (mappings) a mapping of such."""
    first = values[0]
    if all(v is first or v == first for v in values[1:]):
        return first
    if isinstance(first, Mapping) and all(isinstance(v, Mapping) and v.keys() == first.keys() for v in values):
        return {key: stack_setting([v[key] for v in values], device, dtype) for key in first}
    if all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in values):
        return torch.tensor(values, dtype=dtype, device=device)
    raise ValueError(f"the runs differ in a setting that cannot vary within one fit_many call: {values}")


def stack_objectives(objectives: Sequence[Any], device: torch.device, dtype: torch.dtype) -> Any:
    """The objective of K runs: one instance whose numeric settings that differ between runs
    (MIND's omega, TS's weights, MKE's gamma and noise) are (K,) tensors. The runs must share the
    objective class, the teachers (the same modules) and the temperature."""
    first = objectives[0]
    if len(objectives) == 1:
        return first
    if any(type(o) is not type(first) for o in objectives):
        raise ValueError(f"fit_many trains runs of one objective class, got {sorted({type(o).__name__ for o in objectives})}")
    out = copy.copy(first)
    for name, value in vars(first).items():
        try:
            setattr(out, name, stack_setting([vars(o)[name] for o in objectives], device, dtype))
        except ValueError as exc:
            raise ValueError(f"the runs' {type(first).__name__} objectives differ in {name!r}; only numeric "
                             f"weights may differ within one fit_many call") from exc
    if isinstance(getattr(out, "temperature", 1.0), Tensor):
        raise ValueError("the runs' objectives must share the temperature (teacher soft targets are computed once)")
    return out


def fit(model: MultimodalNet, train, val=None, *, task: str | None = None, objective: Any = None,
        method: BalancingMethod | None = None, epochs: int = 10, batch_size: int = 64, lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999), weight_decay: float = 0.0, optimizer: str = "adam",
        momentum: float = 0.9, metrics: Sequence[str] | None = None, select_metric: str | None = None,
        select_head: str = FUSION_HEAD, patience: int | None = None, u_metric: str | None = None,
        seed: int = 0, device: str | torch.device = "auto", progress: bool | None = None,
        eval_batch_size: int = 1024, recompute_bn: bool = False) -> FitResult:
    """Train ``model`` on ``train`` (a MultimodalDataset split), select on ``val``.

    * ``objective``: :class:`~mmrepro.core.losses.Supervised` (default, every head: MIND eq. 2 / MILES
      eq. 3), :class:`~mmrepro.papers.mind.objectives.MIND`, :class:`~mmrepro.papers.mind.objectives.TS` or
      :class:`~mmrepro.papers.mind.objectives.MKE` (MIND's, defined with its paper).
      Teachers' soft targets are computed once, in eval mode without gradients.
    * ``method``: a balancing method (MILES, MSES, MSLR, OGM, GBlend); None = vanilla.
    * Checkpoint: best ``val/{select_head}/{select_metric}`` (default AUROC for binary/multilabel,
      accuracy for multiclass, MSE for regression); ``patience`` epochs without improvement stop
      training. Without ``val`` the last epoch is kept.
    * Logs per epoch: ``train/{head}/{metric}``, ``val/{head}/{metric}``, ``.../loss``, ``u:{m}`` and
      ``delta`` (two-modality multi-head models, ``u_metric`` on val, else train), ``lr/{group}``.
    * ``recompute_bn``: before each epoch's evaluation, BatchNorm statistics are recomputed over the
      training rows with the current weights (:func:`recompute_batchnorm`); the training itself is unchanged.
    * ``seed`` seeds everything (shuffling included): same seed and device -> same numbers.
    """
    return fit_many([model], train, val, task=task, objectives=[objective], methods=[method], epochs=epochs,
                    batch_size=batch_size, lrs=[lr], betas=betas, weight_decay=weight_decay, optimizer=optimizer,
                    momentum=momentum, metrics=metrics, select_metric=select_metric, select_head=select_head,
                    patience=patience, u_metric=u_metric, seeds=[seed], device=device, progress=progress,
                    eval_batch_size=eval_batch_size, recompute_bn=recompute_bn)[0]


def fit_many(models: Sequence[MultimodalNet], train, val=None, *, seeds: Sequence[int],
             lrs: float | Sequence[float] = 1e-3, methods: Sequence[BalancingMethod | None] | None = None,
             objectives: Sequence[Any] | None = None, task: str | None = None, epochs: int = 10,
             batch_size: int = 64, betas: tuple[float, float] = (0.9, 0.999), weight_decay: float = 0.0,
             optimizer: str = "adam", momentum: float = 0.9, metrics: Sequence[str] | None = None,
             select_metric: str | None = None, select_head: str = FUSION_HEAD, patience: int | None = None,
             u_metric: str | None = None, device: str | torch.device = "auto", progress: bool | None = None,
             eval_batch_size: int = 1024, recompute_bn: bool = False,
             batched: bool | str = "auto") -> list[FitResult]:
    """Train K runs of one architecture at once: run k is ``fit(models[k], train, val, seed=seeds[k],
    lr=lrs[k], method=methods[k], objective=objectives[k], ...)`` with the shared settings of
    :func:`fit`, and gets the same numbers (within floating-point error, dropout included). Returns
    one :class:`FitResult` per run, in order; each model holds its selected checkpoint.

    * ``models``: K networks of one architecture (each initialised as its run should start).
    * ``methods``: K instances of one balancing method (their settings may differ, e.g. MILES tau and
      mu, OGM alpha; each instance keeps its run's state), or None (vanilla).
    * ``objectives``: K objectives of one class sharing teachers and temperature (weights may differ:
      MIND omega, TS alpha/beta, MKE gamma), or None (supervised).
    * ``batched``: "auto" (each layer computed for all runs at once where that was measured to pay,
      else run by run), True or False (see :class:`~mmrepro.core.models.stacked.StackedMultimodalNet`).
    """
    K = len(models)
    if K < 1:
        raise ValueError("fit_many needs at least one model")
    lrs = [lrs] * K if isinstance(lrs, numbers.Real) else list(lrs)
    methods = [None] * K if methods is None else list(methods)
    objectives = [None] * K if objectives is None else list(objectives)
    for name, v in (("seeds", seeds), ("lrs", lrs), ("methods", methods), ("objectives", objectives)):
        if len(v) != K:
            raise ValueError(f"{name} has {len(v)} entries for {K} models; give one per model")
    t = check_fit_inputs(models[0], train, val, task, epochs=epochs, batch_size=batch_size, lr=lrs[0], seed=seeds[0],
                         patience=patience, weight_decay=weight_decay, momentum=momentum,
                         eval_batch_size=eval_batch_size)
    for model, lr, seed in zip(models[1:], lrs[1:], seeds[1:]):  # the data were checked with the first run
        if not isinstance(model, MultimodalNet):
            raise TypeError(f"models must be mmrepro.core.models.MultimodalNet, got {type(model).__name__}")
        check_number("lr", lr, 0, low_open=True)
        check_seed(seed)
    objectives = [o if o is not None else Supervised() for o in objectives]
    methods = [m if m is not None else BalancingMethod() for m in methods]
    if len({id(m) for m in methods}) < K:
        raise ValueError("every run needs its own balancing-method instance (it holds the run's state)")
    if len({(type(m), m.name) for m in methods}) > 1:
        raise ValueError(f"fit_many trains runs of one balancing method, got {sorted({m.name for m in methods})}; "
                         "call it once per method")
    metrics = tuple(dict.fromkeys([*(metrics or DEFAULT_METRICS[t.kind]), *(x for m in methods for x in m.metrics)]))
    select_metric = select_metric or DEFAULT_SELECT[t.kind]
    if select_metric not in metrics and select_metric != "loss":
        metrics = (*metrics, select_metric)
    metrics = _checked(metrics, t.kind)
    if val is None and any(m.needs_val for m in methods):
        raise ValueError(f"{methods[0].name} reads validation metrics every epoch; pass val=<validation split> to fit")
    first = models[0]
    if select_head not in first.head_names:
        raise ValueError(f"select_head {select_head!r} is not a head of the model: {first.head_names}")
    sign = -1.0 if select_metric in LOWER_IS_BETTER else 1.0
    u_metric = u_metric or (select_metric if sign > 0 else None)
    if u_metric in LOWER_IS_BETTER:
        raise ValueError(f"u (MIND eq. 6, MILES eq. 4) needs a higher-is-better metric, got u_metric={u_metric!r}")
    if u_metric is not None and u_metric not in metrics:
        metrics = _checked((*metrics, u_metric), t.kind)

    # each run's data order as fit(seed=s) draws it; Python's and numpy's global streams follow seeds[0]
    gens = [seed_everything(s) for s in reversed(seeds)][::-1]
    dev = resolve_device(device)
    splits = [m.split_train(torch.arange(train.n), g) for m, g in zip(methods, gens)]
    if len({(len(ti), tuple((n, len(i)) for n, i in ex.items())) for ti, ex in splits}) > 1:
        raise ValueError("the runs' methods hold out different numbers of training rows; give them equal settings")
    n_train = len(splits[0][0])
    train_idx = torch.stack([ti for ti, _ in splits])  # (K, n_train): each run's training rows
    train_idx = None if n_train == train.n and bool((train_idx == torch.arange(n_train)).all()) else train_idx.to(dev)
    extra_idx = {name: torch.stack([ex[name] for _, ex in splits]) for name in splits[0][1]}

    rows = _Rows(train, t.name, dev)
    net = StackedMultimodalNet(models, batched, dev)
    net.inputs_checked = True  # train and val were checked whole (check_fit_inputs)
    dtype = next(net.parameters()).dtype
    objective = stack_objectives(objectives, dev, dtype)
    for m, teachers in getattr(objective, "teachers", {}).items():
        for tm in teachers:
            tm.to(dev).eval()
        soft = soft_targets(teachers, m, rows.x, rows.present, rows.lengths, t.kind, objective.temperature,
                            eval_batch_size)
        rows.soft[m] = soft.to(rows.y.device)
    val_rows = _Rows(val, t.name, dev) if val is not None else None

    opt = RunOptimizer(net.parameter_groups(), lrs, optimizer, betas, weight_decay, momentum)
    trainers = [Trainer(model, opt.run_view(k), m) for k, (model, m) in enumerate(zip(models, methods))]
    for m, tr in zip(methods, trainers):
        m.setup(tr)
    streams = RunStreams(seeds, dev)
    stacked = StackedTrainer(net, trainers, streams.noise)
    two = first.multihead and len(first.modalities) == 2
    histories: list[list[dict[str, Any]]] = [[] for _ in range(K)]
    best = [(-math.inf, -1)] * K
    wait = [0] * K
    active = [True] * K
    kept = RunCheckpoints(net)  # each run's selected state
    has_best = torch.zeros(K, dtype=torch.bool)
    bar = tqdm(range(epochs), disable=not (sys.stderr.isatty() if progress is None else progress),
               desc=f"fit {methods[0].name}" + (f" x{K}" if K > 1 else ""), leave=False)

    for epoch in bar:
        stacked.epoch = epoch
        for tr in trainers:
            tr.epoch = epoch
        weights = stack_setting([m.head_weights() for m in methods], dev, dtype)
        net.train()
        logs: list[dict[str, Any]] = [{"epoch": epoch, **{f"lr/{g}": v for g, v in tr.lrs().items()}} for tr in trainers]
        order = torch.stack([torch.randperm(n_train, generator=g) for g in gens]).to(dev)
        acc_logits: dict[str, list[Tensor]] = {}
        acc_mask: dict[str, list[Tensor]] = {}
        seen: list[Tensor] = []
        total = torch.zeros(K, device=dev, dtype=dtype)
        for lo, hi in _bounds(n_train, batch_size):
            idx = order[:, lo:hi] if train_idx is None else train_idx.gather(1, order[:, lo:hi])
            b = rows.take(idx, noise=streams.noise)
            with streams.dropout():
                out = net(b.x, b.present, b.lengths)
                loss, _ = objective(net, b, out, weights)
            opt.zero_grad()
            loss.sum().backward()
            type(methods[0]).before_step(methods, stacked, out, b)
            opt.step(net.frozen_params())
            total += loss.detach() * (hi - lo)
            seen.append(b.idx)
            for h, z in out.logits.items():
                acc_logits.setdefault(h, []).append(z.detach())
                acc_mask.setdefault(h, []).append(out.mask[h])
        perm = torch.cat(seen, dim=1).to(rows.y.device)
        scored = {"train": _score_heads({h: torch.cat(v, dim=1) for h, v in acc_logits.items()},
                                        {h: torch.cat(v, dim=1) for h, v in acc_mask.items()}, rows.y[perm],
                                        t.kind, metrics)}
        if recompute_bn:
            recompute_batchnorm(net, rows, eval_batch_size, train_idx, K)
        evals = ([("val", val_rows, None)] if val_rows is not None else []) + [
            (name, rows, idx) for name, idx in extra_idx.items()]
        for name, r, idx in evals:
            lg, mk = predict_logits(net, r, eval_batch_size, idx, K)
            y = r.y[idx.to(r.y.device)] if idx is not None else r.y.expand(K, *r.y.shape)
            scored[name] = _score_heads(lg, mk, y, t.kind, metrics)
        train_loss = (total / n_train).tolist()
        improved, stopped = [], []
        for k in (k for k in range(K) if active[k]):
            log = logs[k]
            log["train/loss"] = train_loss[k]
            for name, per in scored.items():
                log.update({f"{name}/{key}": v for key, v in per[k].items()})
            if two and u_metric is not None:
                split = "val" if val_rows is not None else "train"
                a, bm = first.modalities
                m_f, m_a, m_b = (log[f"{split}/{h}/{u_metric}"] for h in (FUSION_HEAD, a, bm))
                if all(math.isfinite(v) for v in (m_f, m_a, m_b)) and m_f != 0:
                    u_a, u_b = conditional_utilization(m_f, m_a, m_b)
                    log.update({f"u:{a}": u_a, f"u:{bm}": u_b, "delta": abs(u_a - u_b)})
            log.update(methods[k].on_epoch_end(trainers[k], epoch, log))
            histories[k].append(log)
            if val_rows is not None:
                s = sign * log[f"val/{select_head}/{select_metric}"]
                if math.isfinite(s) and s > best[k][0]:
                    best[k], wait[k] = (s, epoch), 0
                    improved.append(k)
                else:
                    wait[k] += 1
            if (patience is not None and wait[k] >= patience) or methods[k].should_stop or epoch == epochs - 1:
                active[k] = False
                stopped.append(k)
        kept.keep(improved)
        has_best[improved] = True
        kept.keep([k for k in stopped if not has_best[k]])  # no selected checkpoint: the last epoch's state
        key = f"val/{select_head}/{select_metric}"
        if val_rows is not None and histories[0]:
            bar.set_postfix({key: f"{histories[0][-1][key]:.4f}"})
        if not any(active):
            break

    info = {"device": str(dev), "on_device_batching": rows.on_device, "n_train": n_train,
            "select": f"val/{select_head}/{select_metric}", "runs": K, "layout": net.layout()}
    results = []
    for k, model in enumerate(models):
        model.to(dev).load_state_dict(kept.state(k))
        if has_best[k]:
            best_epoch, best_score = best[k][1], sign * best[k][0]
        else:
            best_epoch, best_score = len(histories[k]) - 1, math.nan
        results.append(FitResult(model, histories[k], best_epoch, best_score, methods[k], dict(info)))
    return results
