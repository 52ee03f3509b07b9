"""Crossmodal knowledge distillation between logistic-regression models, batched over runs.

The objective is MFH Eq. (1) with the reference code's weighting (Appendix B.2: rho = 0.5, i.e.
equal weights ``ce_weight = kd_weight = 1``):

    L = ce_weight * CE(student(x^b), y) + kd_weight * KL(softmax(teacher(x^a)) || softmax(student(x^b)))

with CE averaged over samples and the KL term averaged over samples *and* classes (PyTorch's
``KLDivLoss`` default ``reduction='mean'``, temperature 1, as in the reference). Training is
full-batch gradient descent (SGD without momentum, lr 0.1) from PyTorch's ``nn.Linear``
initialisation; the reported accuracy is that of the last epoch.

``fit`` trains R independent models at once: weights are a (R, d, K) tensor, the forward pass is
one ``torch.baddbmm`` and the gradient is written in closed form (for softmax outputs the
gradient of both terms with respect to the logits is ``p - target``), so one optimisation step
updates every run. ``fit_one`` is the plain single-run loop (``nn.Linear``, autograd,
``torch.optim.SGD``) that the batched version is checked and benchmarked against.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

__all__ = ["LinearBatch", "init_linear", "fit", "fit_one", "run_generator"]


@dataclass
class LinearBatch:
    """R linear classifiers: ``weight`` (R, d, K), ``bias`` (R, K)."""

    weight: Tensor
    bias: Tensor

    def logits(self, x: Tensor) -> Tensor:
        """(R, n, d) -> (R, n, K)."""
        _check_batch(x, self.weight.shape[0], self.weight.shape[1], "x")
        return torch.baddbmm(self.bias[:, None, :], x.to(self.weight.dtype), self.weight)

    def probs(self, x: Tensor) -> Tensor:
        return torch.softmax(self.logits(x), dim=-1)

    def accuracy(self, x: Tensor, y: Tensor) -> Tensor:
        """Fraction of correct argmax predictions per run, (R,) float64."""
        return (self.logits(x).argmax(-1) == y).double().mean(-1)

    def __getitem__(self, idx) -> "LinearBatch":
        return LinearBatch(self.weight[idx], self.bias[idx])


def _check_batch(x: Tensor, runs: int, dim: int, name: str) -> None:
    if x.ndim != 3 or x.shape[0] != runs or x.shape[2] != dim:
        raise ValueError(f"{name} must have shape (runs={runs}, n, d={dim}), got {tuple(x.shape)}")


def run_generator(*key: int) -> torch.Generator:
    """A generator for one run, keyed by integers (e.g. seed, setting, role): results of a run do
    not depend on which other runs share its batch."""
    state = np.random.SeedSequence([int(k) for k in key]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state) & ((1 << 63) - 1))


def init_linear(keys, d: int, n_classes: int = 2, fan_in=None,
                dtype: torch.dtype = torch.float32) -> LinearBatch:
    """``nn.Linear`` default initialisation, weight and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
    one run per row of ``keys`` (a (R, k) integer array of generator keys). ``fan_in`` (R,) gives
    each run's true input width when inputs are zero-padded to ``d`` (default ``d``)."""
    keys = np.atleast_2d(np.asarray(keys, dtype=np.int64))
    runs = keys.shape[0]
    fan = np.full(runs, d) if fan_in is None else np.asarray(fan_in).reshape(-1)
    if fan.shape[0] != runs or (fan < 1).any() or (fan > d).any():
        raise ValueError(f"fan_in must hold {runs} widths in [1, {d}], got {fan}")
    w, b = torch.empty(runs, d, n_classes, dtype=dtype), torch.empty(runs, n_classes, dtype=dtype)
    for r in range(runs):
        g, bound = run_generator(*keys[r]), 1.0 / float(np.sqrt(fan[r]))
        w[r] = (torch.rand(n_classes, d, generator=g, dtype=torch.float64) * 2 - 1).T.to(dtype) * bound
        b[r] = (torch.rand(n_classes, generator=g, dtype=torch.float64) * 2 - 1).to(dtype) * bound
    return LinearBatch(w, b)


