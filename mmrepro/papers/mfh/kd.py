"""Crossmodal knowledge distillation between logistic-regression models, batched over runs.

The objective is MFH Eq. (1), L = rho CE + (1 - rho) KL, written with two weights:

    L = ce_weight * CE(student(x^b), y) + kd_weight * KL(softmax(teacher(x^a)) || softmax(student(x^b)))

with CE averaged over samples and the KL term (temperature 1) reduced in one of two ways:

* ``kl_reduction="batchmean"`` -- summed over classes and averaged over samples, the per-sample
  KL divergence of Eq. (1) as the paper writes it; ``ce_weight = rho``, ``kd_weight = 1 - rho``.
* ``kl_reduction="mean"`` -- averaged over samples *and* classes (PyTorch's ``KLDivLoss`` default,
  used by the reference code), i.e. the KL term divided by the number of classes K. The reference's
  Gaussian scripts combine it with weights 1 and 1; for K = 2 that is Eq. (1) with an effective
  rho of 2/3, for K = 10 the KD term is ten times weaker than the paper's. It is kept only to
  reproduce the synthetic Gaussian results (the default, for those experiments).

Training is full-batch gradient descent (SGD without momentum, lr 0.1) from PyTorch's
``nn.Linear`` initialisation; the reported accuracy is that of the last epoch.

``fit_linear`` trains R independent models at once: weights are a (R, d, K) tensor, the forward pass is
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

__all__ = ["LinearBatch", "init_linear", "fit_linear", "fit_one", "objective", "run_generator", "KL_REDUCTIONS"]

KL_REDUCTIONS = ("mean", "batchmean")


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


def _kl_divisor(kl_reduction: str, n_classes: int) -> int:
    if kl_reduction not in KL_REDUCTIONS:
        raise ValueError(f"kl_reduction must be one of {KL_REDUCTIONS} ('batchmean' is Eq. (1) as written, "
                         f"'mean' the reference code's KLDivLoss default), got {kl_reduction!r}")
    return n_classes if kl_reduction == "mean" else 1


def objective(model: LinearBatch, x: Tensor, y: Tensor, *, ce_weight=1.0, kd_weight=0.0,
              teacher_probs: Tensor | None = None, kl_reduction: str = "mean") -> Tensor:
    """The training objective that :func:`fit_linear` minimises, per run (R,): ``ce_weight`` CE +
    ``kd_weight`` KL with the given reduction (x (R, n, d), y (R, n), teacher_probs (R, n, K))."""
    runs, _, n_classes = model.weight.shape
    div = _kl_divisor(kl_reduction, n_classes)
    logp = torch.log_softmax(model.logits(x), dim=-1)
    ce = -logp.gather(-1, y[..., None]).squeeze(-1).mean(-1)
    loss = _per_run(ce_weight, runs, logp.dtype, "ce_weight")[:, 0, 0] * ce
    kd_w = _per_run(kd_weight, runs, logp.dtype, "kd_weight")[:, 0, 0]
    if bool((kd_w > 0).any()):
        t = teacher_probs.to(logp.dtype)
        kl = (torch.xlogy(t, t) - t * logp).sum(-1).mean(-1) / div
        loss = loss + kd_w * kl
    return loss


def fit_linear(x: Tensor, y: Tensor, init: LinearBatch, *, epochs: int = 1000, lr: float = 0.1,
        ce_weight=1.0, kd_weight=0.0, teacher_probs: Tensor | None = None,
        index: Tensor | None = None, kl_reduction: str = "mean") -> LinearBatch:
    """Full-batch gradient descent on Eq. (1) for R runs at once (see module docstring).

    x (R, n, d), y (R, n) int64 class indices, teacher_probs (R, n, K) soft labels of the teacher
    (needed when any ``kd_weight`` > 0). ``ce_weight``/``kd_weight``: scalars or (R,) tensors, so
    that KD and no-KD students train in the same batch. ``kl_reduction``: ``"batchmean"`` (Eq. (1)
    as written) or ``"mean"`` (the reference's KL / K). ``index`` (R,) lets runs share inputs:
    x is then (G, n, d) and run r reads x[index[r]]; when every input is shared by the same number
    M of runs, the M models are trained as M columns of one product per input, which reads each
    input once per step instead of M times (results are the same as with repeated inputs).
    """
    runs, d, n_classes = init.weight.shape
    idx = torch.arange(runs) if index is None else torch.as_tensor(index, dtype=torch.long)
    if idx.shape != (runs,) or (idx < 0).any() or (idx >= x.shape[0]).any():
        raise ValueError(f"index must hold {runs} row numbers of x (0 .. {x.shape[0] - 1})")
    _check_batch(x, x.shape[0], d, "x")
    if x.shape[0] != runs and index is None:
        raise ValueError(f"x must have shape (runs={runs}, n, d={d}), got {tuple(x.shape)}")
    if y.shape != (runs, x.shape[1]):
        raise ValueError(f"y must have shape {(runs, x.shape[1])}, got {tuple(y.shape)}")
    if int(epochs) != epochs or epochs < 0 or not lr > 0:
        raise ValueError(f"epochs must be an integer >= 0 and lr > 0, got epochs={epochs}, lr={lr}")
    dtype = init.weight.dtype
    n = x.shape[1]
    ce_w = _per_run(ce_weight, runs, dtype, "ce_weight") / n
    kd_w = _per_run(kd_weight, runs, dtype, "kd_weight") / (n * _kl_divisor(kl_reduction, n_classes))
    onehot = torch.nn.functional.one_hot(y, n_classes).to(dtype)
    if bool((kd_w > 0).any()):
        if teacher_probs is None or teacher_probs.shape != onehot.shape:
            raise ValueError(f"teacher_probs of shape {tuple(onehot.shape)} are required when kd_weight > 0")
        # both terms have logit gradient (p - target): fold them into one weighted target
        target = (ce_w * onehot + kd_w * teacher_probs.to(dtype)) / (ce_w + kd_w).clamp_min(1e-300)
    else:
        target = onehot
    scale = (ce_w + kd_w)[:, 0, 0]
    counts = torch.bincount(idx, minlength=x.shape[0])
    if not bool((counts == counts.max()).all()):           # unequal sharing: repeat the inputs
        x, idx = x[idx], torch.arange(runs)
        counts = torch.ones(runs, dtype=torch.long)
    G, M = x.shape[0], int(counts[0])
    order = torch.argsort(idx, stable=True)                 # runs grouped by input, M per input
    group = lambda t: t[order].reshape(G, M, *t.shape[1:])  # noqa: E731
    x = x.to(dtype)
    xt = x.transpose(1, 2).contiguous()
    w = group(init.weight).permute(0, 2, 1, 3)              # (G, d, M, K)
    b, tgt, sc = group(init.bias), group(target).transpose(1, 2), group(scale)  # (G,M,K) (G,n,M,K) (G,M)
    if n_classes == 2:
        w, b = _descend_binary(x, xt, tgt[..., 1], sc, w, b, int(epochs), lr)
    else:
        w, b = _descend(x, xt, tgt, sc, w, b, int(epochs), lr)
    inv = torch.argsort(order)
    ungroup = lambda t: t.reshape(runs, *t.shape[2:])[inv]  # noqa: E731
    return LinearBatch(ungroup(w.permute(0, 2, 1, 3)), ungroup(b))


def _descend(x: Tensor, xt: Tensor, target: Tensor, scale: Tensor, w: Tensor, b: Tensor,
             epochs: int, lr: float) -> tuple[Tensor, Tensor]:
    """K classes: x (G, n, d), w (G, d, M, K), b (G, M, K), target (G, n, M, K), scale (G, M)."""
    G, d, M, K = w.shape
    w, b = w.reshape(G, d, M * K).clone(), b.reshape(G, 1, M * K).clone()
    target = target.reshape(G, -1, M, K)
    sc = scale[:, None, :, None]
    for _ in range(epochs):
        p = torch.softmax(torch.baddbmm(b, x, w).view(G, -1, M, K), dim=-1)
        grad = ((p - target) * sc).view(G, -1, M * K)
        w.sub_(torch.bmm(xt, grad), alpha=lr)
        b.sub_(grad.sum(1, keepdim=True), alpha=lr)
    return w.view(G, d, M, K), b.view(G, M, K)


def _descend_binary(x: Tensor, xt: Tensor, t1: Tensor, scale: Tensor, w: Tensor, b: Tensor,
                    epochs: int, lr: float) -> tuple[Tensor, Tensor]:
    """The same descent for K = 2 with half the work: softmax over two logits is the sigmoid of
    their difference z, the logit gradient is (-g, g) with g = scale (sigmoid(z) - t_1), so a step
    needs one (G, n, d) x (G, d, M) product for z and one for X^T g. Both weight columns follow
    from the accumulated sum S of X^T g: w_1 = w_1(0) - lr S, w_0 = w_0(0) + lr S."""
    wd = (w[..., 1] - w[..., 0]).contiguous()              # (G, d, M)
    bd = (b[..., 1] - b[..., 0])[:, None, :].contiguous()   # (G, 1, M)
    s_w, s_b = torch.zeros_like(wd), torch.zeros_like(bd)
    sc = scale[:, None, :]
    for _ in range(epochs):
        g = torch.sigmoid(torch.baddbmm(bd, x, wd)).sub_(t1).mul_(sc)
        gw = torch.bmm(xt, g)
        gb = g.sum(1, keepdim=True)
        s_w.add_(gw)
        s_b.add_(gb)
        wd.sub_(gw, alpha=2 * lr)
        bd.sub_(gb, alpha=2 * lr)
    sign = torch.tensor([1.0, -1.0], dtype=w.dtype)
    return w + lr * s_w[..., None] * sign, b + lr * s_b[:, 0, :, None] * sign


def fit_one(x: Tensor, y: Tensor, weight: Tensor, bias: Tensor, *, epochs: int = 1000, lr: float = 0.1,
            ce_weight: float = 1.0, kd_weight: float = 0.0,
            teacher_probs: Tensor | None = None, kl_reduction: str = "mean") -> torch.nn.Linear:
    """The plain per-run baseline (as in the reference code): one ``nn.Linear`` from the given
    initial ``weight`` (d, K) and ``bias`` (K,), autograd, ``torch.optim.SGD`` and PyTorch's
    ``kl_div``. x (n, d), y (n,)."""
    div = x.shape[0] * _kl_divisor(kl_reduction, weight.shape[1])
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
            kl = torch.nn.functional.kl_div(logp, teacher_probs.to(weight.dtype), reduction="sum")
            loss = loss + kd_weight * kl / div
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model
