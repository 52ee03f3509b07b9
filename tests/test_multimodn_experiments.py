"""Tests of the MultiModN chapter's experiment runners (mmrepro.papers.multimodn.benchmarks and .studies)."""
from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import mean_squared_error, roc_auc_score

from mmrepro.papers.multimodn import FusionTransformer, MultiModN, PFusion
from mmrepro.papers.multimodn import benchmarks as B
from mmrepro.papers.multimodn import studies as X
from mmrepro.papers.multimodn.transformer import MIMIC


@pytest.fixture(scope="module")
def pbc():
    return B.load_benchmark("pbc", B.FoldRun(0, 0))


def test_runs_and_unknown_benchmark():
    runs = B.fold_runs(2, 3, 5, n_repeats=2)
    assert [(r.repeat, r.fold, r.init_index) for r in runs[:4]] == [(0, 0, 0), (0, 0, 1), (0, 0, 2), (0, 1, 0)]
    assert len({r.init for r in runs}) == len(runs) == 12  # every run its own initialisation seed
    assert {(r.repeat, r.seed) for r in runs} == {(0, 500), (1, 501)} and {r.n_folds for r in runs} == {2}
    assert {r.cluster for r in runs} == {"0/0", "0/1", "1/0", "1/1"}
    assert not {r.init for r in runs} & {r.init for r in B.fold_runs(2, 3, 6, n_repeats=2)}
    with pytest.raises(ValueError, match="n_folds must be an int >= 2"):
        B.fold_runs(1, 1)
    with pytest.raises(ValueError, match="n_inits must be an int >= 1"):
        B.fold_runs(2, 0)
    with pytest.raises(ValueError, match="n_repeats must be an int >= 1 and <= 100"):
        B.fold_runs(2, 1, n_repeats=101)
    with pytest.raises(ValueError, match="unknown benchmark 'mimic'"):
        B.load_benchmark("mimic")


def held_out(ds):
    return {k: set(ds.meta["patient_id"][v].tolist()) for k, v in ds.splits.items()}


def test_repeated_partitions_differ_and_each_is_a_partition():
    """Every repeat is a partition: its held-out folds (validation and test halves) are disjoint and cover
    the cohort, each split 80/10/10 with the three parts disjoint; the standardisation is fitted on
    training rows; the repeats' partitions differ."""
    partitions = {}
    for run in B.fold_runs(5, 1, n_repeats=2):
        ds = B.load_benchmark("pbc", run)
        ids = held_out(ds)
        assert not (ids["test"] & ids["train"]) and not (ids["test"] & ids["val"]) and not (ids["val"] & ids["train"])
        assert len(ids["train"]) == pytest.approx(0.8 * ds.n, abs=2) and len(ids) == 3
        assert len(ids["val"]) == pytest.approx(0.1 * ds.n, abs=2) and len(ids["test"]) == pytest.approx(0.1 * ds.n, abs=2)
        partitions.setdefault(run.repeat, []).append(ids["val"] | ids["test"])
        age = ds.x["static"][ds.splits["train"], 0]
        assert float(age.mean()) == pytest.approx(0, abs=0.15)  # standardised with (7/8 of) the training rows
        death = ds.split("test").y["death_5y"]
        assert float(torch.nanmean(death)) == pytest.approx(float(torch.nanmean(ds.split("val").y["death_5y"])), abs=0.12)
    for folds in partitions.values():
        assert sum(map(len, folds)) == len(set().union(*folds)) == 312
    assert [sorted(f) for f in partitions[0]] != [sorted(f) for f in partitions[1]]


