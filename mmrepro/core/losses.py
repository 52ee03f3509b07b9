"""Supervised and distillation losses shared by the papers: the multi-head supervised loss (MIND eq. 2,
MILES eq. 3) and response-based distillation (Hinton et al. 2015; MIND eqs. 1, 3).

Loss functions take logits; targets follow the dataset convention (binary float (N,), multiclass
int64 (N,), multilabel float (N, L), regression float (N,); unknown = NaN or -1 and ignored).
An objective (:class:`Supervised` here; MIND's objectives and its baselines in
:mod:`mmrepro.papers.mind.objectives`) is what :func:`mmrepro.core.trainer.fit` calls on each batch;
teachers are frozen and their soft targets are computed once before training
(:func:`mmrepro.core.models.soft_targets`, MIND eq. 4 in :func:`mmrepro.core.models.ensemble_probs`).
"""
from __future__ import annotations

from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmrepro.common.checks import check_number
from mmrepro.core.models.fusion import ModelOutput


def _check_target(logits: Tensor, y: Tensor, kind: str) -> None:
    """Shapes and dtypes of a head's logits and targets (values are checked once per split by
    :meth:`mmrepro.core.data.Task.check_targets` at the entry of :func:`~mmrepro.core.trainer.fit`); leading
    run axes (stacked runs) are allowed on both."""
    if kind not in ("binary", "multiclass", "multilabel", "regression"):
        raise ValueError(f"kind={kind!r} is not a task kind; accepted: binary, multiclass, multilabel, regression")
    if logits.dim() < 2 or tuple(y.shape[:logits.dim() - 1]) != tuple(logits.shape[:-1]):
        targets = f"{y.shape[0]} targets" if logits.dim() == 2 and y.dim() else f"targets {tuple(y.shape)}"
        raise ValueError(f"logits of shape {tuple(logits.shape)} do not match {targets}; "
                         "logits are (N, n_outputs)")
    if kind == "multiclass":
        if y.dtype != torch.int64 or y.dim() != logits.dim() - 1:
            raise TypeError(f"y must be int64 class indices of shape (N,) for a multiclass loss (-1 = unknown), "
                            f"got {y.dtype} {tuple(y.shape)}")
        return
    if not torch.is_floating_point(y):
        raise TypeError(f"y must be a float tensor for a {kind} loss (NaN = unknown), got {y.dtype}: use y.float()")
    want = tuple(logits.shape) if kind == "multilabel" else tuple(logits.shape[:-1])
    if tuple(y.shape) != want:
        raise ValueError(f"y has shape {tuple(y.shape)}; a {kind} loss on logits {tuple(logits.shape)} needs {want}")


def check_weights(name: str, weights: Mapping[str, float]) -> dict[str, float]:
    return {m: check_number(f"{name}[{m!r}]", w, 0) for m, w in weights.items()}


def _valid_rows(y: Tensor, kind: str, mask: Tensor | None) -> Tensor:
    ok = y >= 0 if kind == "multiclass" else ~torch.isnan(y)
    if mask is not None:
        ok = ok & (mask.unsqueeze(-1) if kind == "multilabel" else mask)
    return ok


def masked_mean(values: Tensor, ok: Tensor, dims: tuple[int, ...]) -> Tensor:
    """Mean of ``values`` over the entries where ``ok``, reduced over ``dims``; 0 (with a graph)
    where nothing is valid. Unselected entries never reach the result, not even as NaN."""
    return torch.where(ok, values, 0.0).sum(dims) / ok.sum(dims).clamp(min=1).to(values.dtype)


def supervised_loss(logits: Tensor, y: Tensor, kind: str, mask: Tensor | None = None) -> Tensor:
    """One head's supervised loss, averaged over known targets (and rows where ``mask``):
    BCE (binary; multilabel, averaged over rows x labels as MedFuse), cross-entropy (multiclass),
    squared error (regression). Zero (with a graph) when nothing is valid.

    Shapes: logits (..., N, C), y (..., N) ((..., N, L) multilabel), mask (..., N); leading axes
    (independent runs trained together, :func:`mmrepro.core.trainer.fit_many`) are kept: the result
    has shape (...)."""
    _check_target(logits, y, kind)
    ok = _valid_rows(y, kind, mask)
    target = torch.where(ok, y, torch.zeros((), dtype=y.dtype, device=y.device))
    if kind == "multiclass":
        per = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1), reduction="none")
        return masked_mean(per.view(ok.shape), ok, (-1,))
    if kind == "multilabel":
        return masked_mean(F.binary_cross_entropy_with_logits(logits, target, reduction="none"), ok, (-2, -1))
    if kind == "binary":
        return masked_mean(F.binary_cross_entropy_with_logits(logits[..., 0], target, reduction="none"), ok, (-1,))
    return masked_mean((logits[..., 0] - target).pow(2), ok, (-1,))


