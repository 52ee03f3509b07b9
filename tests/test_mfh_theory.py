"""Theorem 1 of the MFH paper: Lemma 1 closed form, Lemma 2, the bound, the risk (Eq. (6))."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize_scalar
from scipy.special import expit, rel_entr

from mmrepro import lemma1_max, theorem1_bound
from mmrepro.papers.mfh.theorem import fixed_epsilon_curve, theorem1_trials
from mmrepro.papers.mfh.theory import distillation_risk, epsilon_star, lemma1_argmax, lemma1_loss, lemma2_sides


def _bernoulli_kl(b, a):
    p, q = expit(a), expit(b)
    return rel_entr(p, q) + rel_entr(1 - p, 1 - q)


def test_lemma1_loss_is_bernoulli_kl():
    a, b = np.meshgrid(np.linspace(-8, 8, 41), np.linspace(-8, 8, 41))
    assert np.allclose(lemma1_loss(b, a), _bernoulli_kl(b, a), rtol=1e-10, atol=1e-14)
    assert lemma1_loss(0.3, 0.3) == 0.0 and isinstance(lemma1_loss(0.1, 0.2), float)


@pytest.mark.parametrize("eps", [0.05, 0.3, 1.0, 2.5, 6.0])
def test_lemma1_closed_form_matches_dense_maximisation(eps):
    # dense grid over (a, b) with |a - b| <= eps, then a scipy refinement along b = a +/- eps
    a = np.linspace(-15, 15, 3001)
    h = np.linspace(-eps, eps, 201)
    grid = _bernoulli_kl(a[:, None] + h[None], a[:, None]).max()
    best = max(-minimize_scalar(lambda x, s=s: -_bernoulli_kl(x + s * eps, x), bounds=(-30, 30),
                                method="bounded", options={"xatol": 1e-12}).fun for s in (1, -1))
    assert grid <= lemma1_max(eps) * (1 + 1e-9)
    assert lemma1_max(eps) == pytest.approx(best, rel=1e-9)
    assert lemma1_max(eps) == pytest.approx(grid, rel=1e-4)
    # the maximiser of the proof, a = -ln t
    assert _bernoulli_kl(lemma1_argmax(eps) + eps, lemma1_argmax(eps)) == pytest.approx(lemma1_max(eps), rel=1e-12)


def test_lemma1_small_eps_limit_and_arrays():
    e = np.array([0.0, 1e-300, 1e-12, 1e-6, 0.0999999, 0.1, 0.1000001, np.inf])
    v = lemma1_max(e)
    assert isinstance(v, np.ndarray) and v.shape == e.shape and not np.isnan(v).any()
    assert v[0] == 0.0 and v[-1] == np.inf
    assert v[2] == pytest.approx(1e-24 / 8, rel=1e-12)
    assert v[4] == pytest.approx(v[6], rel=1e-5)             # continuous where series and closed form meet
    assert np.all(np.diff(v) >= 0)                            # monotone in eps
    assert lemma1_argmax(0.0) == 0.0 and lemma1_argmax(1e-5) == pytest.approx(-1e-5 / 3)
    assert isinstance(lemma1_max(0.5), float)
    assert lemma1_max(torch.tensor([0.5]))[0] == pytest.approx(lemma1_max(0.5))


@given(st.floats(min_value=1e-6, max_value=50.0), st.floats(min_value=-10, max_value=10), st.floats(min_value=-1, max_value=1))
@settings(max_examples=200, deadline=None)
def test_lemma1_bounds_every_pair(eps, a, frac):
    assert lemma1_loss(a + frac * eps, a) <= lemma1_max(eps) * (1 + 1e-9) + 1e-300


def test_theorem1_bound_limits_monotonicity_broadcast():
    eps = np.linspace(0, 20, 201)
    b = theorem1_bound(200, eps)
    assert b[0] == 0.0 and np.all(np.diff(b) > 0)
    assert theorem1_bound(200, 1e-8) == pytest.approx(200 * 1e-16 / 8, rel=1e-9)
    assert theorem1_bound(np.array([[10], [20]]), np.array([0.5, 1.0])).shape == (2, 2)
    assert theorem1_bound(3, 2.0) == pytest.approx(3 * lemma1_max(2.0))
    u = 2.0 / (1 - np.exp(-2.0))
    assert theorem1_bound(7, 2.0) == pytest.approx(7 * (u - 1 - np.log(u)), rel=1e-14)


@pytest.mark.parametrize("call, match", [
    (lambda: lemma1_max(-0.1), "eps must be >= 0"),
    (lambda: lemma1_max([0.1, float("nan")]), "NaN"),
    (lambda: lemma1_max("x"), "number or an array"),
    (lambda: theorem1_bound(0, 1.0), "n must be a positive"),
    (lambda: theorem1_bound(10, -1.0), "eps_star must be >= 0"),
    (lambda: epsilon_star(0.5, 0.2, 1.0), "lam must be >= 1"),
    (lambda: epsilon_star(2.0, 1.5, 1.0), r"gamma must lie in \[0, 1\]"),
    (lambda: lemma2_sides(torch.randn(5, 3), torch.randn(2, 3)), "n >= d_a"),
])
def test_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_epsilon_star_formula():
    assert epsilon_star(2.0, 0.25, 3.0) == pytest.approx(2 ** 1.5 * 5 * 0.75 * 3)
    assert np.allclose(epsilon_star(2.0, np.array([0.0, 1.0]), 1.0), [2 ** 1.5 * 5, 0.0])


def test_lemma2_on_random_matrices():
    g = torch.Generator().manual_seed(0)
    for d_a, d_b, n, scale, m in [(3, 3, 10, 1.0, 64), (5, 2, 40, 0.2, 64), (4, 6, 8, 3.0, 64), (10, 10, 100, 0.1, 4)]:
        A = torch.randn(m, d_a, n, generator=g, dtype=torch.float64) * scale
        B = torch.randn(m, d_b, n, generator=g, dtype=torch.float64) * scale
        s = lemma2_sides(A, B)
        assert (s["lhs"] <= s["rhs"] * (1 + 1e-12)).all()
        assert (s["lam"] >= 1).all()
        # spectral norms cross-checked against numpy
        M = (A.mT @ A - B.mT @ B)[0].numpy()
        assert float(s["gap"][0]) == pytest.approx(np.linalg.norm(M, 2), rel=1e-10)
    A = torch.randn(4, 30, generator=g, dtype=torch.float64)
    s = lemma2_sides(A, A)                                     # identical modalities: both sides 0
    assert float(s["lhs"]) < 1e-12 and float(s["rhs"]) == 0.0


def test_distillation_risk_matches_eq6():
    g = torch.Generator().manual_seed(1)
    Za, Zb = torch.randn(4, 12, generator=g, dtype=torch.float64), torch.randn(3, 12, generator=g, dtype=torch.float64)
    tt, ts = torch.randn(4, generator=g, dtype=torch.float64), torch.randn(3, generator=g, dtype=torch.float64)
    st_, ss = expit((tt @ Za).numpy()), expit((ts @ Zb).numpy())
    direct = np.sum(-st_ * np.log(ss / st_) - (1 - st_) * np.log((1 - ss) / (1 - st_)))
    assert float(distillation_risk(ts, tt, Za, Zb)) == pytest.approx(direct, rel=1e-10)


def test_theorem1_holds_in_every_trial_and_is_monotone_when_eps_fixed():
    df = theorem1_trials(range(3), overlaps=(0, 4, 10), n=60, steps=400)
    assert (df["risk_gd"] <= df["bound"] + 1e-9).all()
    assert (df["risk_star"] <= df["bound"] + 1e-9).all()
    assert (df["lemma2_lhs"] <= df["eps_star"] * (1 + 1e-12) + 1e-12).all()
    assert (df.loc[df.gamma == 1, "bound"] == 0).all() and (df.loc[df.gamma == 1, "risk_gd"] < 1e-12).all()
    curve = fixed_epsilon_curve(df, 60, np.linspace(0, 1, 11))
    assert np.all(np.diff(curve["bound"]) < 0) and curve["bound"].iloc[-1] == 0.0
    with pytest.raises(ValueError, match="gamma < 1"):
        fixed_epsilon_curve(df[df.gamma == 1], 60, [0.5])
