"""MIND's objective (eq. 7) and the distillation baselines it is compared with (Table A4: TS, MKE).

Each is called by :func:`mmrepro.core.trainer.fit` on every batch as ``objective(model, batch, out)``
and returns ``(total loss, parts)``; the shared pieces (the multi-head supervised loss, response-based
distillation) are :mod:`mmrepro.core.losses`.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from torch import nn

from mmrepro.common.checks import check_number
from mmrepro.core.losses import (
    check_label_reduction,
    check_temperature,
    check_weights,
    kd_loss,
    masked_mean,
    multihead_loss,
    teacher_lists,
)
from mmrepro.core.models.fusion import FUSION_HEAD, ModelOutput, leading, probabilities


class MIND:
    """L_MIND = L_S_AB + L_S_A + L_S_B + sum_m omega_m L_EKD_m (MIND eq. 7): each modality head
    distils from its ensemble of frozen unimodal teachers (eqs. 3-4). omega = 0 gives eq. 2."""

    def __init__(self, teachers: Mapping[str, Sequence[nn.Module]], omega: Mapping[str, float],
                 temperature: float = 1.0, label_reduction: str = "sum") -> None:
        if set(omega) - set(teachers):
            raise ValueError(f"omega names modalities without teachers: {sorted(set(omega) - set(teachers))}")
        self.teachers = teacher_lists(teachers)
        self.omega, self.temperature = check_weights("omega", omega), check_temperature(temperature)
        self.label_reduction = check_label_reduction(label_reduction)

    def __call__(self, model: nn.Module, batch, out: ModelOutput, head_weights=None):
        missing = [m for m in self.teachers if m not in out.logits]
        if missing:
            raise ValueError(f"MIND needs a unimodal head per teacher modality; the model lacks {missing} "
                             "(build it with multihead=True)")
        total, parts = multihead_loss(out, batch.y, model.kind, head_weights)
        for m, w in self.omega.items():
            parts[f"kd:{m}"] = kd_loss(out.logits[m], batch.soft[m], model.kind, self.temperature,
                                       out.mask[m], self.label_reduction)
            total = total + w * parts[f"kd:{m}"]
        return total, parts


class TS:
    """TS (Wang et al. 2020a; MIND Table A4): L_S_AB + alpha L_KD(A) + beta L_KD(B), the fusion head
    distilling from each modality's unimodal teacher; ``weights`` maps modality -> alpha / beta.
    (Table A4's subscripts are garbled in the source; we read both KD terms as acting on the
    multimodal student's prediction, as the text describes.)"""

    def __init__(self, teachers: Mapping[str, nn.Module | Sequence[nn.Module]], weights: Mapping[str, float],
                 temperature: float = 1.0, label_reduction: str = "sum") -> None:
        if set(weights) != set(teachers):
            raise ValueError(f"weights {sorted(weights)} must name the same modalities as teachers {sorted(teachers)}")
        self.teachers = teacher_lists(teachers)
        self.weights, self.temperature = check_weights("weights", weights), check_temperature(temperature)
        self.label_reduction = check_label_reduction(label_reduction)

    def __call__(self, model: nn.Module, batch, out: ModelOutput, head_weights=None):
        total, parts = multihead_loss(out, batch.y, model.kind, head_weights, [FUSION_HEAD])
        for m, w in self.weights.items():
            parts[f"kd:{m}"] = kd_loss(out.logits[FUSION_HEAD], batch.soft[m], model.kind, self.temperature,
                                       batch.present[m], self.label_reduction)
            total = total + w * parts[f"kd:{m}"]
        return total, parts


class MKE:
    """MKE (Xue et al. 2021; MIND Table A4): L_KD + gamma L_reg. The multimodal student learns only
    from one unimodal teacher's soft labels; L_reg is a consistency regulariser: the squared
    difference between the student's predictions on the batch and on a copy whose inputs carry
    Gaussian noise (std ``noise_std``, drawn by ``batch.noise``: each run's own generator), standing
    in for MKE's input augmentations."""

    def __init__(self, teacher_modality: str, teacher: nn.Module | Sequence[nn.Module], gamma: float = 1.0,
                 noise_std: float = 0.1, temperature: float = 1.0, label_reduction: str = "sum") -> None:
        self.modality = teacher_modality
        self.teachers = teacher_lists({teacher_modality: teacher})
        self.gamma, self.noise_std = check_number("gamma", gamma, 0), check_number("noise_std", noise_std, 0)
        self.temperature, self.label_reduction = check_temperature(temperature), check_label_reduction(label_reduction)

    def __call__(self, model: nn.Module, batch, out: ModelOutput, head_weights=None):
        m, z = self.modality, out.logits[FUSION_HEAD]
        parts = {f"kd:{m}": kd_loss(z, batch.soft[m], model.kind, self.temperature, batch.present[m],
                                    self.label_reduction)}
        noisy = {k: v + leading(self.noise_std, v) * batch.noise(v) for k, v in batch.x.items()}
        z_noisy = model(noisy, batch.present, batch.lengths).logits[FUSION_HEAD]
        sq = (probabilities(z_noisy, model.kind) - probabilities(z, model.kind)).pow(2)
        rows = out.mask[FUSION_HEAD]
        sq = sq if sq.dim() > rows.dim() else sq.unsqueeze(-1)  # binary / regression: one output
        parts["reg"] = masked_mean(sq.mean(dim=-1), rows, (-1,))
        return parts[f"kd:{m}"] + self.gamma * parts["reg"], parts


def reference_mind_objective(logits: dict, y: Any, soft: dict, omega: dict) -> Any:
    """MIND eq. 7 for a multiclass task (every row labelled, every head scored) as :class:`MIND`
    computes it; ``logits`` maps "fusion" and each modality to (N, C) logits, ``soft`` each modality to its
    ensemble's probabilities, ``omega`` each modality to its weight."""
    from types import SimpleNamespace

    import torch

    out = ModelOutput(logits, {h: torch.ones(len(y), dtype=torch.bool) for h in logits}, {})
    objective = MIND(teachers={m: [] for m in omega}, omega=omega)
    return objective(SimpleNamespace(kind="multiclass"), SimpleNamespace(y=y, soft=soft), out)[0]


def reference_ekd_loss(student_logits: Any, teacher_probs: Any) -> Any:
    """MIND eq. 3 for a binary or multilabel head: the label-wise binary cross-entropy to the ensemble's
    probabilities, summed over labels, averaged over the rows with a soft target
    (:func:`mmrepro.core.losses.kd_loss` for a multilabel task, temperature 1)."""
    return kd_loss(student_logits, teacher_probs, "multilabel")
