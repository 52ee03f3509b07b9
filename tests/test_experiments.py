"""mmrepro.runs and mmrepro.papers.miles.setup: search spaces, random search (selection on validation, one test evaluation),
seeds and intervals, and the MILES joint-fusion setup on tiny data."""
import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from mmrepro.core.balancing import MSLR, OGM
from mmrepro.core.data import load_dataset
from mmrepro.papers.miles.scheduler import MILES
from mmrepro.papers.miles.setup import (
    CONTROL,
    METHODS,
    UNIMODAL_LOSSES,
    Arch,
    JointSetup,
    build_model,
    flattened,
    fusion_split_logits,
    make_method,
    method_space,
    probe_accuracy,
    readout_logits,
    reference_split_accuracies,
)
from mmrepro.runs.repeat import paired_difference, search_then_repeat, seeds_from, summarise, t_interval
from mmrepro.runs.search import random_search
from mmrepro.runs.space import Choice, LogUniform, Uniform, sample

# ----------------------------------------------------------------------------- spaces

def test_distributions_stay_in_range_and_validate():
    rng = np.random.default_rng(0)
    lu = [LogUniform(1e-4, 1e-2).draw(rng) for _ in range(2000)]
    assert min(lu) >= 1e-4 and max(lu) <= 1e-2
    # log-uniform: the median of log10 is the midpoint -3
    assert abs(np.median(np.log10(lu)) + 3) < 0.1
    assert set(Choice([1, 2, 3]).draw(rng) for _ in range(200)) == {1, 2, 3}
    u = [Uniform(0.2, 0.4).draw(rng) for _ in range(200)]
    assert 0.2 <= min(u) and max(u) <= 0.4
    with pytest.raises(ValueError, match="0 < low <= high"):
        LogUniform(0.0, 1.0)
    with pytest.raises(ValueError, match="low <= high"):
        Uniform(1.0, 0.0)
    with pytest.raises(ValueError, match="at least one option"):
        Choice([])


def test_sample_common_random_numbers():
    """Trial k draws the same lr whatever else is in the space; different trials differ."""
    a = sample({"lr": LogUniform(1e-4, 1e-2)}, seed=3, trial=1)
    b = sample({"lr": LogUniform(1e-4, 1e-2), "tau": Choice([0.0, 0.2]), "fixed": 7}, seed=3, trial=1)
    assert a["lr"] == b["lr"] and b["fixed"] == 7
    assert sample({"lr": LogUniform(1e-4, 1e-2)}, seed=3, trial=2)["lr"] != a["lr"]
    assert sample({"lr": LogUniform(1e-4, 1e-2)}, seed=4, trial=1)["lr"] != a["lr"]
    with pytest.raises(ValueError, match="trial"):
        sample({}, 0, -1)


# ----------------------------------------------------------------------------- search

class Fake:
    """A candidate whose validation score is a known function of the config; counts test calls."""
    calls: list = []

    def __init__(self, config, seed):
        self.config, self.seed = config, seed
        self.score = -abs(math.log10(config["lr"]) + 3)  # best near lr = 1e-3
        self.tested = 0

    def evaluate_test(self):
        self.tested += 1
        Fake.calls.append(self)
        return {"fusion": 1 + self.score, "seed": self.seed}


def test_random_search_selects_on_validation_and_tests_once():
    Fake.calls = []
    space = {"lr": LogUniform(1e-5, 1e-1)}
    res = random_search(Fake, space, n_trials=12, seed=0)
    scores = res.frame()["val_score"]
    assert len(scores) == 12 and res.best.score == scores.max()
    assert res.best_trial == int(scores.idxmax())
    assert res.best_config == sample(space, 0, res.best_trial)
    assert len(Fake.calls) == 1 and Fake.calls[0] is res.best and res.best.tested == 1
    assert res.test["fusion"] == 1 + res.best.score


def test_random_search_skips_nonfinite_and_errors():
    class Nan(Fake):
        def __init__(self, config, seed):
            super().__init__(config, seed)
            self.score = math.nan

    with pytest.raises(RuntimeError, match="no trial"):
        random_search(Nan, {"lr": 1e-3}, 2)
    with pytest.raises(ValueError, match="n_trials"):
        random_search(Fake, {"lr": 1e-3}, 0)


