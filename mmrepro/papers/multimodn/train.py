"""Minimal training loop for MultiModN and its baselines (MultiModN paper Section 6 and Appendix D).

Adam with gradient-norm clipping, mini-batches drawn from a seeded generator, model selection on
the validation set (Table 3: "Val BAC + Macro AUROC" for classification, "Val MSE" for regression).
Data is any object with ``x``, ``present``, ``y`` and optionally ``lengths`` dicts of tensors, e.g.
:class:`mmrepro.core.data.MultimodalDataset` or its ``split("train")``.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from mmrepro.common.checks import check_int, check_number, check_seed
from mmrepro.core import metrics
from mmrepro.papers.multimodn.heads import to_probability
from mmrepro.papers.multimodn.model import MultiModN
from mmrepro.papers.multimodn.pfusion import PFusion
from mmrepro.papers.multimodn.transformer import FusionTransformer

__all__ = ["fit_multimodn", "MultiModNFit", "epoch_batches", "evaluation_pairs", "selection_score"]


@dataclass
class MultiModNFit:
    """``best_epoch`` (1-based), its validation score (NaN without validation data) and per-epoch ``history`` rows ``{"epoch", "train_loss", "val_score"}``."""

    best_epoch: int
    best_score: float
    history: list[dict[str, float]] = field(default_factory=list)


def _fields(data: Any, device: torch.device) -> tuple[dict, dict, dict, dict]:
    try:
        parts = [data.x, data.present, getattr(data, "lengths", None) or {}, data.y]
    except AttributeError as exc:
        raise ValueError("data must have x, present, y (and optionally lengths) dicts of tensors, "
                         "like mmrepro.core.data.MultimodalDataset.") from exc
    return tuple({k: v.to(device) for k, v in d.items()} for d in parts)  # type: ignore[return-value]


def _train_fields(model: nn.Module, train: Any, device: torch.device) -> tuple[dict, dict, dict, dict, int]:
    """The model moved to ``device``, and the training split's fields there and its row count
    (a clear error when it has no rows)."""
    model.to(device)
    x, present, lengths, y = _fields(train, device)
    n = next(iter(x.values())).shape[0]
    if n == 0:
        raise ValueError("train has no rows: pass a non-empty training split.")
    return x, present, lengths, y, n


def _rows(d: Mapping[str, Tensor], idx: Tensor) -> dict[str, Tensor]:
    return {k: v[idx] for k, v in d.items()}


def evaluation_pairs(model: MultiModN | PFusion | FusionTransformer, data: Any, order: Sequence[str] | None = None,
                     device: str | torch.device = "cpu") -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{task: (y_true, y_pred)}`` over the known targets, predictions in probability space.

    Static tasks use the last state (MultiModN) or the fused output; time tasks pool every
    (sample, time point) with a known target; multilabel keeps rows with every label known.  ``order`` restricts/permutes MultiModN's encoders.
    Runs in eval mode; restores the previous mode.
    """
    device = torch.device(device)
    x, present, lengths, y = _fields(data, device)
    was_training = model.training
    model.eval()
    try:
        kw = {"order": order} if isinstance(model, MultiModN) else {}
        if order is not None and not kw:
            raise ValueError("order is only meaningful for MultiModN; the baselines always use all modalities.")
        logits = model.predict(x, present, lengths, **kw)
    finally:
        model.train(was_training)
    return prediction_pairs(model.tasks, logits, y)


