"""P-Fusion baseline: parallel fusion of per-modality embeddings into one single-task decoder.

MultiModN paper Section 4.1 and Figure 1b (HAIM-style): a fixed set of modality encoders, their
embeddings concatenated and decoded for one task.  A missing modality cannot be skipped: its input
is padded with a neutral value (``pad_value``, 0 = the training mean after
:class:`~mmrepro.papers.multimodn.features.Standardizer`) and encoded like any other input, so the model can
learn the missingness pattern (the MNAR failure of paper Section 6.4).  Sequence modalities are
flattened over their padded time axis, steps beyond a sample's length padded alike.

``fusion="early"`` is the reference implementation's baseline (its HAIM decoder): no per-modality
encoders, one MLP over the concatenated standardised features with absent values filled by 0,
without input dropout (``dropout`` applies to the embedding encoders only).

Encoders and decoder are :func:`~mmrepro.papers.multimodn.heads.mlp` networks with the same widths as
MultiModN's, so that only the fusion differs (paper Section 4.1, Appendix B Figure 8).
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from torch import Tensor, nn

from mmrepro.papers.multimodn.heads import as_task_specs, check_modalities, check_target, mlp, pair_losses
from mmrepro.papers.multimodn.inputs import check_inputs

__all__ = ["PFusion", "padded_of"]

FUSIONS = ("embedding", "early")


def padded_of(x: Mapping[str, Tensor], masks: Mapping[str, Tensor], lens: Mapping[str, Tensor],
              modalities: Sequence[str], sequence_steps: Mapping[str, int], n_times: int,
              pad_value: float) -> dict[str, Tensor]:
    """Each modality's inputs flattened to (..., N, F) or (..., N, T x F), absent rows and steps beyond a
    row's length set to ``pad_value``; ``masks`` and ``lens`` (..., N) (with a leading run axis or without)."""
    pad = torch.tensor(pad_value)
    out = {}
    for m in modalities:
        v = x[m]
        rows = masks[m].shape
        keep = masks[m].view(*rows, *([1] * (v.dim() - len(rows))))
        if m in sequence_steps:
            keep = keep & (torch.arange(n_times, device=v.device)[:, None] < lens[m][..., None, None])
            out[m] = torch.where(keep, v, pad.to(v)).flatten(-2)
        else:
            out[m] = torch.where(keep, v, pad.to(v))
    return out


class PFusion(nn.Module):
    """Single-task parallel-fusion model.

    Args:
        modalities: ``{name: n_features}``.
        task: ``{name: Task | (kind, n_outputs) | kind}`` with exactly one task.
        sequence_steps: ``{name: T}`` for sequence modalities (inputs (N, T, F), flattened).
        embedding_size: width of each modality embedding (``fusion="embedding"``).
        hidden, n_hidden, dropout: as in :class:`~mmrepro.papers.multimodn.model.MultiModN`.
        fusion: ``"embedding"`` (paper) or ``"early"`` (reference code).
        pad_value: value that replaces absent inputs.
    """

    def __init__(self, modalities: Mapping[str, int], task: Mapping[str, Any], *,
                 sequence_steps: Mapping[str, int] | None = None, embedding_size: int = 50,
                 hidden: int = 32, n_hidden: int = 2, dropout: float = 0.2,
                 fusion: str = "embedding", pad_value: float = 0.0):
        super().__init__()
        specs = as_task_specs(task)
        if len(specs) != 1:
            raise ValueError(f"P-Fusion is single-task (paper Fig. 1b); got tasks {sorted(specs)}. "
                             "Train one P-Fusion per task.")
        if fusion not in FUSIONS:
            raise ValueError(f"fusion={fusion!r} is not one of {FUSIONS}.")
        steps = check_modalities(modalities, sequence_steps)
        self.n_features = dict(modalities)
        self.sequence_steps = steps
        (self.task_name, self.spec), = specs.items()
        self.tasks = specs
        self.fusion = fusion
        self.pad_value = float(pad_value)
        flat = {m: f * steps.get(m, 1) for m, f in self.n_features.items()}
        if fusion == "embedding":
            self.encoders = nn.ModuleDict({
                m: mlp(w, hidden, embedding_size, n_hidden=n_hidden, dropout=dropout, out_relu=True)
                for m, w in flat.items()})
            fused = embedding_size * len(flat)
            self.decoder = mlp(fused, hidden, self.spec.n_outputs, n_hidden=n_hidden)
        else:
            self.encoders = nn.ModuleDict()
            self.decoder = mlp(sum(flat.values()), hidden, self.spec.n_outputs, n_hidden=n_hidden)

    @property
    def modalities(self) -> list[str]:
        return list(self.n_features)

    def padded_inputs(self, x: Mapping[str, Tensor], present: Mapping[str, Tensor] | None = None,
                      lengths: Mapping[str, Tensor] | None = None) -> dict[str, Tensor]:
        """Flattened inputs with absent rows and steps beyond the length set to ``pad_value``."""
        n, n_times, masks, lens = check_inputs(x, present, lengths, self.modalities, self.n_features,
                                               frozenset(self.sequence_steps))
        if self.sequence_steps and n_times != next(iter(self.sequence_steps.values())):
            raise ValueError(f"sequence inputs have T={n_times}; this P-Fusion was built for "
                             f"{self.sequence_steps}.")
        return padded_of(x, masks, lens, self.modalities, self.sequence_steps, n_times, self.pad_value)

    def forward(self, x: Mapping[str, Tensor], present: Mapping[str, Tensor] | None = None,
                lengths: Mapping[str, Tensor] | None = None) -> Tensor:
        """Logits (N, n_outputs) from all modalities, missing ones padded and encoded."""
        inputs = self.padded_inputs(x, present, lengths)
        if self.fusion == "early":
            return self.decoder(torch.cat([inputs[m] for m in self.modalities], dim=-1))
        return self.decoder(torch.cat([self.encoders[m](inputs[m]) for m in self.modalities], dim=-1))

    def loss(self, x: Mapping[str, Tensor], present: Mapping[str, Tensor] | None,
             lengths: Mapping[str, Tensor] | None, y: Mapping[str, Tensor]) -> Tensor:
        """Mean loss over samples with a known target."""
        if self.task_name not in y:
            raise ValueError(f"y lacks a target for task {self.task_name!r}.")
        logits = self(x, present, lengths)
        target = y[self.task_name].to(logits.device)
        check_target(self.task_name, self.spec, target, logits.shape[0], None)
        loss, valid = pair_losses(self.spec, logits, target)
        return (loss * valid).sum() / valid.sum().clamp(min=1)

    @torch.no_grad()
    def predict(self, x: Mapping[str, Tensor], present: Mapping[str, Tensor] | None = None,
                lengths: Mapping[str, Tensor] | None = None) -> dict[str, Tensor]:
        """``{task: logits (N, n_outputs)}``; does not change train/eval mode."""
        return {self.task_name: self(x, present, lengths)}
