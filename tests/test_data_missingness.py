"""MCAR / MAR / MNAR simulators, including MultiModN's label-flipped MNAR test pattern."""
from __future__ import annotations

import pytest
import torch

from mmrepro.core.data import load_synthetic_bimodal, mar, mcar, mnar, mnar_flip


@pytest.fixture(scope="module")
def ds():
    return load_synthetic_bimodal(seed=0, n=2000)


def _missing(d, m="b"):
    return ~d.present[m]


def test_mcar_fraction_nan_and_no_mutation(ds):
    before = ds.x["b"].clone()
    out = mcar(ds, "b", 0.3, seed=1)
    miss = _missing(out)
    assert int(miss.sum()) == 600 and torch.isnan(out.x["b"][miss]).all() and not torch.isnan(out.x["b"][~miss]).any()
    assert torch.equal(ds.x["b"], before) and ds.present["b"].all() and torch.equal(out.x["a"], ds.x["a"])
    assert torch.equal(_missing(mcar(ds, "b", 0.3, seed=1)), miss)
    assert not torch.equal(_missing(mcar(ds, "b", 0.3, seed=2)), miss)
    y = ds.y["label"]
    assert abs(miss[y == 1].float().mean() - miss[y == 0].float().mean()) < 0.08
    assert out.meta["missingness"] == [{"kind": "MCAR", "modality": "b", "rate": 0.3, "seed": 1}]


def test_mcar_within_split_only(ds):
    out = mcar(ds, "a", 0.5, seed=0, rows="test")
    miss = _missing(out, "a")
    assert int(miss.sum()) == 150 and miss[ds.splits["test"]].sum() == 150


def test_mar_depends_on_observed_driver(ds):
    out = mar(ds, "b", 0.3, seed=0, driver=("a", 0), strength=2.0)
    miss = _missing(out)
    a0 = ds.x["a"][:, 0]
    assert int(miss.sum()) == 600 and a0[miss].mean() > a0[~miss].mean() + 0.5
    assert torch.equal(_missing(mar(ds, "b", 0.3, seed=0, driver=("a", 0))), miss)
    with pytest.raises(ValueError, match="driver"):
        mar(ds, "b", 0.3, driver=("b", 0))


def test_mnar_one_class_only(ds):
    y = ds.y["label"]
    out = mnar(ds, "b", 0.8, task="label", cls=1, seed=0)
    miss = _missing(out)
    assert not miss[y == 0].any() and int(miss[y == 1].sum()) == round(0.8 * int((y == 1).sum()))
    first = mnar(ds, "b", 0.5, task="label", cls=1, order="first")
    pos = (y == 1).nonzero().flatten()
    assert torch.equal(_missing(first).nonzero().flatten(), pos[: round(0.5 * len(pos))])


def test_mnar_flip_pattern(ds):
    """MultiModN Sec. 6.4: train/val miss the modality in one class; the test set in the other class."""
    out = mnar_flip(ds, "b", 0.8, task="label", cls=1, seed=0)
    y, miss = ds.y["label"], _missing(out)
    for split in ("train", "val"):
        r = ds.splits[split]
        assert miss[r][y[r] == 1].float().mean() == pytest.approx(0.8, abs=0.01) and not miss[r][y[r] == 0].any()
    r = ds.splits["test"]
    assert miss[r][y[r] == 0].float().mean() == pytest.approx(0.8, abs=0.01) and not miss[r][y[r] == 1].any()
    clean = mnar_flip(ds, "b", 0.8, task="label", test="none")
    assert not _missing(clean)[r].any()


def test_lengths_zeroed_for_sequences():
    from mmrepro.core.data import load_nyc_weather

    w = load_nyc_weather()
    out = mcar(w, "wind", 0.5, seed=0)
    miss = ~out.present["wind"]
    assert (out.lengths["wind"][miss] == 0).all() and torch.isnan(out.x["wind"][miss]).all()
    assert (w.lengths["wind"][w.present["wind"]] == 24).all()


@pytest.mark.parametrize("call, match", [
    (lambda d: mcar(d, "c", 0.1), "unknown modality 'c'"),
    (lambda d: mcar(d, "a", 1.5), r"rate=1.5 is out of range: it must be a finite number in \[0, 1\]"),
    (lambda d: mnar(d, "a", 0.1, task="nope"), "unknown task 'nope'"),
    (lambda d: mnar(d, "a", 0.1, task="label", order="last"), "unknown order"),
    (lambda d: mcar(d, "a", 0.1, rows="holdout"), "unknown split 'holdout'"),
    (lambda d: mnar_flip(d, "a", 0.1, task="label", cls=2), "cls in"),
])
def test_errors(ds, call, match):
    with pytest.raises(ValueError, match=match):
        call(ds)
