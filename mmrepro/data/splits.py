"""Seeded stratified splits and train-fitted standardisation for the tabular loaders."""
from __future__ import annotations

import torch
from torch import Tensor

FRACTIONS = (0.7, 0.15, 0.15)


def stratified_split(strata: Tensor, seed: int, fractions: tuple[float, float, float] = FRACTIONS) -> dict[str, Tensor]:
    """Disjoint ``train``/``val``/``test`` index tensors covering all rows, stratified by ``strata``.

    Within each stratum the rows are shuffled with ``seed`` and cut at the
    cumulative ``fractions`` (rounded), so class balance is kept in every split.
    """
    if len(fractions) != 3 or abs(sum(fractions) - 1) > 1e-9 or min(fractions) < 0:
        raise ValueError(f"fractions must be three non-negative numbers summing to 1, got {fractions}")
    gen = torch.Generator().manual_seed(seed)
    parts: dict[str, list[Tensor]] = {"train": [], "val": [], "test": []}
    for v in torch.unique(strata):
        rows = (strata == v).nonzero().flatten()
        rows = rows[torch.randperm(len(rows), generator=gen)]
        a = round(len(rows) * fractions[0])
        b = round(len(rows) * (fractions[0] + fractions[1]))
        for name, part in zip(parts, (rows[:a], rows[a:b], rows[b:])):
            parts[name].append(part)
    return {k: torch.sort(torch.cat(v)).values for k, v in parts.items()}


def standardize(x: Tensor, train: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(x - mean) / std with NaN-aware statistics over the ``train`` rows (std 0 -> 1); returns (z, mean, std)."""
    ref = x[train]
    mean = ref.nanmean(0)
    std = (ref - mean).square().nanmean(0).sqrt()
    std = torch.where(torch.isfinite(std) & (std > 0), std, torch.ones_like(std))
    mean = torch.nan_to_num(mean)
    return (x - mean) / std, mean, std
