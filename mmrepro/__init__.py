"""mmrepro: reproductions of MFH, MIND, MILES and MultiModN.

Top-level names are imported lazily, so that ``import mmrepro`` (and the
command line) stays fast and a chapter only pays for what it uses.
"""
from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("mmrepro")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

_EXPORTS: dict[str, str] = {
    # MFH theory (Lemma 1, Theorem 1)
    "lemma1_max": "mmrepro.mfh.theory",
    "theorem1_bound": "mmrepro.mfh.theory",
    # balancing (MILES Algorithm 1)
    "miles_decision": "mmrepro.balancing.miles",
    "MILES": "mmrepro.balancing.miles",
    # metrics
    "conditional_utilization": "mmrepro.metrics",
    "bootstrap_ci": "mmrepro.metrics",
    "score": "mmrepro.metrics",
    "d_util": "mmrepro.metrics",
    "delta_ab": "mmrepro.metrics",
    # MultiModN Appendix B
    "modularity_score": "mmrepro.multimodn.modularity",
    "MultiModN": "mmrepro.multimodn",
    "PFusion": "mmrepro.multimodn",
    # data
    "MultimodalDataset": "mmrepro.data",
    "load_dataset": "mmrepro.data",
    "Task": "mmrepro.data",
    "mcar": "mmrepro.data",
    "mar": "mmrepro.data",
    "mnar": "mmrepro.data",
    "mnar_flip": "mmrepro.data",
    # models, losses, training
    "MultimodalNet": "mmrepro.models",
    "ResNetEncoder": "mmrepro.models",
    "LSTMEncoder": "mmrepro.models",
    "MLPEncoder": "mmrepro.models",
    "count_parameters": "mmrepro.models",
    "fit": "mmrepro.trainer",
    "fit_many": "mmrepro.trainer",
    "evaluate": "mmrepro.trainer",
    "MIND": "mmrepro.losses",
    "TS": "mmrepro.losses",
    "MKE": "mmrepro.losses",
    "Supervised": "mmrepro.losses",
    "MSES": "mmrepro.balancing",
    "MSLR": "mmrepro.balancing",
    "OGM": "mmrepro.balancing",
    "GBlend": "mmrepro.balancing",
    # experiment runners (random search on validation, one test evaluation, repeated seeds)
    "random_search": "mmrepro.experiments",
    "search_then_repeat": "mmrepro.experiments",
    # notebook contract
    "start": "mmrepro.notebook",
    "resolve_device": "mmrepro.device",
    "seed_everything": "mmrepro.device",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mmrepro' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
