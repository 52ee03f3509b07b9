"""Frozen teachers: ensemble soft targets (MIND eq. 4) and the UME prediction rule (Du et al. 2023)."""
from __future__ import annotations

from typing import Mapping, Sequence

import torch
from torch import Tensor, nn

from mmrepro.core.models.fusion import FUSION_HEAD, leading, probabilities


def ensemble_probs(teacher_logits: Sequence[Tensor], kind: str, temperature: float = 1.0) -> Tensor:
    """Teacher-ensemble soft targets y^T = (1/K) sum_k p(z_k / T) (MIND eq. 4); shapes as the logits
    (N, C) or (N, L); for binary tasks (N, 1)."""
    if not teacher_logits:
        raise ValueError("an ensemble needs at least one teacher")
    if kind not in ("binary", "multiclass", "multilabel"):
        raise ValueError(f"soft targets are defined for classification tasks, not {kind!r}")
    probs = [probabilities(z / temperature, kind).reshape(z.shape) for z in teacher_logits]
    return torch.stack(probs).mean(dim=0)


def _teacher_logits(teacher: nn.Module, modality: str, x, present, lengths) -> Tensor:
    """A teacher's logits for ``modality``: its head of that name if it has one, else its fusion head."""
    out = teacher(x, present, lengths)
    return out.logits.get(modality, out.logits[FUSION_HEAD])


@torch.no_grad()
def soft_targets(teachers: Sequence[nn.Module], modality: str, x: Mapping[str, Tensor],
                 present: Mapping[str, Tensor], lengths: Mapping[str, Tensor], kind: str,
                 temperature: float = 1.0, batch_size: int = 512) -> Tensor:
    """Averaged teacher probabilities y^T (MIND eq. 4) for every row, computed in eval mode without
    gradients; rows where ``modality`` is absent are NaN (they carry no distillation signal)."""
    if not teachers:
        raise ValueError(f"soft targets for {modality!r} need at least one teacher; got an empty list")
    n = present[modality].shape[0]
    dev = next(teachers[0].parameters()).device  # rows may sit in host memory (large data on CUDA)
    chunks = []
    for start in range(0, n, batch_size):
        sl = slice(start, start + batch_size)
        xs = {k: v[sl].to(dev) for k, v in x.items()}
        ps = {k: v[sl].to(dev) for k, v in present.items()}
        ls = {k: v[sl].to(dev) for k, v in lengths.items()}
        logits = []
        for t in teachers:
            was_training = t.training
            t.eval()
            logits.append(_teacher_logits(t, modality, xs, ps, ls))
            t.train(was_training)
        chunks.append(ensemble_probs(logits, kind, temperature))
    probs = torch.cat(chunks).to(present[modality].device)
    absent = ~leading(present[modality], probs)
    return probs.masked_fill(absent, float("nan"))


@torch.no_grad()
def ume_proba(models: Mapping[str, nn.Module], x: Mapping[str, Tensor], present: Mapping[str, Tensor],
              lengths: Mapping[str, Tensor] | None = None) -> Tensor:
    """UME (Du et al. 2023; MIND App. A.4): average the predictions of independently trained unimodal
    models over the modalities each row has (NaN where it has none)."""
    lengths = lengths or {}
    kinds = {getattr(m, "kind", None) for m in models.values()}
    if len(kinds) != 1 or None in kinds:
        raise ValueError("UME needs unimodal MultimodalNet models of one task kind")
    kind = kinds.pop()
    total, count = None, None
    for mod, net in models.items():
        was_training = net.training
        net.eval()
        p = probabilities(_teacher_logits(net, mod, x, present, lengths), kind)
        net.train(was_training)
        w = leading(present[mod].to(p.dtype), p)
        total = p * w if total is None else total + p * w
        count = w if count is None else count + w
    return total / count
