"""The fit loop: every balancing method on tiny data, determinism, frozen teachers, selection, errors."""
import copy
import math

import pytest
import torch

from mmrepro.core.balancing import MSES, MSLR, OGM, GBlend
from mmrepro.core.data import MultimodalDataset, Task, load_dataset
from mmrepro.core.losses import Supervised
from mmrepro.core.models import LSTMEncoder, MLPEncoder, MultimodalNet, ResNetEncoder
from mmrepro.core.trainer import evaluate, fit
from mmrepro.papers.miles.scheduler import MILES
from mmrepro.papers.mind.objectives import MIND, MKE, TS


@pytest.fixture(scope="module")
def data():
    return load_dataset("synthetic_bimodal", n=400, n_classes=3, dims=(6, 6), strength=(3.0, 2.0), speed=(3.0, 1.0))


def net(fusion="concat", multihead=True, mods=("a", "b"), seed=0):
    torch.manual_seed(seed)
    return MultimodalNet({m: MLPEncoder(6, (8,)) for m in mods}, "multiclass", 3, fusion, multihead=multihead,
                         fusion_hidden=16)


def run(data, model=None, **kw):
    kw = dict(epochs=3, batch_size=64, progress=False, device="cpu") | kw
    return fit(model or net(), data.split("train"), data.split("val"), **kw)


METHODS = [None, MILES(tau=0.05, mu=0.5), MILES(split="train", metric="f1_macro"), MSES(patience=1),
           MSLR({"a": 1e-3, "b": 5e-3}, "keep"), MSLR({"a": 1e-3, "b": 5e-3}, "smooth"),
           MSLR({"a": 1e-3, "b": 5e-3}, "dynamic", interval=2), OGM(0.5), OGM(0.5, ge=True), GBlend(window=2)]


def expected_rates(method, h, lr):
    """The learning rate of each group in every logged epoch, worked out from the method's rule and the
    logged metrics (not from the method's own state)."""
    epochs, rates = len(h), []
    mult = {"a": 1.0, "b": 1.0}
    stopped: dict[str, int] = {}
    best, wait = {}, {}
    dyn = {"a": 1e-3, "b": 5e-3}
    for e in range(epochs):
        if isinstance(method, MILES):
            rates.append({"a": lr * mult["a"], "b": lr * mult["b"], "fusion": lr})
            mult = {m: method.decisions[e][f"mult:{m}"] for m in "ab"}
        elif isinstance(method, MSES):  # patience 1: stopped after the first epoch without improvement
            rates.append({p: 0.0 if p in stopped else lr for p in ("a", "b", "fusion")})
            for p in ("a", "b", "fusion"):
                v = h.loc[e, f"val/{p}/accuracy"]
                if p not in stopped:
                    if v > best.get(p, -math.inf):
                        best[p], wait[p] = v, 0
                    else:
                        stopped[p] = e
        elif isinstance(method, MSLR) and method.strategy == "keep":
            rates.append({"a": 1e-3, "b": 5e-3, "fusion": lr})
        elif isinstance(method, MSLR) and method.strategy == "smooth":  # halfway to their mean, 3e-3
            rates.append({"a": 2e-3, "b": 4e-3, "fusion": lr})
        elif isinstance(method, MSLR):  # every 2 epochs: times the last accuracy over the mean of the last two
            rates.append({"a": dyn["a"], "b": dyn["b"], "fusion": lr})
            if e % 2 == 1:
                dyn = {m: dyn[m] * h.loc[e, f"val/{m}/accuracy"] / h.loc[e - 1:e, f"val/{m}/accuracy"].mean()
                       for m in "ab"}
        else:  # vanilla, OGM (gradients only), G-Blend (loss weights only)
            rates.append({"a": lr, "b": lr, "fusion": lr})
    return rates


