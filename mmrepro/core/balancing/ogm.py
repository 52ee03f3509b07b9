"""OGM and OGM-GE: on-the-fly gradient modulation with generalisation enhancement (Peng et al. 2022)."""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from mmrepro.common.checks import check_int, check_number
from mmrepro.core.balancing.base import BalancingMethod
from mmrepro.core.models.fusion import leading, probabilities


def ogm_coefficients(s_a: float | Tensor, s_b: float | Tensor, alpha: float | Tensor
                     ) -> tuple[float, float] | tuple[Tensor, Tensor]:
    """Modulation coefficients (k_A, k_B) from the modalities' scores s (Peng et al. 2022, eqs. 5-7):
    rho_A = s_A / s_B; the dominant modality (rho > 1) gets k = 1 - tanh(alpha * rho), the other 1.
    Numbers give numbers; tensors (one entry per run) give tensors."""
    scalar = not isinstance(s_a, Tensor)
    s_a, s_b, alpha = (torch.as_tensor(v, dtype=torch.float64) if scalar else v for v in (s_a, s_b, alpha))
    if bool((s_a <= 0).any() | (s_b <= 0).any()):
        raise ValueError(f"OGM scores must be positive, got {s_a.tolist()}, {s_b.tolist()}")
    rho_a, rho_b = s_a / s_b, s_b / s_a
    k_a = torch.where(rho_a > 1, 1 - torch.tanh(alpha * rho_a), 1.0)
    k_b = torch.where(rho_b > 1, 1 - torch.tanh(alpha * rho_b), 1.0)
    return (float(k_a), float(k_b)) if scalar else (k_a, k_b)


def true_target_score(logits: Tensor, y: Tensor, kind: str, mask: Tensor) -> Tensor:
    """s = sum over rows of the predicted probability of the true target (OGM eq. 5); for binary and
    multilabel heads, p if y = 1 else 1 - p, summed over labels; unknown targets are skipped.
    Leading axes (runs) are kept: logits (..., N, C) -> (...)."""
    p = probabilities(logits, kind)
    if kind == "multiclass":
        ok = mask & (y >= 0)
        pt = p.gather(-1, y.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        return torch.where(ok, pt, 0.0).sum(dim=-1)
    if kind in ("binary", "multilabel"):
        ok = ~torch.isnan(y) & (mask.unsqueeze(-1) if kind == "multilabel" else mask)
        pt = torch.where(ok, torch.where(y > 0.5, p, 1 - p), 0.0)
        return pt.sum(dim=(-2, -1)) if kind == "multilabel" else pt.sum(dim=-1)
    raise ValueError(f"OGM is defined for classification tasks, not {kind!r}")


class OGM(BalancingMethod):
    """Scale each encoder's gradients by k from :func:`ogm_coefficients` on every batch of the
    modulation epochs [``start``, ``end``). Scores come from each modality's share of the fusion
    logits (``MultimodalNet.fusion_contributions``; for LSTM fusion, which has no such split, from
    the unimodal heads: our extension). ``ge=True`` (OGM-GE) adds N(0, std(g)^2) noise to every
    modulated gradient, std taken from the unscaled gradient. Following the paper, every encoder
    parameter is modulated (the first public code touched only 4-D convolution weights), and, unlike
    that code, checkpoints are selected on validation, never test, data (by :func:`~mmrepro.core.trainer.fit`).
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

    @classmethod
    @torch.no_grad()
    def before_step(cls, runs: list[OGM], trainer: Any, out: Any, batch: Any) -> None:
        """Every run's coefficients from its own batch, one pass for all runs (run axis first)."""
        model = trainer.model
        dev = batch.y.device
        active = torch.tensor([r._active(trainer.epoch) for r in runs], device=dev)
        if not bool(active.any()):
            return
        contrib = model.fusion_contributions(out.embeddings)
        a, b = model.modalities
        logits = contrib if contrib is not None else {m: out.logits[m] for m in (a, b)}
        s = {m: true_target_score(logits[m], batch.y, model.kind, batch.present[m]).double() for m in (a, b)}
        active &= (s[a] > 0) & (s[b] > 0)  # a lone run skips such a batch
        if not bool(active.any()):
            return
        alpha = torch.tensor([r.alpha for r in runs], dtype=torch.float64, device=dev)
        k = dict(zip((a, b), ogm_coefficients(s[a][active], s[b][active], alpha[active])))
        for i, run in enumerate(active.nonzero().flatten().tolist()):
            runs[run].coeffs.append((float(k[a][i]), float(k[b][i])))
        for m in (a, b):
            km = torch.ones_like(alpha).masked_scatter(active, k[m])
            for prm in model.encoders[m].parameters():
                if prm.grad is None:
                    continue
                g = prm.grad
                noise = None
                if runs[0].ge and g[0].numel() > 1:  # N(0, std(g)^2), std of the unscaled gradient
                    noise = trainer.noise(g, active) * leading(g.flatten(1).std(dim=1), g)
                g.mul_(leading(km.to(g.dtype), g))
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
