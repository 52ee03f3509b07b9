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
from typing import Any, Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmrepro.papers.multimodn.heads import as_task_specs, check_modalities, check_target, pair_losses
from mmrepro.papers.multimodn.inputs import check_inputs
from mmrepro.papers.multimodn.runrows import Dropout, chain, plain_dropout

__all__ = ["FusionTransformer", "TransformerSetting", "EDU_WEATHER", "MIMIC", "attention", "layer_norm", "tokens_of",
           "transformer_body"]


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


def layer_norm(x: Tensor, weight: Tensor, bias: Tensor, eps: float = 1e-6) -> Tensor:
    """``nn.LayerNorm`` over the last axis with the affine ``weight`` and ``bias`` (W,), or (K, W) for K
    stacked runs whose inputs are (K, N, L, W)."""
    view = (*weight.shape[:-1], *([1] * (x.dim() - weight.dim())), weight.shape[-1])
    return F.layer_norm(x, x.shape[-1:], eps=eps) * weight.view(view) + bias.view(view)


def attention(x: Tensor, qkv_weight: Tensor, qkv_bias: Tensor, out_weight: Tensor, out_bias: Tensor, heads: int,
              head_size: int, dropout: Callable[[Tensor], Tensor]) -> Tensor:
    """Multi-head self-attention with ``heads`` heads of ``head_size`` each (Keras ``key_dim``, not W / heads):
    ``out(concat_h softmax(q_h k_h^T / sqrt(head_size)) v_h)`` with ``q, k, v = qkv(x)``, ``dropout`` applied
    to the attention weights. x is (N, L, W), or (K, N, L, W) with every weight carrying a leading K axis.

    Computed in an equivalent, cheaper order: with W far below ``head_size`` (the paper's 256-wide heads
    over 16 weather features), ``q_h k_h^T = x Wq_h^T Wk_h x^T`` plus a key-dependent bias (the terms that
    are constant over the keys cancel in the softmax), and ``out_h(w_h v_h) = (w_h x) (Wo_h Wv_h)^T +
    rowsum(w_h) Wo_h bv_h``, so the (N, L, heads x head_size) projections are never formed."""
    lead = qkv_weight.shape[:-2]
    *rows, length, width = x.shape
    # (..., H, D, W) each, contiguous: stacked runs' blocks copied once here, not once per product below
    wq, wk, wv = qkv_weight.view(*lead, 3, heads, head_size, width).movedim(-4, 0).contiguous().unbind(0)
    bq, _, bv = qkv_bias.view(*lead, 3, heads, head_size).unbind(-3)  # (..., H, D); bk cancels in the softmax
    scale = 1.0 / math.sqrt(head_size)
    # scores[n, l, h, m] = x_l Wq_h^T Wk_h x_m / sqrt(D) + (bq_h Wk_h / sqrt(D)) x_m: every head at once
    bilinear = ((wq.transpose(-1, -2) @ wk) * scale).transpose(-3, -2).reshape(*lead, width, heads * width)
    key_bias = ((bq.unsqueeze(-2) @ wk) * scale).squeeze(-2).transpose(-1, -2)  # (..., W, H)
    flat = x.flatten(-3, -2)  # (..., N L, W)
    scores = (flat @ bilinear).view(*rows, length * heads, width) @ x.transpose(-1, -2)  # (..., N, L H, L)
    scores = scores.view(*rows, length, heads, length) + (flat @ key_bias).view(*rows, length, heads).transpose(
        -1, -2).unsqueeze(-3)
    scores = (scores - scores.amax(-1, keepdim=True)).exp()  # the softmax over the keys, written out: with
    weights = dropout(scores / scores.sum(-1, keepdim=True))  # a handful of keys 3x faster than torch.softmax
    # out[n, l] = sum_h (w_h x)_l (Wo_h Wv_h)^T + rowsum(w_h)_l Wo_h bv_h + bo
    wo = out_weight.view(*lead, width, heads, head_size).movedim(-3, -1)  # (..., H, D, W): Wo_h^T
    value_out = (wv.transpose(-1, -2) @ wo).reshape(*lead, heads * width, width)  # rows (h, input feature)
    bias_out = (bv.unsqueeze(-2) @ wo).squeeze(-2)  # (..., H, W)
    context = (weights.reshape(*rows, length * heads, length) @ x).view(*lead, -1, heads * width)  # (..., N L, H W)
    out = context @ value_out + weights.sum(-1).view(*lead, -1, heads) @ bias_out
    return out.view(*rows, length, width) + out_bias.view(*lead, 1, 1, width)