@pytest.mark.parametrize("method", METHODS, ids=lambda m: getattr(m, "name", "vanilla"))
@pytest.mark.parametrize("fusion", ["concat", "lstm"])
def test_every_method_trains(data, method, fusion):
    from sklearn.metrics import accuracy_score, f1_score

    res = run(data, net(fusion), method=method, lr=5e-3)
    h = res.frame()
    assert 1 <= len(h) <= 3
    # the learning rates each method's rule gives, epoch by epoch
    for e, want in enumerate(expected_rates(method, h, 5e-3)):
        assert {g: h.loc[e, f"lr/{g}"] for g in want} == pytest.approx(want), e
    # the logged training loss is the sum of the heads' losses (MIND eq. 2 / MILES eq. 3), G-Blend's weighted
    heads = ("fusion", "a", "b")
    for e in range(len(h)):
        w = {k: 1.0 for k in heads} if not isinstance(method, GBlend) else \
            {k: method.history[e - 1][k] if e else 1 / 3 for k in heads}
        assert h.loc[e, "train/loss"] == pytest.approx(sum(w[k] * h.loc[e, f"train/{k}/loss"] for k in heads), rel=1e-5)
    # u (MIND eq. 6 / MILES eq. 4) from the logged validation accuracies
    f, ua, ub = h["val/fusion/accuracy"], h["val/a/accuracy"], h["val/b/accuracy"]
    assert list(h["u:a"]) == pytest.approx(list((f - ub) / f)) and list(h["u:b"]) == pytest.approx(list((f - ua) / f))
    assert list(h["delta"]) == pytest.approx(list(((f - ub) / f - (f - ua) / f).abs()))
    # the returned model is the best epoch's: its validation accuracy and F1, recomputed by scikit-learn
    val = data.split("val")
    res.model.eval()
    with torch.no_grad():
        out = res.model(val.x, val.present)
    y = next(iter(val.y.values())).numpy()  # the one task of synthetic_bimodal
    pred = {k: out.logits[k].argmax(-1).numpy() for k in heads}
    best = h["val/fusion/accuracy"].idxmax()
    assert res.best_score == h.loc[best, "val/fusion/accuracy"] == pytest.approx(accuracy_score(y, pred["fusion"]))
    assert h.loc[best, "val/a/accuracy"] == pytest.approx(accuracy_score(y, pred["a"]))
    assert h.loc[best, "val/b/f1_macro"] == pytest.approx(f1_score(y, pred["b"], average="macro"))
    if isinstance(method, MILES):
        assert len(method.decisions) == len(h)
        assert list(h["miles/slowed"]) == [d["slowed"] for d in method.decisions]


def test_miles_rates_follow_decisions(data):
    miles = MILES(tau=0.0, mu=0.25)
    h = run(data, method=miles, epochs=4).frame()
    for e in range(1, len(h)):
        d = miles.decisions[e - 1]
        assert h.loc[e, "lr/a"] == pytest.approx(1e-3 * d["mult:a"])
        assert h.loc[e, "lr/b"] == pytest.approx(1e-3 * d["mult:b"])
        assert d["u:a"] == pytest.approx(h.loc[e - 1, "u:a"])  # same metric and split as the log


def test_same_seed_same_numbers(data):
    a = run(data, net(), method=OGM(0.5, ge=True), seed=3).history
    b = run(data, net(), method=OGM(0.5, ge=True), seed=3).history
    c = run(data, net(), method=OGM(0.5, ge=True), seed=4).history
    assert a == b
    assert a != c


def test_checkpoint_selection_and_early_stopping(data):
    res = run(data, epochs=12, patience=2, lr=3e-2)
    h = res.frame()
    best = int(h["val/fusion/accuracy"].idxmax())
    assert res.best_epoch == best and len(h) <= 12
    assert len(h) == 12 or len(h) == best + 3  # stopped `patience` epochs after the best
    ev = evaluate(res.model, data.split("val"))
    assert ev["fusion/accuracy"] == pytest.approx(h.loc[best, "val/fusion/accuracy"])
    assert ev["a/loss"] == pytest.approx(h.loc[best, "val/a/loss"], rel=1e-5)


def _teacher(m, seed):
    torch.manual_seed(seed)
    return MultimodalNet({m: MLPEncoder(6, (8,))}, "multiclass", 3, multihead=False)


