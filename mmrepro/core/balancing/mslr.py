"""MSLR: modality-specific learning rates (Yao & Mihalcea 2022): keep (K), smooth (S), dynamic (D)."""
from __future__ import annotations

import math
from typing import Any, Mapping

from mmrepro.common.checks import check_int
from mmrepro.core.balancing.base import BalancingMethod, check_method_metric, set_lr


class MSLR(BalancingMethod):
    """Per-modality learning rates for the modality branches; the fusion part keeps the global rate.

    * ``strategy="keep"`` (MSLR-K): each branch trains at ``lrs[m]``, e.g. the best unimodal rate.
    * ``"smooth"`` (MSLR-S): rates pulled towards their mean, lr_m = (1 - lam) lrs[m] + lam mean(lrs)
      (``lam`` = ``smooth``; MILES only says "closer to the average", the form is our choice).
    * ``"dynamic"`` (MSLR-D): start from ``lrs`` and every ``interval`` epochs multiply lr_m by
      val_m / mean(val_m over the last ``interval`` epochs), val_m the validation ``metric`` of the
      head predicting from modality m alone (its unimodal head, or its detached probe in a model
      trained on the fused loss only) (the rule of the public reimplementation noted in the shared
      reference notes).
    """

    name = "mslr"

    def __init__(self, lrs: Mapping[str, float], strategy: str = "keep", smooth: float = 0.5,
                 interval: int = 5, metric: str = "accuracy") -> None:
        if strategy not in ("keep", "smooth", "dynamic"):
            raise ValueError(f"strategy must be 'keep', 'smooth' or 'dynamic', got {strategy!r}")
        if any(not (v > 0 and math.isfinite(v)) for v in lrs.values()):
            raise ValueError(f"learning rates must be positive, got {dict(lrs)}")
        if not 0 <= smooth <= 1:
            raise ValueError(f"smooth must be in [0, 1], got {smooth}")
        if not lrs:
            raise ValueError("lrs must give one learning rate per modality, e.g. {'image': 1e-3, 'audio': 3e-4}")
        check_int("interval", interval, 1)
        if strategy == "dynamic":
            check_method_metric("MSLR-D", metric, higher_is_better=True)  # rates scale by the metric's ratio
        self.strategy, self.smooth, self.interval, self.metric = strategy, smooth, interval, metric
        self.needs_val = strategy == "dynamic"
        mean = sum(lrs.values()) / len(lrs)
        self.initial = {m: (1 - smooth) * v + smooth * mean if strategy == "smooth" else v for m, v in lrs.items()}
        self.lrs = dict(self.initial)
        self.metrics = (metric,) if strategy == "dynamic" else ()
        self.history: dict[str, list[float]] = {}
        self.name = f"mslr-{strategy[0]}"

    def setup(self, trainer: Any) -> None:
        missing = set(trainer.model.modalities) ^ set(self.lrs)
        if missing:
            raise ValueError(f"lrs must give a rate for exactly the modalities {trainer.model.modalities}")
        self.lrs = dict(self.initial)
        self.history = {m: [] for m in self.lrs}
        if self.strategy == "dynamic":
            try:
                self.watch = {m: trainer.model.unimodal_head(m) for m in self.lrs}
            except ValueError as err:
                raise ValueError(f"MSLR-D scales rates by each modality's own validation score: {err}") from None
        for m, lr in self.lrs.items():
            set_lr(trainer, m, lr)

    def on_epoch_end(self, trainer: Any, epoch: int, logs: dict[str, float]) -> dict[str, Any]:
        if self.strategy != "dynamic":
            return {}
        for m in self.lrs:
            self.history[m].append(logs[f"val/{self.watch[m]}/{self.metric}"])
        if (epoch + 1) % self.interval == 0:
            for m, hist in self.history.items():
                recent = hist[-self.interval:]
                avg = sum(recent) / len(recent)
                if math.isfinite(avg) and avg > 0 and math.isfinite(recent[-1]):
                    self.lrs[m] *= recent[-1] / avg
                    set_lr(trainer, m, self.lrs[m])
        return {}
