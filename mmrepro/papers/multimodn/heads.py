"""Building blocks shared by MultiModN and P-Fusion: task specs, dense networks, per-task losses.

Both models use :func:`mlp` with the same widths so that only the fusion differs (MultiModN paper,
Section 4.1: "two fully connected ReLU layers and one layer for prediction").
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmrepro.common.checks import TASK_KINDS


@dataclass(frozen=True)
class TaskSpec:
    """What a decoder predicts: ``kind`` in :data:`TASK_KINDS` and its number of outputs."""

    kind: str
    n_outputs: int


def as_task_specs(tasks: Mapping[str, Any]) -> dict[str, TaskSpec]:
    """Normalise ``{name: Task | (kind, n_outputs) | kind}`` into ``{name: TaskSpec}``.

    Accepts ``mmrepro.core.data.Task`` (anything with ``kind`` and ``n_outputs``), a tuple, or a bare kind
    for single-output kinds (``"binary"``, ``"regression"``).
    """
    if not isinstance(tasks, Mapping) or not tasks:
        raise ValueError("tasks must be a non-empty mapping {task name: Task or (kind, n_outputs)}.")
    specs = {}
    for name, task in tasks.items():
        if isinstance(task, str):
            kind, n_out = task, 1
        elif isinstance(task, tuple) and len(task) == 2:
            kind, n_out = task
        elif hasattr(task, "kind") and hasattr(task, "n_outputs"):
            kind, n_out = task.kind, task.n_outputs
        else:
            raise ValueError(f"task {name!r}: expected a Task, a (kind, n_outputs) tuple or a kind, got {task!r}.")
        if kind not in TASK_KINDS:
            raise ValueError(f"task {name!r}: kind {kind!r} is not one of {TASK_KINDS}.")
        minimum = {"binary": 1, "regression": 1, "multiclass": 2, "multilabel": 1}[kind]
        if not isinstance(n_out, int) or n_out < minimum or (kind in ("binary", "regression") and n_out != 1):
            raise ValueError(f"task {name!r}: n_outputs={n_out!r} is invalid for kind {kind!r} "
                             f"(binary/regression: 1, multiclass: >= 2, multilabel: >= 1).")
        _check_name(name, "task")
        specs[name] = TaskSpec(kind, n_out)
    return specs


def _check_name(name: Any, what: str) -> None:
    if not isinstance(name, str) or not name or "." in name:
        raise ValueError(f"{what} name {name!r} must be a non-empty string without '.'.")


def check_modalities(modalities: Any, sequence_steps: Mapping[str, int] | None = None) -> dict[str, int]:
    """Validate ``{modality: n_features}`` (and, for the parallel models, ``{sequence modality: T}``
    with one shared T); returns the sequence steps as a dict."""
    if not isinstance(modalities, Mapping) or not modalities:
        raise ValueError("modalities must be a non-empty mapping {name: n_features}.")
    for m, f in modalities.items():
        _check_name(m, "modality")
        if isinstance(f, bool) or not isinstance(f, int) or f < 1:
            raise ValueError(f"modality {m!r}: n_features must be a positive int, got {f!r}.")
    steps = dict(sequence_steps or {})
    if not set(steps) <= set(modalities):
        raise ValueError(f"sequence_steps names {sorted(set(steps) - set(modalities))} are not modalities.")
    if len(set(steps.values())) > 1 or any(not isinstance(t, int) or t < 1 for t in steps.values()):
        raise ValueError(f"sequence_steps {steps} must share one positive T (one time axis).")
    return steps


def mlp(in_features: int, hidden: int, out_features: int, *, n_hidden: int = 2,
        dropout: float = 0.0, out_relu: bool = False) -> nn.Sequential:
    """Dropout on the input, ``n_hidden`` Linear+ReLU layers of width ``hidden``, a Linear output.

    ``out_relu`` adds a final ReLU (MultiModN encoders produce a non-negative state).
    """
    if n_hidden < 0 or hidden < 1 or in_features < 1 or out_features < 1:
        raise ValueError(f"mlp sizes must be positive (in={in_features}, hidden={hidden}, "
                         f"out={out_features}, n_hidden={n_hidden}).")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}.")
    layers: list[nn.Module] = [nn.Dropout(dropout)] if dropout > 0 else []
    width = in_features
    for _ in range(n_hidden):
        layers += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    layers.append(nn.Linear(width, out_features))
    if out_relu:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def check_target(name: str, spec: TaskSpec, y: Tensor, n: int, time_steps: int | None) -> None:
    """Raise a clear error if ``y`` does not fit ``spec`` (the target encoding of mmrepro.core.data)."""
    shape = (n,) if time_steps is None else (n, time_steps)
    if spec.kind == "multilabel":
        shape = shape + (spec.n_outputs,)
    if tuple(y.shape) != shape:
        raise ValueError(f"target {name!r} has shape {tuple(y.shape)}, expected {shape} "
                         f"({spec.kind}{', one target per time step' if time_steps else ''}).")
    if spec.kind == "multiclass":
        if y.dtype != torch.int64:
            raise ValueError(f"multiclass target {name!r} must be int64 class indices (-1 = unknown), got {y.dtype}.")
        if y.numel() and (int(y.min()) < -1 or int(y.max()) >= spec.n_outputs):
            raise ValueError(f"multiclass target {name!r} has labels outside [-1, {spec.n_outputs - 1}].")
    elif not torch.is_floating_point(y):
        raise ValueError(f"{spec.kind} target {name!r} must be a float tensor (NaN = unknown), got {y.dtype}.")
    elif spec.kind in ("binary", "multilabel"):
        known = y[~torch.isnan(y)]
        if known.numel() and not bool(((known == 0) | (known == 1)).all()):
            raise ValueError(f"{spec.kind} target {name!r} must contain only 0, 1 or NaN.")


def pair_losses(spec: TaskSpec, logits: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Per-(sample, state) loss and validity for one decoder.

    ``logits`` (..., n_outputs); ``target`` (...) or (..., L) for multilabel.  Returns ``loss`` and a
    bool ``valid`` of shape (...): binary/multilabel BCE on logits, multiclass cross-entropy,
    regression squared error.  Unknown targets (NaN, -1) are invalid and their loss is 0.
    """
    if spec.kind == "multiclass":
        valid = target >= 0
        loss = F.cross_entropy(logits.reshape(-1, spec.n_outputs), target.clamp(min=0).reshape(-1),
                               reduction="none").reshape(target.shape)
        return loss * valid, valid
    known = ~torch.isnan(target)
    t = torch.where(known, target, torch.zeros((), dtype=target.dtype, device=target.device))
    if spec.kind == "multilabel":
        per_label = F.binary_cross_entropy_with_logits(logits, t, reduction="none") * known
        n_known = known.sum(-1)
        return per_label.sum(-1) / n_known.clamp(min=1), n_known > 0
    if spec.kind == "binary":
        loss = F.binary_cross_entropy_with_logits(logits[..., 0], t, reduction="none")
    else:
        loss = (logits[..., 0] - t) ** 2
    return loss * known, known


def to_probability(spec: TaskSpec, logits: Tensor) -> Tensor:
    """Decoder output in prediction space: sigmoid (binary, multilabel), softmax, identity (regression)."""
    if spec.kind in ("binary", "multilabel"):
        return torch.sigmoid(logits)
    if spec.kind == "multiclass":
        return torch.softmax(logits, dim=-1)
    return logits