@pytest.mark.parametrize("make", [
    lambda t: MIND({"a": t["a"], "b": t["b"]}, {"a": 2.0, "b": 1.0}, temperature=2.0),
    lambda t: TS({"a": t["a"], "b": t["b"]}, {"a": 0.3, "b": 0.5}),
    lambda t: MKE("a", t["a"], gamma=0.5),
], ids=["mind", "ts", "mke"])
def test_teachers_are_frozen(data, make):
    teachers = {"a": [_teacher("a", 1), _teacher("a", 2)], "b": [_teacher("b", 3)]}
    before = {id(p): p.detach().clone() for ts in teachers.values() for t in ts for p in t.parameters()}
    student = net()
    start = [p.detach().clone() for p in student.parameters()]
    res = run(data, student, objective=make(teachers), epochs=2)
    for ts in teachers.values():
        for t in ts:
            for p in t.parameters():
                assert p.grad is None
                torch.testing.assert_close(p, before[id(p)])
    assert any(not torch.equal(p, q) for p, q in zip(res.model.parameters(), start))


def _mixed_dataset(n=48, missing=True):
    g = torch.Generator().manual_seed(0)
    y = torch.randint(2, (n, 3), generator=g).float()
    img = torch.randn(n, 1, 8, 8, generator=g) + y[:, :1, None, None]
    seq = torch.randn(n, 5, 2, generator=g) + y[:, 1:2, None]
    lengths = torch.randint(1, 6, (n,), generator=g)
    present = {"img": torch.ones(n, dtype=torch.bool), "seq": torch.ones(n, dtype=torch.bool)}
    if missing:
        present["img"][::4] = False
        present["seq"][1::5] = False
        img[~present["img"]] = float("nan")
        seq[~present["seq"]] = float("nan")
    y[0, 2] = float("nan")  # an unknown label
    idx = torch.randperm(n, generator=g)
    return MultimodalDataset("mixed", {"img": img, "seq": seq}, {"seq": lengths}, present, {"lab": y},
                             {"lab": Task("lab", "multilabel", 3)},
                             {"train": idx[:32].sort().values, "val": idx[32:].sort().values})


def test_images_sequences_missing_rows_and_multilabel():
    d = _mixed_dataset()
    torch.manual_seed(0)
    model = MultimodalNet({"img": ResNetEncoder(3, width=4), "seq": LSTMEncoder(2, 4, 2)}, "multilabel", 3, "lstm",
                          token_dim=4, fusion_hidden=8)
    res = fit(model, d.split("train"), d.split("val"), epochs=2, batch_size=16, progress=False, device="cpu",
              method=MILES(metric="auroc"), objective=Supervised())
    h = res.frame()
    losses = [c for c in h.columns if c.endswith("/loss")]
    assert losses and h[losses].notna().all().all()
    assert res.info["on_device_batching"]


def test_recompute_bn_evaluates_with_the_training_rows_statistics():
    """recompute_bn: the selected checkpoint's BatchNorm statistics are those of the training rows under its
    weights (precise BN), and the training itself (the weights' path) is unchanged."""
    from mmrepro.core.trainer import _Rows, recompute_batchnorm

    d = _mixed_dataset()
    runs = {}
    for flag in (False, True):
        torch.manual_seed(0)
        model = MultimodalNet({"img": ResNetEncoder(3, width=4), "seq": LSTMEncoder(2, 4, 2)}, "multilabel", 3,
                              "lstm", token_dim=4, fusion_hidden=8)
        runs[flag] = fit(model, d.split("train"), d.split("val"), epochs=3, batch_size=8, lr=1e-2, progress=False,
                         device="cpu", recompute_bn=flag)
    kept = runs[True].model
    stats = {k: v.clone() for k, v in kept.state_dict().items() if "running" in k}
    recompute_batchnorm(kept, _Rows(d.split("train"), "lab", torch.device("cpu")))
    for k, v in kept.state_dict().items():
        if "running" in k:
            assert torch.allclose(v, stats[k], atol=1e-5), k
    train_loss = [[h["train/loss"] for h in r.history] for r in runs.values()]
    assert train_loss[0] == pytest.approx(train_loss[1])  # the same training, only evaluation differs
    # the statistics are torch's cumulative average (momentum=None) over the same batches
    rows = _Rows(d.split("train"), "lab", torch.device("cpu"))
    ref = copy.deepcopy(kept)
    for m in ref.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    ref.train()
    with torch.no_grad():
        for lo in range(0, rows.n, 7):
            b = rows.take(torch.arange(lo, min(lo + 7, rows.n)))
            ref(b.x, b.present, b.lengths)
    recompute_batchnorm(kept, rows, batch_size=7)
    for (k, v), (_, w) in zip(kept.state_dict().items(), ref.state_dict().items()):
        if "running" in k:
            torch.testing.assert_close(v, w, msg=k)


