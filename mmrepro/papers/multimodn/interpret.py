"""Inherent interpretability of MultiModN (paper Section 6.3, Figure 4, Appendix E.2).

* Importance score (IMC, global): deploy each encoder alone on ``s0`` and subtract the prior
  prediction, ``p(d(e_m(x_m, s0))) - p(d(s0))``, per sample; average over a test set for Figure 4.
* Cumulative probability (CP, local): the prediction of every state along the encoding sequence,
  starting from the prior ``s0``.

Predictions are in probability space (sigmoid / softmax) and raw for regression.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Mapping, Sequence

import torch
from torch import Tensor

from mmrepro.papers.multimodn.model import MultiModN

__all__ = ["importance_scores", "cumulative_probabilities", "CumulativeTrajectory"]


@dataclass
class CumulativeTrajectory:
    """``probabilities[task]`` (N, K+1, n_outputs) along the steps named by ``step_labels``
    (``"prior"``, then the modality, with ``@t`` for time-series steps); ``updated`` (N, K+1)."""

    probabilities: dict[str, Tensor]
    step_labels: list[str]
    updated: Tensor


@contextmanager
def _eval_mode(model: MultiModN) -> Iterator[None]:
    """Evaluation mode and no gradients inside the block; the previous mode is restored."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def _check_model(model: object) -> None:
    if not isinstance(model, MultiModN):
        raise ValueError(f"needs a MultiModN (P-Fusion cannot be decomposed by modality), "
                         f"got {type(model).__name__}.")


def importance_scores(model: MultiModN, x: Mapping[str, Tensor],
                      present: Mapping[str, Tensor] | None = None,
                      lengths: Mapping[str, Tensor] | None = None,
                      modalities: Sequence[str] | None = None) -> dict[str, Tensor]:
    """``{task: (N, n_modalities, n_outputs)}`` importance of each modality alone, per sample.

    Entry ``[:, j]`` is the prediction after encoding only ``modalities[j]`` (all its time steps
    for a sequence modality; for time tasks, the last time point) minus the prediction of ``s0``.
    Samples where the modality never updated the state (absent) get NaN, so ``nanmean`` over
    samples gives the test-set importance of Figure 4.  Runs in eval mode without gradients.
    """
    _check_model(model)
    modalities = model.resolve_order(modalities)
    with _eval_mode(model):
        prior = model(x, present, lengths, order=[])
        scores: dict[str, list[Tensor]] = {t: [] for t in model.tasks}
        for m in modalities:
            out = model(x, present, lengths, order=[m])
            seen = out.updated[:, 1:].any(1)
            for t in model.tasks:
                p = out.probabilities(t)[:, -1] - prior.probabilities(t)[:, -1]
                scores[t].append(torch.where(seen[:, None], p, torch.full_like(p, float("nan"))))
    return {t: torch.stack(v, dim=1) for t, v in scores.items()}


def cumulative_probabilities(model: MultiModN, x: Mapping[str, Tensor],
                             present: Mapping[str, Tensor] | None = None,
                             lengths: Mapping[str, Tensor] | None = None,
                             order: Sequence[str] | None = None) -> CumulativeTrajectory:
    """Prediction of every state from the prior through each encoder of ``order`` (Figure 4 CP).

    A skipped step repeats the previous probability (the state is carried over); ``updated``
    tells which steps really encoded something.  Runs in eval mode without gradients.
    """
    _check_model(model)
    with _eval_mode(model):
        out = model(x, present, lengths, order=order)
    labels = ["prior"] + [m if t < 0 else f"{m}@{t}"
                          for m, t in zip(out.step_modality[1:], out.step_time[1:].tolist())]
    return CumulativeTrajectory({t: out.probabilities(t) for t in model.tasks}, labels, out.updated)
