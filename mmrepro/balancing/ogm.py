"""OGM and OGM-GE: on-the-fly gradient modulation with generalisation enhancement (Peng et al. 2022)."""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from mmrepro.balancing.base import BalancingMethod
from mmrepro.checks import check_int, check_number
from mmrepro.models.fusion import probabilities


def ogm_coefficients(s_a: float, s_b: float, alpha: float) -> tuple[float, float]:
    """Modulation coefficients (k_A, k_B) from the modalities' scores s (Peng et al. 2022, eqs. 5-7):
    rho_A = s_A / s_B; the dominant modality (rho > 1) gets k = 1 - tanh(alpha * rho), the other 1."""
    if s_a <= 0 or s_b <= 0:
        raise ValueError(f"OGM scores must be positive, got {s_a}, {s_b}")
    rho_a, rho_b = s_a / s_b, s_b / s_a
    if rho_a > 1:
        return 1.0 - math.tanh(alpha * rho_a), 1.0
    if rho_b > 1:
        return 1.0, 1.0 - math.tanh(alpha * rho_b)
    return 1.0, 1.0


def true_target_score(logits: Tensor, y: Tensor, kind: str, mask: Tensor) -> float:
    """s = sum over rows of the predicted probability of the true target (OGM eq. 5); for binary and
    multilabel heads, p if y = 1 else 1 - p, summed over labels; unknown targets are skipped."""
    p = probabilities(logits, kind)
    if kind == "multiclass":
        ok = mask & (y >= 0)
        return float(p[ok].gather(1, y[ok].unsqueeze(1)).sum())
    if kind in ("binary", "multilabel"):
        ok = ~torch.isnan(y) & (mask.view(-1, 1) if y.dim() == 2 else mask)
        return float(torch.where(y[ok] > 0.5, p[ok], 1 - p[ok]).sum())
    raise ValueError(f"OGM is defined for classification tasks, not {kind!r}")


class OGM(BalancingMethod):
    """Scale each encoder's gradients by k from :func:`ogm_coefficients` on every batch of the
    modulation epochs [``start``, ``end``). Scores come from each modality's share of the fusion
    logits (``MultimodalNet.fusion_contributions``; for LSTM fusion, which has no such split, from
    the unimodal heads: our extension). ``ge=True`` (OGM-GE) adds N(0, std(g)^2) noise to every
    modulated gradient, std taken from the unscaled gradient. Following the paper, every encoder
    parameter is modulated (the first public code touched only 4-D convolution weights), and, unlike
    that code, checkpoints are selected on validation, never test, data (by :func:`~mmrepro.trainer.fit`).
    Two modalities only."""

    name = "ogm"

    def __init__(self, alpha: float = 0.5, ge: bool = False, start: int = 0, end: int | None = None) -> None:
        check_number("alpha", alpha, 0)
        check_int("start", start, 0)
        if end is not None and check_int("end", end, 0) <= start:
            raise ValueError(f"end={end} must be after start={start} (modulation runs in epochs [start, end)), or None")
        self.alpha, self.ge, self.start, self.end = alpha, ge, start, end
        self.name = "ogm-ge" if ge else "ogm"
        self.coeffs: list[tuple[float, float]] = []

    def setup(self, trainer: Any) -> None:
        if len(trainer.model.modalities) != 2:
            raise ValueError("OGM is defined for two modalities")
        if trainer.model.fusion == "lstm" and not trainer.model.multihead:
            raise ValueError("OGM with LSTM fusion needs the unimodal heads (multihead=True)")
        self.coeffs = []

    def _active(self, epoch: int) -> bool:
        return epoch >= self.start and (self.end is None or epoch < self.end)

    @torch.no_grad()
    def before_step(self, trainer: Any, out: Any, batch: Any) -> None:
        if not self._active(trainer.epoch):
            return
        model = trainer.model
        contrib = model.fusion_contributions(out.embeddings)
        a, b = model.modalities
        logits = contrib if contrib is not None else {m: out.logits[m] for m in (a, b)}
        s = {m: true_target_score(logits[m], batch.y, model.kind, batch.present[m]) for m in (a, b)}
        if min(s.values()) <= 0:
            return
        k = ogm_coefficients(s[a], s[b], self.alpha)
        self.coeffs.append(k)
        for m, km in zip((a, b), k):
            for prm in model.encoders[m].parameters():
                if prm.grad is None:
                    continue
                g = prm.grad
                noise = torch.randn_like(g) * g.std() if self.ge and g.numel() > 1 else None
                g.mul_(km)
                if noise is not None:
                    g.add_(noise)

    def on_epoch_end(self, trainer: Any, epoch: int, logs: dict[str, float]) -> dict[str, Any]:
        if not self.coeffs:
            return {}
        ka = sum(c[0] for c in self.coeffs) / len(self.coeffs)
        kb = sum(c[1] for c in self.coeffs) / len(self.coeffs)
        a, b = trainer.model.modalities
        self.coeffs = []
        return {f"ogm/k:{a}": ka, f"ogm/k:{b}": kb}