def test_errors(data):
    with pytest.raises(ValueError, match="the model predicts"):
        run(data, MultimodalNet({"a": MLPEncoder(6), "b": MLPEncoder(6)}, "binary", 1))
    with pytest.raises(ValueError, match="select_head"):
        run(data, net(multihead=False), select_head="a")
    with pytest.raises(ValueError, match="multihead=True"):
        run(data, net(multihead=False), method=MILES())
    with pytest.raises(ValueError, match="device"):
        run(data, device="gpu")
    with pytest.raises(ValueError, match="unknown task"):
        run(data, task="age")


def test_gblend_reweights_heads_in_training(data):
    gb = GBlend(window=2, holdout=0.25)
    res = run(data, method=gb, epochs=4)
    h = res.frame()
    w = h[["gblend/w:fusion", "gblend/w:a", "gblend/w:b"]]
    assert w.iloc[0].tolist() == pytest.approx([1 / 3] * 3)
    assert w.sum(axis=1).tolist() == pytest.approx([1.0] * 4)
    assert not w.iloc[-1].tolist() == pytest.approx([1 / 3] * 3)  # re-estimated after the window
    assert res.info["n_train"] == len(data.splits["train"]) - round(0.25 * len(data.splits["train"]))
    assert "holdout/a/loss" in h


def test_miles_pairwise_extension_with_three_modalities(data):
    x = dict(data.x, c=data.x["a"] + torch.randn_like(data.x["a"]))
    three = MultimodalDataset("three", x, {}, dict(data.present, c=data.present["a"].clone()), data.y, data.tasks,
                              data.splits)
    miles = MILES(tau=0.0, mu=0.5)
    h = run(three, net(mods=("a", "b", "c")), method=miles, epochs=2).frame()
    assert all(d["note"] == "pairwise extension" for d in miles.decisions)
    assert {"miles/mult:a", "miles/mult:b", "miles/mult:c"} <= set(h.columns)
    assert "u:a" not in h  # u is logged for two-modality models only


def test_unknown_or_misplaced_metric_names_fail_loudly(data):
    # a typo used to be scored as NaN every epoch: no checkpoint selected and MILES silently idle
    with pytest.raises(ValueError, match="unknown metric 'acuracy'"):
        run(data, select_metric="acuracy", epochs=1)
    with pytest.raises(ValueError, match="unknown metric 'acuracy'"):
        run(data, method=MILES(metric="acuracy"), epochs=1)
    with pytest.raises(ValueError, match="not defined for task_kind 'multiclass'"):
        run(data, metrics=("auprc",), epochs=1)
    with pytest.raises(ValueError, match="unknown metric"):
        evaluate(net(), data.split("val"), metrics=("acuracy",))


def test_mses_on_validation_loss(data):
    # "loss" used to be overwritten by NaN in the logs (scored as an unknown metric), so MSES stopped
    # every part after `patience` epochs whatever happened
    mses = MSES(patience=2, metric="loss")
    h = run(data, method=mses, epochs=6, lr=5e-3).frame()
    expected = {}
    for p in ("a", "b", "fusion"):
        losses = h[f"val/{p}/loss"].tolist()
        assert all(map(math.isfinite, losses))
        best, wait = math.inf, 0
        for e, v in enumerate(losses):
            best, wait = (v, 0) if v < best else (best, wait + 1)
            if wait >= 2:
                expected[p] = e
                break
    assert mses.stopped == expected


