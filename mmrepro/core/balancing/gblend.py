"""G-Blend: gradient blending by overfitting-to-generalisation ratios (Wang, Tran & Feiszli 2020)."""
from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import Tensor

from mmrepro.common.checks import check_int, check_number
from mmrepro.core.balancing.base import BalancingMethod

EPS = 1e-12


def gblend_weights(train_start: Mapping[str, float], holdout_start: Mapping[str, float],
                   train_end: Mapping[str, float], holdout_end: Mapping[str, float]) -> dict[str, float]:
    """Blending weights w_k = (1/Z) dG_k / dO_k^2 (Wang et al. 2020, Sec. 3.3), per head k, from the
    losses at the start and end of a window: G = hold-out loss, O = G - training loss,
    dG = G_start - G_end (generalisation gained), dO = O_end - O_start (overfitting added).
    A head whose hold-out loss did not improve (dG <= 0) gets weight 0; the paper's derivation
    makes weights follow dG's sign and does not cover this case (reference implementations take
    |dG / dO^2| instead, and MultiBench's default uses the end values G, O rather than the changes,
    which is not the paper's formula). If no head gained, all weights are equal. Weights sum to 1.
    """
    heads = list(train_start)
    raw = {}
    for k in heads:
        d_g = holdout_start[k] - holdout_end[k]
        d_o = (holdout_end[k] - train_end[k]) - (holdout_start[k] - train_start[k])
        raw[k] = max(d_g, 0.0) / (d_o * d_o + EPS)
    z = sum(raw.values())
    if not z > 0:
        return {k: 1.0 / len(heads) for k in heads}
    return {k: v / z for k, v in raw.items()}


class GBlend(BalancingMethod):
    """Online G-Blend: the loss is sum_k w_k L_k over the fusion and unimodal heads; every ``window``
    epochs the weights are re-estimated with :func:`gblend_weights` from the mean training losses
    and the losses on a hold-out set of ``holdout`` x the training rows (removed from training).
    Weights start equal. Needs a multi-head model."""

    name = "gblend"

    def __init__(self, window: int = 5, holdout: float = 0.2) -> None:
        check_int("window", window, 1)
        check_number("holdout", holdout, 0, 1, low_open=True, high_open=True)
        self.window, self.holdout = window, holdout
        self.history: list[dict[str, float]] = []

    def setup(self, trainer: Any) -> None:
        if not trainer.model.multihead:
            raise ValueError("G-Blend weights one loss per head; build the model with multihead=True")
        self.heads = trainer.model.head_names
        self.weights = {h: 1.0 / len(self.heads) for h in self.heads}
        self.anchor: tuple[dict[str, float], dict[str, float]] | None = None
        self.anchor_epoch = 0
        self.history = []

    def split_train(self, train_idx: Tensor, generator: Any) -> tuple[Tensor, dict[str, Tensor]]:
        perm = train_idx[torch.randperm(len(train_idx), generator=generator)]
        n_hold = max(1, int(round(self.holdout * len(train_idx))))
        return perm[n_hold:].sort().values, {"holdout": perm[:n_hold].sort().values}

    def head_weights(self) -> dict[str, float]:
        return self.weights

    def on_epoch_end(self, trainer: Any, epoch: int, logs: dict[str, float]) -> dict[str, Any]:
        train = {h: logs[f"train/{h}/loss"] for h in self.heads}
        hold = {h: logs[f"holdout/{h}/loss"] for h in self.heads}
        if self.anchor is None:
            self.anchor, self.anchor_epoch = (train, hold), epoch
        elif epoch - self.anchor_epoch == self.window:
            self.weights = gblend_weights(self.anchor[0], self.anchor[1], train, hold)
            self.anchor, self.anchor_epoch = (train, hold), epoch
        self.history.append(dict(self.weights))
        return {f"gblend/w:{h}": w for h, w in self.weights.items()}
