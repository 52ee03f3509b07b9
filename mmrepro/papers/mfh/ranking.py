"""Algorithm 1 of the MFH paper (Appendix B.4): permutation-based ranking of modality-general
decisive feature channels, batched over runs, and the teachers derived from it (Section 5.4).

Step 1 (Eq. (28)) jointly trains two linear unimodal models with
``CE(y, f_a(X^a)) + CE(y, f_b(X^b)) + MSE(f_a(X^a), f_b(X^b))`` on logits (SGD, lr 0.01,
momentum 0.9, full batch, as in the reference). Steps 2-8 permute one column of X^a at a time,
M times, and average the MSE between the permuted teacher logits and the fixed student logits.
Step 9 divides by the largest salience (the paper; the reference rescales min-max instead, which
gives the same ranking).

Correlated channels. The paper and its reference code permute one channel at a time (the
reference ranks the 128 penultimate-layer features of its RAVDESS networks). When a feature is
spread over several strongly correlated channels, a model splits its weight among them and
shuffling any one of them moves the output little, so each copy looks less salient than a
single uncorrelated channel of smaller importance. ``permutation_salience(..., groups=...)``
shuffles each group of channels with one shared permutation (grouped permutation importance) and
gives every channel its group's salience; :func:`correlation_groups` forms the groups by
hierarchical clustering of the channels' absolute correlations on the training rows. With
uncorrelated channels every group is a single channel and the procedure is Algorithm 1 exactly.

Because f_a is linear, permuting column i changes the logits by ``(x_perm,i - x_i) w_i^T``; the MSE
for every channel and permutation is therefore evaluated in closed form from that rank-one
change, for all channels, permutations and runs at once, without re-running the model.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from mmrepro.papers.mfh.kd import LinearBatch, init_linear, run_generator

__all__ = ["align_unimodal", "permutation_salience", "salience_permutations", "correlation_groups", "precision_at_k",
           "select_channels", "nullify"]


def align_unimodal(xa: Tensor, xb: Tensor, y: Tensor, keys, n_classes: int = 2, *, epochs: int = 1000,
                   lr: float = 0.01, momentum: float = 0.9,
                   dtype: torch.dtype = torch.float32) -> tuple[LinearBatch, LinearBatch]:
    """Algorithm 1 step 1, Eq. (28), for R runs: xa (R, n, d_a), xb (R, n, d_b), y (R, n)."""
    if xa.ndim != 3 or xb.ndim != 3 or xa.shape[:2] != xb.shape[:2] or y.shape != xa.shape[:2]:
        raise ValueError(f"xa (R, n, d_a), xb (R, n, d_b) and y (R, n) must agree, got "
                         f"{tuple(xa.shape)}, {tuple(xb.shape)}, {tuple(y.shape)}")
    keys = np.atleast_2d(np.asarray(keys, dtype=np.int64))
    a = init_linear(np.concatenate([keys, np.full((len(keys), 1), 1)], 1), xa.shape[2], n_classes, dtype=dtype)
    b = init_linear(np.concatenate([keys, np.full((len(keys), 1), 2)], 1), xb.shape[2], n_classes, dtype=dtype)
    params = [t.requires_grad_() for t in (a.weight, a.bias, b.weight, b.bias)]
    opt = torch.optim.SGD(params, lr=lr, momentum=momentum)
    xa, xb = xa.to(dtype), xb.to(dtype)
    n = xa.shape[1]
    yf = y.reshape(-1)
    for _ in range(int(epochs)):
        la, lb = a.logits(xa), b.logits(xb)
        ce = (torch.nn.functional.cross_entropy(la.reshape(-1, n_classes), yf, reduction="sum")
              + torch.nn.functional.cross_entropy(lb.reshape(-1, n_classes), yf, reduction="sum")) / n
        mse = ((la - lb) ** 2).mean(dim=(1, 2)).sum()      # per-run means, summed: per-run gradients
        opt.zero_grad()
        (ce + mse).backward()
        opt.step()
    detach = lambda m: LinearBatch(m.weight.detach(), m.bias.detach())  # noqa: E731
    return detach(a), detach(b)


def permutation_salience(model_a: LinearBatch, xa: Tensor, logits_b: Tensor, keys, *,
                         n_permutations: int = 100, chunk: int = 10, groups: Tensor | None = None) -> Tensor:
    """Algorithm 1 steps 2-9: salience (R, d_a) in [0, 1], larger = more modality-general decisive.

    ``logits_b`` (R, n, K) are the fixed outputs of the aligned modality-b model; ``keys`` (R, k)
    seed each run's permutations. Permutations are drawn per run and repetition and shared by the
    channels of that repetition (each channel still sees M independent permutations). ``groups``
    (R, d_a) int labels 0..G-1: channels with one label are shuffled together and share their
    salience (see the module docstring); default: every channel alone, as in the paper.
    """
    R, n, d = xa.shape
    if n_permutations < 1 or int(n_permutations) != n_permutations:
        raise ValueError(f"n_permutations must be a positive integer, got {n_permutations}")
    if logits_b.shape[:2] != (R, n):
        raise ValueError(f"logits_b must have shape ({R}, {n}, K), got {tuple(logits_b.shape)}")
    xa = xa.to(model_a.weight.dtype)
    err = model_a.logits(xa) - logits_b.to(xa.dtype)                  # (R, n, K)
    K = err.shape[2]
    base = (err ** 2).mean(dim=(1, 2))                                 # (R,)
    perms = salience_permutations(keys, n_permutations, n)             # (R, M, n)
    if groups is not None:
        member = _membership(groups, R, d).to(xa.dtype)               # (R, d, G)
        G = member.shape[2]
        chunk = max(1, min(chunk, int(2e7 // max(R * n * G * K, 1))))
    else:
        cross = torch.einsum("rnk,rdk->rnd", err, model_a.weight)      # (R, n, d): <e_n, w_i>
        wnorm = (model_a.weight ** 2).sum(-1)                          # (R, d)
    total = torch.zeros(R, d if groups is None else G, dtype=xa.dtype)
    for start in range(0, n_permutations, chunk):
        p = perms[:, start:start + chunk]                              # (R, m, n)
        xp = torch.gather(xa[:, None].expand(-1, p.shape[1], -1, -1), 2,
                          p[..., None].expand(-1, -1, -1, d))          # (R, m, n, d)
        delta = xp - xa[:, None]
        if groups is None:
            # MSE(err + delta_i w_i^T) = base + 2 <delta_i, e w_i>/(nK) + |delta_i|^2 |w_i|^2/(nK)
            total += (2 * torch.einsum("rmnd,rnd->rd", delta, cross)
                      + (delta ** 2).sum(2).sum(1) * wnorm) / (n * K) + base[:, None] * p.shape[1]
        else:
            # a group g shuffled together moves the logits by sum_{i in g} delta_i w_i^T
            shift = torch.einsum("rmnd,rdk,rdg->rmngk", delta, model_a.weight, member)
            total += ((err[:, None, :, None, :] + shift) ** 2).mean(dim=(2, 4)).sum(1)
    p = total / n_permutations
    if groups is not None:
        p = torch.einsum("rg,rdg->rd", p, member)                      # every channel gets its group's value
    return p / p.max(dim=1, keepdim=True).values


def salience_permutations(keys, n_permutations: int, n: int) -> Tensor:
    """The ``n_permutations`` permutations of the ``n`` rows that :func:`permutation_salience` applies to
    every channel of each run, (R, M, n), seeded by ``keys`` (R, k)."""
    keys = np.atleast_2d(np.asarray(keys, dtype=np.int64))
    return torch.stack([torch.argsort(torch.rand(n_permutations, n, generator=run_generator(*k, 3)), dim=1)
                        for k in keys])


def _membership(groups: Tensor, runs: int, d: int) -> Tensor:
    groups = torch.as_tensor(groups)
    if groups.shape != (runs, d) or groups.dtype not in (torch.int32, torch.int64) or bool((groups < 0).any()):
        raise ValueError(f"groups must be non-negative integer labels of shape ({runs}, {d}), "
                         f"got {groups.dtype} {tuple(groups.shape)}")
    return torch.nn.functional.one_hot(groups.long(), int(groups.max()) + 1)


def correlation_groups(x: Tensor, threshold: float = 0.5) -> Tensor:
    """Group labels (R, d) for :func:`permutation_salience`: per run, average-linkage hierarchical
    clustering (scipy) of the channels of x (R, n, d) with distance 1 - |Pearson correlation|, cut so
    that channels in one group correlate by more than ``threshold`` on average. Constant channels
    form groups of their own."""
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    if not 0 < threshold < 1:
        raise ValueError(f"threshold must lie strictly between 0 and 1, got {threshold}")
    if x.ndim != 3:
        raise ValueError(f"x must have shape (runs, n, d), got {tuple(x.shape)}")
    out = []
    for xr in x.double().numpy():
        c = np.nan_to_num(np.corrcoef(xr, rowvar=False), nan=0.0) if xr.shape[1] > 1 else np.ones((1, 1))
        dist = np.clip(1 - np.abs(c), 0, 2)
        np.fill_diagonal(dist, 0)
        if xr.shape[1] == 1:
            out.append(np.zeros(1, dtype=np.int64))
            continue
        labels = fcluster(linkage(squareform(dist, checks=False), "average"), 1 - threshold, "distance")
        out.append(labels.astype(np.int64) - 1)
    return torch.from_numpy(np.stack(out))


def precision_at_k(salience: Tensor, truth: Tensor, k) -> Tensor:
    """Fraction of the k highest-salience channels that are truly modality-general, per run.
    ``k``: int or (R,) ints (e.g. the true number of shared channels)."""
    if salience.shape != truth.shape:
        raise ValueError(f"salience and truth must have the same shape, got {tuple(salience.shape)} and {tuple(truth.shape)}")
    R, d = salience.shape
    k = torch.as_tensor(k).expand(R) if torch.as_tensor(k).ndim == 0 else torch.as_tensor(k)
    if k.shape != (R,) or (k < 1).any() or (k > d).any():
        raise ValueError(f"k must be in [1, {d}] (one value or one per run), got {k.tolist()}")
    top = select_channels(salience, k, "top")
    return (top & truth.bool()).sum(1).double() / k.double()


def select_channels(salience: Tensor, k, mode: str, keys=None) -> Tensor:
    """Boolean (R, d) mask of the k channels a teacher keeps: ``top`` (highest salience,
    modality-general teacher), ``bottom`` (lowest, modality-specific teacher) or ``random``
    (without replacement; the reference draws with replacement) seeded by ``keys`` (R, k)."""
    R, d = salience.shape
    k = torch.as_tensor(k).expand(R) if torch.as_tensor(k).ndim == 0 else torch.as_tensor(k)
    if mode == "top":
        order = torch.argsort(salience, dim=1, descending=True, stable=True)
    elif mode == "bottom":
        order = torch.argsort(salience, dim=1, stable=True)
    elif mode == "random":
        if keys is None:
            raise ValueError("mode='random' needs keys (one row of integers per run) to seed the draw")
        keys = np.atleast_2d(np.asarray(keys, dtype=np.int64))
        order = torch.stack([torch.randperm(d, generator=run_generator(*kk, 4)) for kk in keys])
    else:
        raise ValueError(f"mode must be 'top', 'bottom' or 'random', got {mode!r}")
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(d).expand(R, d))
    return rank < k[:, None]


def nullify(x: Tensor, keep: Tensor, fill: Tensor) -> Tensor:
    """Replace the channels not in ``keep`` (R, d) by ``fill`` (R, d), e.g. the training mean —
    the reference's "nullifying" of teacher channels for real data (Section 5.4)."""
    return torch.where(keep[:, None, :], x, fill[:, None, :].to(x.dtype))
