"""Algorithm 1 of the MFH paper (Appendix B.4): permutation-based ranking of modality-general
decisive feature channels, batched over runs, and the teachers derived from it (Section 5.4).

Step 1 (Eq. (28)) jointly trains two linear unimodal models with
``CE(y, f_a(X^a)) + CE(y, f_b(X^b)) + MSE(f_a(X^a), f_b(X^b))`` on logits (SGD, lr 0.01,
momentum 0.9, full batch, as in the reference). Steps 2-8 permute one column of X^a at a time,
M times, and average the MSE between the permuted teacher logits and the fixed student logits.
Step 9 divides by the largest salience (the paper; the reference rescales min-max instead, which
gives the same ranking).

Because f_a is linear, permuting column i changes the logits by ``(x_perm,i - x_i) w_i^T``; the MSE
for every channel and permutation is therefore evaluated in closed form from that rank-one
change, for all channels, permutations and runs at once, without re-running the model.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from mmrepro.mfh.kd import LinearBatch, init_linear, run_generator

__all__ = ["align_unimodal", "permutation_salience", "salience_permutations", "precision_at_k", "select_channels",
           "nullify"]


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
                         n_permutations: int = 100, chunk: int = 10) -> Tensor:
    """Algorithm 1 steps 2-9: salience (R, d_a) in [0, 1], larger = more modality-general decisive.

    ``logits_b`` (R, n, K) are the fixed outputs of the aligned modality-b model; ``keys`` (R, k)
    seed each run's permutations. Permutations are drawn per run and repetition and shared by the
    channels of that repetition (each channel still sees M independent permutations).
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
    cross = torch.einsum("rnk,rdk->rnd", err, model_a.weight)          # (R, n, d): <e_n, w_i>
    wnorm = (model_a.weight ** 2).sum(-1)                              # (R, d)
    perms = salience_permutations(keys, n_permutations, n)             # (R, M, n)
    total = torch.zeros(R, d, dtype=xa.dtype)
    for start in range(0, n_permutations, chunk):
        p = perms[:, start:start + chunk]                              # (R, m, n)
        xp = torch.gather(xa[:, None].expand(-1, p.shape[1], -1, -1), 2,
                          p[..., None].expand(-1, -1, -1, d))          # (R, m, n, d)
        delta = xp - xa[:, None]
        # MSE(err + delta_i w_i^T) = base + 2 <delta_i, e w_i>/(nK) + |delta_i|^2 |w_i|^2/(nK)
        total += (2 * torch.einsum("rmnd,rnd->rd", delta, cross)
                  + (delta ** 2).sum(2).sum(1) * wnorm) / (n * K) + base[:, None] * p.shape[1]
    p = total / n_permutations
    return p / p.max(dim=1, keepdim=True).values


def salience_permutations(keys, n_permutations: int, n: int) -> Tensor:
    """The ``n_permutations`` permutations of the ``n`` rows that :func:`permutation_salience` applies to
    every channel of each run, (R, M, n), seeded by ``keys`` (R, k)."""
    keys = np.atleast_2d(np.asarray(keys, dtype=np.int64))
    return torch.stack([torch.argsort(torch.rand(n_permutations, n, generator=run_generator(*k, 3)), dim=1)
                        for k in keys])


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
