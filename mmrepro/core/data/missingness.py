"""Missing-modality simulators: MCAR, MAR and MNAR (MultiModN Sec. 6.4 / App. E.3).

Each returns a new dataset in which the chosen rows of one modality are
absent (``present`` False, values NaN, sequence length 0); the input dataset
and its arrays are left untouched. Row choice is deterministic for a seed.
``rows`` restricts a simulator to some rows (an index tensor or a split name);
the fraction counts among those (eligible) rows, whether or not they were
already missing.
"""
from __future__ import annotations

from dataclasses import replace

import torch
from torch import Tensor

from mmrepro.common.checks import check_number, check_seed
from mmrepro.core.data.base import MultimodalDataset


def _rows(ds: MultimodalDataset, rows: Tensor | str | None) -> Tensor:
    if rows is None:
        return torch.arange(ds.n)
    if isinstance(rows, str):
        if rows not in ds.splits:
            raise ValueError(f"unknown split {rows!r}; valid: {sorted(ds.splits)}")
        return ds.splits[rows]
    return torch.as_tensor(rows, dtype=torch.long)


def _check(ds: MultimodalDataset, modality: str, rate: float, seed: int) -> None:
    if modality not in ds.x:
        raise ValueError(f"unknown modality {modality!r}; valid: {ds.modalities}")
    check_number("rate", rate, 0, 1)
    check_seed(seed)


def drop_modality(ds: MultimodalDataset, modality: str, rows: Tensor, record: dict | None = None) -> MultimodalDataset:
    """A copy of ``ds`` with ``modality`` absent in ``rows`` (only that modality's arrays are copied)."""
    mask = torch.zeros(ds.n, dtype=torch.bool)
    mask[rows] = True
    dev = ds.x[modality].device
    x = ds.x[modality].clone()
    x[mask.to(dev)] = float("nan")
    present = dict(ds.present, **{modality: ds.present[modality] & ~mask.to(ds.present[modality].device)})
    lengths = dict(ds.lengths)
    if modality in lengths:
        lengths[modality] = lengths[modality].masked_fill(mask.to(lengths[modality].device), 0)
    meta = dict(ds.meta, missingness=[*ds.meta.get("missingness", []), record or {}])
    return replace(ds, x=dict(ds.x, **{modality: x}), present=present, lengths=lengths, meta=meta)


def mcar(ds: MultimodalDataset, modality: str, rate: float, seed: int = 0,
         rows: Tensor | str | None = None) -> MultimodalDataset:
    """Missing completely at random: ``round(rate * n)`` eligible rows drawn uniformly lose ``modality``."""
    _check(ds, modality, rate, seed)
    el = _rows(ds, rows)
    gen = torch.Generator().manual_seed(seed)
    pick = el[torch.randperm(len(el), generator=gen)[: round(rate * len(el))]]
    return drop_modality(ds, modality, pick, {"kind": "MCAR", "modality": modality, "rate": rate, "seed": seed})


def mar(ds: MultimodalDataset, modality: str, rate: float, seed: int = 0, driver: tuple[str, int] | None = None,
        strength: float = 2.0, rows: Tensor | str | None = None) -> MultimodalDataset:
    """Missing at random: ``round(rate * n)`` eligible rows lose ``modality``, drawn without replacement with
    weights ``exp(strength * z)``, z the standardised value of an observed feature ``driver = (modality, index)``
    (flattened feature index; default: feature 0 of the first other modality present in every eligible row).
    Missingness then depends only on observed data, not on the target."""
    _check(ds, modality, rate, seed)
    el = _rows(ds, rows)
    if driver is None:
        full = [m for m in ds.modalities if m != modality and bool(ds.present[m][el].all())]
        if not full:
            raise ValueError("mar needs a driver modality observed in every eligible row; pass driver=(modality, index)")
        driver = (full[0], 0)
    dm, j = driver
    if dm == modality or dm not in ds.x or not bool(ds.present[dm][el].all()):
        raise ValueError(f"driver {driver!r} must name another modality observed in every eligible row")
    v = ds.x[dm][el].flatten(1)[:, j].double().cpu()
    if torch.isnan(v).any():
        raise ValueError(f"driver {driver!r} has NaN values in eligible rows; choose a complete feature")
    z = (v - v.mean()) / v.std().clamp_min(1e-12)
    gen = torch.Generator().manual_seed(seed)
    k = round(rate * len(el))
    pick = el[torch.multinomial(torch.exp(strength * (z - z.max())), k, replacement=False, generator=gen)] if k else el[:0]
    return drop_modality(ds, modality, pick, {"kind": "MAR", "modality": modality, "rate": rate, "seed": seed,
                                              "driver": list(driver), "strength": strength})


def mnar(ds: MultimodalDataset, modality: str, rate: float, task: str, cls: int = 1, seed: int = 0,
         rows: Tensor | str | None = None, order: str = "random") -> MultimodalDataset:
    """Missing not at random (MultiModN Sec. 6.4): ``rate`` of the eligible rows whose ``task`` label is ``cls``
    lose ``modality``; other classes keep it. ``order="first"`` takes the first such rows in data order (as
    the MultiModN reference code does), ``"random"`` draws them with the seed."""
    _check(ds, modality, rate, seed)
    if task not in ds.y:
        raise ValueError(f"unknown task {task!r}; valid: {sorted(ds.y)}")
    if ds.tasks[task].kind not in ("binary", "multiclass"):
        raise ValueError(f"mnar needs a binary or multiclass task, {task!r} is {ds.tasks[task].kind}")
    if order not in ("random", "first"):
        raise ValueError(f"unknown order={order!r}; valid: ('random', 'first')")
    el = _rows(ds, rows)
    el = el[(ds.y[task][el].cpu() == cls)]
    k = round(rate * len(el))
    if order == "random":
        el = el[torch.randperm(len(el), generator=torch.Generator().manual_seed(seed))]
    else:
        el = torch.sort(el).values
    return drop_modality(ds, modality, el[:k], {"kind": "MNAR", "modality": modality, "rate": rate, "seed": seed,
                                                "task": task, "class": cls, "order": order})


def mnar_flip(ds: MultimodalDataset, modality: str, rate: float, task: str, cls: int = 1, seed: int = 0,
              test: str = "flip", order: str = "random") -> MultimodalDataset:
    """MultiModN's experiment 4 pattern on a binary task: train and validation rows of class ``cls`` lose
    ``modality`` at ``rate``; the test split gets the label-flipped pattern (class ``1 - cls`` at the same rate)
    with ``test="flip"``, or keeps every modality with ``test="none"``."""
    if ds.tasks.get(task) is None or ds.tasks[task].kind != "binary":
        raise ValueError(f"mnar_flip needs a binary task; {task!r} is not one in {sorted(ds.tasks)}")
    if cls not in (0, 1) or test not in ("flip", "none"):
        raise ValueError(f"need cls in (0, 1) and test in ('flip', 'none'); got cls={cls}, test={test!r}")
    out = ds
    for split in ("train", "val"):
        if split in ds.splits:
            out = mnar(out, modality, rate, task, cls, seed, rows=split, order=order)
    if test == "flip":
        out = mnar(out, modality, rate, task, 1 - cls, seed + 1, rows="test", order=order)
    return out