def test_methods_that_read_validation_metrics_need_val(data):
    for method in (MILES(), MSES(), MSLR({"a": 1e-3, "b": 1e-3}, "dynamic")):
        with pytest.raises(ValueError, match="pass val="):
            fit(net(), data.split("train"), None, method=method, epochs=1, progress=False, device="cpu")
    res = fit(net(), data.split("train"), None, method=MILES(split="train"), epochs=1, progress=False, device="cpu")
    assert len(res.history) == 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_teacher_soft_targets_when_rows_stay_in_host_memory(data, monkeypatch):
    # rows too large for the GPU stay on the host; the teachers (on the GPU) used to get host tensors
    import mmrepro.core.trainer as trainer_mod

    monkeypatch.setattr(trainer_mod, "_fits_on", lambda device, nbytes: False)
    teachers = {"a": [_teacher("a", 1)], "b": [_teacher("b", 2)]}
    res = run(data, net(), objective=MIND(teachers, {"a": 1.0, "b": 1.0}), epochs=1, device="cuda")
    assert not res.info["on_device_batching"] and math.isfinite(res.history[0]["train/loss"])


def test_one_row_remainder_joins_the_previous_batch():
    """33 rows in batches of 16 would leave one row, on which BatchNorm cannot train at 1x1 maps."""
    from dataclasses import replace

    d = _mixed_dataset(n=49, missing=False)
    d = replace(d, splits={"train": torch.arange(33), "val": torch.arange(33, 49)})
    d.y["lab"][0, 2] = 1.0  # every label known, so that the loss identity below is exact
    torch.manual_seed(0)
    model = MultimodalNet({"img": ResNetEncoder(10, width=4, stem="imagenet"), "seq": LSTMEncoder(2, 4, 2)},
                          "multilabel", 3, "concat")
    res = fit(model, d.split("train"), d.split("val"), epochs=1, batch_size=16, progress=False, device="cpu")
    h = res.history[0]
    # the batch-weighted training loss (the last batch of 17 rows included) is the sum of the heads' losses (eq. 3)
    assert h["train/loss"] == pytest.approx(sum(h[f"train/{k}/loss"] for k in ("fusion", "img", "seq")), rel=1e-5)


# ----------------------------------------------------------------------------- bad input at the entry of fit
@pytest.fixture(scope="module")
def binary():
    return load_dataset("synthetic_bimodal", n=200, dims=(6, 6))


def binary_net():
    torch.manual_seed(0)
    return MultimodalNet({m: MLPEncoder(6, (8,)) for m in ("a", "b")}, "binary", 1)


def _with(ds, x=None, y=None):
    from dataclasses import replace

    return replace(ds, x={**ds.x, **(x or {})}, y={**ds.y, **(y or {})})


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_nan_or_inf_in_a_present_modality_is_an_error_never_zero_filled(binary, bad):
    a = binary.x["a"].clone()
    row = int(binary.splits["train"][3])
    a[row, 2] = bad
    train = _with(binary, x={"a": a}).split("train")
    with pytest.raises(ValueError, match=r"train\.x\['a'\] has NaN or inf in 1 row\(s\) marked present \(first: row 3\);"
                       r" mark a missing modality with present\['a'\]=False"):
        fit(binary_net(), train, binary.split("val"), epochs=1, progress=False, device="cpu")
    with pytest.raises(ValueError, match=r"x\['a'\] has NaN or inf"):  # the model itself, outside fit
        binary_net()(train.x, train.present)
    # marked absent, the same row is fine: its values are never read
    from dataclasses import replace

    absent = replace(train, present={**train.present, "a": torch.arange(train.n) != 3})
    res = fit(binary_net(), absent, binary.split("val"), epochs=1, progress=False, device="cpu")
    a[row, 2] = 123.0  # any other value in the absent row: the same training, to the last bit
    other = replace(_with(binary, x={"a": a}).split("train"), present=absent.present)
    assert res.history == fit(binary_net(), other, binary.split("val"), epochs=1, progress=False, device="cpu").history


@pytest.mark.parametrize("y, error, match", [
    (lambda y: torch.where(y > 0, 2.0, 0.0), ValueError,
     r"train\.y\['label'\] holds \[2\.0\] for the binary task 'label'; accepted: 0, 1 and NaN \(unknown\)"),
    (lambda y: y.long(), TypeError, r"train\.y\['label'\] is torch.int64; a binary task needs float targets"),
    (lambda y: y[:, None], ValueError, r"train\.y\['label'\] has shape \(\d+, 1\); a binary task"),
])
def test_bad_labels_are_named(binary, y, error, match):
    train = binary.split("train")
    bad = _with(train, y={"label": y(train.y["label"])})
    with pytest.raises(error, match=match):
        fit(binary_net(), bad, binary.split("val"), epochs=1, progress=False, device="cpu")