def prediction_pairs(tasks: Mapping[str, Any], logits: Mapping[str, Tensor], y: Mapping[str, Tensor]
                     ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{task: (y_true, y_pred)}`` from a model's logits (see :func:`evaluation_pairs`)."""
    pairs = {}
    for task, spec in tasks.items():
        if task not in y:
            raise ValueError(f"data has no target for task {task!r}.")
        target, prob = y[task], to_probability(spec, logits[task])
        if spec.kind in ("binary", "regression"):
            prob = prob[..., 0]
        known = target >= 0 if spec.kind == "multiclass" else ~torch.isnan(target)
        if spec.kind == "multilabel":
            known = known.all(-1)
        pairs[task] = (target[known].cpu().numpy(), prob[known].cpu().numpy())
    return pairs


def selection_score(pairs: Mapping[str, tuple[np.ndarray, np.ndarray]], kinds: Mapping[str, str],
                    tasks: Sequence[str] | None = None) -> float:
    """Sum over ``tasks`` (default all) of AUROC + balanced accuracy (binary, multiclass), macro
    AUROC (multilabel) or -MSE (regression); higher is better.  An AUROC that is undefined (one
    class only) contributes 0.  Metrics from :func:`mmrepro.core.metrics.score`."""
    total = 0.0
    for task in tasks if tasks is not None else list(pairs):
        kind = kinds[task]
        y_true, y_pred = pairs[task]
        if len(y_true) == 0:
            raise ValueError(f"no known validation target for task {task!r}: cannot select a model.")
        if kind == "regression":
            total -= metrics.score("mse", y_true, y_pred, kind)
            continue
        try:
            total += metrics.score("auroc", y_true, y_pred, kind)
        except ValueError:
            pass
        if kind != "multilabel":
            total += metrics.score("balanced_accuracy", y_true, y_pred, kind)
    return total


def epoch_batches(n: int, batch_size: int, gen: torch.Generator, steps: Tensor | None = None) -> list[Tensor]:
    """The index tensors of one epoch's mini-batches, drawn from ``gen``.

    Without ``steps``: a random permutation cut into consecutive batches.  With ``steps`` (N,),
    the sequence steps each sample needs: length-bucketed batching -- samples sorted by ``steps``
    (ties in random order) are cut into batches of similar length and the batch order is shuffled,
    so a batch's time loop runs about as long as its own samples need.
    """
    perm = torch.randperm(n, generator=gen)
    if steps is None:
        return list(perm.split(batch_size))
    chunks = perm[torch.sort(steps[perm], stable=True).indices].split(batch_size)
    return [chunks[i] for i in torch.randperm(len(chunks), generator=gen).tolist()]


def check_settings(epochs: int, batch_size: int, lr: float, seed: int, grad_clip: float | None,
                   select_tasks: Sequence[str] | None, tasks: Mapping[str, Any]) -> None:
    """Clear errors for training settings :func:`fit_multimodn` cannot use."""
    check_int("epochs", epochs, 1)
    check_int("batch_size", batch_size, 1)
    check_number("lr", lr, 0, low_open=True)
    check_seed(seed)
    if grad_clip is not None:
        check_number("grad_clip", grad_clip, 0, low_open=True)
    unknown = sorted(set(select_tasks or ()) - set(tasks))
    if unknown:
        raise ValueError(f"select_tasks {unknown} are not tasks of the model {sorted(tasks)}.")


def fit_multimodn(model: MultiModN | PFusion | FusionTransformer, train: Any, val: Any | None = None, *, epochs: int = 100,
        batch_size: int = 16, lr: float = 1e-3, grad_clip: float | None = 1.0, seed: int = 0,
        device: str | torch.device = "cpu", select_tasks: Sequence[str] | None = None,
        shuffle_order: bool = False, bucket_by_length: bool = False) -> MultiModNFit:
    """Train ``model`` in place and load the parameters of the best validation epoch.

    Args:
        train, val: data objects (see module docstring); without ``val`` the last epoch is kept.
        epochs, batch_size, lr, grad_clip: Adam settings (Appendix D: Adam with gradient clipping).
        seed: seeds batch order, encoder orders and dropout (``torch.manual_seed``).
        device: where the model and all data tensors live during training.
        select_tasks: tasks whose validation metrics select the model (default: all).
        shuffle_order: MultiModN only: a random encoder order per batch (order invariance,
            paper Section 4 "Decoders").
        bucket_by_length: batches of samples with similar sequence length (the longest valid
            length over the present sequence modalities), in shuffled batch order; see
            :func:`epoch_batches`.  Faster in time-series mode (a batch runs up to its longest
            sample), but the batches differ, so results differ from the default random batches.
    """
    check_settings(epochs, batch_size, lr, seed, grad_clip, select_tasks, model.tasks)
    if shuffle_order and not isinstance(model, MultiModN):
        raise ValueError("shuffle_order applies to MultiModN only (P-Fusion has no encoding order).")
    device = torch.device(device)
    x, present, lengths, y, n = _train_fields(model, train, device)
    steps = None
    if bucket_by_length:
        if not lengths:
            raise ValueError("bucket_by_length needs sequence data (a `lengths` dict); this data has none.")
        steps = torch.stack([lengths[m] * present[m] for m in lengths]).amax(0).cpu()
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    params = list(model.parameters())
    optimiser = torch.optim.Adam(params, lr=lr)
    kinds = {t: s.kind for t, s in model.tasks.items()}

    def score() -> float:
        return selection_score(evaluation_pairs(model, val, device=device), kinds, select_tasks)

    best_score, best_state, best_epoch = -math.inf, model.state_dict(), 0
    history = []
    for epoch in range(1, epochs + 1):
        model.train()
        chunks = epoch_batches(n, batch_size, gen, steps)
        # rows gathered once per epoch in batch order; each batch is then a contiguous slice
        order = torch.cat(chunks).to(device)
        parts = [_rows(d, order) for d in (x, present, lengths, y)]
        total = torch.zeros((), dtype=torch.float64, device=device)
        start = 0
        for chunk in chunks:
            batch = slice(start, start + len(chunk))
            start = batch.stop
            kw = {}
            if shuffle_order:
                kw["order"] = [model.modalities[i] for i in torch.randperm(len(model.modalities), generator=gen)]
            loss = model.loss(*({k: v[batch] for k, v in d.items()} for d in parts), **kw)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            if grad_clip is not None:
                nn.utils.clip_grad_norm_(params, grad_clip)
            optimiser.step()
            total += loss.detach()
        row = {"epoch": epoch, "train_loss": float(total) / len(chunks)}
        if val is not None:
            row["val_score"] = score()
            if row["val_score"] > best_score:
                best_score, best_epoch = row["val_score"], epoch
                best_state = copy.deepcopy(model.state_dict())
        history.append(row)
    if val is None:
        return MultiModNFit(epochs, math.nan, history)
    model.load_state_dict(best_state)
    return MultiModNFit(best_epoch, best_score, history)
