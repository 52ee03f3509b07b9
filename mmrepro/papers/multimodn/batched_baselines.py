"""The chapter's baselines stacked over runs: K P-Fusion models (MultiModN paper Section 4.1, Figure 1b) or K
E.4 transformers (Appendix E.4) of one architecture trained as one model by
:func:`mmrepro.papers.multimodn.batched.fit_many_multimodn`.

The parameters of the K runs are stacked on a leading axis under the per-run module's own names (so run
k's state dict is ``{name: tensor[k]}``); inputs, masks and outputs carry the run axis first, and every run
sees its own rows. The computation is the per-run model's own, applied to all runs at once: P-Fusion's
Linear / ReLU / Dropout chains as batched matrix products (:class:`~mmrepro.core.models.stacked.StackedSequential`),
the transformer through :func:`~mmrepro.papers.multimodn.transformer.transformer_body` on the stacked
parameters. Dropout masks come from each run's own stream inside
:meth:`~mmrepro.core.models.stacked.RunStreams.dropout` (tests/test_multimodn_batched.py checks both against
one-at-a-time training).
"""
from __future__ import annotations

import copy
from typing import Mapping, Sequence

import torch
from torch import Tensor, nn

from mmrepro.core.models.stacked import Stacked, StackedLinear, StackedSequential
from mmrepro.papers.multimodn.heads import check_target, pair_losses
from mmrepro.papers.multimodn.inputs import check_inputs
from mmrepro.papers.multimodn.pfusion import PFusion, padded_of
from mmrepro.papers.multimodn.runrows import RunDraws, chain
from mmrepro.papers.multimodn.transformer import FusionTransformer, tokens_of, transformer_body

__all__ = ["StackedPFusion", "StackedTransformer"]


def _same_architecture(models: Sequence[nn.Module], cls: type, fields: Sequence[str]) -> nn.Module:
    if not models or not all(type(m) is cls for m in models):
        raise ValueError(f"stacking needs a non-empty list of {cls.__name__} models, got "
                         f"{sorted({type(m).__name__ for m in models})}")
    first = models[0]
    diff = sorted({a for a in fields for m in models[1:] if getattr(m, a) != getattr(first, a)})
    if diff:
        raise ValueError(f"the runs do not share one {cls.__name__} architecture (they differ in {diff})")
    return first


class _StackedBaseline(nn.Module):
    """What the two stacked baselines share: the inputs of every run (checked on run 0), the per-run loss
    over (sample, task) pairs with a known target, predictions with the run axis first."""

    n_features: dict[str, int]
    sequence_steps: dict[str, int]
    tasks: dict
    draws: RunDraws | None = None  # set by the training loop: each run's dropout stream and real rows

    def _dropout(self, h: Tensor, p: float) -> Tensor:
        if not self.training or p == 0:
            return h
        if self.draws is None:
            raise RuntimeError("stacked runs train through fit_many_multimodn, which gives each run its dropout stream")
        return self.draws.dropout(h, p, self.training)

    def check_inputs(self, x: Mapping[str, Tensor], present: Mapping[str, Tensor] | None,
                     lengths: Mapping[str, Tensor] | None) -> None:
        """Shapes and finite present values of rows (N, ...) without a run axis (the training data)."""
        check_inputs(x, present, lengths, list(self.n_features), self.n_features, frozenset(self.sequence_steps))

    def _rows(self, x: Mapping[str, Tensor], present: Mapping[str, Tensor] | None,
              lengths: Mapping[str, Tensor] | None) -> tuple[int, dict[str, Tensor], dict[str, Tensor]]:
        """(n_times, masks (K, N), lengths (K, N)) with shapes checked on run 0."""
        present, lengths = dict(present or {}), dict(lengths or {})
        one = {m: v[0] for m, v in x.items()}
        _, n_times, _, _ = check_inputs(one, {m: v[0] for m, v in present.items()},
                                        {m: v[0] for m, v in lengths.items()}, list(self.n_features),
                                        self.n_features, frozenset(self.sequence_steps))
        rows = next(iter(x.values())).shape[:2]
        dev = next(iter(x.values())).device
        masks = {m: present.get(m, torch.ones(rows, dtype=torch.bool, device=dev)) for m in self.n_features}
        lens = {m: lengths.get(m, torch.full(rows, n_times, dtype=torch.int64, device=dev)) for m in self.sequence_steps}
        if self.sequence_steps and n_times != next(iter(self.sequence_steps.values())):
            raise ValueError(f"sequence inputs have T={n_times}; the runs were built for {self.sequence_steps}.")
        return n_times, masks, lens

    def logits(self, x: Mapping[str, Tensor], present: Mapping[str, Tensor] | None,
               lengths: Mapping[str, Tensor] | None) -> dict[str, Tensor]:
        raise NotImplementedError

    def loss(self, x: Mapping[str, Tensor], present: Mapping[str, Tensor] | None,
             lengths: Mapping[str, Tensor] | None, y: Mapping[str, Tensor]) -> Tensor:
        """(K,): each run's mean loss over (sample, task) pairs with a known target."""
        logits = self.logits(x, present, lengths)
        first = logits[next(iter(logits))]
        total = first.new_zeros(first.shape[0])
        count = torch.zeros(first.shape[0], dtype=torch.int64, device=first.device)
        for task, spec in self.tasks.items():
            if task not in y:
                raise ValueError(f"y lacks a target for task {task!r}; tasks: {sorted(self.tasks)}.")
            target = y[task].to(first.device)
            check_target(task, spec, target[0], target.shape[1], None)
            loss, valid = pair_losses(spec, logits[task], target)
            total, count = total + (loss * valid).sum(-1), count + valid.sum(-1)
        return total / count.clamp(min=1)

    @torch.no_grad()
    def predict(self, x: Mapping[str, Tensor], present: Mapping[str, Tensor] | None = None,
                lengths: Mapping[str, Tensor] | None = None) -> dict[str, Tensor]:
        """``{task: logits (K, N, n_outputs)}``; does not change train/eval mode."""
        return self.logits(x, present, lengths)

    def frozen_params(self) -> list:
        """Every parameter of every run takes part in every step: nothing to freeze."""
        return []


