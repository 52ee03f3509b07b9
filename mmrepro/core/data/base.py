"""The one dataset shape every chapter consumes.

A :class:`MultimodalDataset` holds one tensor per modality, a presence mask per
modality and row (absent rows of ``x`` are NaN, never silent zeros), one or
more targets with their task type, fixed disjoint splits and metadata.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

import torch
from torch import Tensor

from mmrepro.common.checks import TASK_KINDS

TaskKind = Literal["binary", "multiclass", "multilabel", "regression"]


@dataclass
class Task:
    """A prediction target: its kind, number of outputs and class names."""

    name: str
    kind: TaskKind
    n_outputs: int
    class_names: list[str] | None = None

    def __post_init__(self) -> None:
        if self.kind not in TASK_KINDS:
            raise ValueError(f"task {self.name!r}: kind {self.kind!r} is not one of {TASK_KINDS}")
        if self.kind in ("binary", "regression") and self.n_outputs != 1:
            raise ValueError(f"task {self.name!r}: a {self.kind} task has n_outputs=1, got {self.n_outputs}")

    def check_targets(self, y: Tensor, name: str = "y") -> None:
        """TypeError / ValueError (naming ``name``) unless ``y`` follows the convention for this task:
        binary float (N,) in {0, 1}, multilabel float (N, L) in {0, 1}, regression float (N,) finite,
        multiclass int64 (N,) in [0, n_outputs); unknown targets are NaN (float) or -1 (int64)."""
        if not isinstance(y, Tensor):
            raise TypeError(f"{name} must be a tensor, got {type(y).__name__}")
        shape = (y.shape[0], self.n_outputs) if self.kind == "multilabel" else (y.shape[0],) if y.dim() else ()
        if tuple(y.shape) != shape:
            want = "(N, L)" if self.kind == "multilabel" else "(N,)"
            raise ValueError(f"{name} has shape {tuple(y.shape)}; a {self.kind} task with {self.n_outputs} output(s) "
                             f"needs {want} = {shape}")
        if self.kind == "multiclass":
            if y.dtype != torch.int64:
                raise TypeError(f"{name} is {y.dtype}; a multiclass task needs int64 class indices (-1 = unknown): "
                                "use y.long()")
            bad = (y < -1) | (y >= self.n_outputs)
            accepted = f"0 .. {self.n_outputs - 1} and -1 (unknown)"
        else:
            if not torch.is_floating_point(y):
                raise TypeError(f"{name} is {y.dtype}; a {self.kind} task needs float targets (NaN = unknown): "
                                "use y.float()")
            known = ~torch.isnan(y)
            if self.kind == "regression":
                bad, accepted = known & ~torch.isfinite(y), "finite numbers and NaN (unknown)"
            else:
                bad, accepted = known & (y != 0) & (y != 1), "0, 1 and NaN (unknown)"
        if bool(bad.any()):
            values = torch.unique(y[bad])[:5].tolist()
            raise ValueError(f"{name} holds {values} for the {self.kind} task {self.name!r}; accepted: {accepted}")


@dataclass
class MultimodalDataset:
    """Modalities, presence masks, targets, splits and metadata, row-aligned.

    ``x[m]`` is a float tensor (N, ...); sequences are padded (N, T, F) with
    ``lengths[m]`` (N,) int64. ``present[m]`` (N,) bool is authoritative.
    Targets: binary float {0,1}, multiclass int64, multilabel float (N, L),
    regression float; unknown targets are NaN (float) or -1 (int64).
    Per-row metadata tensors are listed by name in ``meta["row_meta"]`` and
    follow ``subset``/``split``.
    """

    name: str
    x: dict[str, Tensor]
    lengths: dict[str, Tensor]
    present: dict[str, Tensor]
    y: dict[str, Tensor]
    tasks: dict[str, Task]
    splits: dict[str, Tensor]
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    @property
    def n(self) -> int:
        """Number of rows."""
        return next(iter(self.present.values())).shape[0]

    @property
    def modalities(self) -> list[str]:
        """Modality names in a fixed order."""
        return list(self.x)

    def __len__(self) -> int:
        return self.n

    def validate(self) -> None:
        """Check alignment and the conventions; raise ValueError naming the offending entry."""
        if set(self.x) != set(self.present):
            raise ValueError(f"{self.name}: x has modalities {sorted(self.x)} but present has {sorted(self.present)}")
        if set(self.y) != set(self.tasks):
            raise ValueError(f"{self.name}: y has targets {sorted(self.y)} but tasks has {sorted(self.tasks)}")
        if not self.present:
            raise ValueError(f"{self.name}: a dataset needs at least one modality")
        n = next(iter(self.present.values())).shape[0]
        for m, p in self.present.items():
            if p.dtype != torch.bool or p.shape != (n,):
                raise ValueError(f"{self.name}: present[{m!r}] must be bool of shape ({n},), got {p.dtype} {tuple(p.shape)}")
            if self.x[m].shape[0] != n:
                raise ValueError(f"{self.name}: x[{m!r}] has {self.x[m].shape[0]} rows, expected {n}")
        for m, ln in self.lengths.items():
            if m not in self.x or ln.shape != (n,) or ln.dtype != torch.int64:
                raise ValueError(f"{self.name}: lengths[{m!r}] must be int64 ({n},) for a modality in x")
        for t, v in self.y.items():
            if v.shape[0] != n:
                raise ValueError(f"{self.name}: y[{t!r}] has {v.shape[0]} rows, expected {n}")
        for s, idx in self.splits.items():
            if idx.dtype != torch.int64 or idx.ndim != 1:
                raise ValueError(f"{self.name}: splits[{s!r}] must be a 1-D int64 index tensor")

    def _take(self, idx: Tensor) -> MultimodalDataset:
        sel = lambda d: {k: v[idx.to(v.device)] for k, v in d.items()}  # noqa: E731
        meta = dict(self.meta)
        meta.update(sel({k: self.meta[k] for k in self.meta.get("row_meta", [])}))
        return replace(
            self, x=sel(self.x), lengths=sel(self.lengths), present=sel(self.present), y=sel(self.y),
            splits={}, meta=meta,
        )

    def subset(self, idx_or_split: Tensor | str | list[int]) -> MultimodalDataset:
        """Rows ``idx_or_split`` (an index tensor/list, a bool mask or a split name), all aligned.

        The result has no splits of its own (row numbers changed), except that
        selecting a whole split keeps the name: ``ds.split("train").splits == {"train": arange(n)}``.
        """
        if isinstance(idx_or_split, str):
            return self.split(idx_or_split)
        idx = torch.as_tensor(idx_or_split)
        if idx.dtype == torch.bool:
            if idx.shape != (self.n,):
                raise ValueError(f"{self.name}: a boolean row mask needs shape ({self.n},), got {tuple(idx.shape)}")
            idx = idx.nonzero().flatten()
        if idx.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"{self.name}: subset needs integer indices, a bool mask or a split name, got {idx.dtype}")
        return self._take(idx.long().cpu())

    def split(self, name: str) -> MultimodalDataset:
        """The rows of split ``name`` ("train", "val" or "test")."""
        if name not in self.splits:
            raise ValueError(f"{self.name}: unknown split {name!r}; valid: {sorted(self.splits)}")
        out = self._take(self.splits[name].cpu())
        out.splits = {name: torch.arange(out.n)}
        return out

    def to(self, device: torch.device | str) -> MultimodalDataset:
        """A copy with every tensor on ``device`` (splits stay on the CPU as indices)."""
        mv = lambda d: {k: v.to(device) for k, v in d.items()}  # noqa: E731
        return replace(self, x=mv(self.x), lengths=mv(self.lengths), present=mv(self.present), y=mv(self.y))

    def __repr__(self) -> str:
        mods = ", ".join(f"{m}{tuple(v.shape[1:])}:{int(self.present[m].sum())}" for m, v in self.x.items())
        spl = ", ".join(f"{s}={len(i)}" for s, i in self.splits.items())
        return f"MultimodalDataset({self.name!r}, n={self.n}, x=[{mods}], tasks={list(self.tasks)}, splits=[{spl}])"
