"""The interface through which balancing methods act on :func:`mmrepro.core.trainer.fit`.

A method instance belongs to one run and sees that run's trainer state (``trainer.model``,
``trainer.optimizer``, ``trainer.base_lr``: parameter-group name -> initial learning rate) once
before training (:meth:`setup`, :meth:`split_train`), when an epoch's loss is built
(:meth:`head_weights`) and after every epoch's evaluation (:meth:`on_epoch_end`), where it takes
its decisions from the run's epoch log. The per-batch hook :meth:`before_step` acts on all runs
trained together (:func:`mmrepro.core.trainer.fit_many`; one run for :func:`~mmrepro.core.trainer.fit`) at once.
Parameter groups are named after the modalities (encoder + unimodal head) and ``"fusion"``.
"""
from __future__ import annotations

from typing import Any

from torch import Tensor

from mmrepro.core.metrics import LOWER_IS_BETTER, METRICS


class BalancingMethod:
    """No balancing (the "vanilla" training); subclasses override what they need."""

    name = "vanilla"
    #: metrics (by name) the method reads from the epoch logs, in addition to the trainer's own
    metrics: tuple[str, ...] = ()
    #: set to True by a method that decides training is over (MSES)
    should_stop = False
    #: True for a method that reads validation metrics (fit then requires ``val``)
    needs_val = False

    def setup(self, trainer: Any) -> None:
        """Called once after the optimiser is built."""

    def split_train(self, train_idx: Tensor, generator: Any) -> tuple[Tensor, dict[str, Tensor]]:
        """Optionally carve extra evaluation sets out of the training rows (G-Blend's hold-out)."""
        return train_idx, {}

    def head_weights(self) -> dict[str, float] | None:
        """Per-head loss weights (None: all 1)."""
        return None

    @classmethod
    def before_step(cls, runs: list[Any], trainer: Any, out: Any, batch: Any) -> None:
        """After ``loss.backward()``, before the optimiser step (gradient modulation), for every run
        at once: ``runs`` are the runs' method instances, ``trainer`` a :class:`mmrepro.core.trainer.StackedTrainer`
        (stacked model, epoch, per-run noise), ``out`` and ``batch`` carry the run axis first."""

    def on_epoch_end(self, trainer: Any, epoch: int, logs: dict[str, float]) -> dict[str, Any]:
        """After the epoch's evaluation; returns entries added to the epoch log."""
        return {}


def set_lr(trainer: Any, group: str, lr: float) -> None:
    """Set the learning rate of the named optimiser parameter group."""
    for g in trainer.optimizer.param_groups:
        if g["name"] == group:
            g["lr"] = lr
            return
    raise ValueError(f"no parameter group named {group!r}; groups: {[g['name'] for g in trainer.optimizer.param_groups]}")


def check_method_metric(method: str, metric: Any, higher_is_better: bool = False) -> str:
    """A balancing method's ``metric``, checked when the method is built rather than when training
    starts: a name of :data:`mmrepro.core.metrics.METRICS` or ``"loss"``; with ``higher_is_better`` (rules
    that divide by the metric or compare its ratios) neither ``"mse"`` nor ``"loss"``."""
    names = [m for m in (*METRICS, "loss") if not (higher_is_better and m in LOWER_IS_BETTER)]
    if metric not in (*METRICS, "loss"):
        raise ValueError(f"{method}: unknown metric {metric!r}; accepted: {', '.join(names)}")
    if metric not in names:
        raise ValueError(f"{method} needs a higher-is-better metric (its rule divides by it), got {metric!r}; "
                         f"accepted: {', '.join(names)}")
    return metric
