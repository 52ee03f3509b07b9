"""Empirical check of Theorem 1 (MFH Section 4.2, Appendix A) in its own setting: linear binary
classification, identity generators (x^u = z^u = [z^su, z^0]), sigmoid outputs without bias, a
unit-norm teacher, and a student trained by (long) gradient descent on the distillation risk (6).

For each trial we compute the tightest constants of the theorem for that sample: lambda (largest of
||Z Z^T|| and ||(Z Z^T)^-1|| over both modalities) and (1 - gamma) eps = ||Z^aT Z^a - Z^bT Z^b||, the
bound n f(eps*), the risk at the proof's comparator theta* = (Z^b Z^bT)^-1 Z^b Z^aT theta_t (Eq. (20)),
the risk reached by gradient descent from theta_s = 0, and the risk of the trivial student
theta_s = 0 (the level above which the bound says nothing).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from mmrepro.papers.mfh.kd import run_generator
from mmrepro.papers.mfh.theory import distillation_risk, epsilon_star, lemma2_sides, theorem1_bound

__all__ = ["theorem1_trials", "fixed_epsilon_curve"]


def theorem1_trials(seeds, overlaps=(0, 2, 4, 6, 8, 10), n: int = 200, scale: float | None = None,
                    steps: int = 5000) -> pd.DataFrame:
    """One trial per (overlap o, seed), the Figure 2 layout without noise channels: both modalities
    hold 10 decisive features, o of them shared, so gamma = o / (20 - o). Features are N(0, scale^2)
    (default scale 1/sqrt(n), which makes Z Z^T close to the identity and lambda small).
    The teacher is the true hyperplane restricted to modality a, normalised to unit norm."""
    overlaps = [int(o) for o in overlaps]
    if any(not 0 <= o <= 10 for o in overlaps) or n < 11 or steps < 1:
        raise ValueError("overlaps must lie in [0, 10], n must be >= 11 (Z Z^T invertible) and steps >= 1")
    scale = 1 / np.sqrt(n) if scale is None else float(scale)
    Za, Zb, th_t, meta = [], [], [], []
    for o in overlaps:
        for s in seeds:
            g = run_generator(int(s), o, 7)
            z0, za, zb = (torch.randn(k, n, generator=g, dtype=torch.float64) * scale for k in (o, 10 - o, 10 - o))
            delta = torch.randn(20 - o, generator=g, dtype=torch.float64)
            t = torch.cat([delta[:10 - o], delta[20 - 2 * o:]])          # the teacher's features: [z^sa, z^0]
            Za.append(torch.cat([za, z0]))
            Zb.append(torch.cat([zb, z0]))
            th_t.append(t / t.norm())
            meta.append(dict(overlap=o, gamma=o / (20 - o), seed=int(s)))
    Za, Zb, th_t = torch.stack(Za), torch.stack(Zb), torch.stack(th_t)
    sides = lemma2_sides(Za, Zb)
    gram_b = Zb @ Zb.mT
    th_star = torch.linalg.solve(gram_b, Zb @ (Za.mT @ th_t[..., None])).squeeze(-1)
    # gradient descent on R(theta_s) = sum_i l(theta_s^T z^b_i, theta_t^T z^a_i): grad = Z^b (sigma(b) - sigma(a))
    a = (th_t[:, None, :] @ Za).squeeze(1)
    lr = 4.0 / torch.linalg.matrix_norm(gram_b, ord=2)                  # 1 / smoothness constant
    th = torch.zeros_like(th_t)
    for _ in range(int(steps)):
        b = (th[:, None, :] @ Zb).squeeze(1)
        th = th - lr[:, None] * (Zb @ (torch.sigmoid(b) - torch.sigmoid(a))[..., None]).squeeze(-1)
    b = (th[:, None, :] @ Zb).squeeze(1)
    grad = (Zb @ (torch.sigmoid(b) - torch.sigmoid(a))[..., None]).squeeze(-1).norm(dim=1)
    df = pd.DataFrame(meta)
    df["lam"] = sides["lam"].numpy()
    df["gap"] = sides["gap"].numpy()
    df["eps_star"] = sides["rhs"].numpy()
    df["bound"] = theorem1_bound(n, df["eps_star"].to_numpy())
    df["risk_gd"] = distillation_risk(th, th_t, Za, Zb).numpy()
    df["risk_star"] = distillation_risk(th_star, th_t, Za, Zb).numpy()
    df["risk_zero"] = distillation_risk(torch.zeros_like(th_t), th_t, Za, Zb).numpy()
    df["grad_norm"] = grad.numpy()
    df["lemma2_lhs"] = sides["lhs"].numpy()
    return df


def fixed_epsilon_curve(trials: pd.DataFrame, n: int, gammas) -> pd.DataFrame:
    """The theorem read as stated: one (lambda, eps) valid for every trial (delta = 0 on these
    trials), lambda = max lambda, eps = max gap / (1 - gamma) over trials with gamma < 1; the bound
    n f(eps*) then decreases monotonically in gamma and reaches 0 at gamma = 1."""
    part = trials[trials["gamma"] < 1]
    if part.empty:
        raise ValueError("need at least one trial with gamma < 1 to fix eps")
    lam = float(trials["lam"].max())
    eps = float((part["gap"] / (1 - part["gamma"])).max())
    gammas = np.asarray(gammas, dtype=float)
    es = epsilon_star(lam, gammas, eps)
    return pd.DataFrame({"gamma": gammas, "lam": lam, "eps": eps, "eps_star": es,
                         "bound": theorem1_bound(n, es)})