def test_weather_halves_share_no_hour():
    """The held-out weather fold is halved by whole blocks; no window's hours reach from one half into the
    other (windows spanning both are dropped)."""
    bench = dataclasses.replace(B.BENCHMARKS["nyc_weather"], time_every=12)
    ds = B.load_benchmark(bench, B.FoldRun(2, 0))
    start = ds.meta["start_hour"]
    span = {k: set() for k in ("val", "test")}
    for k in span:
        for h in start[ds.splits[k]].tolist():
            span[k] |= set(range(h, h + B.WEATHER_WINDOW + B.WEATHER_HORIZON))
    assert span["val"] and span["test"] and not span["val"] & span["test"]
    assert len(ds.splits["train"]) > 6 * len(ds.splits["test"])


def test_restrict_keeps_splits_aligned():
    from mmrepro.core.data import load_dataset

    full = load_dataset("pbc", seed=0)
    trial = full.meta["trial"].bool()
    ds = B.restrict(full, trial)
    assert ds.n == int(trial.sum()) and all(bool(p.all()) for p in ds.present.values())
    original = trial.nonzero().flatten()
    for name, idx in ds.splits.items():
        want = full.splits[name][trial[full.splits[name]]]
        assert torch.equal(original[idx], want)
    assert sum(len(v) for v in ds.splits.values()) == ds.n
    with pytest.raises(ValueError, match="bool mask"):
        B.restrict(full, trial.long())


