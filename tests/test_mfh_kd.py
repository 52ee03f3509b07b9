"""Batched crossmodal KD (MFH Eq. (1), Appendix B.2) against a plain per-run loop and autograd."""
import numpy as np
import pytest
import torch

from mmrepro.papers.mfh import generator as mvd
from mmrepro.papers.mfh.distillation import distill, distill_loop, summarise_distillation
from mmrepro.papers.mfh.kd import LinearBatch, fit_linear, fit_one, init_linear, objective


def _toy(runs=3, n=40, d=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(runs, n, d, generator=g, dtype=torch.float64)
    y = (x[..., 0] + 0.5 * torch.randn(runs, n, generator=g, dtype=torch.float64) > 0).long()
    t = torch.softmax(torch.randn(runs, n, 2, generator=g, dtype=torch.float64), -1)
    return x, y, t


def test_init_is_nn_linear_uniform_and_keyed():
    m = init_linear([[1, 2, 3], [4, 5, 6]], d=16, n_classes=2, fan_in=[16, 4])
    assert m.weight.shape == (2, 16, 2) and m.bias.shape == (2, 2)
    assert m.weight[0].abs().max() <= 0.25 and m.weight[1].abs().max() <= 0.5
    assert m.weight[1].abs().max() > 0.25                       # fan_in 4 -> bound 1/2
    again = init_linear([[4, 5, 6]], d=16, fan_in=[4])
    assert torch.equal(again.weight[0], m.weight[1])            # a run's init does not depend on its batch
    with pytest.raises(ValueError, match="fan_in must hold 2 widths"):
        init_linear([[1], [2]], d=4, fan_in=[5, 1])


def test_fit_gradient_matches_autograd_of_eq1():
    x, y, t = _toy()
    init = init_linear(np.arange(3)[:, None], 6, dtype=torch.float64)
    one = fit_linear(x, y, init, epochs=1, lr=1.0, ce_weight=torch.tensor([1.0, 0.5, 0.0]),
              kd_weight=torch.tensor([1.0, 2.0, 1.0]), teacher_probs=t)
    w = init.weight.clone().requires_grad_()
    b = init.bias.clone().requires_grad_()
    logits = torch.baddbmm(b[:, None], x, w)
    logp = torch.log_softmax(logits, -1)
    ce = torch.nn.functional.nll_loss(logp.transpose(1, 2), y, reduction="none").mean(1)
    kl = torch.nn.functional.kl_div(logp, t, reduction="none").mean(dim=(1, 2))   # KLDivLoss 'mean'
    loss = (torch.tensor([1.0, 0.5, 0.0]) * ce + torch.tensor([1.0, 2.0, 1.0]) * kl).sum()
    loss.backward()
    assert torch.allclose(init.weight - w.grad, one.weight, atol=1e-12)
    assert torch.allclose(init.bias - b.grad, one.bias, atol=1e-12)


def test_fit_equals_per_run_loop():
    x, y, t = _toy(runs=4)
    init = init_linear(np.arange(4)[:, None], 6, dtype=torch.float64)
    batched = fit_linear(x, y, init, epochs=60, lr=0.1, kd_weight=1.0, teacher_probs=t)
    for r in range(4):
        m = fit_one(x[r], y[r], init.weight[r], init.bias[r], epochs=60, lr=0.1, kd_weight=1.0, teacher_probs=t[r])
        assert torch.allclose(m.weight.detach().T, batched.weight[r], atol=1e-10)
        assert torch.allclose(m.bias.detach(), batched.bias[r], atol=1e-10)


def test_fit_multiclass_equals_per_run_loop():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 30, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (2, 30), generator=g)
    t = torch.softmax(torch.randn(2, 30, 3, generator=g, dtype=torch.float64), -1)
    init = init_linear([[0], [1]], 4, n_classes=3, dtype=torch.float64)
    batched = fit_linear(x, y, init, epochs=40, ce_weight=0.0, kd_weight=1.0, teacher_probs=t)
    for r in range(2):
        m = fit_one(x[r], y[r], init.weight[r], init.bias[r], epochs=40, ce_weight=0.0, kd_weight=1.0, teacher_probs=t[r])
        assert torch.allclose(m.weight.detach().T, batched.weight[r], atol=1e-10)


def test_distill_equals_plain_loop_statistics():
    b = mvd.increase_gamma([0], overlaps=(0, 10), n_train=40, n_test=200)
    vec = distill(b, epochs=80, dtype=torch.float64)
    loop = distill_loop(b, epochs=80, dtype=torch.float64)
    for k in ("teacher_regular", "kd_regular", "no_kd"):
        assert torch.equal(vec[k], loop[k]), k
    s = summarise_distillation(b, vec)
    assert list(s["overlap"]) == [0, 10] and "kd_regular_std" in s


def test_distill_float32_close_to_loop_and_deterministic():
    b = mvd.increase_gamma([2], overlaps=(4,), n_train=50, n_test=300)
    a1, a2 = distill(b, epochs=60), distill(b, epochs=60)
    assert all(torch.equal(a1[k], a2[k]) for k in a1)
    loop = distill_loop(b, epochs=60)
    assert max(float((a1[k] - loop[k]).abs().max()) for k in a1) <= 2 / 300


