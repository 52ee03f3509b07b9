"""Algorithm 1 (MFH Appendix B.4): permutation salience, precision@k, channel selection, nullifying."""
import numpy as np
import pytest
import torch

from mmrepro.papers.mfh import generator as mvd
from mmrepro.papers.mfh.kd import LinearBatch, run_generator
from mmrepro.papers.mfh.ranking import (
    align_unimodal,
    correlation_groups,
    nullify,
    permutation_salience,
    precision_at_k,
    select_channels,
)


def test_closed_form_salience_equals_naive_permutation_loop():
    g = torch.Generator().manual_seed(0)
    R, n, d, K, M = 2, 30, 5, 3, 7
    xa = torch.randn(R, n, d, generator=g, dtype=torch.float64)
    model = LinearBatch(torch.randn(R, d, K, generator=g, dtype=torch.float64), torch.randn(R, K, generator=g, dtype=torch.float64))
    lb = torch.randn(R, n, K, generator=g, dtype=torch.float64)
    keys = np.array([[1, 2], [3, 4]])
    fast = permutation_salience(model, xa, lb, keys, n_permutations=M, chunk=3)
    naive = torch.zeros(R, d, dtype=torch.float64)
    for r in range(R):
        perms = torch.argsort(torch.rand(M, n, generator=run_generator(*keys[r], 3)), dim=1)
        for i in range(d):
            for m in range(M):
                xp = xa[r].clone()
                xp[:, i] = xa[r, perms[m], i]
                out = xp @ model.weight[r] + model.bias[r]
                naive[r, i] += torch.nn.functional.mse_loss(out, lb[r]) / M
    naive = naive / naive.max(1, keepdim=True).values
    assert torch.allclose(fast, naive, atol=1e-12)
    assert torch.allclose(fast.max(1).values, torch.ones(R, dtype=torch.float64))


def test_ranking_recovers_shared_channels_on_easy_data():
    b = mvd.modify_gamma([0, 1], specific=(10,), shared=(10,), n_train=400, n_test=10)
    keys = np.stack([b.seed.numpy(), b.setting.numpy()], 1)
    fa, fb = align_unimodal(b.train.xa, b.train.xb, b.train.y, keys, epochs=300)
    sal = permutation_salience(fa, b.train.xa, fb.logits(b.train.xb), keys, n_permutations=20)
    prec = precision_at_k(sal, b.shared_a, b.shared_a.sum(1))
    assert (prec >= 0.9).all(), prec
    # a random ranking does much worse, so the test can fail
    rnd = precision_at_k(torch.rand(sal.shape, generator=torch.Generator().manual_seed(0)), b.shared_a, 10)
    assert rnd.mean() < 0.5


def test_select_channels_and_precision():
    sal = torch.tensor([[0.1, 0.9, 0.5, 0.7], [1.0, 0.2, 0.3, 0.0]])
    assert select_channels(sal, 2, "top").tolist() == [[False, True, False, True], [True, False, True, False]]
    assert select_channels(sal, torch.tensor([1, 3]), "bottom").tolist() == [[True, False, False, False], [False, True, True, True]]
    rnd = select_channels(sal, 2, "random", keys=[[0], [1]])
    assert rnd.sum(1).tolist() == [2, 2]                          # without replacement
    assert torch.equal(rnd, select_channels(sal, 2, "random", keys=[[0], [1]]))
    truth = torch.tensor([[False, True, True, False], [True, True, False, False]])
    assert precision_at_k(sal, truth, 2).tolist() == [0.5, 0.5]


def test_nullify_replaces_dropped_channels_by_fill():
    x = torch.arange(12.0).reshape(1, 3, 4)
    keep = torch.tensor([[True, False, True, False]])
    out = nullify(x, keep, x.mean(1))
    assert torch.equal(out[0, :, 0], x[0, :, 0]) and (out[0, :, 1] == 5.0).all() and (out[0, :, 3] == 7.0).all()