def test_thin_time_keeps_the_last_step():
    ds = B.load_benchmark("nyc_weather")
    thin = B.thin_time(ds, 6)
    assert thin.x["air"].shape[1] == 4 and thin.x["static"].shape == ds.x["static"].shape
    ok = ds.present["wind"]
    assert torch.equal(thin.x["wind"][ok, -1], ds.x["wind"][ok, 23])
    assert torch.equal(thin.x["wind"][ok, 0], ds.x["wind"][ok, 5])
    assert torch.equal(thin.lengths["air"], ds.lengths["air"] // 6)
    with pytest.raises(ValueError, match="positive int"):
        B.thin_time(ds, 0)
    bench = dataclasses.replace(B.BENCHMARKS["nyc_weather"], time_every=3)
    assert B.load_benchmark(bench).x["precip"].shape[1] == 8


def test_paired_differences_pair_runs_and_drop_undefined():
    rows = pd.DataFrame({"model": ["a", "b", "a", "b", "a", "b", "a"], "repeat": [0, 0, 0, 0, 1, 1, 1],
                         "fold": [0, 0, 1, 1, 0, 0, 1], "init": 0, "metric": "mse",
                         "value": [2.0, 1.0, 3.0, 4.0, math.nan, 1.0, 1.0]})
    d = X.paired_differences(rows, "a", "b", "mse")
    assert d["cluster"].tolist() == ["0/0", "0/1"] and d["diff"].tolist() == [1.0, -1.0]
    assert X.paired_differences(rows, "a", "b", "mse", relative=True)["diff"].tolist() == [1.0, -0.25]
    with pytest.raises(ValueError, match="model 'c'"):
        X.paired_differences(rows, "a", "c", "mse")
    with pytest.raises(ValueError, match="filter to one setting"):
        X.paired_differences(pd.concat([rows, rows]), "a", "b", "mse")


def test_task_metrics_against_sklearn():
    rng = np.random.default_rng(0)
    y = rng.normal(size=50)
    p = y + rng.normal(scale=0.5, size=50)
    m = B.task_metrics("regression", y, p)
    assert m["mse"] == pytest.approx(mean_squared_error(y, p))
    assert m["auroc"] == pytest.approx(roc_auc_score(y > 0, p))
    b = B.task_metrics("binary", np.array([0.0, 1, 1, 0]), np.array([0.2, 0.9, 0.4, 0.6]))
    assert b["auroc"] == pytest.approx(0.75) and b["bac"] == pytest.approx(0.5)
    assert math.isnan(B.task_metrics("binary", np.ones(3), np.array([0.2, 0.7, 0.9]))["auroc"])
    skill = B.task_metrics("regression", y, p, train_mean=0.3)["mse_skill"]
    assert skill == pytest.approx(1 - mean_squared_error(y, p) / mean_squared_error(y, np.full(50, 0.3)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a fold without some class: BAC over the classes it has, no warning
        assert B.task_metrics("multiclass", np.array([0, 0, 1]), np.array([[.1, .2, .7]] * 3))["bac"] == 0
    with pytest.raises(ValueError, match="multilabel"):
        B.task_metrics("multilabel", np.ones((2, 2)), np.ones((2, 2)))


def test_make_model_aligns_pfusion_width(pbc):
    bench = B.BENCHMARKS["pbc"]
    pf = B.make_model("P-Fusion", pbc, bench, ["death_5y"])
    assert isinstance(pf, PFusion)
    widths = {m: enc[-2].out_features for m, enc in pf.encoders.items()}
    assert set(widths.values()) == {math.ceil(bench.state_size / len(pbc.x))}
    mm = B.make_model("MultiModN", pbc, bench, ["death_5y", "stage"])
    assert isinstance(mm, MultiModN) and mm.state_size == bench.state_size and set(mm.tasks) == {"death_5y", "stage"}
    assert (mm.error_weight, mm.state_change_weight) == (1.0, 0.0)
    titanic = B.load_benchmark("titanic")
    penalised = B.make_model("MultiModN", titanic, B.BENCHMARKS["titanic"], ["survived"])
    assert (penalised.error_weight, penalised.state_change_weight) == (0.7, 0.003)  # the reference's Titanic weights
    tf = B.make_model("Transformer", pbc, bench, ["death_5y", "stage"])
    assert isinstance(tf, FusionTransformer) and tf.setting == MIMIC and set(tf.tasks) == {"death_5y", "stage"}
    with pytest.raises(ValueError, match="unknown model kind"):
        B.make_model("HAIM", pbc, bench, ["death_5y"])


def test_with_only_means_skip_for_multimodn_and_pad_for_pfusion(pbc):
    torch.manual_seed(0)
    bench = B.BENCHMARKS["pbc"]
    test = pbc.split("test")
    mm = B.make_model("MultiModN", pbc, bench, ["death_5y"]).eval()
    only = B.with_only(test, ["static", "labs"])
    assert not bool(only.present["signs"].any()) and bool(only.present["labs"].all())
    got = mm.predict(only.x, only.present)["death_5y"]
    want = mm.predict(test.x, test.present, order=["static", "labs"])["death_5y"]
    torch.testing.assert_close(got, want)
    pf = B.make_model("P-Fusion", pbc, bench, ["death_5y"]).eval()
    zeroed = dict(test.x, signs=torch.zeros_like(test.x["signs"]))
    torch.testing.assert_close(pf.predict(only.x, only.present)["death_5y"], pf.predict(zeroed)["death_5y"])
    with pytest.raises(ValueError, match="not in"):
        B.with_only(test, ["image"])


def test_parity_rows_kinds_variants_and_determinism():
    run = B.FoldRun(0, 0)
    seen = []
    rows, inspected = X.parity("titanic", [run], epochs=1, subsets_task="survived",
                               variants={"no penalty": {"loss_weights": (1, 0)}},
                               inspect=lambda name, model, data, r: seen.append(name) or type(model).__name__)
    again, _ = X.parity("titanic", [run], epochs=1, kinds=("MultiModN", "P-Fusion"))
    assert set(rows["model"]) == {"MultiModN", "P-Fusion", "Transformer", "no penalty"}
    assert {(n, res) for n, _, res in inspected} == {("MultiModN", "MultiModN"), ("P-Fusion", "PFusion"),
                                                    ("Transformer", "FusionTransformer"), ("no penalty", "MultiModN")}
    full = rows[rows["inputs"] == "sex+age+pclass"]
    assert len(full) == 4 * 2 and set(full["metric"]) == {"auroc", "bac"}
    assert rows["inputs"].nunique() == 1 + 6  # all inputs, then the 6 proper non-empty subsets
    two = full[full.model.isin(["MultiModN", "P-Fusion"])].reset_index(drop=True)
    pd.testing.assert_frame_equal(two, again.reset_index(drop=True))
    with pytest.raises(ValueError, match="unknown model kinds"):
        X.parity("titanic", [run], epochs=1, kinds=("HAIM",))


def test_repetitions_objective_settings_keys_and_rebuilt_models():
    ds = B.load_benchmark("titanic", B.FoldRun(0, 0))
    obj = X.Repetitions(B.BENCHMARKS["titanic"], {"fold 0": ds})
    config = {"model": "MultiModN", "tasks": ["survived"], "select": None, "data": "fold 0", "epochs": 1,
              "setting": {"state_size": 3, "loss_weights": [1.0, 0.0]}}
    trained = obj(config, 4)
    model = obj.model(trained)
    assert model.state_size == 3 and model.state_change_weight == 0.0 and trained.best_epoch == 1
    x = ds.split("test")
    torch.manual_seed(4)
    again = B.make_model("MultiModN", ds, dataclasses.replace(B.BENCHMARKS["titanic"], state_size=3,
                                                               loss_weights=(1.0, 0.0)), ["survived"])
    again.load_state_dict(trained.state)
    torch.testing.assert_close(model.predict(x.x, x.present)["survived"], again.eval().predict(x.x, x.present)["survived"])
    assert obj.key(config, 4) != obj.key(dict(config, setting={}), 4) != obj.key(config, 5)
    with pytest.raises(ValueError, match="cannot change"):
        obj(dict(config, setting={"lr": 0.1}), 0)


def test_parity_multitask_models():
    bench = dataclasses.replace(B.BENCHMARKS["nyc_weather"], time_every=12, tasks=("temp_24h", "humid_48h"))
    rows, _ = X.parity(bench, [B.FoldRun(1, 0)], epochs=1, kinds=("P-Fusion",), multitask=("MultiModN", "Transformer"))
    for name in ("MultiModN multi-task", "Transformer multi-task"):
        multi = rows[rows["model"] == name]
        assert set(multi["task"]) == {"temp_24h", "humid_48h"} and set(multi["metric"]) == {"mse", "auroc", "mse_skill"}


def test_parity_trains_transformers_in_the_first_inits_only():
    bench = dataclasses.replace(B.BENCHMARKS["nyc_weather"], time_every=12, tasks=("temp_24h", "humid_48h"))
    runs = [B.FoldRun(1, 3), B.FoldRun(1, 4, init_index=1)]
    rows, _ = X.parity(bench, runs, epochs=1, kinds=("P-Fusion", "Transformer"), multitask=("Transformer",),
                       transformer_inits=1)
    inits = rows.groupby("model")["init"].unique().apply(sorted).to_dict()
    assert inits == {"P-Fusion": [3, 4], "Transformer": [3], "Transformer multi-task": [3]}
    with pytest.raises(ValueError, match="transformer_inits must be an int >= 1"):
        X.parity(bench, runs, epochs=1, transformer_inits=0)


def test_missingness_rows():
    rows = X.missingness("pbc", "death_5y", "labs", [0.0, 0.5], [B.FoldRun(0, 0)], epochs=1)
    assert set(map(tuple, rows[["pattern", "test"]].drop_duplicates().to_numpy())) == {
        ("MNAR", "none"), ("MNAR", "flip"), ("MAR", "none"), ("MAR", "MAR")}
    zero = rows[(rows["rate"] == 0) & (rows["metric"] == "auroc")]
    for model, grp in zero.groupby("model"):
        assert grp["value"].nunique() == 1, model  # rate 0: one model, one clean test
    assert len(rows) == 2 * 2 * 2 * 2 * 2  # rates x patterns x tests x models x metrics


def test_sensitivity_varies_one_parameter_at_a_time():
    rows = X.sensitivity("titanic", "survived", {"state_size": [1, 20], "dropout": [0.0]}, [B.FoldRun(0, 0)], epochs=1)
    settings = rows[rows.metric == "bac"].groupby("parameter")["setting"].apply(sorted).to_dict()
    assert settings == {"state_size": [1, 20], "dropout": [0.0, 0.2]}  # the centre (20, 0.2) under both
    centre = rows[(rows.metric == "bac") & (((rows.parameter == "state_size") & (rows.setting == 20))
                                            | ((rows.parameter == "dropout") & (rows.setting == 0.2)))]
    assert centre["value"].nunique() == 1
    with pytest.raises(ValueError, match="cannot vary"):
        X.sensitivity("titanic", "survived", {"lr": [0.1]}, [B.FoldRun(0, 0)], epochs=1)


def test_interpretability_tables(pbc):
    torch.manual_seed(0)
    model = B.make_model("MultiModN", pbc, B.BENCHMARKS["pbc"], ["death_5y", "stage"])
    test = pbc.split("test")
    imp = X.importance_table(model, test, {"stage": [2, 3]})
    assert len(imp) == 2 * 3 and set(imp["modality"]) == set(pbc.modalities)
    assert (imp["n"] == test.n).all() and imp["mean_abs"].ge(imp["importance"].abs() - 1e-12).all()
    traj = X.trajectories(model, test, {"stage": [2, 3]})
    assert len(traj) == test.n * 2 * 4 and list(traj[traj.row == 0]["label"][:4]) == ["prior", *pbc.modalities]
    assert traj["probability"].between(0, 1).all()
    stage = traj[(traj.task == "stage") & (traj.step == 0)]
    want = np.where(test.y["stage"].numpy() >= 2, 1.0, 0.0)
    np.testing.assert_array_equal(stage["target"].to_numpy(), np.where(test.y["stage"].numpy() < 0, np.nan, want))
    with torch.no_grad():
        last = torch.sigmoid(model.eval().predict(test.x, test.present)["death_5y"][:, 0]).numpy()
    np.testing.assert_allclose(traj[(traj.task == "death_5y") & (traj.step == 3)]["probability"], last, rtol=1e-5)
    with pytest.raises(ValueError, match="positive"):
        X.importance_table(model, test)


def test_modularity_table_cross_check():
    mod = X.modularity_table(range(1, 8), range(1, 5))
    np.testing.assert_allclose(mod["closed_form"], mod["networkx"], atol=1e-12)
    assert (mod.loc[mod["M"] >= 2, "paper"] < mod.loc[mod["M"] >= 2, "networkx"]).all()


def test_repetitions_many_is_one_call_per_job():
    """Repetitions of every kind trained together (dropout on: each run's own stream), each on its own fold,
    or one by one give the same runs. Float32: parameters agree within 1e-4; the validation AUROC may move
    by a pair that float rounding reorders (about 2e-4 here)."""
    bench = dataclasses.replace(B.BENCHMARKS["titanic"], state_size=6, hidden=8)
    folds = {f"fold {f}": B.load_benchmark(bench, B.FoldRun(f, 0)) for f in range(3)}
    obj = X.Repetitions(bench, folds)
    for kind in ("MultiModN", "P-Fusion", "Transformer"):
        config = {"model": kind, "tasks": ["survived"], "select": None, "epochs": 2}
        jobs = [(dict(config, data=f"fold {f}"), s) for f, s in zip(range(3), (0, 1, 2))]
        assert len({obj.group(c) for c, _ in jobs}) == 1
        for a, b in zip([obj(c, s) for c, s in jobs], obj.many(jobs)):
            assert a.best_epoch == b.best_epoch and a.score == pytest.approx(b.score, abs=1e-3)
            for k, v in a.state.items():
                torch.testing.assert_close(v, b.state[k], atol=1e-4, rtol=0)