def multihead_loss(out: ModelOutput, y: Tensor, kind: str,
                   weights: Mapping[str, float] | None = None,
                   heads: Sequence[str] | None = None) -> tuple[Tensor, dict[str, Tensor]]:
    """L_S = L_S_AB + L_S_A + L_S_B (MIND eq. 2, MILES eq. 3): the sum of every head's supervised
    loss, each on the rows where its inputs are present; optional per-head ``weights`` (G-Blend)."""
    names = list(out.logits) if heads is None else list(heads)
    parts = {h: supervised_loss(out.logits[h], y, kind, out.mask[h]) for h in names}
    w = weights or {}
    return sum(w.get(h, 1.0) * parts[h] for h in names), parts


def kd_loss(student_logits: Tensor, teacher_probs: Tensor, kind: str, temperature: float = 1.0,
            mask: Tensor | None = None, label_reduction: str = "sum") -> Tensor:
    """Response-based distillation towards teacher probabilities.

    * multiclass: KL(p_t || softmax(z_s / T)) averaged over rows, times T^2 (Hinton et al. 2015;
      MIND eq. 1); ``teacher_probs`` must already be softened with the same T (see ``soft_targets``).
    * binary / multilabel: BCE(sigmoid(z_s / T), p_t) per label, summed over labels and averaged
      over rows (MIND eq. 3; ``label_reduction="mean"`` averages over labels instead).

    With one-hot (hard) teacher targets and T = 1 this equals the supervised loss (multiclass,
    binary; multilabel with ``label_reduction="mean"``). Rows whose teacher probabilities are NaN
    (the teacher's modality is absent) are skipped. Leading axes (runs) are kept, as in
    :func:`supervised_loss`.
    """
    check_temperature(temperature)
    check_label_reduction(label_reduction)
    if kind not in ("binary", "multiclass", "multilabel"):
        raise ValueError(f"knowledge distillation is defined for classification tasks, not {kind!r}")
    t = teacher_probs.reshape(student_logits.shape[:-1] + (-1,))
    if t.shape != student_logits.shape:
        raise ValueError(f"teacher probabilities {tuple(t.shape)} do not match student logits "
                         f"{tuple(student_logits.shape)}")
    rows = ~torch.isnan(t).any(dim=-1)
    if mask is not None:
        rows = rows & mask
    t = torch.where(rows.unsqueeze(-1), t, 0.0)
    z = student_logits / temperature
    if kind == "multiclass":
        kl = (torch.xlogy(t, t) - t * F.log_softmax(z, dim=-1)).sum(dim=-1)
        return masked_mean(kl, rows, (-1,)) * temperature**2
    bce = F.binary_cross_entropy_with_logits(z, t, reduction="none")
    per_row = bce.sum(dim=-1) if label_reduction == "sum" else bce.mean(dim=-1)
    return masked_mean(per_row, rows, (-1,))


def check_temperature(t: float) -> float:
    return check_number("temperature", t, 0, low_open=True)


def check_label_reduction(label_reduction: str) -> str:
    if label_reduction not in ("sum", "mean"):
        raise ValueError(f"label_reduction must be 'sum' (MIND eq. 3) or 'mean', got {label_reduction!r}")
    return label_reduction


def teacher_lists(teachers: Mapping[str, nn.Module | Sequence[nn.Module]]) -> dict[str, list[nn.Module]]:
    out = {m: list(t) if isinstance(t, Sequence) else [t] for m, t in teachers.items()}
    for m, ts in out.items():
        if not all(isinstance(t, nn.Module) for t in ts):
            raise TypeError(f"teachers[{m!r}] must be a model or a list of models, got {teachers[m]!r}")
    return out


class Supervised:
    """Supervised objective: every head (MedFuse-3H / MILES eq. 3) or only ``heads`` (e.g. ``["fusion"]``
    for single-head MedFuse)."""

    teachers: Mapping[str, Sequence[nn.Module]] = {}
    temperature = 1.0

    def __init__(self, heads: Sequence[str] | None = None) -> None:
        self.heads = heads

    def __call__(self, model: nn.Module, batch, out: ModelOutput, head_weights=None):
        return multihead_loss(out, batch.y, model.kind, head_weights, self.heads)