@pytest.mark.parametrize("call, match", [
    (lambda: select_channels(torch.rand(2, 4), 2, "middle"), "mode must be 'top', 'bottom' or 'random'"),
    (lambda: select_channels(torch.rand(2, 4), 2, "random"), "needs keys"),
    (lambda: precision_at_k(torch.rand(2, 4), torch.ones(2, 3, dtype=torch.bool), 1), "same shape"),
    (lambda: precision_at_k(torch.rand(2, 4), torch.ones(2, 4, dtype=torch.bool), 5), r"k must be in \[1, 4\]"),
    (lambda: align_unimodal(torch.rand(2, 5, 3), torch.rand(2, 6, 3), torch.zeros(2, 5, dtype=torch.long), [[0], [1]]), "must agree"),
    (lambda: permutation_salience(LinearBatch(torch.rand(1, 3, 2), torch.rand(1, 2)), torch.rand(1, 5, 3),
                                  torch.rand(1, 5, 2), [[0]], n_permutations=0), "n_permutations"),
])
def test_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_grouped_salience_equals_naive_joint_permutation_and_singletons_equal_plain():
    g = torch.Generator().manual_seed(1)
    R, n, d, K, M = 2, 25, 5, 3, 4
    xa = torch.randn(R, n, d, generator=g, dtype=torch.float64)
    model = LinearBatch(torch.randn(R, d, K, generator=g, dtype=torch.float64), torch.randn(R, K, generator=g, dtype=torch.float64))
    lb = torch.randn(R, n, K, generator=g, dtype=torch.float64)
    keys = np.array([[1, 2], [3, 4]])
    groups = torch.tensor([[0, 0, 1, 2, 2], [0, 1, 2, 3, 4]])
    fast = permutation_salience(model, xa, lb, keys, n_permutations=M, groups=groups)
    naive = torch.zeros(R, d, dtype=torch.float64)
    for r in range(R):
        perms = torch.argsort(torch.rand(M, n, generator=run_generator(*keys[r], 3)), dim=1)
        for lab in groups[r].unique():
            cols = (groups[r] == lab).nonzero().flatten()
            v = 0.0
            for m in range(M):
                xp = xa[r].clone()
                xp[:, cols] = xa[r][perms[m]][:, cols]                 # one permutation for the whole group
                v += torch.nn.functional.mse_loss(xp @ model.weight[r] + model.bias[r], lb[r]) / M
            naive[r, cols] = v
    naive = naive / naive.max(1, keepdim=True).values
    assert torch.allclose(fast, naive, atol=1e-12)
    # singleton groups are Algorithm 1 exactly
    plain = permutation_salience(model, xa, lb, keys, n_permutations=M)
    assert torch.allclose(plain[1], fast[1], atol=1e-12)


def test_correlation_groups_find_copies():
    g = torch.Generator().manual_seed(0)
    base = torch.randn(1, 300, 3, generator=g)
    x = torch.cat([base[..., :1] + 0.1 * torch.randn(1, 300, 3, generator=g), base[..., 1:]], 2)  # 3 copies, 2 singles
    lab = correlation_groups(x, 0.5)[0]
    assert len(set(lab[:3].tolist())) == 1 and len(set(lab.tolist())) == 3
    with pytest.raises(ValueError, match="threshold"):
        correlation_groups(x, 1.5)


def test_grouped_permutation_recovers_shared_channels_spread_over_copies():
    b = mvd.modify_gamma([0, 1], specific=(15,), shared=(5,), n_train=200, n_test=10)
    w, truth_groups = mvd.with_copies(b, copies=4, noise=0.3)
    assert w.train.xa.shape == (2, 200, 65) and int(w.shared_a.sum(1)[0]) == 20
    assert torch.equal(truth_groups[:, 50:], torch.arange(5).repeat(3).expand(2, 15))
    c = np.corrcoef(w.train.xa[0, :, [0, 50]].T.numpy())[0, 1]
    assert 0.9 < c < 0.99                                          # the copies are correlated, not identical
    keys = np.stack([w.seed.numpy(), w.setting.numpy()], 1)
    fa, fb = align_unimodal(w.train.xa, w.train.xb, w.train.y, keys, epochs=300, dtype=torch.float64)
    lb, k = fb.logits(w.train.xb), w.shared_a.sum(1)
    single = precision_at_k(permutation_salience(fa, w.train.xa, lb, keys, n_permutations=10), w.shared_a, k)
    est = correlation_groups(w.train.xa, 0.5)
    grouped = precision_at_k(permutation_salience(fa, w.train.xa, lb, keys, n_permutations=10, groups=est), w.shared_a, k)
    assert (grouped >= 0.95).all() and (single <= 0.85).all(), (single, grouped)
