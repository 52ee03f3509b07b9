"""One training loop for every method: supervised, MIND/TS/MKE distillation and the balancing methods.

:func:`fit` trains a :class:`~mmrepro.models.MultimodalNet` on a :class:`~mmrepro.data.MultimodalDataset`
with Adam (default) and one optimiser parameter group per modality branch plus ``"fusion"``.
Each epoch it logs every head's loss and metrics on the training rows (from the training passes
themselves) and on the validation set, the conditional utilisation rates u (MIND eq. 6 / MILES
eq. 4) and delta (MILES eq. 5), each group's learning rate and what the balancing method did;
it keeps the checkpoint with the best validation score and stops early on request.
When the data fit on the device (always on CPU; under half the free memory on CUDA), batches are
index slices of device tensors, with no DataLoader; otherwise rows stay in host memory and each
batch is sliced there and copied over.

MedFuse is ``MultimodalNet(..., fusion="lstm", multihead=False)`` with the default objective,
MedFuse-3H the same with ``multihead=True``; UME is :func:`mmrepro.models.ume_proba` over unimodal
models trained here one by one.
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Sequence

import torch
from torch import Tensor
from tqdm.auto import tqdm

from mmrepro.balancing.base import BalancingMethod
from mmrepro.checks import check_int, check_number, check_seed
from mmrepro.data.base import MultimodalDataset, Task
from mmrepro.device import resolve_device, seed_everything
from mmrepro.losses import Supervised, supervised_loss
from mmrepro.metrics import LOWER_IS_BETTER, check_metric, conditional_utilization, score
from mmrepro.models.ensemble import soft_targets
from mmrepro.models.fusion import FUSION_HEAD, MultimodalNet, check_present_finite, probabilities

DEFAULT_METRICS = {
    "binary": ("auroc", "auprc", "accuracy"),
    "multilabel": ("auroc", "auprc"),
    "multiclass": ("accuracy", "f1_macro"),
    "regression": ("mse",),
}
DEFAULT_SELECT = {"binary": "auroc", "multilabel": "auroc", "multiclass": "accuracy", "regression": "mse"}


@dataclass
class Batch:
    """A slice of rows: inputs, presence, lengths, targets of the task, teacher soft targets, row ids."""

    x: dict[str, Tensor]
    present: dict[str, Tensor]
    lengths: dict[str, Tensor]
    y: Tensor
    soft: dict[str, Tensor]
    idx: Tensor


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
        rows = data.present[m].nonzero().squeeze(1)
        try:
            check_present_finite(m, x[rows], data.lengths[m][rows] if m in data.lengths else None, rows)
        except ValueError as err:
            raise ValueError(f"{name}.{err}") from None
    task.check_targets(data.y[task.name], f"{name}.y[{task.name!r}]")


def check_fit_inputs(model: MultimodalNet, train: Any, val: Any = None, task: str | None = None,
                     **settings: Any) -> Task:
    """Validate what :func:`fit` (or a batched variant) is given, before anything is trained; return the task.

    ``train`` / ``val`` must be non-empty MultimodalDatasets with the model's modalities and task, inputs of
    the model's dtype and finite wherever present, and targets as the task's convention says
    (:meth:`~mmrepro.data.Task.check_targets`). ``settings`` are any of ``epochs``, ``batch_size``,
    ``eval_batch_size``, ``lr``, ``weight_decay``, ``momentum``, ``seed``, ``patience``. Every error is a
    TypeError or ValueError naming the argument, what is wrong and what is accepted."""
    if not isinstance(model, MultimodalNet):
        raise TypeError(f"model must be a mmrepro.models.MultimodalNet, got {type(model).__name__}")
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

    def take(self, idx: Tensor) -> Batch:
        idx = idx.to(self.y.device)
        mv = (lambda t: t) if self.on_device else (lambda t: t.to(self.device, non_blocking=True))  # noqa: E731
        sel = lambda d: {k: mv(v[idx]) for k, v in d.items()}  # noqa: E731
        return Batch(sel(self.x), sel(self.present), sel(self.lengths), mv(self.y[idx]), sel(self.soft), idx)

    def batches(self, batch_size: int, generator: torch.Generator | None = None) -> Iterator[Batch]:
        """Consecutive batches of the (shuffled, when ``generator`` is given) rows; a one-row
        remainder joins the previous batch, since BatchNorm cannot train on a single row."""
        order = torch.randperm(self.n, generator=generator) if generator is not None else torch.arange(self.n)
        bounds = [*range(0, self.n, batch_size), self.n]
        if len(bounds) > 2 and bounds[-1] - bounds[-2] == 1:
            del bounds[-2]
        for start, stop in zip(bounds[:-1], bounds[1:]):
            yield self.take(order[start:stop])


def _checked(metrics: Sequence[str], kind: str) -> tuple[str, ...]:
    """Metric names minus "loss" (always logged), each checked to exist for ``kind`` (a typo would
    otherwise be scored NaN every epoch)."""
    names = tuple(m for m in metrics if m != "loss")
    for name in names:
        check_metric(name, kind)
    return names


def _score_heads(logits: Mapping[str, Tensor], masks: Mapping[str, Tensor], y: Tensor, kind: str,
                 metrics: Sequence[str]) -> dict[str, float]:
    """``{head}/{metric}`` and ``{head}/loss`` for every head on its valid rows (NaN when undefined)."""
    out = {}
    for h, z in logits.items():
        ok = masks[h] & (y >= 0 if kind == "multiclass" else ~torch.isnan(y).view(len(y), -1).any(dim=1))
        out[f"{h}/loss"] = float(supervised_loss(z, y, kind, masks[h])) if bool(ok.any()) else math.nan
        yt, ys = y[ok].cpu(), probabilities(z[ok].float(), kind).cpu()
        for name in metrics:
            try:
                out[f"{h}/{name}"] = score(name, yt, ys, kind) if len(yt) else math.nan
            except ValueError:  # e.g. AUROC on a split where a label has one class
                out[f"{h}/{name}"] = math.nan
    return out


@torch.no_grad()
def predict_logits(model: MultimodalNet, rows: _Rows, batch_size: int = 1024) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Every head's logits and masks over all rows, in eval mode."""
    was_training = model.training
    model.eval()
    logits: dict[str, list[Tensor]] = {}
    masks: dict[str, list[Tensor]] = {}
    for b in rows.batches(batch_size):
        out = model(b.x, b.present, b.lengths)
        for h in out.logits:
            logits.setdefault(h, []).append(out.logits[h])
            masks.setdefault(h, []).append(out.mask[h])
    model.train(was_training)
    return {h: torch.cat(v) for h, v in logits.items()}, {h: torch.cat(v) for h, v in masks.items()}


