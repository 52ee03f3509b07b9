"""The P-Fusion transformer baseline of MultiModN Appendix E.4.

The paper gives only hyper-parameters: "4 transformer blocks, 4 heads of size 256, dropout of 0.25,
MLP units 128 with dropout 0.4, batch size 64" for EDU and Weather, and "2 transformer blocks with
3 heads of size 128, MLP units 32, batch size 32" for MIMIC.  These are the parameters of the
well-known Keras time-series transformer (head size, heads, feed-forward width 4, blocks, MLP units,
dropout, MLP dropout), which this module rebuilds in PyTorch:

* input: a sequence of tokens (N, L, W) -- for time-series data one token per time step holding
  every feature of that step (static modalities repeated at every step), for static data one token
  per feature (W = 1, the usual way to feed tabular data to that model).  All modalities are read
  in parallel; a missing input is padded with ``pad_value`` (0, the training mean after
  standardisation) and encoded like any other token, as P-Fusion does (paper Section 4.1);
* block (pre-norm): ``h = x + Dropout(MHA(LN(x)))``, ``x' = h + Conv1x1(Dropout(ReLU(Conv1x1(LN(h)))))``
  with the feed-forward width ``ff_dim`` = 4 and multi-head attention whose heads have their own
  ``head_size`` (not ``W / heads``), with dropout on the attention weights;
* head: the mean over the token width (Keras ``GlobalAveragePooling1D(data_format="channels_first")``),
  one number per token, then a ReLU layer of ``mlp_units`` with dropout ``mlp_dropout`` and one
  linear output per task.

No positional encoding, as in that model; the dense head sees the tokens in order.  Losses are the
package's (:func:`~mmrepro.papers.multimodn.heads.pair_losses`: one logit with BCE for binary tasks, which
is 2-class cross-entropy with one logit fixed at 0; squared error for regression).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmrepro.papers.multimodn.heads import as_task_specs, check_modalities, check_target, pair_losses
from mmrepro.papers.multimodn.inputs import check_inputs

__all__ = ["FusionTransformer", "TransformerSetting", "EDU_WEATHER", "MIMIC"]


@dataclass(frozen=True)
class TransformerSetting:
    """The hyper-parameters of paper Appendix E.4."""

    blocks: int
    heads: int
    head_size: int
    mlp_units: int
    dropout: float
    mlp_dropout: float
    batch_size: int
    ff_dim: int = 4


EDU_WEATHER = TransformerSetting(blocks=4, heads=4, head_size=256, mlp_units=128, dropout=0.25, mlp_dropout=0.4,
                                 batch_size=64)
# E.4 gives no dropout for MIMIC: those of the EDU/Weather model are kept.
MIMIC = TransformerSetting(blocks=2, heads=3, head_size=128, mlp_units=32, dropout=0.25, mlp_dropout=0.4,
                           batch_size=32)


class _Attention(nn.Module):
    """Multi-head self-attention with ``heads`` heads of ``head_size`` each (Keras ``key_dim``)."""

    def __init__(self, width: int, heads: int, head_size: int, dropout: float):
        super().__init__()
        self.heads, self.head_size, self.dropout = heads, head_size, dropout
        self.qkv = nn.Linear(width, 3 * heads * head_size)
        self.out = nn.Linear(heads * head_size, width)

    def forward(self, x: Tensor) -> Tensor:
        n, length, _ = x.shape
        q, k, v = self.qkv(x).view(n, length, 3, self.heads, self.head_size).permute(2, 0, 3, 1, 4)
        weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(self.head_size), dim=-1)
        weights = F.dropout(weights, self.dropout, self.training)
        return self.out((weights @ v).transpose(1, 2).reshape(n, length, -1))


class _Block(nn.Module):
    def __init__(self, width: int, s: TransformerSetting):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(width, eps=1e-6), nn.LayerNorm(width, eps=1e-6)
        self.attention = _Attention(width, s.heads, s.head_size, s.dropout)
        self.ff = nn.Sequential(nn.Linear(width, s.ff_dim), nn.ReLU(), nn.Dropout(s.dropout), nn.Linear(s.ff_dim, width))
        self.drop = nn.Dropout(s.dropout)

    def forward(self, x: Tensor) -> Tensor:
        h = x + self.drop(self.attention(self.norm1(x)))
        return h + self.ff(self.norm2(h))


class FusionTransformer(nn.Module):
    """Parallel-fusion transformer over all modalities, one decoder output per task (module docstring).

    Args:
        modalities: ``{name: n_features}``.
        tasks: ``{name: Task | (kind, n_outputs) | kind}``; several tasks share the body (multi-task).
        sequence_steps: ``{name: T}`` for sequence modalities (inputs (N, T, F), one shared T); with
            any, tokens are time steps, otherwise features.
        setting: :class:`TransformerSetting` (``EDU_WEATHER`` or ``MIMIC``).
        pad_value: value that replaces absent inputs and steps beyond a sample's length.
    """

    def __init__(self, modalities: Mapping[str, int], tasks: Mapping[str, Any], *,
                 sequence_steps: Mapping[str, int] | None = None, setting: TransformerSetting = EDU_WEATHER,
                 pad_value: float = 0.0):
        super().__init__()
        steps = check_modalities(modalities, sequence_steps)
        if not isinstance(setting, TransformerSetting):
            raise ValueError(f"setting must be a TransformerSetting, got {type(setting).__name__}.")
        self.n_features, self.sequence_steps = dict(modalities), steps
        self.tasks = as_task_specs(tasks)
        self.setting, self.pad_value = setting, float(pad_value)
        n_features = sum(self.n_features.values())
        length, width = (next(iter(steps.values())), n_features) if steps else (n_features, 1)
        self.blocks = nn.Sequential(*(_Block(width, setting) for _ in range(setting.blocks)))
        self.mlp = nn.Sequential(nn.Linear(length, setting.mlp_units), nn.ReLU(), nn.Dropout(setting.mlp_dropout))
        self.outputs = nn.ModuleDict({t: nn.Linear(setting.mlp_units, s.n_outputs) for t, s in self.tasks.items()})

    @property
    def modalities(self) -> list[str]:
        return list(self.n_features)

    def tokens(self, x: Mapping[str, Tensor], present: Mapping[str, Tensor] | None = None,
               lengths: Mapping[str, Tensor] | None = None) -> Tensor:
        """(N, L, W) tokens with absent rows, steps beyond the length and NaN set to ``pad_value``."""
        n, n_times, masks, lens = check_inputs(x, present, lengths, self.modalities, self.n_features,
                                               frozenset(self.sequence_steps))
        if self.sequence_steps and n_times != next(iter(self.sequence_steps.values())):
            raise ValueError(f"sequence inputs have T={n_times}; this transformer was built for {self.sequence_steps}.")
        parts = []
        for m in self.modalities:
            v = x[m]
            keep = masks[m].view(-1, *([1] * (v.dim() - 1))) & ~torch.isnan(v)
            if m in self.sequence_steps:
                keep = keep & (torch.arange(n_times, device=v.device)[None, :, None] < lens[m][:, None, None])
            elif self.sequence_steps:
                v, keep = v[:, None].expand(n, n_times, -1), keep[:, None].expand(n, n_times, -1)
            parts.append(torch.where(keep, v, torch.tensor(self.pad_value).to(v)))
        joined = torch.cat(parts, dim=-1)
        return joined if self.sequence_steps else joined[..., None]

    def forward(self, x: Mapping[str, Tensor], present: Mapping[str, Tensor] | None = None,
                lengths: Mapping[str, Tensor] | None = None) -> dict[str, Tensor]:
        """``{task: logits (N, n_outputs)}`` from all modalities read in parallel."""
        pooled = self.mlp(self.blocks(self.tokens(x, present, lengths)).mean(-1))
        return {t: head(pooled) for t, head in self.outputs.items()}

    def loss(self, x: Mapping[str, Tensor], present: Mapping[str, Tensor] | None,
             lengths: Mapping[str, Tensor] | None, y: Mapping[str, Tensor]) -> Tensor:
        """Mean loss over (sample, task) pairs with a known target."""
        logits = self(x, present, lengths)
        total, count = logits[next(iter(logits))].new_zeros(()), 0
        for task, spec in self.tasks.items():
            if task not in y:
                raise ValueError(f"y lacks a target for task {task!r}; tasks: {sorted(self.tasks)}.")
            target = y[task].to(logits[task].device)
            check_target(task, spec, target, logits[task].shape[0], None)
            loss, valid = pair_losses(spec, logits[task], target)
            total, count = total + (loss * valid).sum(), count + valid.sum()
        return total / torch.as_tensor(count).clamp(min=1)

    @torch.no_grad()
    def predict(self, x: Mapping[str, Tensor], present: Mapping[str, Tensor] | None = None,
                lengths: Mapping[str, Tensor] | None = None) -> dict[str, Tensor]:
        """``{task: logits (N, n_outputs)}``; does not change train/eval mode."""
        return self(x, present, lengths)
