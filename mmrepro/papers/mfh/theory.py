"""Theorem 1 of the MFH paper (Section 4.2, proof in Appendix A): Lemma 1, Lemma 2 and the bound.

Notation: l(b, a) is the KL divergence between Bernoulli(sigma(a)) (teacher) and
Bernoulli(sigma(b)) (student), Eq. (7). Lemma 1: max over |a - b| <= eps of l(b, a) equals
f(eps) = u - 1 - ln u with u = eps / (1 - e^-eps), Eq. (8). Theorem 1: the distillation risk
reached by gradient flow is at most n f(eps*), eps* = lambda^1.5 (lambda^2 + 1) (1 - gamma) eps,
Eq. (5). Norms are spectral norms.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["lemma1_loss", "lemma1_max", "lemma1_argmax", "theorem1_bound", "epsilon_star",
           "lemma2_sides", "distillation_risk"]

# Taylor coefficients of f(eps) = u - 1 - ln u around 0 (even powers 2..10)
_SERIES = (1 / 8, -1 / 576, 1 / 25920, -1 / 1075200, 1 / 43545600)


def _as_array(x, name: str) -> np.ndarray:
    try:
        arr = np.asarray(x.detach().cpu().numpy() if isinstance(x, Tensor) else x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a number or an array of numbers, got {x!r}") from exc
    if np.isnan(arr).any():
        raise ValueError(f"{name} contains NaN")
    return arr


def _out(arr: np.ndarray, like):
    return float(arr) if np.ndim(like) == 0 and not isinstance(like, np.ndarray) else arr


def lemma1_loss(b, a):
    """l(b, a) of Eq. (7), written as the Bregman divergence of softplus,
    softplus(b) - softplus(a) - sigma(a) (b - a), which avoids log(0); arrays broadcast."""
    a, b = _as_array(a, "a"), _as_array(b, "b")
    sp = lambda x: np.logaddexp(0.0, x)                               # noqa: E731
    sig = 0.5 * (1 + np.tanh(0.5 * a))
    h = b - a
    small = np.abs(h) < 1e-4
    bregman = sp(b) - sp(a) - sig * h
    s1 = sig * (1 - sig)
    taylor = s1 * h ** 2 / 2 + s1 * (1 - 2 * sig) * h ** 3 / 6
    return _out(np.where(small, taylor, np.maximum(bregman, 0.0)), a + b)


def lemma1_max(eps):
    """Lemma 1, Eq. (8): max of l(b, a) over |a - b| <= eps, = u - 1 - ln u, u = eps/(1 - e^-eps).

    Accepts a number or an array (non-negative, inf allowed); returns a float or an array.
    Near 0 a Taylor series (eps^2/8 - eps^4/576 + ...) replaces the cancelling closed form,
    so the eps -> 0 limit is 0 without NaN.
    """
    e = _as_array(eps, "eps")
    if (e < 0).any():
        raise ValueError(f"eps must be >= 0 (it bounds |a - b|), got min {e.min()}")
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        em1 = -np.expm1(-e)                                            # 1 - e^-eps
        v = (e - em1) / em1                                            # u - 1, exact for eps >= 0.1
        closed = v - np.log1p(v)
    e2 = np.minimum(e, 0.1) ** 2
    series = sum(c * e2 ** (i + 1) for i, c in enumerate(_SERIES))
    res = np.where(e < 0.1, series, closed)
    res = np.where(np.isinf(e), np.inf, res)
    return _out(res, eps)


def lemma1_argmax(eps):
    """The teacher logit a at which l(a + eps, a) is largest (proof of Lemma 1):
    a = -ln t, t = (e^eps (1 - eps) - 1) / (1 + eps - e^eps); below eps = 0.01 its series
    -eps/3 + eps^3/405 - eps^5/34020 (limit 0)."""
    e = _as_array(eps, "eps")
    if (e < 0).any() or np.isinf(e).any():
        raise ValueError("eps must be >= 0 and finite for lemma1_argmax")
    big = np.maximum(e, 0.01)
    with np.errstate(over="ignore"):
        closed = -np.log((np.exp(big) * (1 - big) - 1) / (1 + big - np.exp(big)))
    series = -e / 3 + e ** 3 / 405 - e ** 5 / 34020
    return _out(np.where(e < 0.01, series, closed), eps)


def theorem1_bound(n, eps_star):
    """Theorem 1, Eq. (5): n (eps*/(1 - e^-eps*) - 1 - ln(eps*/(1 - e^-eps*))) = n * lemma1_max(eps*).

    ``n`` (number of training samples, > 0) and ``eps_star`` (>= 0) broadcast as arrays."""
    n_arr = _as_array(n, "n")
    if (n_arr <= 0).any() or np.isinf(n_arr).any():
        raise ValueError(f"n must be a positive finite number of samples, got {n!r}")
    e = _as_array(eps_star, "eps_star")
    if (e < 0).any():
        raise ValueError(f"eps_star must be >= 0, got min {e.min()}")
    res = n_arr * np.asarray(lemma1_max(e))
    return float(res) if res.ndim == 0 else res


def epsilon_star(lam, gamma, eps):
    """eps* = lambda^1.5 (lambda^2 + 1) (1 - gamma) eps (Theorem 1 / Lemma 2, Eq. (13))."""
    lam, gamma, eps = (_as_array(v, k) for v, k in ((lam, "lam"), (gamma, "gamma"), (eps, "eps")))
    if (lam < 1).any():
        raise ValueError("lam must be >= 1: it bounds both ||ZZ^T|| and ||(ZZ^T)^-1||, whose product is >= 1")
    if ((gamma < 0) | (gamma > 1)).any() or (eps < 0).any():
        raise ValueError("gamma must lie in [0, 1] and eps must be >= 0")
    res = lam ** 1.5 * (lam ** 2 + 1) * (1 - gamma) * eps
    return float(res) if res.ndim == 0 else res


def lemma2_sides(A: Tensor, B: Tensor) -> dict[str, Tensor]:
    """Both sides of Lemma 2, Eq. (13), for A = Z^a (..., d_a, n) and B = Z^b (..., d_b, n), batched.

    Returns ``lhs`` = ||B^T (B B^T)^-1 B A^T - A^T||, ``gap`` = ||A^T A - B^T B|| (the (1 - gamma) eps
    of the lemma, at its tightest), ``lam`` = max(||AA^T||, ||(AA^T)^-1||, ||BB^T||, ||(BB^T)^-1||) and
    ``rhs`` = lam^1.5 (lam^2 + 1) gap. Needs d_u <= n (full row rank)."""
    A, B = torch.as_tensor(A, dtype=torch.float64), torch.as_tensor(B, dtype=torch.float64)
    if A.shape[-1] != B.shape[-1] or A.shape[-2] > A.shape[-1] or B.shape[-2] > B.shape[-1]:
        raise ValueError(f"A (d_a, n) and B (d_b, n) need the same n >= d_a, d_b; got {tuple(A.shape)}, {tuple(B.shape)}")
    norm = lambda M: torch.linalg.matrix_norm(M, ord=2)               # noqa: E731
    gram_a, gram_b = A @ A.mT, B @ B.mT
    proj = B.mT @ torch.linalg.solve(gram_b, B)                        # B^T (BB^T)^-1 B
    lhs = norm(proj @ A.mT - A.mT)
    gap = norm(A.mT @ A - B.mT @ B)
    inv = lambda G: 1.0 / torch.linalg.eigvalsh(G)[..., 0]             # noqa: E731
    lam = torch.stack([norm(gram_a), inv(gram_a), norm(gram_b), inv(gram_b)]).amax(0)
    return {"lhs": lhs, "gap": gap, "lam": lam, "rhs": lam ** 1.5 * (lam ** 2 + 1) * gap}


def distillation_risk(theta_s: Tensor, theta_t: Tensor, Za: Tensor, Zb: Tensor) -> Tensor:
    """R_n^dis of Eq. (6): sum_i l(theta_s^T z^b_i, theta_t^T z^a_i); batched over leading dims
    (theta (..., d), Z (..., d, n))."""
    a = (theta_t[..., None, :] @ Za).squeeze(-2)
    b = (theta_s[..., None, :] @ Zb).squeeze(-2)
    return torch.as_tensor(np.asarray(lemma1_loss(b, a))).sum(-1)
