"""MVD Gaussian generators (MFH Appendix B.2): shapes, channel layout, determinism, errors."""
import pytest
import torch

from mmrepro.papers.mfh import generator as mvd


def test_increase_gamma_shapes_and_layout():
    b = mvd.increase_gamma([0, 1, 2], n_train=30, n_test=40)
    assert b.n_runs == 18 and b.n_settings == 6
    assert b.train.xa.shape == (18, 30, 25) and b.train.xb.shape == (18, 30, 50)
    assert b.test.xa.shape == (18, 40, 25) and b.test.y.shape == (18, 40)
    assert b.student is None
    assert torch.allclose(b.by_setting(b.gamma)[:, 0].float(),
                          torch.tensor([0, 2 / 18, 4 / 16, 6 / 14, 8 / 12, 1.0]))
    assert torch.allclose(b.alpha + b.beta + b.gamma, torch.ones(18, dtype=torch.float64))
    # shared channels carry the same feature in both modalities (channel j <- feature j)
    for k, o in enumerate([0, 2, 4, 6, 8, 10]):
        r = 3 * k
        assert int(b.shared_a[r].sum()) == o
        for j in range(10 - o, 10):
            assert torch.equal(b.train.xa[r, :, j], b.train.xb[r, :, j])
        assert not torch.equal(b.train.xa[r, :, 20 - o if o else 20], b.train.xb[r, :, 20 - o if o else 20])


def test_labels_follow_hyperplane_and_common_random_numbers():
    b = mvd.increase_alpha([5], n_train=300, n_test=10)
    # same seed: same labels and same student features in every setting
    assert all(torch.equal(b.train.y[0], b.train.y[k]) for k in range(b.n_runs))
    assert all(torch.equal(b.train.xb[0], b.train.xb[k]) for k in range(b.n_runs))
    # alpha = 0.8 setting: teacher holds all 50 label features, so a linear rule is exact
    xa, y = b.train.xa[-1].double(), b.train.y[-1].double() * 2 - 1
    w = torch.linalg.lstsq(xa, y[:, None]).solution
    assert ((xa @ w).squeeze() * y > 0).double().mean() > 0.8
    assert 0.3 < b.train.y.double().mean() < 0.7


def test_modify_gamma_student_set_and_masks():
    b = mvd.modify_gamma([0, 1], specific=(15, 10), shared=(5, 30), n_train=20, n_test=20)
    assert b.student is not None and b.student.xa.shape == (4, 20, 50)
    assert b.shared_a.sum(1).tolist() == [5, 5, 30, 30]
    assert b.decisive_a.sum(1).tolist() == [20, 20, 40, 40]
    assert not torch.equal(b.student.xa, b.train.xa)
    assert torch.allclose(b.gamma, torch.tensor([0.25, 0.25, 0.75, 0.75], dtype=torch.float64))


def test_deterministic_per_seed_and_independent_of_batch():
    a = mvd.increase_gamma([3, 4], n_train=10, n_test=10)
    b = mvd.increase_gamma([3, 4], n_train=10, n_test=10)
    c = mvd.increase_gamma([4], n_train=10, n_test=10)
    assert torch.equal(a.train.xa, b.train.xa) and torch.equal(a.test.y, b.test.y)
    assert torch.equal(a.train.xb[1], c.train.xb[0])        # seed 4 alone == seed 4 in a batch
    assert not torch.equal(a.train.xb[0], a.train.xb[1])
    assert not torch.equal(a.train.xb[0], a.test.xb[0, :10])


@pytest.mark.parametrize("call, match", [
    (lambda: mvd.increase_gamma([]), "non-empty"),
    (lambda: mvd.increase_gamma([1, 1]), "distinct"),
    (lambda: mvd.increase_gamma([0], overlaps=(12,)), r"overlaps must be integers in \[0, 10\]"),
    (lambda: mvd.increase_alpha([0], extra=(50,)), "extra"),
    (lambda: mvd.modify_gamma([0], specific=(10,), shared=(10, 20)), "same length"),
    (lambda: mvd.modify_gamma([0], specific=(30,), shared=(30,)), "<= 50"),
    (lambda: mvd.increase_gamma([0], n_train=1), "n_train must be an integer >= 2"),
])
def test_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_venn_design_fractions_and_layout():
    b = mvd.venn([0], shared=(10, 0, 20), specific_a=(5, 10, 0), specific_b=(5, 10, 0), n_train=20, n_test=20)
    assert torch.allclose(b.gamma, torch.tensor([0.5, 0.0, 1.0], dtype=torch.float64))
    assert torch.allclose(b.alpha, torch.tensor([0.25, 0.5, 0.0], dtype=torch.float64))
    assert b.shared_a.sum(1).tolist() == [10, 0, 20] and b.decisive_a.sum(1).tolist() == [15, 10, 20]
    assert torch.equal(b.train.xa[0, :, 5:15], b.train.xb[0, :, 5:15])      # shared block
    with pytest.raises(ValueError, match="at least one per modality"):
        mvd.venn([0], shared=(0,), specific_a=(0,), specific_b=(5,))
    with pytest.raises(ValueError, match="same length"):
        mvd.venn([0], shared=(1, 2), specific_a=(0,), specific_b=(5,))