class StackedPFusion(_StackedBaseline):
    """K :class:`~mmrepro.papers.multimodn.pfusion.PFusion` runs of one architecture."""

    def __init__(self, models: Sequence[PFusion]) -> None:
        super().__init__()
        first = _same_architecture(models, PFusion, ("n_features", "sequence_steps", "tasks", "fusion", "pad_value"))
        self.n_features, self.sequence_steps, self.tasks = first.n_features, first.sequence_steps, first.tasks
        self.fusion, self.pad_value, self.runs = first.fusion, first.pad_value, len(models)
        self.encoders = nn.ModuleDict({m: StackedSequential([md.encoders[m] for md in models]) for m in first.encoders})
        self.decoder = StackedSequential([md.decoder for md in models])

    def logits(self, x: Mapping[str, Tensor], present: Mapping[str, Tensor] | None,
               lengths: Mapping[str, Tensor] | None) -> dict[str, Tensor]:
        n_times, masks, lens = self._rows(x, present, lengths)
        inputs = padded_of(x, masks, lens, list(self.n_features), self.sequence_steps, n_times, self.pad_value)
        parts = [inputs[m] if self.fusion == "early" else
                 chain(self.encoders[m], self.encoders[m].template, inputs[m], self.training, self._dropout, True)
                 for m in self.n_features]
        (task,) = self.tasks
        return {task: chain(self.decoder, self.decoder.template, torch.cat(parts, dim=-1), self.training,
                            self._dropout, True)}


class StackedTransformer(_StackedBaseline):
    """K :class:`~mmrepro.papers.multimodn.transformer.FusionTransformer` runs of one architecture."""

    def __init__(self, models: Sequence[FusionTransformer]) -> None:
        super().__init__()
        first = _same_architecture(models, FusionTransformer,
                                   ("n_features", "sequence_steps", "tasks", "setting", "pad_value"))
        self.n_features, self.sequence_steps, self.tasks = first.n_features, first.sequence_steps, first.tasks
        self.setting, self.pad_value, self.runs = first.setting, first.pad_value, len(models)
        object.__setattr__(self, "template", copy.deepcopy(first).requires_grad_(False))  # the architecture only
        self.blocks = nn.Sequential(*(Stacked([m.blocks[i] for m in models]) for i in range(len(first.blocks))))
        self.mlp = StackedSequential([m.mlp for m in models])
        self.outputs = nn.ModuleDict({t: StackedLinear([m.outputs[t] for m in models]) for t in first.outputs})

    def logits(self, x: Mapping[str, Tensor], present: Mapping[str, Tensor] | None,
               lengths: Mapping[str, Tensor] | None) -> dict[str, Tensor]:
        n_times, masks, lens = self._rows(x, present, lengths)
        tokens = tokens_of(x, masks, lens, list(self.n_features), self.sequence_steps, n_times, self.pad_value)
        pooled = transformer_body(self, self.template, tokens, self.training, self._dropout, stacked=True)
        return {t: head(pooled) for t, head in self.outputs.items()}
