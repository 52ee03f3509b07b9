"""Algorithm 1 on real two-view data (the pattern of MFH Tables 4 and 8, Section 5.4), with UCI
Multiple Features standing in for RAVDESS: a logistic-regression teacher on one view, a
logistic-regression student on another, all seeds batched.

Following the paper and its RAVDESS code, the teacher is the modality-a model of Algorithm 1's
step 1 (trained jointly with a modality-b model, Eq. (28)); the regular teacher uses all channels,
a modality-general (modality-specific) teacher has its r% lowest- (highest-) salience input
channels nullified, i.e. replaced by their training mean, during distillation, and a random
teacher nullifies r% random channels. The teacher is not retrained. Students learn from the teacher's soft labels only (rho = 0, Table 8).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from mmrepro.data import load_mfeat
from mmrepro.mfh.kd import fit, init_linear
from mmrepro.mfh.ranking import align_unimodal, nullify, permutation_salience, select_channels

__all__ = ["mfeat_views", "mfeat_ranking"]

MODES = {"general": "top", "random": "random", "specific": "bottom"}


def mfeat_views(seeds, teacher_view: str, student_view: str) -> dict[str, torch.Tensor]:
    """Stack the standardised train/test rows of two views over seeds (each seed its own split)."""
    if teacher_view == student_view:
        raise ValueError(f"teacher_view and student_view must differ, got {teacher_view!r} twice")
    out: dict[str, list] = {k: [] for k in ("xa", "xb", "y", "xa_test", "xb_test", "y_test")}
    for s in seeds:
        d = load_mfeat(int(s), views=(teacher_view, student_view))
        tr, te = d.splits["train"], d.splits["test"]
        for rows, suffix in ((tr, ""), (te, "_test")):
            out["xa" + suffix].append(d.x[teacher_view][rows])
            out["xb" + suffix].append(d.x[student_view][rows])
            out["y" + suffix].append(d.y["digit"][rows])
    return {k: torch.stack(v) for k, v in out.items()}


def mfeat_ranking(seeds, teacher_view: str = "pix", student_view: str = "fou", ratios=(0.25, 0.5, 0.75), *,
                  epochs: int = 500, lr: float = 0.1, align_epochs: int = 1000,
                  n_permutations: int = 100) -> tuple[pd.DataFrame, torch.Tensor]:
    """Student test accuracy (%) for the regular, modality-general, random and modality-specific
    teachers at each nullifying ratio r, plus the no-KD student; also each teacher's accuracy.
    Returns (table with one row per (teacher, r, seed), salience (S, d_a))."""
    ratios = [float(r) for r in ratios]
    if any(not 0 < r < 1 for r in ratios):
        raise ValueError(f"ratios must lie strictly between 0 and 1, got {ratios}")
    seeds = [int(s) for s in seeds]
    v = mfeat_views(seeds, teacher_view, student_view)
    S, _, d_a = v["xa"].shape
    K = 10
    keys = np.array([[s, 0] for s in seeds])
    teacher, fb = align_unimodal(v["xa"], v["xb"], v["y"], keys, K, epochs=align_epochs)
    sal = permutation_salience(teacher, v["xa"], fb.logits(v["xb"]), keys, n_permutations=n_permutations)
    fill = v["xa"].mean(1)

    names, keeps = ["regular"], [torch.ones(S, d_a, dtype=torch.bool)]
    for r in ratios:
        k = d_a - int(round(r * d_a))
        for name, mode in MODES.items():
            names.append(f"{name}@{r:g}")
            keeps.append(select_channels(sal, k, mode, keys=np.c_[keys, np.full(S, int(r * 100))]))
    T = len(names)
    keep = torch.cat(keeps)                                                     # (T*S, d_a)
    rep = lambda t: t.repeat(T, *([1] * (t.ndim - 1)))                           # noqa: E731
    tea = teacher[torch.arange(S).repeat(T)]
    soft = tea.probs(nullify(rep(v["xa"]), keep, rep(fill)))
    t_acc = tea.accuracy(nullify(rep(v["xa_test"]), keep, rep(fill)), rep(v["y_test"])).reshape(T, S)

    xb = v["xb"]
    soft = torch.cat([soft, torch.full_like(soft[:S], 1.0 / K)])
    ce_w = torch.tensor([0.0] * (T * S) + [1.0] * S)                          # rho = 0; no-KD: labels only
    kd_w = torch.tensor([1.0] * (T * S) + [0.0] * S)
    role = np.repeat(np.arange(T + 1), S)
    init = init_linear(np.c_[np.tile(keys, (T + 1, 1)), 10 + role], xb.shape[2], K)
    student = fit(xb, v["y"].repeat(T + 1, 1), init, epochs=epochs, lr=lr, ce_weight=ce_w, kd_weight=kd_w,
                  teacher_probs=soft, index=torch.arange(S).repeat(T + 1))
    s_acc = student.accuracy(v["xb_test"].repeat(T + 1, 1, 1), v["y_test"].repeat(T + 1, 1)).reshape(T + 1, S)

    rows = []
    for i, name in enumerate(names + ["no_kd"]):
        kind, _, r = name.partition("@")
        for j, s in enumerate(seeds):
            rows.append(dict(teacher=kind, r=float(r) if r else 0.0, seed=s,
                             teacher_acc=float(t_acc[i, j]) * 100 if i < T else float("nan"),
                             student_acc=float(s_acc[i, j]) * 100))
    return pd.DataFrame(rows), sal
