"""``load_dataset(name, seed=0, **options)``: one entry point for every loader."""
from __future__ import annotations

import inspect
from typing import Any, Callable

from mmrepro.core.data.av_digits import load_av_digits
from mmrepro.core.data.base import MultimodalDataset
from mmrepro.core.data.mfeat import load_mfeat
from mmrepro.core.data.pbc import load_pbc
from mmrepro.core.data.synthetic import load_synthetic_bimodal
from mmrepro.core.data.titanic import load_titanic
from mmrepro.core.data.weather import load_nyc_weather

LOADERS: dict[str, Callable[..., MultimodalDataset]] = {
    "av_digits": load_av_digits,
    "mfeat": load_mfeat,
    "pbc": load_pbc,
    "nyc_weather": load_nyc_weather,
    "titanic": load_titanic,
    "synthetic_bimodal": load_synthetic_bimodal,
}


def load_dataset(name: str, seed: int = 0, **options: Any) -> MultimodalDataset:
    """Load dataset ``name`` with a seed (splits, pairing, noise) and loader-specific options.

    Unknown names or options raise ValueError listing the valid choices.
    """
    if name not in LOADERS:
        raise ValueError(f"unknown dataset {name!r}; valid: {sorted(LOADERS)}")
    loader = LOADERS[name]
    valid = [p for p in inspect.signature(loader).parameters if p != "seed"]
    bad = sorted(set(options) - set(valid))
    if bad:
        raise ValueError(f"unknown option(s) {bad} for dataset {name!r}; valid options: {valid}")
    return loader(seed=seed, **options)