def evaluate(model: MultimodalNet, data, task: str | None = None, metrics: Sequence[str] | None = None,
             device: str | torch.device | None = None, batch_size: int = 1024) -> dict[str, float]:
    """Loss and metrics of every head on ``data`` (e.g. the test split): keys ``{head}/{metric}``."""
    t = _task_of(data, task)
    dev = next(model.parameters()).device if device is None else resolve_device(device)
    model.to(dev)
    rows = _Rows(data, t.name, dev)
    logits, masks = predict_logits(model, rows, batch_size)
    return _score_heads(logits, masks, rows.y, t.kind, _checked(metrics or DEFAULT_METRICS[t.kind], t.kind))


class Trainer:
    """Holds the state the balancing methods act on: ``model``, ``optimizer`` (groups named after the
    modalities and ``"fusion"``), ``base_lr`` (group -> initial rate) and the current ``epoch``."""

    def __init__(self, model: MultimodalNet, optimizer: torch.optim.Optimizer, method: BalancingMethod) -> None:
        self.model, self.optimizer, self.method = model, optimizer, method
        self.base_lr = {g["name"]: g["lr"] for g in optimizer.param_groups}
        self.epoch = 0

    def lrs(self) -> dict[str, float]:
        return {g["name"]: g["lr"] for g in self.optimizer.param_groups}