def test_multiclass_labels_out_of_range_and_float_inputs(data):
    with pytest.raises(ValueError, match=r"train\.y\['label'\] holds \[3\].*accepted: 0 \.\. 2 and -1 \(unknown\)"):
        run(_with(data, y={"label": torch.where(torch.arange(data.n) == int(data.splits["train"][0]), 3, data.y["label"])}))
    double = _with(data, x={m: v.double() for m, v in data.x.items()})
    with pytest.raises(TypeError, match=r"train\.x\['a'\] is torch.float64 but the model's parameters are torch.float32"):
        run(double)


def test_empty_splits_are_named(data):
    empty_val = data.split("val").subset(torch.tensor([], dtype=torch.int64))
    with pytest.raises(ValueError, match="val has no rows: pass a non-empty split; pass val=None"):
        fit(net(), data.split("train"), empty_val, epochs=1, progress=False, device="cpu")
    with pytest.raises(ValueError, match="train has no rows"):
        fit(net(), empty_val, data.split("val"), epochs=1, progress=False, device="cpu")
    with pytest.raises(TypeError, match=r"train must be a MultimodalDataset \(e.g. data.split\('train'\)\), got dict"):
        fit(net(), {"a": data.x["a"]}, None, epochs=1, progress=False, device="cpu")


@pytest.mark.parametrize("setting, value, error, match", [
    ("epochs", 0, ValueError, r"epochs=0 is out of range: it must be an integer >= 1"),
    ("epochs", 2.5, TypeError, r"epochs must be an integer >= 1, got 2.5 \(float\)"),
    ("batch_size", True, TypeError, r"batch_size must be an integer"),
    ("lr", 0.0, ValueError, r"lr=0.0 is out of range: it must be a finite number > 0"),
    ("lr", float("nan"), ValueError, r"lr=nan is out of range"),
    ("seed", 2**64, ValueError, r"seed=18446744073709551616 is out of range: it must be an integer in \[0, 4294967295\]"),
    ("seed", -1, ValueError, r"seed=-1 is out of range"),
    ("patience", 0, ValueError, r"patience=0 is out of range: it must be an integer >= 1"),
    ("momentum", 1.0, ValueError, r"momentum=1.0 is out of range"),
])
def test_fit_settings_are_checked_with_their_name(data, setting, value, error, match):
    with pytest.raises(error, match=match):
        run(data, **{setting: value})


def test_check_fit_inputs_is_the_shared_entry_check(data):
    from mmrepro.core.trainer import check_fit_inputs

    task = check_fit_inputs(net(), data.split("train"), data.split("val"), epochs=3, lr=1e-3, seed=0)
    assert task.name == "label" and task.kind == "multiclass"
    with pytest.raises(TypeError, match="unknown setting 'epoch'"):
        check_fit_inputs(net(), data.split("train"), epoch=3)


def test_a_training_split_without_known_labels_is_refused(data):
    """Every training target unknown (-1): fit would train nothing and report a score; it refuses instead."""
    train = data.split("train")
    unknown = _with(train, y={"label": torch.full_like(train.y["label"], -1)})
    with pytest.raises(ValueError, match=r"train has no known target for task 'label' \(all \d+ rows are unknown\): "
                                         "nothing to train on"):
        fit(net(), unknown, data.split("val"), epochs=1, progress=False, device="cpu")
    val = data.split("val")
    with pytest.raises(ValueError, match=r"val has no known target for task 'label'"):
        fit(net(), train, _with(val, y={"label": torch.full_like(val.y["label"], -1)}), epochs=1, progress=False,
            device="cpu")


def test_a_dataset_edited_after_construction_is_a_clear_error(data):
    train = data.split("train")
    train.x["a"] = train.x["a"][:10]  # rows edited in place after the dataset was built
    with pytest.raises(ValueError, match=r"train was changed after it was built \(.*x\['a'\] has 10 rows, expected "
                                         r"\d+\); build a new dataset"):
        fit(net(), train, data.split("val"), epochs=1, progress=False, device="cpu")
