"""mmrepro.core.data: real multimodal stand-ins for the papers' datasets, verified downloads and missingness.

``load_dataset(name, seed=0, **options)`` returns a :class:`MultimodalDataset`
(see :mod:`mmrepro.core.data.base`). Raw files live under :func:`data_root`
(``$MMREPRO_DATA``); preprocessing caches under :func:`cache_root`
(``$MMREPRO_CACHE``).
"""
from mmrepro.core.data.av_digits import load_av_digits
from mmrepro.core.data.base import MultimodalDataset, Task
from mmrepro.core.data.mfeat import load_mfeat
from mmrepro.core.data.missingness import drop_modality, mar, mcar, mnar, mnar_flip
from mmrepro.core.data.pbc import load_pbc
from mmrepro.core.data.registry import LOADERS, load_dataset
from mmrepro.core.data.sources import fsdd_recordings, mfeat_files
from mmrepro.core.data.storage import DataError, cache_root, data_root
from mmrepro.core.data.synthetic import load_synthetic_bimodal
from mmrepro.core.data.titanic import load_titanic
from mmrepro.core.data.weather import load_nyc_weather

__all__ = [
    "MultimodalDataset", "Task", "load_dataset", "LOADERS",
    "load_av_digits", "load_mfeat", "load_pbc", "load_nyc_weather", "load_titanic", "load_synthetic_bimodal",
    "mcar", "mar", "mnar", "mnar_flip", "drop_modality",
    "data_root", "cache_root", "DataError", "fsdd_recordings", "mfeat_files",
]