def test_search_then_repeat_reuses_winner_and_tests_each_seed_once():
    Fake.calls = []
    rep = search_then_repeat(Fake, {"lr": LogUniform(1e-5, 1e-1)}, 5, seeds_from(10, 3), keep_runs=True)
    f = rep.frame()
    assert list(f["seed"]) == [10, 11, 12]
    assert len(Fake.calls) == 3 and all(c.tested == 1 for c in Fake.calls)
    assert all(r.config == rep.search.best_config for r in rep.runs)
    assert rep.runs[0] is rep.search.best
    with pytest.raises(ValueError, match="distinct"):
        search_then_repeat(Fake, {"lr": 1e-3}, 1, [1, 1])


# ----------------------------------------------------------------------------- intervals

def test_t_interval_matches_scipy():
    v = [0.91, 0.95, 0.93, 0.97, 0.90]
    m, lo, hi = t_interval(v, 0.9)
    ref = stats.t.interval(0.9, len(v) - 1, loc=np.mean(v), scale=stats.sem(v))
    assert m == pytest.approx(np.mean(v)) and (lo, hi) == pytest.approx(ref)
    assert math.isnan(t_interval([0.5])[1])
    with pytest.raises(ValueError, match="finite"):
        t_interval([0.1, math.nan])


def test_summarise_and_paired_difference():
    f = pd.DataFrame({"method": ["a"] * 3 + ["b"] * 3, "seed": [0, 1, 2] * 2,
                      "acc": [0.9, 0.8, 0.85, 0.8, 0.75, 0.8]})
    s = summarise(f, ["method"], ["acc"]).set_index("method")
    assert s.loc["a", "acc"] == pytest.approx(0.85) and s.loc["a", "n"] == 3
    assert s.loc["a", "acc_sd"] == pytest.approx(np.std([0.9, 0.8, 0.85], ddof=1))
    d = paired_difference(f, "method", "a", "b", "acc")
    ref = stats.ttest_rel([0.9, 0.8, 0.85], [0.8, 0.75, 0.8]).confidence_interval(0.95)
    assert d["diff"] == pytest.approx(1 / 3 * 0.2) and (d["lo"], d["hi"]) == pytest.approx(tuple(ref))
    assert d["wins"] == 3 and d["n"] == 3
    with pytest.raises(ValueError, match="no seed"):
        paired_difference(f, "method", "a", "c", "acc")
    with pytest.raises(ValueError, match="not in the frame"):
        summarise(f, ["nope"], ["acc"])


# ----------------------------------------------------------------------------- the MILES setup

def test_method_spaces_and_factories():
    lr = LogUniform(1e-4, 1e-2)
    for name in METHODS:
        cfg = sample(method_space(name, lr, epochs=6), 0, 0)
        method = make_method(name, cfg, {"a": 1e-3, "b": 2e-3})
        assert (method is None) == (name in ("vanilla", CONTROL))
    assert all(w <= 3 for w in method_space("mses", lr, 6)["patience"].options)
    assert isinstance(make_method("mslr-s", {"smooth": 1.0}, {"a": 1e-3, "b": 3e-3}), MSLR)
    m = make_method("miles", {"tau": 0.1, "mu": 0.25, "u_split": "train"})
    assert isinstance(m, MILES) and (m.tau, m.mu, m.split) == (0.1, 0.25, "train")
    assert make_method("ogm-ge", {"alpha": 0.3}).ge and not make_method("ogm", {"alpha": 0.3}).ge
    assert isinstance(make_method("ogm", {"alpha": 0.3}), OGM)
    with pytest.raises(ValueError, match="unimodal_lr"):
        make_method("mslr-k", {})
    with pytest.raises(ValueError, match="unknown method"):
        method_space("nope", lr, 5)


@pytest.fixture(scope="module")
def tiny():
    data = load_dataset("synthetic_bimodal", n=300, strength=(3.0, 1.0))
    return JointSetup(data, Arch(mlp_hidden=(8,)), epochs=3, batch_size=32, device="cpu")