def _per_run(value, runs: int, dtype: torch.dtype, name: str) -> Tensor:
    t = torch.as_tensor(value, dtype=dtype)
    if t.ndim == 0:
        t = t.expand(runs)
    if t.shape != (runs,) or (t < 0).any():
        raise ValueError(f"{name} must be a non-negative number or one per run ({runs}), got shape {tuple(t.shape)}")
    return t[:, None, None]


def fit(x: Tensor, y: Tensor, init: LinearBatch, *, epochs: int = 1000, lr: float = 0.1,
        ce_weight=1.0, kd_weight=0.0, teacher_probs: Tensor | None = None) -> LinearBatch:
    """Full-batch gradient descent on Eq. (1) for R runs at once (see module docstring).

    x (R, n, d), y (R, n) int64 class indices, teacher_probs (R, n, K) soft labels of the teacher
    (needed when any ``kd_weight`` > 0). ``ce_weight``/``kd_weight``: scalars or (R,) tensors, so
    that KD and no-KD students train in the same batch.
    """
    runs, d = init.weight.shape[:2]
    n_classes = init.weight.shape[2]
    _check_batch(x, runs, d, "x")
    if y.shape != x.shape[:2]:
        raise ValueError(f"y must have shape {tuple(x.shape[:2])}, got {tuple(y.shape)}")
    if int(epochs) != epochs or epochs < 0 or not lr > 0:
        raise ValueError(f"epochs must be an integer >= 0 and lr > 0, got epochs={epochs}, lr={lr}")
    dtype = init.weight.dtype
    x = x.to(dtype)
    n = x.shape[1]
    ce_w = _per_run(ce_weight, runs, dtype, "ce_weight") / n
    kd_w = _per_run(kd_weight, runs, dtype, "kd_weight") / (n * n_classes)
    onehot = torch.nn.functional.one_hot(y, n_classes).to(dtype)
    if bool((kd_w > 0).any()):
        if teacher_probs is None or teacher_probs.shape != onehot.shape:
            raise ValueError(f"teacher_probs of shape {tuple(onehot.shape)} are required when kd_weight > 0")
        # both terms have logit gradient (p - target): fold them into one weighted target
        target = (ce_w * onehot + kd_w * teacher_probs.to(dtype)) / (ce_w + kd_w).clamp_min(1e-300)
    else:
        target = onehot
    scale = ce_w + kd_w
    xt = x.transpose(1, 2).contiguous()
    w, b = init.weight.clone(), init.bias.clone()
    for _ in range(int(epochs)):
        logits = torch.baddbmm(b[:, None, :], x, w)
        grad = (torch.softmax(logits, dim=-1) - target) * scale
        w -= lr * torch.bmm(xt, grad)
        b -= lr * grad.sum(1)
    return LinearBatch(w, b)


def fit_one(x: Tensor, y: Tensor, weight: Tensor, bias: Tensor, *, epochs: int = 1000, lr: float = 0.1,
            ce_weight: float = 1.0, kd_weight: float = 0.0,
            teacher_probs: Tensor | None = None) -> torch.nn.Linear:
    """The plain per-run baseline (as in the reference code): one ``nn.Linear`` from the given
    initial ``weight`` (d, K) and ``bias`` (K,), autograd and ``torch.optim.SGD``.
    x (n, d), y (n,)."""
    model = torch.nn.Linear(weight.shape[0], weight.shape[1]).to(weight.dtype)
    with torch.no_grad():
        model.weight.copy_(weight.T)
        model.bias.copy_(bias)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    x = x.to(weight.dtype)
    for _ in range(int(epochs)):
        out = model(x)
        loss = ce_weight * torch.nn.functional.cross_entropy(out, y)
        if kd_weight:
            logp = torch.log_softmax(out, dim=1)
            t = teacher_probs.to(weight.dtype)
            loss = loss + kd_weight * torch.sum(torch.xlogy(t, t) - t * logp) / t.numel()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model
