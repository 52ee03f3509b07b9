"""mmrepro: reproductions of MFH, MIND, MILES and MultiModN.

The package has five layers, each importing only from itself and the layers before it:
``common`` (argument checks, files, device, style) < ``core`` (the science two or more papers share:
data, models, losses, balancing baselines, trainer, metrics, statistics) < ``runs`` (search, repeats,
executors, run cache, cost) < ``papers`` (one folder per paper, none importing another) < ``publish``
(notebook contract, claims, scorecard, book, classroom, command line).

Top-level names are imported lazily, so that ``import mmrepro`` (and the
command line) stays fast and a chapter only pays for what it uses.
"""
from __future__ import annotations

import importlib

from mmrepro.common.version import __version__

_EXPORTS: dict[str, str] = {
    # MFH theory (Lemma 1, Theorem 1)
    "lemma1_max": "mmrepro.papers.mfh.theory",
    "theorem1_bound": "mmrepro.papers.mfh.theory",
    # balancing (MILES Algorithm 1)
    "miles_decision": "mmrepro.papers.miles.scheduler",
    "MILES": "mmrepro.papers.miles.scheduler",
    # metrics
    "conditional_utilization": "mmrepro.core.metrics",
    "bootstrap_ci": "mmrepro.core.metrics",
    "score": "mmrepro.core.metrics",
    "d_util": "mmrepro.core.metrics",
    "delta_ab": "mmrepro.core.metrics",
    # MultiModN Appendix B
    "modularity_score": "mmrepro.papers.multimodn.modularity",
    "MultiModN": "mmrepro.papers.multimodn",
    "PFusion": "mmrepro.papers.multimodn",
    # data
    "MultimodalDataset": "mmrepro.core.data",
    "load_dataset": "mmrepro.core.data",
    "Task": "mmrepro.core.data",
    "mcar": "mmrepro.core.data",
    "mar": "mmrepro.core.data",
    "mnar": "mmrepro.core.data",
    "mnar_flip": "mmrepro.core.data",
    # models, losses, training
    "MultimodalNet": "mmrepro.core.models",
    "ResNetEncoder": "mmrepro.core.models",
    "LSTMEncoder": "mmrepro.core.models",
    "MLPEncoder": "mmrepro.core.models",
    "count_parameters": "mmrepro.core.models",
    "fit": "mmrepro.core.trainer",
    "fit_many": "mmrepro.core.trainer",
    "evaluate": "mmrepro.core.trainer",
    "MIND": "mmrepro.papers.mind.objectives",
    "TS": "mmrepro.papers.mind.objectives",
    "MKE": "mmrepro.papers.mind.objectives",
    "Supervised": "mmrepro.core.losses",
    "MSES": "mmrepro.core.balancing",
    "MSLR": "mmrepro.core.balancing",
    "OGM": "mmrepro.core.balancing",
    "GBlend": "mmrepro.core.balancing",
    # experiment runners (random search on validation, one test evaluation, repeated seeds)
    "random_search": "mmrepro.runs.search",
    "search_then_repeat": "mmrepro.runs.repeat",
    # notebook contract
    "start": "mmrepro.publish.notebook",
    "resolve_device": "mmrepro.common.device",
    "seed_everything": "mmrepro.common.device",
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
