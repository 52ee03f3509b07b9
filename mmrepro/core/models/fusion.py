"""Joint-fusion networks with a fusion head and optional unimodal heads ("3H").

* ``fusion="concat"`` / ``"sum"``: the MILES vanilla networks (Sec. IV-B): encoder outputs are
  concatenated or summed and a linear layer predicts.
* ``fusion="lstm"``: MedFuse (MIND's base, Sec. 4): each modality embedding becomes a token
  (projected to ``token_dim`` when its size differs), the token sequence goes through an LSTM and
  a linear layer reads its last hidden state. An absent modality's token is dropped through the
  sequence length, as MedFuse does for unpaired samples.
* ``multihead=True`` adds one linear head per modality on its encoder output (MIND Fig. 1 A.2,
  MILES eq. 3), so the model also predicts from any subset of modalities.
* ``probes=True`` adds one linear *probe* per modality on the detached encoder output (heads
  ``"probe:{m}"``): trained alongside, it measures what an encoder has learnt without sending any
  gradient into it, so a model trained on the fused loss alone still reports unimodal accuracies
  (MILES Tables II-III) and a balancing method cannot move the measurement through the heads.

Inputs follow the dataset convention: ``x[m]`` (N, ...), ``present[m]`` (N,) bool, absent rows may be
NaN. Only present rows reach an encoder; absent embeddings are zeros, so NaN never propagates. A NaN
or inf inside a present row (within its length, for padded sequences) is a ValueError: mark a missing
modality as absent, or impute it before training.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Mapping, Sequence

import torch
from torch import Tensor, nn

from mmrepro.common.checks import TASK_KINDS
from mmrepro.core.models.encoders import last_hidden

FUSION_HEAD = "fusion"
PROBE = "probe:"  # prefix of the probe heads (``probes=True``)


@dataclass
class ModelOutput:
    """Logits per head (``"fusion"`` and, for multi-head models, one per modality), each (N, n_outputs);
    ``mask[head]`` (N,) marks rows the head may be scored on; ``embeddings[m]`` (N, d_m)."""

    logits: dict[str, Tensor]
    mask: dict[str, Tensor]
    embeddings: dict[str, Tensor]


def probabilities(logits: Tensor, kind: str) -> Tensor:
    """Head output -> prediction: sigmoid (binary (N,), multilabel (N, L)), softmax (multiclass (N, C)),
    identity (regression (N,)); leading axes (runs) are kept."""
    if kind == "binary":
        return torch.sigmoid(logits[..., 0])
    if kind == "multilabel":
        return torch.sigmoid(logits)
    if kind == "multiclass":
        return torch.softmax(logits, dim=-1)
    if kind == "regression":
        return logits[..., 0]
    raise ValueError(f"unknown task kind {kind!r}; valid: {', '.join(TASK_KINDS)}")


class MultimodalNet(nn.Module):
    """Encoders + fusion + heads for one task (``kind``, ``n_outputs``); see the module docstring.

    With a single modality and ``multihead=False`` this is a plain unimodal model (used for teachers
    and UME); its only head is still called ``"fusion"``.
    """

    def __init__(self, encoders: Mapping[str, nn.Module], kind: str, n_outputs: int,
                 fusion: Literal["concat", "sum", "lstm"] = "concat", multihead: bool = True,
                 token_dim: int | None = None, fusion_hidden: int = 512, dropout: float = 0.0,
                 probes: bool = False) -> None:
        super().__init__()
        if kind not in TASK_KINDS:
            raise ValueError(f"unknown task kind {kind!r}; valid: {', '.join(TASK_KINDS)}")
        if kind in ("binary", "regression") and n_outputs != 1:
            raise ValueError(f"a {kind} task has n_outputs=1, got {n_outputs}")
        if not encoders:
            raise ValueError("MultimodalNet needs at least one encoder")
        if fusion not in ("concat", "sum", "lstm"):
            raise ValueError(f"fusion must be 'concat', 'sum' or 'lstm', got {fusion!r}")
        if FUSION_HEAD in encoders:
            raise ValueError(f"'{FUSION_HEAD}' is reserved for the fusion head; rename that modality")
        self.modalities = list(encoders)
        self.kind, self.n_outputs, self.fusion, self.multihead = kind, n_outputs, fusion, multihead
        self.encoders = nn.ModuleDict(encoders)
        dims = {m: int(getattr(e, "out_dim")) for m, e in encoders.items()}
        self.dropout = nn.Dropout(dropout)
        if fusion == "concat":
            self.proj = nn.ModuleDict({m: nn.Identity() for m in dims})
            fused_dim = sum(dims.values())
        else:
            tdim = token_dim or (next(iter(dims.values())) if len(set(dims.values())) == 1 else None)
            if tdim is None:
                raise ValueError(f"'{fusion}' fusion needs equal embedding sizes or token_dim; got {dims}")
            self.proj = nn.ModuleDict({m: nn.Identity() if d == tdim else nn.Linear(d, tdim) for m, d in dims.items()})
            fused_dim = tdim
        if fusion == "lstm":
            self.fusion_lstm = nn.LSTM(fused_dim, fusion_hidden, batch_first=True)
            fused_dim = fusion_hidden
        self.heads = nn.ModuleDict({FUSION_HEAD: nn.Linear(fused_dim, n_outputs)})
        if multihead:
            for m, d in dims.items():
                self.heads[m] = nn.Linear(d, n_outputs)
        self.probes = nn.ModuleDict({m: nn.Linear(d, n_outputs) for m, d in dims.items()}) if probes else None

    @property
    def head_names(self) -> list[str]:
        """The heads that predict (and train the network): fusion and, if multi-head, one per modality.
        Probes are listed apart (:attr:`probe_names`)."""
        return list(self.heads)

    @property
    def probe_names(self) -> list[str]:
        return [f"{PROBE}{m}" for m in self.modalities] if self.probes is not None else []

    def unimodal_head(self, modality: str) -> str:
        """The head that predicts from ``modality`` alone: its unimodal head if the model is multi-head,
        else its probe. Raises if the model has neither."""
        if modality not in self.modalities:
            raise ValueError(f"unknown modality {modality!r}; the model has {self.modalities}")
        if self.multihead:
            return modality
        if self.probes is not None:
            return f"{PROBE}{modality}"
        raise ValueError("this model predicts from the fused embedding only; build it with multihead=True "
                         "(unimodal heads trained with the network) or probes=True (detached probes)")

    def _check_inputs(self, x: Mapping[str, Tensor], present: Mapping[str, Tensor] | None) -> dict[str, Tensor]:
        missing = [m for m in self.modalities if m not in x]
        if missing:
            raise ValueError(f"inputs lack modalities {missing}; the model expects {self.modalities}")
        n = x[self.modalities[0]].shape[0]
        if present is None:
            return {m: torch.ones(n, dtype=torch.bool, device=x[m].device) for m in self.modalities}
        return {m: present[m].to(torch.bool) for m in self.modalities}

    def encode(self, x: Mapping[str, Tensor], present: Mapping[str, Tensor] | None = None,
               lengths: Mapping[str, Tensor] | None = None) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """Embeddings (N, d_m) per modality (zeros on absent rows) and the presence masks used."""
        pres = self._check_inputs(x, present)
        lengths = lengths or {}
        return {m: self._encode(m, x[m], pres[m], lengths.get(m)) for m in self.modalities}, pres

    def _encode(self, m: str, x: Tensor, present: Tensor, lengths: Tensor | None) -> Tensor:
        return encode_present(self.encoders[m], self.encoders[m].out_dim, check_present(m, x, present, lengths),
                              present, lengths)

    def fuse(self, emb: Mapping[str, Tensor], pres: Mapping[str, Tensor]) -> Tensor:
        """Fused representation fed to the fusion head (axes counted from the end, so that the
        stacked runs of :class:`~mmrepro.core.models.stacked.StackedMultimodalNet` share this code)."""
        if self.fusion == "concat":
            return torch.cat([emb[m] for m in self.modalities], dim=-1)
        tokens = torch.stack([self.proj[m](emb[m]) * pres[m].unsqueeze(-1) for m in self.modalities], dim=-2)
        if self.fusion == "sum":
            return tokens.sum(dim=-2)
        mask = torch.stack([pres[m] for m in self.modalities], dim=-1)
        order = torch.argsort((~mask).to(torch.int8), dim=-1, stable=True)  # present tokens first, modality order kept
        tokens = tokens.gather(-2, order.unsqueeze(-1).expand_as(tokens))
        return self._last_hidden(tokens, mask.sum(dim=-1))

    def _last_hidden(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        return last_hidden(self.fusion_lstm, tokens, lengths)

    def forward(self, x: Mapping[str, Tensor], present: Mapping[str, Tensor] | None = None,
                lengths: Mapping[str, Tensor] | None = None) -> ModelOutput:
        emb, pres = self.encode(x, present, lengths)
        logits = {FUSION_HEAD: self.heads[FUSION_HEAD](self.dropout(self.fuse(emb, pres)))}
        mask = {FUSION_HEAD: torch.stack(list(pres.values()), dim=-1).any(dim=-1)}
        if self.multihead:
            for m in self.modalities:
                logits[m] = self.heads[m](self.dropout(emb[m]))
                mask[m] = pres[m]
        if self.probes is not None:
            for m in self.modalities:
                logits[f"{PROBE}{m}"] = self.probes[m](emb[m].detach())
                mask[f"{PROBE}{m}"] = pres[m]
        return ModelOutput(logits=logits, mask=mask, embeddings=emb)

    def fusion_contributions(self, emb: Mapping[str, Tensor]) -> dict[str, Tensor] | None:
        """Each modality's share of the fusion logits, W_m z_m + b / M (OGM, Peng et al. 2022, eq. 4):
        the concat head's weight block or, for summation, the shared weight. None for LSTM fusion."""
        if self.fusion == "lstm":
            return None
        head, n_mod = self.heads[FUSION_HEAD], len(self.modalities)
        out, start = {}, 0
        for m in self.modalities:
            z = self.proj[m](emb[m])
            w = head.weight[..., start:start + z.shape[-1]] if self.fusion == "concat" else head.weight
            out[m] = z @ w.transpose(-1, -2) + head.bias.unsqueeze(-2) / n_mod
            start += z.shape[-1] if self.fusion == "concat" else 0
        return out

    @torch.no_grad()
    def predict_proba(self, x: Mapping[str, Tensor], present: Mapping[str, Tensor] | None = None,
                      lengths: Mapping[str, Tensor] | None = None, modalities: Sequence[str] | None = None) -> Tensor:
        """Predictions from the modalities in ``modalities`` (default all) that each row has.

        A row with every model modality available uses the fusion head; otherwise the average of the
        unimodal heads' predictions over its available modalities (needs ``multihead=True``).
        Rows with none of the requested modalities are NaN.
        """
        pres = self._check_inputs(x, present)
        use = list(self.modalities if modalities is None else modalities)
        unknown = [m for m in use if m not in self.modalities]
        if unknown:
            raise ValueError(f"unknown modalities {unknown}; the model has {self.modalities}")
        avail = {m: pres[m] & torch.tensor(m in use, device=pres[m].device) for m in self.modalities}
        out = self.forward(x, avail, lengths)
        prob = {h: probabilities(v, self.kind) for h, v in out.logits.items()}
        full = torch.stack([avail[m] for m in self.modalities], dim=1).all(dim=1)
        if bool(full.all()):
            return prob[FUSION_HEAD]
        if not self.multihead:
            raise ValueError("rows with missing modalities need the unimodal heads; build the model with multihead=True")
        fused = prob[FUSION_HEAD]
        total = sum(prob[m] * leading(avail[m], fused) for m in self.modalities)
        count = leading(sum(avail[m].to(total.dtype) for m in self.modalities), fused)
        uni = total / count  # NaN (0/0) where nothing is available, by design
        return torch.where(leading(full, fused), fused, uni)

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameters by branch: modality ``m`` = its encoder and unimodal head; ``"fusion"`` = the
        projections, fusion LSTM and fusion head (the balancing methods act on these groups);
        ``"probes"`` = the probes (when present; no method changes their rate)."""
        groups = {m: list(self.encoders[m].parameters()) + (list(self.heads[m].parameters()) if self.multihead else [])
                  for m in self.modalities}
        fusion = list(self.proj.parameters()) + list(self.heads[FUSION_HEAD].parameters())
        if self.fusion == "lstm":
            fusion += list(self.fusion_lstm.parameters())
        groups[FUSION_HEAD] = fusion
        if self.probes is not None:
            groups["probes"] = list(self.probes.parameters())
        return groups


def leading(value: float | Tensor, like: Tensor) -> float | Tensor:
    """``value`` with one entry per index of ``like``'s first axis (a run, a row) viewed to broadcast
    over ``like``'s other axes; a number, or a tensor that is not one-dimensional, as it is."""
    if isinstance(value, Tensor) and value.dim() == 1:
        return value.view((-1,) + (1,) * (like.dim() - 1))
    return value


