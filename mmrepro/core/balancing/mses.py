"""MSES: modality-specific early stopping (Fujimori et al. 2019, as summarised in MILES Sec. II-C)."""
from __future__ import annotations

import math
from typing import Any

from mmrepro.common.checks import check_int, check_number
from mmrepro.core.balancing.base import BalancingMethod, check_method_metric, set_lr
from mmrepro.core.metrics import LOWER_IS_BETTER
from mmrepro.core.models.fusion import FUSION_HEAD


class MSES(BalancingMethod):
    """One global learning rate; each modality branch (encoder + unimodal head) is stopped (rate 0)
    once the validation ``metric`` of the head that predicts from that modality alone
    (:meth:`~mmrepro.core.models.MultimodalNet.unimodal_head`: its unimodal head, or its detached probe in a
    model trained on the fused loss only) has not improved for ``patience`` epochs; the fusion part
    is stopped the same way on the fusion head. Training ends when every part has stopped
    (:attr:`should_stop`). ``stopped`` maps each part to the epoch it stopped."""

    name = "mses"
    needs_val = True

    def __init__(self, patience: int = 5, metric: str = "accuracy", min_delta: float = 0.0) -> None:
        check_int("patience", patience, 1)
        check_number("min_delta", min_delta, 0)
        self.patience, self.metric, self.min_delta = patience, check_method_metric("MSES", metric), min_delta
        self.metrics = (metric,)
        self.sign = -1.0 if metric in LOWER_IS_BETTER else 1.0

    def setup(self, trainer: Any) -> None:
        model = trainer.model
        try:
            self.watch = {m: model.unimodal_head(m) for m in model.modalities}
        except ValueError as err:
            raise ValueError(f"MSES monitors each modality's own prediction: {err}") from None
        self.watch[FUSION_HEAD] = FUSION_HEAD
        self.parts = [*model.modalities, FUSION_HEAD]
        self.best = {p: -math.inf for p in self.parts}
        self.wait = {p: 0 for p in self.parts}
        self.stopped: dict[str, int] = {}
        self.should_stop = False

    def on_epoch_end(self, trainer: Any, epoch: int, logs: dict[str, float]) -> dict[str, Any]:
        for p in self.parts:
            if p in self.stopped:
                continue
            v = self.sign * logs[f"val/{self.watch[p]}/{self.metric}"]
            if math.isfinite(v) and v > self.best[p] + self.min_delta:
                self.best[p], self.wait[p] = v, 0
            else:
                self.wait[p] += 1
            if self.wait[p] >= self.patience:
                self.stopped[p] = epoch
                set_lr(trainer, p, 0.0)
        self.should_stop = len(self.stopped) == len(self.parts)
        return {f"mses/stopped:{p}": float(p in self.stopped) for p in self.parts}
