"""MILES, the Modality-Informed Learning ratE Scheduler (MILES Algorithm 1, eqs. 4-5)."""
from __future__ import annotations

import itertools
import math
from typing import Any, Mapping

from mmrepro.core.balancing.base import BalancingMethod, check_method_metric, set_lr
from mmrepro.core.metrics import conditional_utilization
from mmrepro.core.models.fusion import FUSION_HEAD


def miles_decision(u_a: float, u_b: float, tau: float, mu: float,
                   previous: tuple[float, float] = (1.0, 1.0)) -> tuple[float, float]:
    """Learning-rate multipliers (m_A, m_B) for the next epoch, branch by branch as Algorithm 1.

    Lines 8-10: delta = |u_A - u_B| <= tau, or u_A < 0 and u_B < 0 -> both back to the global rate (1, 1).
    Lines 12-13: u_A > 0 and u_B < 0 -> A's rate becomes mu x global.
    Lines 14-15: u_A < 0 and u_B > 0 -> B's rate becomes mu x global.
    Lines 17-20 (all other cases, e.g. both positive or one exactly 0): u_A < u_B -> B slowed, else A slowed.

    Algorithm 1 assigns only the slowed modality's rate in lines 12-20, so the other keeps its
    ``previous`` multiplier (1 unless the dominant modality flipped without a balanced epoch between).
    """
    for name, v in (("u_a", u_a), ("u_b", u_b), ("tau", tau), ("mu", mu)):
        if not math.isfinite(v):
            raise ValueError(f"{name} must be a finite number, got {v!r}")
    if not 0 <= tau <= 1:
        raise ValueError(f"tau={tau} is out of range: MILES' tolerated utilisation gap tau lies in [0, 1]")
    if not 0 < mu <= 1:
        raise ValueError(f"mu must lie in (0, 1] (a reduction factor), got {mu}")
    prev_a, prev_b = previous
    delta = abs(u_a - u_b)
    if delta <= tau or (u_a < 0 and u_b < 0):
        return 1.0, 1.0
    if u_a > 0 and u_b < 0:
        return mu, prev_b
    if u_a < 0 and u_b > 0:
        return prev_a, mu
    if u_a < u_b:
        return prev_a, mu
    return mu, prev_b


def miles_decision_pairwise(m_fusion: float, m_uni: Mapping[str, float], tau: float, mu: float) -> dict[str, float]:
    """EXTENSION beyond the paper (its Sec. VII sketch) for more than two modalities.

    For every pair (i, j) the bimodal rule is applied with u_i = (M_F - M_j) / M_F and
    u_j = (M_F - M_i) / M_F (eq. 4 with the fusion head and the two unimodal heads); a modality's
    multiplier is mu when any pair slows it, else 1. With two modalities this is Algorithm 1 from
    global rates.
    """
    if m_fusion == 0:
        raise ValueError("u is undefined when the fusion metric is 0")
    mult = {m: 1.0 for m in m_uni}
    for i, j in itertools.combinations(list(m_uni), 2):
        u_i = (m_fusion - m_uni[j]) / m_fusion
        u_j = (m_fusion - m_uni[i]) / m_fusion
        a, b = miles_decision(u_i, u_j, tau, mu)
        mult[i], mult[j] = min(mult[i], a), min(mult[j], b)
    return mult


class MILES(BalancingMethod):
    """MILES scheduler (Algorithm 1): after each epoch, u_A and u_B (eq. 4) from ``metric`` on the
    ``split`` of the fusion and unimodal heads ("val": the validation set after the epoch; "train":
    the epoch's own training passes, as MILES Table VI); the dominant encoder's group gets
    mu x its initial (global) rate for the next epoch; the fusion group's rate never changes.
    Every decision is recorded in :attr:`decisions` (epoch, ``u:{m}``, delta, ``mult:{m}``, slowed). Needs a multi-head model. With more than two
    modalities the labelled pairwise extension :func:`miles_decision_pairwise` is used.

    An undefined u (metric NaN, e.g. AUROC on a one-class split, or a fusion metric of 0) is
    recorded and treated like lines 8-10 (no action: global rates).
    """

    name = "miles"

    def __init__(self, tau: float = 0.2, mu: float = 0.5, metric: str = "accuracy", split: str = "val") -> None:
        if split not in ("val", "train"):
            raise ValueError(f"split must be 'val' or 'train', got {split!r}")
        check_method_metric("MILES", metric, higher_is_better=True)  # eq. 4 divides by it
        miles_decision(0.0, 0.0, tau, mu)  # validates tau and mu
        self.tau, self.mu, self.metric, self.split = tau, mu, metric, split
        self.needs_val = split == "val"
        self.metrics = (metric,)
        self.decisions: list[dict[str, Any]] = []

    def setup(self, trainer: Any) -> None:
        self.modalities = list(trainer.model.modalities)
        if not trainer.model.multihead or len(self.modalities) < 2:
            raise ValueError("MILES needs a multi-head model (multihead=True) with at least two modalities")
        self.mult = {m: 1.0 for m in self.modalities}
        self.decisions = []

    def on_epoch_end(self, trainer: Any, epoch: int, logs: dict[str, float]) -> dict[str, Any]:
        key = lambda h: f"{self.split}/{h}/{self.metric}"  # noqa: E731
        m_f = logs[key(FUSION_HEAD)]
        m_uni = {m: logs[key(m)] for m in self.modalities}
        record: dict[str, Any] = {"epoch": epoch}
        if not all(math.isfinite(v) for v in (m_f, *m_uni.values())) or m_f == 0:
            mult = {m: 1.0 for m in self.modalities}
            record["note"] = "undefined u: no action"
        elif len(self.modalities) == 2:
            a, b = self.modalities
            u_a, u_b = conditional_utilization(m_f, m_uni[a], m_uni[b])
            ma, mb = miles_decision(u_a, u_b, self.tau, self.mu, (self.mult[a], self.mult[b]))
            mult = {a: ma, b: mb}
            record.update({f"u:{a}": u_a, f"u:{b}": u_b, "delta": abs(u_a - u_b)})
        else:
            mult = miles_decision_pairwise(m_f, m_uni, self.tau, self.mu)
            record["note"] = "pairwise extension"
        for m, k in mult.items():
            set_lr(trainer, m, trainer.base_lr[m] * k)
        self.mult = mult
        record["slowed"] = ",".join(m for m in self.modalities if mult[m] < 1) or "none"
        record.update({f"mult:{m}": k for m, k in mult.items()})
        self.decisions.append(record)
        return {f"miles/{k}": v for k, v in record.items() if k != "epoch"}


def reference_miles_rates(val: dict, base_lr: dict, previous: dict, tau: float, mu: float) -> dict:
    """The learning rate of every parameter group after :class:`MILES` has seen one epoch's
    validation accuracies ``val`` (keys "fusion" and the modalities); ``base_lr`` holds each group's global
    rate and ``previous`` the modalities' multipliers during that epoch."""
    from types import SimpleNamespace

    import torch

    groups = [{"params": [torch.zeros(1, requires_grad=True)], "lr": lr, "name": g} for g, lr in base_lr.items()]
    trainer = SimpleNamespace(model=SimpleNamespace(modalities=list(previous), multihead=True),
                              optimizer=torch.optim.SGD(groups), base_lr=dict(base_lr))
    miles = MILES(tau=tau, mu=mu)
    miles.setup(trainer)
    miles.mult = dict(previous)
    miles.on_epoch_end(trainer, 0, {f"val/{head}/accuracy": v for head, v in val.items()})
    return {g["name"]: g["lr"] for g in trainer.optimizer.param_groups}
