"""mmrepro.data: real multimodal stand-ins for the papers' datasets, verified downloads and missingness.

``load_dataset(name, seed=0, **options)`` returns a :class:`MultimodalDataset`
(see :mod:`mmrepro.data.base`). Raw files live under :func:`data_root`
(``$MMREPRO_DATA``); preprocessing caches under :func:`cache_root`
(``$MMREPRO_CACHE``).
"""
from .av_digits import load_av_digits
from .base import MultimodalDataset, Task
from .mfeat import load_mfeat
from .missingness import drop_modality, mar, mcar, mnar, mnar_flip
from .mvd import MVDBatch, MVDSplit, increase_alpha, increase_gamma, modify_gamma
from .pbc import load_pbc
from .registry import LOADERS, load_dataset
from .sources import fsdd_recordings, mfeat_files
from .storage import DataError, cache_root, data_root
from .synthetic import load_synthetic_bimodal
from .titanic import load_titanic
from .weather import load_nyc_weather

__all__ = [
    "MultimodalDataset", "Task", "load_dataset", "LOADERS",
    "load_av_digits", "load_mfeat", "load_pbc", "load_nyc_weather", "load_titanic", "load_synthetic_bimodal",
    "mcar", "mar", "mnar", "mnar_flip", "drop_modality",
    "MVDSplit", "MVDBatch", "increase_gamma", "increase_alpha", "modify_gamma",
    "data_root", "cache_root", "DataError", "fsdd_recordings", "mfeat_files",
]