def check_present(modality: str, x: Tensor, present: Tensor, lengths: Tensor | None = None,
                  min_length: int = 1) -> Tensor:
    """``x`` unchanged when every row marked ``present`` is finite; ValueError naming the rows otherwise.

    Absent rows may hold anything. Padded sequences (rows, T, ...) are checked within each row's
    length, and at least its first ``min_length`` steps (an LSTM encoder reads the first step even of
    an empty row; MultiModN reads none). Leading run axes (stacked runs) are allowed: ``present`` has
    the shape of ``x``'s leading axes, and rows are counted across runs."""
    if bool(torch.isfinite(x).all()):  # the usual case, in one reduction
        return x
    flat, shown = x.reshape(-1, *x.shape[present.dim():]), present.reshape(-1)
    bad = ~torch.isfinite(flat)
    if lengths is not None and flat.dim() >= 3:
        steps = torch.arange(flat.shape[1], device=x.device)[None, :] < \
            lengths.reshape(-1).to(x.device).clamp(min=min_length)[:, None]
        bad = bad.flatten(2).any(2) & steps
    bad_rows = bad.reshape(flat.shape[0], -1).any(1) & shown.to(x.device)
    if bool(bad_rows.any()):
        raise ValueError(f"x[{modality!r}] has NaN or inf in {int(bad_rows.sum())} row(s) marked present (first: row "
                         f"{int(bad_rows.nonzero()[0, 0])}); mark a missing modality with present[{modality!r}]=False "
                         "(its values are then ignored), or impute the missing values first.")
    return x


def encode_present(encoder, out_dim: int, x: Tensor, present: Tensor, lengths: Tensor | None) -> Tensor:
    """``encoder(x, lengths)`` on the present rows of ``x`` only (finite: :func:`check_present`),
    zeros (``out_dim`` wide) on absent rows."""
    if bool(present.all()):
        return encoder(x, lengths)
    idx = present.nonzero().squeeze(1)
    z = x.new_zeros(x.shape[0], out_dim)
    if idx.numel():
        z = z.index_copy(0, idx, encoder(x[idx], None if lengths is None else lengths[idx]))
    return z


def count_parameters(model: nn.Module) -> dict[str, int]:
    """Trainable parameters per branch and in total (the MIND Table A1 pattern)."""
    n = lambda ps: sum(p.numel() for p in ps if p.requires_grad)  # noqa: E731
    if isinstance(model, MultimodalNet):
        out = {f"encoder:{m}": n(model.encoders[m].parameters()) for m in model.modalities}
        out["fusion"] = n(model.parameter_groups()[FUSION_HEAD]) - n(model.heads[FUSION_HEAD].parameters())
        out["heads"] = n(model.heads.parameters())
    else:
        out = {}
    out["total"] = n(model.parameters())
    return out
