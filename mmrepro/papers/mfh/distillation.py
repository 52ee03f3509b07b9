"""The synthetic-Gaussian experiments of the MFH paper (Section 4.2 Figs. 2-3, Section 5.2 Table 2),
every run of a sweep trained in one batched optimisation (see ``mmrepro.papers.mfh.kd``)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from mmrepro.papers.mfh.generator import MVDBatch
from mmrepro.papers.mfh.kd import fit_linear, fit_one, init_linear

__all__ = ["distill", "distill_loop", "summarise_distillation"]

_TEACHER, _STUDENT, _NO_KD = 100, 200, 300


def _keys(batch: MVDBatch, role: int) -> np.ndarray:
    return np.stack([batch.seed.numpy(), batch.setting.numpy(), np.full(batch.n_runs, role)], 1)


def _shared_inputs(x: Tensor, seed: Tensor) -> tuple[Tensor, Tensor]:
    """Distinct inputs and, per run, the row holding its input: runs of one seed whose inputs are
    identical (modality b in the Figure 2 and 3 designs) share one row, so that ``fit_linear`` reads it once."""
    first = {}
    for r, s in enumerate(seed.tolist()):
        first.setdefault(s, r)
    rep = torch.tensor([first[s] for s in seed.tolist()])
    if all(torch.equal(x[r], x[rep[r]]) for r in range(len(seed))):
        rows, index = torch.unique(rep, return_inverse=True)
        return x[rows], index
    return x, torch.arange(len(seed))


def distill(batch: MVDBatch, teachers: dict[str, Tensor] | None = None, *, epochs: int = 1000,
            lr: float = 0.1, ce_weight: float = 1.0, kd_weight: float = 1.0,
            student_split: str = "train", dtype: torch.dtype = torch.float32) -> dict[str, Tensor]:
    """Train teachers on modality a, then a no-KD student and one KD student per teacher on
    modality b; return test accuracies, each (R,) float64: ``teacher_<name>``, ``kd_<name>``, ``no_kd``.

    ``teachers`` maps a name to a (R, d_a) boolean mask of the channels that teacher may use; the
    other channels are dropped (set to zero, and the initialisation uses the kept width as fan-in,
    which is exactly training on the kept columns only). Default: one ``regular`` teacher with all
    channels. Teachers learn from ``batch.train``; students from ``batch.train`` or, for the Table 2
    design, from the independent ``batch.student`` set (``student_split="student"``).
    """
    d_a = batch.train.xa.shape[2]
    R = batch.n_runs
    if teachers is None:
        teachers = {"regular": torch.ones(R, d_a, dtype=torch.bool)}
    for name, m in teachers.items():
        if m.shape != (R, d_a) or m.dtype != torch.bool or not bool(m.any(1).all()):
            raise ValueError(f"teacher mask {name!r} must be a (runs={R}, d_a={d_a}) bool tensor keeping >= 1 channel per run")
    if student_split not in ("train", "student") or getattr(batch, student_split) is None:
        raise ValueError(f"student_split must be 'train' or 'student' (the batch has student={batch.student is not None})")
    names = list(teachers)
    masks = torch.cat([teachers[k] for k in names])                              # (T*R, d_a)
    T = len(names)
    rep = lambda t: t.repeat(T, *([1] * (t.ndim - 1)))                            # noqa: E731
    keys_t = np.concatenate([_keys(batch, _TEACHER + i) for i in range(T)])
    init = init_linear(keys_t, d_a, 2, fan_in=masks.sum(1).numpy(), dtype=dtype)
    xa_fit = rep(batch.train.xa) * masks[:, None, :]
    teacher = fit_linear(xa_fit, rep(batch.train.y), init, epochs=epochs, lr=lr)
    out = {}
    acc_t = teacher.accuracy(rep(batch.test.xa) * masks[:, None, :], rep(batch.test.y)).reshape(T, R)
    for i, name in enumerate(names):
        out[f"teacher_{name}"] = acc_t[i]

    split = getattr(batch, student_split)
    soft = teacher.probs(rep(split.xa) * masks[:, None, :])                       # (T*R, n, 2)
    soft = torch.cat([soft, torch.full_like(soft[:R], 0.5)])
    kd_w = torch.tensor([kd_weight] * (T * R) + [0.0] * R)
    ce_w = torch.tensor([ce_weight] * (T * R) + [1.0] * R)   # the no-KD student learns from labels
    keys_s = np.concatenate([_keys(batch, _STUDENT + i) for i in range(T)] + [_keys(batch, _NO_KD)])
    xb, index = _shared_inputs(split.xb, batch.seed)
    student = fit_linear(xb, split.y.repeat(T + 1, 1), init_linear(keys_s, xb.shape[2], 2, dtype=dtype), epochs=epochs,
                  lr=lr, ce_weight=ce_w, kd_weight=kd_w, teacher_probs=soft, index=index.repeat(T + 1))
    acc_s = student.accuracy(batch.test.xb.repeat(T + 1, 1, 1), batch.test.y.repeat(T + 1, 1))
    acc_s = acc_s.reshape(T + 1, R)
    for i, name in enumerate(names):
        out[f"kd_{name}"] = acc_s[i]
    out["no_kd"] = acc_s[T]
    return out


def distill_loop(batch: MVDBatch, *, epochs: int = 1000, lr: float = 0.1, ce_weight: float = 1.0,
                 kd_weight: float = 1.0, dtype: torch.dtype = torch.float32) -> dict[str, Tensor]:
    """The plain per-run loop of the reference code (one ``nn.Linear`` per model, autograd,
    ``torch.optim.SGD``), for the regular teacher only: the baseline that ``distill`` is tested and
    benchmarked against. Same initialisations as ``distill``, so the results agree up to rounding."""
    R = batch.n_runs
    d_a, d_b = batch.train.xa.shape[2], batch.train.xb.shape[2]
    t0 = init_linear(_keys(batch, _TEACHER), d_a, 2, dtype=dtype)
    s0 = init_linear(_keys(batch, _STUDENT), d_b, 2, dtype=dtype)
    n0 = init_linear(_keys(batch, _NO_KD), d_b, 2, dtype=dtype)
    out = {k: torch.empty(R, dtype=torch.float64) for k in ("teacher_regular", "kd_regular", "no_kd")}
    tr, te = batch.train, batch.test
    acc = lambda m, x, y: float((m(x.to(dtype)).argmax(1) == y).double().mean())  # noqa: E731
    for r in range(R):
        teacher = fit_one(tr.xa[r], tr.y[r], t0.weight[r], t0.bias[r], epochs=epochs, lr=lr)
        with torch.no_grad():
            soft = torch.softmax(teacher(tr.xa[r].to(dtype)), dim=1)
        kd = fit_one(tr.xb[r], tr.y[r], s0.weight[r], s0.bias[r], epochs=epochs, lr=lr,
                     ce_weight=ce_weight, kd_weight=kd_weight, teacher_probs=soft)
        plain = fit_one(tr.xb[r], tr.y[r], n0.weight[r], n0.bias[r], epochs=epochs, lr=lr)
        with torch.no_grad():
            out["teacher_regular"][r] = acc(teacher, te.xa[r], te.y[r])
            out["kd_regular"][r] = acc(kd, te.xb[r], te.y[r])
            out["no_kd"][r] = acc(plain, te.xb[r], te.y[r])
    return out


def summarise_distillation(batch: MVDBatch, results: dict[str, Tensor], percent: bool = True) -> pd.DataFrame:
    """Mean and standard deviation (over seeds, ddof=0 as in the reference) per setting."""
    scale = 100.0 if percent else 1.0
    rows = []
    for k, setting in enumerate(batch.settings):
        row = {key: v for key, v in setting.items()}
        for name, acc in results.items():
            a = batch.by_setting(acc)[k].double() * scale
            row[f"{name}_mean"] = float(a.mean())
            row[f"{name}_std"] = float(a.std(unbiased=False))
        rows.append(row)
    return pd.DataFrame(rows)
