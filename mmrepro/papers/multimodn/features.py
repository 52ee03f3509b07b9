"""Feature pipeline shared by MultiModN and P-Fusion: per-modality standardisation.

Both models read the same standardised inputs (MultiModN paper Section 4.1 and Appendix B,
"architecture alignment"), so the comparison isolates the fusion.  Statistics come from the
training rows only (present rows, valid time steps, finite values); the reference code fits its
scaler on the full data before splitting, which leaks test statistics.
"""
from __future__ import annotations

from typing import Mapping

import torch
from torch import Tensor

__all__ = ["Standardizer"]


class Standardizer:
    """``(x - mean) / std`` per feature; NaN (absent) entries stay NaN for the models to mask."""

    def __init__(self) -> None:
        self.mean: dict[str, Tensor] = {}
        self.std: dict[str, Tensor] = {}

    def fit(self, x: Mapping[str, Tensor], present: Mapping[str, Tensor] | None = None,
            lengths: Mapping[str, Tensor] | None = None) -> "Standardizer":
        """Estimate mean and std of every feature over observed entries (std 0 -> 1)."""
        present = present or {}
        lengths = lengths or {}
        for m, v in x.items():
            if not torch.is_floating_point(v) or v.dim() not in (2, 3):
                raise ValueError(f"x[{m!r}] must be a float (N, F) or (N, T, F) tensor.")
            observed = ~torch.isnan(v)
            if m in present:
                observed &= present[m].view(-1, *([1] * (v.dim() - 1)))
            if v.dim() == 3 and m in lengths:
                steps = torch.arange(v.shape[1], device=v.device)
                observed &= (steps[None, :] < lengths[m][:, None])[..., None]
            flat_v = v.reshape(-1, v.shape[-1])
            flat_o = observed.reshape(-1, v.shape[-1])
            count = flat_o.sum(0)
            if bool((count == 0).any()):
                raise ValueError(f"modality {m!r} has features never observed in the fitting rows: "
                                 "cannot standardise them.")
            filled = torch.where(flat_o, flat_v, torch.zeros((), dtype=v.dtype, device=v.device))
            mean = filled.sum(0) / count
            var = (torch.where(flat_o, flat_v - mean, torch.zeros((), dtype=v.dtype, device=v.device)) ** 2
                   ).sum(0) / count
            std = var.sqrt()
            self.mean[m] = mean
            self.std[m] = torch.where(std > 0, std, torch.ones_like(std))
        return self

    def transform(self, x: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Standardise every fitted modality of ``x`` (others raise)."""
        missing = sorted(set(x) - set(self.mean))
        if missing:
            raise ValueError(f"Standardizer was not fitted on modalities {missing}; call fit first.")
        return {m: (v - self.mean[m].to(v)) / self.std[m].to(v) for m, v in x.items()}