def transformer_body(owner: nn.Module, template: "FusionTransformer", tokens: Tensor, training: bool,
                     dropout: Dropout, stacked: bool = False) -> Tensor:
    """The blocks, the pooling and the MLP head of ``template``'s architecture on ``tokens`` (N, L, W), with
    the parameters held by ``owner``: the model itself, or (``stacked``) K runs' parameters stacked under the
    same names (:class:`~mmrepro.core.models.stacked.Stacked`) with tokens (K, N, L, W). Every dropout is
    ``dropout(h, p)``: torch's for one model, each run's own stream for stacked runs
    (:class:`~mmrepro.papers.multimodn.runrows.RunDraws`). Returns the MLP head's output, (..., N, mlp_units)."""
    s = template.setting
    h = tokens
    for blk, plain in zip(owner.blocks.children(), template.blocks.children()):
        att = blk.attention
        a = attention(layer_norm(h, blk.norm1.weight, blk.norm1.bias), att.qkv.weight, att.qkv.bias, att.out.weight,
                      att.out.bias, s.heads, s.head_size, lambda w: dropout(w, s.dropout))
        h = h + dropout(a, s.dropout)
        h = h + chain(blk.ff, plain.ff, layer_norm(h, blk.norm2.weight, blk.norm2.bias), training, dropout, stacked)
    return chain(owner.mlp, template.mlp, h.mean(-1), training, dropout, stacked)


class _Attention(nn.Module):
    """The parameters of one attention layer (``qkv``: W -> 3 x heads x head_size, ``out`` back to W);
    the computation is :func:`attention`."""

    def __init__(self, width: int, heads: int, head_size: int, dropout: float):
        super().__init__()
        self.heads, self.head_size, self.dropout = heads, head_size, dropout
        self.qkv = nn.Linear(width, 3 * heads * head_size)
        self.out = nn.Linear(heads * head_size, width)

    def forward(self, x: Tensor) -> Tensor:
        return attention(x, self.qkv.weight, self.qkv.bias, self.out.weight, self.out.bias, self.heads,
                         self.head_size, lambda w: F.dropout(w, self.dropout, self.training))


class _Block(nn.Module):
    """The parameters of one pre-norm block (module docstring); the computation is :func:`transformer_body`."""

    def __init__(self, width: int, s: TransformerSetting):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(width, eps=1e-6), nn.LayerNorm(width, eps=1e-6)
        self.attention = _Attention(width, s.heads, s.head_size, s.dropout)
        self.ff = nn.Sequential(nn.Linear(width, s.ff_dim), nn.ReLU(), nn.Dropout(s.dropout), nn.Linear(s.ff_dim, width))


def tokens_of(x: Mapping[str, Tensor], masks: Mapping[str, Tensor], lens: Mapping[str, Tensor],
              modalities: Sequence[str], sequence_steps: Mapping[str, int], n_times: int, pad_value: float) -> Tensor:
    """(..., N, L, W) tokens with absent rows, steps beyond the length and NaN set to ``pad_value``; inputs
    (..., N, F) or (..., N, T, F), ``masks`` and ``lens`` (..., N) (with a leading run axis or without)."""
    parts = []
    for m in modalities:
        v = x[m]
        rows = masks[m].shape
        keep = masks[m].view(*rows, *([1] * (v.dim() - len(rows)))) & ~torch.isnan(v)
        if m in sequence_steps:
            keep = keep & (torch.arange(n_times, device=v.device)[:, None] < lens[m][..., None, None])
        elif sequence_steps:
            v, keep = (t.unsqueeze(-2).expand(*t.shape[:-1], n_times, t.shape[-1]) for t in (v, keep))
        parts.append(torch.where(keep, v, torch.tensor(pad_value).to(v)))
    joined = torch.cat(parts, dim=-1)
    return joined if sequence_steps else joined[..., None]


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
        return tokens_of(x, masks, lens, self.modalities, self.sequence_steps, n_times, self.pad_value)

    def forward(self, x: Mapping[str, Tensor], present: Mapping[str, Tensor] | None = None,
                lengths: Mapping[str, Tensor] | None = None) -> dict[str, Tensor]:
        """``{task: logits (N, n_outputs)}`` from all modalities read in parallel."""
        pooled = transformer_body(self, self, self.tokens(x, present, lengths), self.training,
                                  plain_dropout(self.training))
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
