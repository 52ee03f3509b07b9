"""Seeded stratified splits (hold-out or K-fold) and train-fitted standardisation for the tabular loaders."""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

FRACTIONS = (0.7, 0.15, 0.15)
VAL_FRACTION = 0.125  # of a fold's training part: 10 % of all rows with 5 folds (the paper's 80-10-10)


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


def kfold_split(strata: Tensor | None, seed: int, fold: int, n_folds: int = 5,
                val_fraction: float = VAL_FRACTION, n: int | None = None) -> dict[str, Tensor]:
    """Fold ``fold`` of a K-fold partition drawn once by ``seed``: ``test`` is that fold, ``val`` a
    ``val_fraction`` of the other folds (stratified, drawn with ``seed`` and ``fold``), ``train`` the rest.

    The partition depends on ``seed`` only, so folds ``0..n_folds-1`` of one seed are disjoint and cover
    every row. ``strata`` (N,) stratifies both the folds and the validation part (scikit-learn's
    ``StratifiedKFold`` and ``train_test_split``); ``strata=None`` with ``n`` rows gives plain ``KFold``.
    """
    from sklearn.model_selection import KFold, StratifiedKFold, train_test_split

    if isinstance(n_folds, bool) or not isinstance(n_folds, int) or n_folds < 2:
        raise ValueError(f"n_folds must be an int >= 2, got {n_folds!r}")
    if isinstance(fold, bool) or not isinstance(fold, int) or not 0 <= fold < n_folds:
        raise ValueError(f"fold must be an int in [0, {n_folds - 1}], got {fold!r}")
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    if strata is None:
        if n is None:
            raise ValueError("kfold_split needs strata or the number of rows n")
        labels = None
        parts = KFold(n_folds, shuffle=True, random_state=seed).split(np.zeros(n))
    else:
        labels = strata.cpu().numpy()
        parts = StratifiedKFold(n_folds, shuffle=True, random_state=seed).split(np.zeros(len(labels)), labels)
    rest, test = list(parts)[fold]
    train, val = train_test_split(rest, test_size=val_fraction, random_state=seed * n_folds + fold,
                                  stratify=None if labels is None else labels[rest])
    return {k: torch.sort(torch.as_tensor(v, dtype=torch.int64)).values
            for k, v in (("train", train), ("val", val), ("test", test))}


def standardize(x: Tensor, train: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(x - mean) / std with NaN-aware statistics over the ``train`` rows (std 0 -> 1); returns (z, mean, std)."""
    ref = x[train]
    mean = ref.nanmean(0)
    std = (ref - mean).square().nanmean(0).sqrt()
    std = torch.where(torch.isfinite(std) & (std > 0), std, torch.ones_like(std))
    mean = torch.nan_to_num(mean)
    return (x - mean) / std, mean, std