def test_masked_teacher_equals_training_on_kept_columns():
    b = mvd.modify_gamma([0], specific=(10,), shared=(5,), n_train=50, n_test=50)
    res = distill(b, {"general": b.shared_a}, epochs=50, student_split="student", dtype=torch.float64)
    keep = b.shared_a[0]
    init = init_linear(np.array([[0, 0, 100]]), 50, fan_in=[5], dtype=torch.float64)
    small = LinearBatch(init.weight[:, keep], init.bias)
    m = fit_linear(b.train.xa[:, :, keep].double(), b.train.y, small, epochs=50)
    assert float(m.accuracy(b.test.xa[:, :, keep].double(), b.test.y)[0]) == float(res["teacher_general"][0])


@pytest.mark.parametrize("kwargs, match", [
    (dict(kd_weight=1.0), "teacher_probs of shape"),
    (dict(epochs=-1), "epochs must be an integer"),
    (dict(ce_weight=torch.ones(5)), "one per run"),
])
def test_fit_errors(kwargs, match):
    x, y, _ = _toy()
    with pytest.raises(ValueError, match=match):
        fit_linear(x, y, init_linear(np.arange(3)[:, None], 6, dtype=torch.float64), **kwargs)


def test_shape_errors():
    x, y, _ = _toy()
    init = init_linear(np.arange(3)[:, None], 6, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"x must have shape \(runs=3, n, d=6\)"):
        fit_linear(x[:, :, :5], y, init)
    b = mvd.increase_gamma([0], overlaps=(2,), n_train=10, n_test=10)
    with pytest.raises(ValueError, match="teacher mask 'x'"):
        distill(b, {"x": torch.zeros(1, 25, dtype=torch.bool)})
    with pytest.raises(ValueError, match="student_split"):
        distill(b, student_split="student")


def test_shared_inputs_equal_repeated_inputs():
    x, y, t = _toy(runs=2)
    init = init_linear(np.arange(6)[:, None], 6, dtype=torch.float64)
    yy, tt = y.repeat(3, 1), t.repeat(3, 1, 1)
    kd = torch.tensor([0.0, 0.0, 1.0, 1.0, 2.0, 2.0])
    shared = fit_linear(x, yy, init, epochs=30, kd_weight=kd, teacher_probs=tt, index=torch.arange(2).repeat(3))
    plain = fit_linear(x.repeat(3, 1, 1), yy, init, epochs=30, kd_weight=kd, teacher_probs=tt)
    assert torch.allclose(shared.weight, plain.weight, atol=1e-12) and torch.allclose(shared.bias, plain.bias, atol=1e-12)
    uneven = fit_linear(x, y[[0, 0, 1]], init[:3], epochs=5, index=torch.tensor([0, 0, 1]))   # falls back to repeating
    assert uneven.weight.shape == (3, 6, 2)
    with pytest.raises(ValueError, match="index must hold 3 row numbers"):
        fit_linear(x, y[[0, 0, 1]], init[:3], index=torch.tensor([0, 2, 1]))


def test_batchmean_is_eq1_as_written_and_matches_the_loop():
    """kl_reduction='batchmean' is the per-sample KL of Eq. (1); 'mean' divides it by K (the reference)."""
    g = torch.Generator().manual_seed(5)
    x = torch.randn(2, 25, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, 5, (2, 25), generator=g)
    t = torch.softmax(torch.randn(2, 25, 5, generator=g, dtype=torch.float64), -1)
    init = init_linear([[0], [1]], 4, n_classes=5, dtype=torch.float64)
    rho = 0.3
    one = fit_linear(x, y, init, epochs=1, lr=1.0, ce_weight=rho, kd_weight=1 - rho, teacher_probs=t,
              kl_reduction="batchmean")
    w = init.weight.clone().requires_grad_()
    b = init.bias.clone().requires_grad_()
    logp = torch.log_softmax(torch.baddbmm(b[:, None], x, w), -1)
    ce = torch.nn.functional.nll_loss(logp.transpose(1, 2), y, reduction="none").mean(1)
    kl = torch.nn.functional.kl_div(logp, t, reduction="none").sum(-1).mean(-1)          # per-sample KL
    (rho * ce + (1 - rho) * kl).sum().backward()
    assert torch.allclose(init.weight - w.grad, one.weight, atol=1e-12)
    # the objective reports the same loss, and 'mean' is the KL term divided by K = 5
    assert torch.allclose(objective(init, x, y, ce_weight=rho, kd_weight=1 - rho, teacher_probs=t,
                                    kl_reduction="batchmean"), (rho * ce + (1 - rho) * kl).detach())
    assert torch.allclose(objective(init, x, y, ce_weight=0.0, kd_weight=1.0, teacher_probs=t, kl_reduction="mean"),
                          kl.detach() / 5)
    many = fit_linear(x, y, init, epochs=30, ce_weight=rho, kd_weight=1 - rho, teacher_probs=t, kl_reduction="batchmean")
    for r in range(2):
        m = fit_one(x[r], y[r], init.weight[r], init.bias[r], epochs=30, ce_weight=rho, kd_weight=1 - rho,
                    teacher_probs=t[r], kl_reduction="batchmean")
        assert torch.allclose(m.weight.detach().T, many.weight[r], atol=1e-10)
    with pytest.raises(ValueError, match="kl_reduction must be one of"):
        fit_linear(x, y, init, epochs=1, kd_weight=1.0, teacher_probs=t, kl_reduction="sum")