def _optimizer(model: MultimodalNet, name: str, lr: float, betas: tuple[float, float], weight_decay: float,
               momentum: float) -> torch.optim.Optimizer:
    groups = [{"params": ps, "name": g, "lr": lr} for g, ps in model.parameter_groups().items() if ps]
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr, betas=betas, weight_decay=weight_decay, foreach=True)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, weight_decay=weight_decay, foreach=True)
    raise ValueError(f"optimizer must be 'adam' or 'sgd', got {name!r}")


def fit(model: MultimodalNet, train, val=None, *, task: str | None = None, objective: Any = None,
        method: BalancingMethod | None = None, epochs: int = 10, batch_size: int = 64, lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999), weight_decay: float = 0.0, optimizer: str = "adam",
        momentum: float = 0.9, metrics: Sequence[str] | None = None, select_metric: str | None = None,
        select_head: str = FUSION_HEAD, patience: int | None = None, u_metric: str | None = None,
        seed: int = 0, device: str | torch.device = "auto", progress: bool | None = None,
        eval_batch_size: int = 1024) -> FitResult:
    """Train ``model`` on ``train`` (a MultimodalDataset split), select on ``val``.

    * ``objective``: :class:`~mmrepro.losses.Supervised` (default, every head: MIND eq. 2 / MILES
      eq. 3), :class:`~mmrepro.losses.MIND`, :class:`~mmrepro.losses.TS` or :class:`~mmrepro.losses.MKE`.
      Teachers' soft targets are computed once, in eval mode without gradients.
    * ``method``: a balancing method (MILES, MSES, MSLR, OGM, GBlend); None = vanilla.
    * Checkpoint: best ``val/{select_head}/{select_metric}`` (default AUROC for binary/multilabel,
      accuracy for multiclass, MSE for regression); ``patience`` epochs without improvement stop
      training. Without ``val`` the last epoch is kept.
    * Logs per epoch: ``train/{head}/{metric}``, ``val/{head}/{metric}``, ``.../loss``, ``u:{m}`` and
      ``delta`` (two-modality multi-head models, ``u_metric`` on val, else train), ``lr/{group}``.
    * ``seed`` seeds everything (shuffling included): same seed and device -> same numbers.
    """
    t = check_fit_inputs(model, train, val, task, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                         patience=patience, weight_decay=weight_decay, momentum=momentum,
                         eval_batch_size=eval_batch_size)
    objective = objective if objective is not None else Supervised()
    method = method if method is not None else BalancingMethod()
    metrics = tuple(dict.fromkeys([*(metrics or DEFAULT_METRICS[t.kind]), *method.metrics]))
    select_metric = select_metric or DEFAULT_SELECT[t.kind]
    if select_metric not in metrics and select_metric != "loss":
        metrics = (*metrics, select_metric)
    metrics = _checked(metrics, t.kind)
    if val is None and method.needs_val:
        raise ValueError(f"{method.name} reads validation metrics every epoch; pass val=<validation split> to fit")
    if select_head not in model.head_names:
        raise ValueError(f"select_head {select_head!r} is not a head of the model: {model.head_names}")
    sign = -1.0 if select_metric in LOWER_IS_BETTER else 1.0
    u_metric = u_metric or (select_metric if sign > 0 else None)
    if u_metric in LOWER_IS_BETTER:
        raise ValueError(f"u (MIND eq. 6, MILES eq. 4) needs a higher-is-better metric, got u_metric={u_metric!r}")
    if u_metric is not None and u_metric not in metrics:
        metrics = _checked((*metrics, u_metric), t.kind)

    gen = seed_everything(seed)
    dev = resolve_device(device)
    model.to(dev)
    train_idx, extra_idx = method.split_train(torch.arange(train.n), gen)
    train_data = train.subset(train_idx) if extra_idx else train
    extra = {name: _Rows(train.subset(idx), t.name, dev) for name, idx in extra_idx.items()}

    rows = _Rows(train_data, t.name, dev)
    for m, teachers in getattr(objective, "teachers", {}).items():
        for tm in teachers:
            tm.to(dev).eval()
        soft = soft_targets(teachers, m, rows.x, rows.present, rows.lengths, t.kind, objective.temperature,
                            eval_batch_size)
        rows.soft[m] = soft.to(rows.y.device)
    val_rows = _Rows(val, t.name, dev) if val is not None else None

    trainer = Trainer(model, _optimizer(model, optimizer, lr, betas, weight_decay, momentum), method)
    method.setup(trainer)
    two = model.multihead and len(model.modalities) == 2
    history: list[dict[str, Any]] = []
    best = (-math.inf, -1, None)
    wait = 0
    bar = tqdm(range(epochs), disable=not (sys.stderr.isatty() if progress is None else progress),
               desc=f"fit {method.name}", leave=False)
    for epoch in bar:
        trainer.epoch = epoch
        model.train()
        log: dict[str, Any] = {"epoch": epoch, **{f"lr/{g}": v for g, v in trainer.lrs().items()}}
        acc_logits: dict[str, list[Tensor]] = {}
        acc_mask: dict[str, list[Tensor]] = {}
        order: list[Tensor] = []
        total = torch.zeros((), device=dev)
        for b in rows.batches(batch_size, gen):
            out = model(b.x, b.present, b.lengths)
            loss, _ = objective(model, b, out, method.head_weights())
            trainer.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            method.before_step(trainer, out, b)
            trainer.optimizer.step()
            total += loss.detach() * len(b.idx)
            order.append(b.idx)
            for h, z in out.logits.items():
                acc_logits.setdefault(h, []).append(z.detach())
                acc_mask.setdefault(h, []).append(out.mask[h])
        log["train/loss"] = float(total) / rows.n
        perm = torch.cat(order).to(rows.y.device)
        scored = _score_heads({h: torch.cat(v) for h, v in acc_logits.items()},
                              {h: torch.cat(v) for h, v in acc_mask.items()}, rows.y[perm], t.kind, metrics)
        log.update({f"train/{k}": v for k, v in scored.items()})
        for name, r in ([("val", val_rows)] if val_rows is not None else []) + list(extra.items()):
            lg, mk = predict_logits(model, r, eval_batch_size)
            log.update({f"{name}/{k}": v for k, v in _score_heads(lg, mk, r.y, t.kind, metrics).items()})
        if two and u_metric is not None:
            split = "val" if val_rows is not None else "train"
            a, bm = model.modalities
            m_f, m_a, m_b = (log[f"{split}/{h}/{u_metric}"] for h in (FUSION_HEAD, a, bm))
            if all(math.isfinite(v) for v in (m_f, m_a, m_b)) and m_f != 0:
                u_a, u_b = conditional_utilization(m_f, m_a, m_b)
                log.update({f"u:{a}": u_a, f"u:{bm}": u_b, "delta": abs(u_a - u_b)})
        log.update(method.on_epoch_end(trainer, epoch, log))
        history.append(log)
        if val_rows is not None:
            key = f"val/{select_head}/{select_metric}"
            s = sign * log[key]
            if math.isfinite(s) and s > best[0]:
                best = (s, epoch, {k: v.detach().clone() for k, v in model.state_dict().items()})
                wait = 0
            else:
                wait += 1
            bar.set_postfix({key: f"{log[key]:.4f}"})
        if (patience is not None and wait >= patience) or method.should_stop:
            break
    if best[2] is not None:
        model.load_state_dict(best[2])
        best_epoch, best_score = best[1], sign * best[0]
    else:
        best_epoch, best_score = len(history) - 1, math.nan
    info = {"device": str(dev), "on_device_batching": rows.on_device, "n_train": rows.n,
            "select": f"val/{select_head}/{select_metric}"}
    return FitResult(model, history, best_epoch, best_score, method, info)