def test_joint_setup_runs_every_method_and_is_deterministic(tiny):
    for name in METHODS:
        cfg = sample(method_space(name, LogUniform(1e-3, 1e-2), tiny.epochs), 0, 0)
        run = tiny.objective(name, "concat", {"a": 3e-3, "b": 3e-3})(cfg, 0)
        # only MILES, G-Blend and the eq. 3 control train unimodal heads (their papers' losses)
        scored = {k.split("/")[1] for k in run.history[0] if k.startswith("val/")}
        assert scored == {"fusion", "probe:a", "probe:b"} | ({"a", "b"} if name in UNIMODAL_LOSSES else set())
        with pytest.raises(RuntimeError, match="revealed with the test evaluation"):
            run.test_rows("fusion")
        test = run.evaluate_test()
        heads = {"head:a", "head:b"} if name in UNIMODAL_LOSSES else set()
        assert set(test) == {"fusion", "a", "b", "probe:a", "probe:b", "split:a", "split:b", "readout:a", "readout:b",
                             "best_epoch"} | heads
        # every head's test accuracy is a count of correct test rows over their number, not just a value in [0, 1]
        n_test = tiny.test.n
        for key, acc in test.items():
            if key != "best_epoch":
                assert 0 <= acc <= 1 and acc * n_test == pytest.approx(round(acc * n_test), abs=1e-4), key  # float32 values
        # the paper's readout: the unimodal heads where the method trains them, else the fusion-layer split
        for m in "ab":
            assert test[f"readout:{m}"] == test[f"head:{m}" if name in UNIMODAL_LOSSES else f"split:{m}"]
            rows = run.test_rows(f"readout:{m}")
            assert rows.dtype == torch.bool and rows.shape == (tiny.test.n,)
            assert rows.float().mean().item() == pytest.approx(test[f"readout:{m}"])
        assert set(run.val_readout) == set(test) - {"a", "b", "best_epoch"}
        with pytest.raises(RuntimeError, match="once"):
            run.evaluate_test()
    obj = tiny.objective("miles", "sum")
    cfg = {"lr": 5e-3, "tau": 0.0, "mu": 0.5}
    r1, r2 = obj(cfg, 1), obj(cfg, 1)
    assert r1.score == r2.score and r1.history == r2.history
    assert r1.evaluate_test() == r2.evaluate_test()
    assert len(r1.decisions) == tiny.epochs


def test_mu_one_is_eq3_training(tiny):
    """The eq. 3 control is MILES's network and losses without the scheduler: MILES with mu = 1 never changes a
    rate, so it trains exactly like the control, row by row (Table V, mu = 1); vanilla has no unimodal losses."""
    obj = tiny.objective(CONTROL, "sum")
    assert obj.multihead and obj.key({"lr": 5e-3}, 2)["method"] == CONTROL and make_method(CONTROL, {"lr": 1.0}) is None
    assert method_space(CONTROL, LogUniform(1e-3, 1e-2), 5).keys() == {"lr"}
    m = tiny.objective("miles", "concat")({"lr": 5e-3, "tau": 0.0, "mu": 1.0}, 2)
    e = tiny.objective(CONTROL, "concat")({"lr": 5e-3}, 2)
    v = tiny.objective("vanilla", "concat")({"lr": 5e-3}, 2)
    assert m.score == e.score and m.evaluate_test() == e.evaluate_test()
    assert all(torch.equal(m.test_rows(k), e.test_rows(k)) for k in ("fusion", "readout:a", "readout:b"))
    assert v.history[-1]["train/fusion/loss"] != m.history[-1]["train/fusion/loss"]


