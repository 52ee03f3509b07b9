"""Rows of K stacked runs that train on different data (MultiModN chapter: the folds of repeated K-fold
cross-validation, missingness patterns), for :func:`mmrepro.papers.multimodn.batched.fit_many_multimodn`.

Each run keeps its own rows, its own batches (drawn from its own generator, as
:func:`mmrepro.papers.multimodn.fit_multimodn` draws them) and its own dropout stream. Runs whose row
counts differ still step together: a batch is (K, B) rows, run k's real rows first and padding rows
after (absent in every modality, every target unknown: they add nothing to any loss), and a run that has
no batch left at a step sits it out (its parameters and optimiser state are frozen for that step).
:meth:`RunDraws.dropout` draws run k's mask for its real rows only, so that what a run draws does not
depend on the runs it is trained with.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmrepro.core.models.stacked import RunStreams, chain_ops, run_dropout

Fields = tuple[dict[str, Tensor], dict[str, Tensor], dict[str, Tensor], dict[str, Tensor]]
Dropout = Callable[[Tensor, float], Tensor]

__all__ = ["RowTable", "RunDraws", "chain"]


def _pad_like(v: Tensor) -> Tensor:
    """One padding row for a field shaped like ``v`` (N, ...): NaN for floats, -1 (unknown class) for
    integer targets, False for presence masks, 0 for lengths (callers pass the right ``v``)."""
    shape = (1, *v.shape[1:])
    if v.dtype == torch.bool:
        return torch.zeros(shape, dtype=torch.bool, device=v.device)
    if torch.is_floating_point(v):
        return torch.full(shape, float("nan"), dtype=v.dtype, device=v.device)
    return torch.full(shape, -1, dtype=v.dtype, device=v.device)


class RowTable:
    """The rows of K runs, one after another, and one padding row at the end; :meth:`gather` takes (K, B)
    row indices (:attr:`pad` for padding) and returns each field with the run axis first."""

    def __init__(self, fields: Sequence[Fields]) -> None:
        if not fields:
            raise ValueError("RowTable needs the rows of at least one run")
        fields = [(x, {m: present.get(m, torch.ones(v.shape[0], dtype=torch.bool, device=v.device)) for m, v in x.items()},
                   lengths, y) for x, present, lengths, y in fields]  # padding rows must be marked absent
        keys = [tuple(sorted(d)) for d in fields[0]]
        if any(tuple(sorted(d)) != k for f in fields for d, k in zip(f, keys)):
            raise ValueError("every run's data must have the same modalities and targets")
        self.counts = [int(next(iter(f[0].values())).shape[0]) for f in fields]
        self.starts = [sum(self.counts[:k]) for k in range(len(fields))]
        self.pad = sum(self.counts)
        self.fields: list[dict[str, Tensor]] = []
        for i, name in enumerate(("x", "present", "lengths", "y")):
            joined = {}
            for key in fields[0][i]:
                parts = [f[i][key] for f in fields]
                if any(p.shape[1:] != parts[0].shape[1:] for p in parts):
                    raise ValueError(f"the runs' {name}[{key!r}] differ in shape beyond the rows: "
                                     f"{sorted({tuple(p.shape[1:]) for p in parts})}")
                pad = torch.zeros_like(parts[0][:1]) if name == "lengths" else _pad_like(parts[0])
                joined[key] = torch.cat([*parts, pad])
            self.fields.append(joined)

    def gather(self, idx: Tensor) -> Fields:
        """(x, present, lengths, y) at the (K, B) row indices ``idx``."""
        return tuple({k: v[idx] for k, v in d.items()} for d in self.fields)  # type: ignore[return-value]

    def indices(self, orders: Sequence[Tensor], width: int) -> Tensor:
        """(K, width) indices into the table: run k's rows in ``orders[k]`` (positions within its own rows)
        first, padding after."""
        idx = torch.full((len(orders), width), self.pad, dtype=torch.int64)
        for k, order in enumerate(orders):
            idx[k, :len(order)] = self.starts[k] + order
        return idx


class RunDraws:
    """Each run's own dropout stream (:class:`~mmrepro.core.models.stacked.RunStreams`) and the number of
    real rows of its current batch (``rows``; padding rows after them draw nothing)."""

    def __init__(self, seeds: Sequence[int], device: torch.device) -> None:
        self.gens = RunStreams(seeds, device).dropout_gens
        self.rows: list[int] | None = None

    def dropout(self, x: Tensor, p: float, training: bool, runs: Sequence[bool] | None = None) -> Tensor:
        """Dropout of x (K, B, ...): run k (every run, or those where ``runs[k]``) draws the mask of its
        ``rows[k]`` real rows from its own stream (the numbers ``torch.rand`` of that shape would give);
        as ``F.dropout``, a unit is zeroed with probability p and survivors are multiplied by the mask
        divided by (1 - p). Rows that draw nothing (padding rows, runs that sit the step out) are kept and
        scaled alike; nothing reads them."""
        if not training or p == 0:
            return x
        rows = self.rows if self.rows is not None else [x.shape[1]] * x.shape[0]
        draws = torch.ones(x.shape, dtype=x.dtype, device=x.device)
        for k, g in enumerate(self.gens):
            if (runs is None or runs[k]) and rows[k]:
                draws[k, :rows[k]].uniform_(generator=g)  # a contiguous block: filled as torch.rand fills
        return x * draws.ge_(p).div_(1 - p)


def chain(owner: nn.Module, template: nn.Sequential, h: Tensor, training: bool, dropout: Dropout,
          stacked: bool) -> Tensor:
    """A Linear / ReLU / Dropout chain (:func:`~mmrepro.core.models.stacked.chain_ops`) with ``owner``'s
    weights -- K stacked runs' (their batched product) or one model's (``F.linear``) -- its dropout
    layers through ``dropout(h, p)``."""
    ops = chain_ops(owner, template, training) if stacked else chain_ops(owner, template, training, F.linear)
    for fn, *args in ops:
        h = dropout(h, args[0]) if fn is run_dropout else fn(h, *args)
    return h


def plain_dropout(training: bool) -> Dropout:
    """``F.dropout`` with torch's global stream (one model trained alone)."""
    return lambda h, p: F.dropout(h, p, training)


def as_runs(data: Any, k: int, what: str) -> list[Any]:
    """``data`` for each of ``k`` runs: one data object shared by all, or a list or tuple of one per run."""
    if isinstance(data, (list, tuple)):
        if len(data) != k:
            raise ValueError(f"{what}: {len(data)} data objects for {k} runs; pass one, or one per run")
        return list(data)
    return [data] * k

