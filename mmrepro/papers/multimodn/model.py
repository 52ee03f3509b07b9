"""MultiModN: sequential modular multimodal multi-task network (MultiModN paper, Section 4, Fig. 1a).

A learned state ``s0`` is updated by one encoder per modality, ``s_i = e_i([x_i, s_{i-1}])``, and
every state is read by one decoder per task.  Time-series mode (paper Section 3, "Extension to time
series"): static modalities are encoded first, then for each time point ``t`` every sequence
modality encodes its features at ``t``; predictions exist after every step.

Missing data is skipped *per sample*: where a modality is absent (``present`` False) or beyond the
sample's sequence length, the encoder output is discarded for that row and its state is carried
over unchanged.  Absent rows are zero-filled before the encoder so NaN never reaches an output or a
gradient; a NaN or inf where the modality is marked present is an error, not a silent skip.  The
reference implementation skips an encoder for the whole batch when any row is NaN (batch size 1
gives per-sample skipping).

Loss (:func:`output_loss`): the mean over (state, decoder) pairs whose target is known and whose
state was actually produced for that sample: ``s0`` (the prior every sample has) and every updated
state.  Skipped steps add nothing, neither to the numerator nor to the denominator; the reference
divides by ``n_decoders * (n_encoders + 1)`` and counts skipped terms as zero, which shrinks the
loss of samples with missing modalities.  A carried-over state is a copy of an earlier state, so
counting it would also re-weight that state's prediction.  The mean is pooled over the batch: a
sample with more observed modalities (or visits) contributes more pairs.

State-change penalty (reference code, not in the paper): ``error_weight * loss +
state_change_weight * mean((s_t - s_{t-1})**2)``, the second mean over the state entries of every
step that updated a sample's state.  The reference weighs the error by ``err_penalty`` and the change
by ``0.01 * state_change_penalty`` (its Titanic pipelines: 0.7 and 0.01 x 0.3 = 0.003; MIMIC: 1 and
0), and averages the change over encoders with skipped ones counted as zero.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmrepro.core.models.stacked import chain_ops
from mmrepro.papers.multimodn.heads import (
    TaskSpec,
    as_task_specs,
    check_modalities,
    check_target,
    mlp,
    pair_losses,
    to_probability,
)
from mmrepro.papers.multimodn.inputs import check_inputs

__all__ = ["MultiModN", "MultiModNOutput", "output_loss", "state_change"]


@dataclass
class MultiModNOutput:
    """All intermediate states and predictions of one forward pass (K encoder steps).

    ``states`` (N, K+1, S) with ``s0`` first; ``logits[task]`` (N, K+1, n_outputs); ``updated``
    (N, K+1) bool, True where the step changed that sample's state (column 0, ``s0``, is True);
    ``step_modality`` names the encoder of each step (None for ``s0``); ``step_time`` (K+1,) is the
    time index of sequence steps and -1 for ``s0`` and static steps; ``n_times`` is T.
    """

    states: Tensor
    logits: dict[str, Tensor]
    updated: Tensor
    step_modality: list[str | None]
    step_time: Tensor
    n_times: int
    tasks: dict[str, TaskSpec]

    def final(self, task: str) -> Tensor:
        """Logits after the last step (N, n_outputs): skipped steps carry the state forward."""
        return self.logits[task][..., -1, :]

    def time_step_index(self) -> Tensor:
        """(T,) index of the last step at or before each time point (static steps precede t=0)."""
        t = torch.arange(self.n_times, device=self.step_time.device)
        before = self.step_time[None, :] <= t[:, None]
        return before.long().cumsum(1).argmax(1) if self.n_times else t

    def at_times(self, task: str) -> Tensor:
        """Logits at the end of every time point (N, T, n_outputs)."""
        return self.logits[task][..., self.time_step_index(), :]

    def probabilities(self, task: str) -> Tensor:
        """Predictions of every state in probability space (N, K+1, n_outputs)."""
        return to_probability(self.tasks[task], self.logits[task])


class MultiModN(nn.Module):
    """MultiModN with dense encoders/decoders (paper Section 4; Table 3 defaults for MIMIC).

    Args:
        modalities: ``{name: n_features}`` in the default encoding order.
        tasks: ``{name: Task | (kind, n_outputs) | kind}``; kinds binary, multiclass, multilabel,
            regression.
        sequence_modalities: names whose inputs are (N, T, F) time series (time-series mode).
        time_tasks: tasks with one target per time point (``y`` of shape (N, T)); the others are
            static and every state is trained to predict them.
        state_size, hidden, n_hidden, dropout: state width, hidden width, hidden layers of the
            encoders and decoders, dropout on the encoder input ``[x_i, s_{i-1}]``.
        error_weight, state_change_weight: weights of the prediction loss and of the state-change
            penalty in :meth:`loss` (module docstring; default: the loss alone).
    """

    def __init__(self, modalities: Mapping[str, int], tasks: Mapping[str, Any], *,
                 sequence_modalities: Iterable[str] = (), time_tasks: Iterable[str] = (),
                 state_size: int = 50, hidden: int = 32, n_hidden: int = 2, dropout: float = 0.2,
                 error_weight: float = 1.0, state_change_weight: float = 0.0):
        super().__init__()
        for name, w in (("error_weight", error_weight), ("state_change_weight", state_change_weight)):
            if isinstance(w, bool) or not isinstance(w, (int, float)) or not 0 <= w < float("inf"):
                raise ValueError(f"{name} must be a finite number >= 0, got {w!r}.")
        if error_weight == 0:
            raise ValueError("error_weight must be > 0: without it the model learns no task.")
        self.error_weight, self.state_change_weight = float(error_weight), float(state_change_weight)
        check_modalities(modalities)
        self.n_features = dict(modalities)
        self.tasks = as_task_specs(tasks)
        self.sequence_modalities = frozenset(sequence_modalities)
        self.time_tasks = frozenset(time_tasks)
        for name, group, known in (("sequence_modalities", self.sequence_modalities, self.n_features),
                                   ("time_tasks", self.time_tasks, self.tasks)):
            if not group <= set(known):
                raise ValueError(f"{name} {sorted(group - set(known))} are not among {sorted(known)}.")
        if self.time_tasks and not self.sequence_modalities:
            raise ValueError("time_tasks need at least one sequence modality (time-series mode).")
        self.state_size = state_size
        self.state0 = nn.Parameter(torch.randn(state_size))
        self.encoders = nn.ModuleDict({
            m: mlp(f + state_size, hidden, state_size, n_hidden=n_hidden, dropout=dropout, out_relu=True)
            for m, f in self.n_features.items()})
        self.decoders = nn.ModuleDict({
            t: mlp(state_size, hidden, spec.n_outputs, n_hidden=n_hidden) for t, spec in self.tasks.items()})

    @property
    def modalities(self) -> list[str]:
        return list(self.n_features)

    def resolve_order(self, order: Sequence[str] | None) -> list[str]:
        """Validate an encoding order: any subset of the modalities, each at most once."""
        if order is None:
            return self.modalities
        order = list(order)
        bad = [m for m in order if m not in self.n_features]
        if bad or len(set(order)) != len(order):
            raise ValueError(f"order {order} must list distinct modalities among {self.modalities}.")
        return order

    def forward(self, x: Mapping[str, Tensor], present: Mapping[str, Tensor] | None = None,
                lengths: Mapping[str, Tensor] | None = None,
                order: Sequence[str] | None = None) -> MultiModNOutput:
        """Encode the modalities of ``order`` (default: all) per sample, skipping absent ones.

        Static modalities of ``order`` come first, then, at every time point, its sequence
        modalities; ``order`` fixes the order within each group.  Time points after the last valid
        step of every sample in the batch are not run (they would leave every state unchanged);
        :meth:`MultiModNOutput.at_times` still covers all T.
        """
        order = self.resolve_order(order)
        n, n_times, masks, lens = self._inputs(x, present, lengths, order)
        rows = next(iter(masks.values())).shape  # (N,), or (runs, N) for stacked runs
        state = self.state0.unsqueeze(-2).expand(*rows, -1)
        # inputs and per-step masks for the whole batch at once; the loop below only encodes
        static = [m for m in order if m not in self.sequence_modalities]
        sequence = [m for m in order if m in self.sequence_modalities]
        ok, clean = {}, {}
        for m in static + sequence:
            inp = x[m].to(state.dtype)
            if m in self.sequence_modalities:  # (N, T): present and within the sample's length
                t = torch.arange(n_times, device=inp.device)
                valid = masks[m].unsqueeze(-1) & (t < lens[m].unsqueeze(-1))
            else:
                valid = masks[m]
            ok[m] = valid
            clean[m] = torch.where(valid[..., None], inp, torch.zeros((), dtype=inp.dtype, device=inp.device))
        # time points after every sample's last valid step would change no state: not run
        last = max((int(lens[m].masked_fill(~masks[m], 0).max()) for m in sequence), default=0) if n else 0
        plan = [(m, -1, clean[m], ok[m]) for m in static]
        plan += [(m, t, clean[m][..., t, :], ok[m][..., t]) for t in range(last) for m in sequence]
        layers = {m: self._encoder_ops(m) for m in dict.fromkeys(p[0] for p in plan)}
        states, updated = [state], [torch.ones(rows, dtype=torch.bool, device=state.device)]
        for m, _, inp, valid in plan:
            new = _run(layers[m], torch.cat([inp, state], dim=-1))
            state = torch.where(valid.unsqueeze(-1), new, state)
            states.append(state)
            updated.append(valid)
        step_modality: list[str | None] = [None] + [p[0] for p in plan]
        step_time = [-1] + [p[1] for p in plan]
        stacked = torch.stack(states, dim=-2)
        return MultiModNOutput(
            states=stacked, logits={t: d(stacked) for t, d in self.decoders.items()},
            updated=torch.stack(updated, dim=-1), step_modality=step_modality,
            step_time=torch.tensor(step_time, dtype=torch.int64, device=stacked.device),
            n_times=n_times, tasks=self.tasks)

    def _inputs(self, x: Mapping[str, Tensor], present: Mapping[str, Tensor] | None,
                lengths: Mapping[str, Tensor] | None, order: Sequence[str]
                ) -> tuple[int, int, dict[str, Tensor], dict[str, Tensor]]:
        return check_inputs(x, present, lengths, order, self.n_features, self.sequence_modalities)

    def _encoder_ops(self, m: str) -> list:
        """The encoder's ops as ``(function, *args)`` tuples: running them with :func:`_run` gives
        exactly ``encoder(h)`` (same ops and random draws) without the per-module call overhead,
        which dominates the many small sequential encoder steps."""
        return chain_ops(self.encoders[m], self.encoders[m], self.training, F.linear)

    def loss(self, x: Mapping[str, Tensor], present: Mapping[str, Tensor] | None,
             lengths: Mapping[str, Tensor] | None, y: Mapping[str, Tensor],
             order: Sequence[str] | None = None) -> Tensor:
        """Forward pass, :func:`output_loss` times ``error_weight``, plus the weighted
        :func:`state_change` penalty when ``state_change_weight`` > 0."""
        out = self(x, present, lengths, order)
        loss = self.error_weight * output_loss(out, y, self.time_tasks)
        if self.state_change_weight > 0:
            loss = loss + self.state_change_weight * state_change(out)
        return loss

    @torch.no_grad()
    def predict(self, x: Mapping[str, Tensor], present: Mapping[str, Tensor] | None = None,
                lengths: Mapping[str, Tensor] | None = None,
                order: Sequence[str] | None = None) -> dict[str, Tensor]:
        """Logits to evaluate: last state (N, n_outputs) for static tasks, the end of every time
        point (N, T, n_outputs) for ``time_tasks``.  Does not change train/eval mode."""
        out = self(x, present, lengths, order)
        return {t: out.at_times(t) if t in self.time_tasks else out.final(t) for t in self.tasks}


def encoder_states(model: MultiModN, x: Mapping[str, Tensor], present: Mapping[str, Tensor] | None = None,
                   order: Sequence[str] | None = None) -> Tensor:
    """The (N, K+1, S) states ``s_0, ..., s_K`` of MultiModN's forward pass over the modalities of ``order``
    (Section 4: a missing modality leaves its sample's state unchanged)."""
    return model(x, present, order=order).states


def output_loss(out: MultiModNOutput, y: Mapping[str, Tensor], time_tasks: Iterable[str] = ()) -> Tensor:
    """Mean loss over (state, decoder) pairs with a known target and a produced state.

    Static targets ``y[t]`` (N,) are predicted from every state; per-time targets (N, T) of
    ``time_tasks`` are predicted at time ``t`` by the states of time point ``t`` (``s0`` and static
    steps predict time 0).  See the module docstring for the difference with the reference.
    Stacked runs (targets and outputs with a leading run axis) get one mean per run.
    """
    time_tasks = frozenset(time_tasks)
    axis = out.updated.dim() - 2  # the rows axis: 0, or 1 behind a run axis
    n = out.updated.shape[axis]
    total = out.states.new_zeros(out.updated.shape[:axis])
    count = torch.zeros(out.updated.shape[:axis], dtype=torch.int64, device=out.states.device)
    for task, spec in out.tasks.items():
        if task not in y:
            raise ValueError(f"y lacks a target for task {task!r}; tasks: {sorted(out.tasks)}.")
        target = y[task].to(out.states.device)
        check_target(task, spec, target.flatten(0, axis), n * target.shape[:axis].numel(),
                     out.n_times if task in time_tasks else None)
        if task in time_tasks:
            target = target.index_select(axis + 1, out.step_time.clamp(min=0))
        else:
            target = target.unsqueeze(axis + 1).expand(*out.updated.shape, *target.shape[axis + 1:])
        loss, valid = pair_losses(spec, out.logits[task], target)
        keep = valid & out.updated
        total = total + (loss * keep).sum(dim=(-2, -1))
        count = count + keep.sum(dim=(-2, -1))
    return total / count.clamp(min=1)


def state_change(out: MultiModNOutput) -> Tensor:
    """Mean squared change of the state, ``mean((s_t - s_{t-1})**2)``, over the state entries of every
    step that updated a sample's state (0 when no step did): the reference code's state-change penalty.
    Stacked runs (a leading run axis) get one mean per run."""
    change = (out.states[..., 1:, :] - out.states[..., :-1, :]).pow(2).mean(-1)
    keep = out.updated[..., 1:]
    return (change * keep).sum(dim=(-2, -1)) / keep.sum(dim=(-2, -1)).clamp(min=1)


def _run(ops: list, h: Tensor) -> Tensor:
    for fn, *args in ops:
        h = fn(h, *args)
    return h