def test_fusion_layer_readout_against_a_hand_computation():
    """OGM-GE's evaluation: concatenation reads W_m z_m + b / 2, summation W z_m + b (the shared layer); the
    run's numbers are the argmax of those logits on the test rows."""
    data = load_dataset("synthetic_bimodal", n=120, strength=(3.0, 1.0))
    for fusion in ("concat", "sum"):
        torch.manual_seed(0)
        model = build_model(data, fusion, Arch(mlp_hidden=(6,)), multihead=False).eval()
        test = data.split("test")
        with torch.no_grad():
            z = model.encode(test.x)[0]
            w, b = model.heads["fusion"].weight, model.heads["fusion"].bias
            if fusion == "concat":
                hand = {"a": z["a"] @ w[:, :6].T + b / 2, "b": z["b"] @ w[:, 6:].T + b / 2}
            else:
                hand = {m: z[m] @ w.T + b for m in "ab"}
            got = fusion_split_logits(model, z)
            logits = readout_logits(model, test)
        for m in "ab":
            assert torch.allclose(got[m], hand[m]) and torch.allclose(logits[f"split:{m}"], hand[m])
        assert torch.allclose(logits["fusion"], model(test.x).logits["fusion"].detach())
    # the exercise's reference, on three rows by hand: a reads rows 0-2 right, b only row 2 (its zero rows fall to b / 2)
    w = np.eye(3)
    assert reference_split_accuracies(w, [0.0, 0.0, 2.0], [[3.0, 0.0], [0.0, 1.0], [0.0, 0.0]], [[0.0], [5.0], [0.0]],
                                      [0, 1, 2]) == (1.0, pytest.approx(1 / 3))
    with pytest.raises(ValueError, match="must fit together"):
        reference_split_accuracies(w, [0.0, 0.0, 2.0], [[3.0], [0.0], [0.0]], [[0.0], [5.0], [0.0]], [0, 1, 2])


def test_probe_accuracy_is_a_converged_linear_probe(tiny):
    """The refitted probe is the converged sklearn logistic regression on the frozen embeddings (checked
    against lbfgs run to a tolerance of 1e-10), and a strong modality probes better than chance."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from mmrepro.core.trainer import fit
    from mmrepro.papers.miles.setup import build_model

    torch.manual_seed(0)
    model = fit(build_model(tiny.data, "concat", tiny.arch, multihead=False, probes=True), tiny.train, tiny.val,
                epochs=3, lr=5e-3, device="cpu", progress=False).model
    acc = probe_accuracy(model, tiny.train, tiny.test, "a")
    with torch.no_grad():
        model.eval()
        z_tr = model.encode(tiny.train.x)[0]["a"].double().numpy()
        z_te = model.encode(tiny.test.x)[0]["a"].double().numpy()
    # the same estimator solved by another solver (lbfgs) to a far tighter tolerance: the same optimum
    ref = make_pipeline(StandardScaler(), LogisticRegression(tol=1e-10, max_iter=20000)).fit(
        z_tr, tiny.train.y["label"].long())
    assert acc == pytest.approx(ref.score(z_te, tiny.test.y["label"].long()))
    assert acc > 0.7


def test_flattened_keeps_rows_and_standardises_images():
    from mmrepro.core.data import MultimodalDataset, Task

    n = 40
    x = torch.rand(n, 1, 4, 4) * 5 + 2
    d = MultimodalDataset("img", {"i": x, "t": torch.randn(n, 3)}, {}, {m: torch.ones(n, dtype=torch.bool) for m in "it"},
                          {"y": torch.arange(n) % 2}, {"y": Task("y", "multiclass", 2, ["0", "1"])},
                          {"train": torch.arange(30), "val": torch.arange(30, 35), "test": torch.arange(35, 40)},
                          {"modality_kinds": {"i": "image", "t": "tabular"}})
    f = flattened(d)
    assert f.x["i"].shape == (n, 16) and f.meta["modality_kinds"] == {"i": "tabular", "t": "tabular"}
    assert torch.allclose(f.x["i"][:30].mean(0), torch.zeros(16), atol=1e-5)
    assert torch.equal(f.x["t"], d.x["t"]) and d.x["i"].dim() == 4  # the original is untouched


def test_method_space_taus():
    lr = LogUniform(1e-4, 1e-2)
    assert method_space("miles", lr, 10, [0.3, 0.4])["tau"].options == (0.3, 0.4)
    assert method_space("mslr-d", lr, 20)["interval"] == 5 and method_space("mslr-d", lr, 6)["interval"] == 3
    with pytest.raises(ValueError, match="taus"):
        method_space("miles", lr, 10, [1.5])


def test_unimodal_and_errors(tiny):
    r = tiny.unimodal_objective("a")({"lr": 5e-3}, 0)
    test = r.evaluate_test()  # its own head (the paper's readout of a unimodal model) and the refitted probe
    assert set(test) == {"fusion", "readout:a", "a", "best_epoch"} and test["readout:a"] == test["fusion"]
    with pytest.raises(ValueError, match="unknown method"):
        tiny.objective("nope", "concat")
    with pytest.raises(ValueError, match="unknown modality"):
        tiny.unimodal_objective("c")
    with pytest.raises(ValueError, match="fusion"):
        tiny.objective("vanilla", "lstm")
    with pytest.raises(ValueError, match="train_rows"):
        JointSetup(tiny.data, Arch(), 1, train_rows=10_000)
    sub = JointSetup(tiny.data, Arch(), 1, train_rows=50)
    assert sub.train.n == 50 and sub.val.n == tiny.val.n


def _same_run(a, b, tol=1e-4):
    assert (a.config, a.seed, a.best_epoch) == (b.config, b.seed, b.best_epoch)
    assert a.score == pytest.approx(b.score, abs=tol)
    for ha, hb in zip(a.history, b.history):
        assert ha.keys() == hb.keys()
        assert all(ha[k] == hb[k] if isinstance(ha[k], str) else ha[k] == pytest.approx(hb[k], abs=tol, nan_ok=True)
                   for k in ha)


@pytest.mark.parametrize("method", ["miles", "ogm-ge", "gblend"])
def test_joint_objective_many_is_one_call_per_job(tiny, method):
    """The objective protocol's batched form: many(jobs) trains the same runs as one call per job."""
    obj = tiny.objective(method, "concat")
    space = method_space(method, LogUniform(1e-3, 1e-2), tiny.epochs)
    jobs = [(sample(space, 0, k), seed) for k, seed in enumerate((0, 3, 4))]
    for a, b in zip([obj(dict(c), s) for c, s in jobs], obj.many(jobs)):
        _same_run(a, b)
        assert a.decisions == b.decisions and a.evaluate_test() == pytest.approx(b.evaluate_test())


