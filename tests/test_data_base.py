"""The dataset shape: validation, subset/split/to, splits and standardisation helpers."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.preprocessing import StandardScaler

from mmrepro.core.data import MultimodalDataset, Task, load_synthetic_bimodal
from mmrepro.core.data.splits import standardize, stratified_split


def _tiny(n=6):
    return MultimodalDataset(
        name="tiny", x={"a": torch.arange(n * 2.0).reshape(n, 2), "s": torch.zeros(n, 3, 1)},
        lengths={"s": torch.arange(n) % 3}, present={"a": torch.ones(n, dtype=torch.bool), "s": torch.arange(n) > 0},
        y={"t": torch.arange(n) % 2 * 1.0}, tasks={"t": Task("t", "binary", 1)},
        splits={"train": torch.tensor([0, 1, 2, 3]), "test": torch.tensor([4, 5])},
        meta={"row_meta": ["rid"], "rid": torch.arange(n) * 10},
    )


def test_subset_split_keep_rows_aligned():
    ds = _tiny()
    te = ds.split("test")
    assert te.n == 2 and torch.equal(te.x["a"], ds.x["a"][4:]) and torch.equal(te.lengths["s"], torch.tensor([1, 2]))
    assert torch.equal(te.meta["rid"], torch.tensor([40, 50])) and torch.equal(te.splits["test"], torch.arange(2))
    sub = ds.subset(torch.tensor([5, 0]))
    assert torch.equal(sub.y["t"], torch.tensor([1.0, 0.0])) and sub.present["s"].tolist() == [True, False]
    assert torch.equal(ds.subset(ds.present["s"]).meta["rid"], torch.tensor([10, 20, 30, 40, 50]))
    assert ds.subset("train").n == 4 and torch.equal(ds.meta["rid"], torch.arange(6) * 10)  # original untouched


def test_to_moves_every_tensor():
    ds = _tiny().to("meta")
    assert all(v.device.type == "meta" for d in (ds.x, ds.present, ds.y, ds.lengths) for v in d.values())


@pytest.mark.parametrize("change, match", [
    (dict(present={"a": torch.ones(6, dtype=torch.bool)}), "x has modalities"),
    (dict(y={}), "y has targets"),
    (dict(lengths={"s": torch.ones(6)}), "lengths"),
    (dict(splits={"train": torch.tensor([0.0])}), "int64 index"),
])
def test_validate_rejects_misaligned(change, match):
    ds = _tiny()
    kw = dict(name=ds.name, x=ds.x, lengths=ds.lengths, present=ds.present, y=ds.y, tasks=ds.tasks,
              splits=ds.splits, meta=ds.meta) | change
    with pytest.raises(ValueError, match=match):
        MultimodalDataset(**kw)


def test_task_checks():
    with pytest.raises(ValueError, match="kind 'ordinal'"):
        Task("t", "ordinal", 1)
    with pytest.raises(ValueError, match="n_outputs=1"):
        Task("t", "binary", 2)


def test_unknown_split_and_bad_mask():
    ds = _tiny()
    with pytest.raises(ValueError, match=r"unknown split 'val'; valid: \['test', 'train'\]"):
        ds.split("val")
    with pytest.raises(ValueError, match="boolean row mask"):
        ds.subset(torch.ones(3, dtype=torch.bool))


def test_stratified_split_disjoint_balanced_deterministic():
    y = torch.arange(1000) % 4
    s = stratified_split(y, seed=3)
    allrows = torch.cat(list(s.values()))
    assert len(allrows) == 1000 and len(torch.unique(allrows)) == 1000
    assert [len(s[k]) for k in ("train", "val", "test")] == [700, 148, 152]
    for k in s:
        counts = torch.bincount(y[s[k]])
        assert counts.max() - counts.min() <= 1
    assert all(torch.equal(s[k], stratified_split(y, seed=3)[k]) for k in s)
    assert not torch.equal(s["test"], stratified_split(y, seed=4)["test"])
    with pytest.raises(ValueError, match="summing to 1"):
        stratified_split(y, 0, (0.5, 0.5, 0.5))


def test_standardize_matches_sklearn():
    x = torch.randn(50, 3, dtype=torch.float64) * torch.tensor([1.0, 5.0, 0.0]) + 2
    tr = torch.arange(0, 50, 2)
    z, mean, std = standardize(x, tr)
    ref = StandardScaler().fit(x[tr].numpy()).transform(x.numpy())
    np.testing.assert_allclose(z.numpy(), ref, atol=1e-10)


def test_synthetic_bimodal_strength_matches_bayes_accuracy():
    from sklearn.linear_model import LogisticRegression

    ds = load_synthetic_bimodal(seed=1, n=6000, strength=(3.0, 1.0), speed=(1.0, 10.0))
    tr, te = ds.split("train"), ds.split("test")
    for m in ("a", "b"):
        acc = LogisticRegression().fit(tr.x[m].numpy(), tr.y["label"].numpy()).score(te.x[m].numpy(), te.y["label"].numpy())
        assert abs(acc - ds.meta["bayes_accuracy"][m]) < 0.05, (m, acc)
    assert ds.x["b"].std() > 5 * ds.x["a"].std()  # speed rescales features
    same = load_synthetic_bimodal(seed=1, n=6000, strength=(3.0, 1.0), speed=(1.0, 10.0))
    assert torch.equal(same.x["a"], ds.x["a"])
    multi = load_synthetic_bimodal(n_classes=4, dims=(8, 4))
    assert multi.tasks["label"].kind == "multiclass" and multi.y["label"].dtype == torch.int64


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 4), min_size=1, max_size=200), st.integers(0, 2**31 - 1))
def test_stratified_split_always_partitions(labels, seed):
    y = torch.tensor(labels)
    s = stratified_split(y, seed)
    rows = torch.cat(list(s.values()))
    assert torch.equal(torch.sort(rows).values, torch.arange(len(labels)))
    for c in torch.unique(y):
        n_c = int((y == c).sum())
        assert abs(int((y[s["train"]] == c).sum()) - 0.7 * n_c) <= 1
