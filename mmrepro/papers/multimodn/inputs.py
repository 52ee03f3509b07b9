"""Validation of the model inputs: dicts of tensors plus ``present`` masks and sequence ``lengths``.

The models take the fields of :class:`mmrepro.core.data.MultimodalDataset` directly (``x``, ``present``, ``lengths``), so they
work on any :class:`mmrepro.core.data.MultimodalDataset` and on plain dicts.
"""
from __future__ import annotations

from typing import Iterable, Mapping

import torch
from torch import Tensor

from mmrepro.core.models.fusion import check_present


def check_inputs(x: Mapping[str, Tensor], present: Mapping[str, Tensor] | None,
                 lengths: Mapping[str, Tensor] | None, used: Iterable[str],
                 n_features: Mapping[str, int], sequence: frozenset[str]
                 ) -> tuple[int, int, dict[str, Tensor], dict[str, Tensor]]:
    """Check the modalities in ``used`` and return ``(n, n_times, present, lengths)``.

    Static modalities are (N, F), sequence modalities (N, T, F) with a shared T.  ``present``
    defaults to all rows (per modality ``(N,)`` bool); ``lengths`` to T (``(N,)`` int64 in [0, T]).
    ``n_times`` is the T of the sequence modalities in ``x`` (0 when there are none).
    Values of the modalities in ``used`` must be finite wherever they are present (and, for sequences,
    within the row's length): a missing modality is marked by ``present``, never by NaN alone.
    """
    if not isinstance(x, Mapping):
        raise ValueError(f"x must be a dict {{modality: tensor}}, got {type(x).__name__}.")
    present = {} if present is None else present
    lengths = {} if lengths is None else lengths
    unknown = sorted(set(x) - set(n_features))
    if unknown:
        raise ValueError(f"x has modalities {unknown} that the model does not know; "
                         f"model modalities: {sorted(n_features)}.")
    used = list(used)
    missing = [m for m in used if m not in x]
    if missing:
        raise ValueError(f"x lacks modalities {missing}; pass them (NaN rows + present=False for "
                         f"absent samples) or leave them out of `order`.")
    n = None
    n_times = 0
    for m, v in x.items():
        if not isinstance(v, Tensor) or not torch.is_floating_point(v):
            raise ValueError(f"x[{m!r}] must be a float tensor, got {getattr(v, 'dtype', type(v).__name__)}.")
        want = 3 if m in sequence else 2
        if v.dim() != want or v.shape[-1] != n_features[m]:
            kind = "(N, T, F)" if m in sequence else "(N, F)"
            raise ValueError(f"x[{m!r}] has shape {tuple(v.shape)}; expected {kind} with F={n_features[m]}.")
        if n is None:
            n = v.shape[0]
        elif v.shape[0] != n:
            raise ValueError(f"x[{m!r}] has {v.shape[0]} rows but other modalities have {n}.")
        if m in sequence:
            if n_times and v.shape[1] != n_times:
                raise ValueError(f"sequence modalities must share the time axis: x[{m!r}] has "
                                 f"T={v.shape[1]}, another has T={n_times}.")
            n_times = v.shape[1]
    if n is None:
        raise ValueError("x is empty: pass at least one modality.")
    masks, lens = {}, {}
    for m in x:
        p = present.get(m)
        if p is None:
            p = torch.ones(n, dtype=torch.bool, device=x[m].device)
        elif not isinstance(p, Tensor) or p.dtype != torch.bool or tuple(p.shape) != (n,):
            raise ValueError(f"present[{m!r}] must be a bool tensor of shape ({n},), got "
                             f"{getattr(p, 'dtype', type(p).__name__)} {tuple(getattr(p, 'shape', ()))}.")
        masks[m] = p
        if m in sequence:
            length = lengths.get(m)
            if length is None:
                length = torch.full((n,), n_times, dtype=torch.int64, device=x[m].device)
            elif (not isinstance(length, Tensor) or length.dtype != torch.int64
                  or tuple(length.shape) != (n,)):
                raise ValueError(f"lengths[{m!r}] must be an int64 tensor of shape ({n},).")
            elif length.numel() and (int(length.min()) < 0 or int(length.max()) > n_times):
                raise ValueError(f"lengths[{m!r}] must lie in [0, {n_times}] (the padded T).")
            lens[m] = length
    for m in used:
        check_present(m, x[m], masks[m], lens.get(m), min_length=0)
    return n, n_times, masks, lens