# ----------------------------------------------------------------------------- the chapter's study and findings

def test_regimes_parse_and_the_regime_criteria():
    from mmrepro.papers.miles.study import MilesStudy, Regime, parse_regimes

    assert parse_regimes("resnet/images, mlp/recordings/5", 0.0) == [Regime("resnet", "images", 0.0),
                                                                      Regime("mlp", "recordings", 5.0)]
    with pytest.raises(ValueError, match="encoder/pairing"):
        parse_regimes("cnn/images", 0.0)
    with pytest.raises(ValueError, match="at least one"):
        parse_regimes(" , ", 0.0)
    # S-MNIST's vanilla row (Tables I-II) meets every criterion; a complementary pair (fused far above both) does not
    smnist = pd.DataFrame({"seed": [0], "fused": [98.4], "image alone": [99.0], "image inside": [98.5],
                           "audio alone": [88.9], "audio inside": [53.9]})
    assert MilesStudy.meets_regime(smnist) and MilesStudy.regime_shortfall(smnist) == 0
    r = MilesStudy.regime_means(smnist)
    assert (r["strong"], r["weak"]) == ("image", "audio") and r["lag"] == pytest.approx(35.0)
    complementary = smnist.assign(**{"fused": [96.7], "image alone": [90.5], "image inside": [80.0]})
    checks = MilesStudy.regime_checks(complementary)
    assert not checks["strong alone at least"] and not checks["fused within"] and not checks["strong gap at most"]
    # it misses by 6.5 (strong alone) + 5.2 (fused above it) + 3.4 (weak only 1.6 below) + 8.5 (strong gap) points
    assert not checks["weak below strong by at least"]
    assert MilesStudy.regime_shortfall(complementary) == pytest.approx(6.5 + 5.2 + 3.4 + 8.5)


def test_binding_comparison_of_better_than_every_one():
    """An intersection-union test: every comparison above 0 -> the one reaching lowest decides; one wholly at or
    below 0 -> that one (the farthest) decides; the mirror image for "below"."""
    from mmrepro.core.stats import Evidence
    from mmrepro.papers.miles.findings import binding

    ev = lambda lo, hi: Evidence((lo + hi) / 2, (lo, hi), 3, "t")  # noqa: E731
    assert binding([ev(1, 3), ev(0.5, 6), ev(2, 4)], "above") == 1
    assert binding([ev(1, 3), ev(-2, -1), ev(-1, 0), ev(-3, 5)], "above") == 1
    assert binding([ev(-3, -1), ev(-6, -0.5)], "below") == 1
    assert binding([ev(-3, -1), ev(1, 2), ev(0, 4)], "below") == 1
