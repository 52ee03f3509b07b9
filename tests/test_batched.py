"""fit_many: K runs trained as one stacked model give the numbers of K separate fit calls.

Per-epoch logs (metrics, losses, u, learning rates, every balancing decision), selected epochs and
final weights agree within 1e-5 in float64 (1e-4 in float32), for every balancing method and
objective, with per-run seeds, learning rates and method / objective settings, on batched and
looped layers, with dropout on too: every run draws its own masks from its own stream.
"""
import math
from dataclasses import replace

import pytest
import torch

from mmrepro.core.balancing import MSES, MSLR, OGM, BalancingMethod, GBlend
from mmrepro.core.data import MultimodalDataset, load_dataset
from mmrepro.core.losses import Supervised
from mmrepro.core.models import LSTMEncoder, MLPEncoder, MultimodalNet, ResNetEncoder
from mmrepro.core.models.stacked import RunStreams, StackedMultimodalNet, run_dropout
from mmrepro.core.trainer import fit, fit_many
from mmrepro.papers.miles.scheduler import MILES
from mmrepro.papers.mind.objectives import MIND, MKE, TS
from tests.test_trainer import _mixed_dataset

SEEDS = (3, 7, 11)
LRS = (5e-3, 2e-3, 1e-2)


def as_double(d: MultimodalDataset) -> MultimodalDataset:
    return replace(d, x={m: v.double() for m, v in d.x.items()},
                   y={k: v.double() if v.is_floating_point() else v for k, v in d.y.items()})


@pytest.fixture(scope="module")
def data():
    return as_double(load_dataset("synthetic_bimodal", n=90, n_classes=3, dims=(6, 6), strength=(3.0, 2.0),
                                  speed=(3.0, 1.0)))


def mlp_net(seed, fusion="concat", multihead=True, dropout=0.0, dtype=torch.float64):
    torch.manual_seed(seed)
    return MultimodalNet({m: MLPEncoder(6, (8,), dropout=dropout) for m in ("a", "b")}, "multiclass", 3, fusion,
                         multihead=multihead, fusion_hidden=8, dropout=dropout).to(dtype)


def close(x, y, tol):
    if isinstance(x, str) or isinstance(y, str):
        return x == y
    if math.isnan(x) or math.isnan(y):
        return math.isnan(x) and math.isnan(y)
    return abs(x - y) <= tol


def assert_same_runs(alone, together, tol):
    for k, (a, b) in enumerate(zip(alone, together)):
        assert len(a.history) == len(b.history), k
        for e, (ha, hb) in enumerate(zip(a.history, b.history)):
            assert ha.keys() == hb.keys()
            bad = {key: (ha[key], hb[key]) for key in ha if not close(ha[key], hb[key], tol)}
            assert not bad, f"run {k}, epoch {e}: {bad}"
        assert (a.best_epoch, close(a.best_score, b.best_score, tol)) == (b.best_epoch, True), k
        for (n, p), (_, q) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
            torch.testing.assert_close(p, q, atol=tol, rtol=0, msg=f"run {k}: {n}")
        for attr in ("decisions", "stopped", "lrs", "weights"):
            assert getattr(a.method, attr, None) == getattr(b.method, attr, None), (k, attr)


def both(data, make_model, make_method=lambda k: None, make_objective=lambda k: None, tol=1e-5, batched=True,
         train=None, val=None, **kw):
    """K separate fits and one fit_many over the same runs."""
    kw = dict(epochs=3, batch_size=32, device="cpu", progress=False) | kw
    train = train or data.split("train")
    val = data.split("val") if val is None else (val or None)  # val=False: train without validation
    alone = [fit(make_model(s), train, val, seed=s, lr=lr, method=make_method(k), objective=make_objective(k), **kw)
             for k, (s, lr) in enumerate(zip(SEEDS, LRS))]
    together = fit_many([make_model(s) for s in SEEDS], train, val, seeds=SEEDS, lrs=LRS,
                        methods=[make_method(k) for k in range(3)], objectives=[make_objective(k) for k in range(3)],
                        batched=batched, **kw)
    assert_same_runs(alone, together, tol)
    return alone, together


METHODS = {
    "vanilla": lambda k: None,
    "miles": lambda k: MILES(tau=(0.0, 0.05, 0.2)[k], mu=(0.5, 0.25, 0.75)[k]),
    "miles-train": lambda k: MILES(tau=0.05, mu=0.5, split="train", metric=("accuracy", "f1_macro", "accuracy")[k]),
    "mses": lambda k: MSES(patience=(1, 2, 1)[k]),
    "mslr-k": lambda k: MSLR({"a": 1e-3 * (k + 1), "b": 5e-3}, "keep"),
    "mslr-s": lambda k: MSLR({"a": 1e-3, "b": 5e-3}, "smooth", smooth=(0.25, 0.5, 1.0)[k]),
    "mslr-d": lambda k: MSLR({"a": 1e-3, "b": 5e-3}, "dynamic", interval=(1, 2, 2)[k]),
    "ogm": lambda k: OGM((0.1, 0.5, 0.8)[k]),
    "ogm-ge": lambda k: OGM((0.1, 0.5, 0.8)[k], ge=True),
    "gblend": lambda k: GBlend(window=(1, 2, 1)[k]),
}


@pytest.mark.parametrize("name", list(METHODS))
def test_every_method_matches_separate_fits(data, name):
    alone, _ = both(data, mlp_net, METHODS[name], epochs=4)
    if name == "miles":  # the runs' own tau and mu: they decide differently
        assert len({str(r.method.decisions) for r in alone}) > 1
    if name == "mses":
        assert any(r.method.stopped for r in alone)


def _teacher(m, seed):
    torch.manual_seed(seed)
    return MultimodalNet({m: MLPEncoder(6, (8,))}, "multiclass", 3, multihead=False).double()


@pytest.fixture(scope="module")
def teachers():
    return {"a": [_teacher("a", 1), _teacher("a", 2)], "b": [_teacher("b", 3)]}


OBJECTIVES = {
    "supervised-fusion-head": lambda t: lambda k: Supervised(["fusion"]),
    "mind": lambda t: lambda k: MIND(t, {"a": (0.5, 1.0, 4.0)[k], "b": (2.0, 1.0, 0.1)[k]}, temperature=2.0),
    "ts": lambda t: lambda k: TS({"a": t["a"], "b": t["b"]}, {"a": (0.1, 0.5, 0.9)[k], "b": 0.3}),
    "mke": lambda t: lambda k: MKE("a", t["a"], gamma=(0.5, 1.0, 2.0)[k], noise_std=(0.1, 0.2, 0.1)[k]),
}


@pytest.mark.parametrize("name", list(OBJECTIVES))
def test_every_objective_matches_separate_fits(data, teachers, name):
    both(data, mlp_net, make_objective=OBJECTIVES[name](teachers))


@pytest.mark.parametrize("fusion", ["sum", "lstm"])
def test_sum_and_lstm_fusion(data, fusion):
    both(data, lambda s: mlp_net(s, fusion), METHODS["ogm"] if fusion == "sum" else METHODS["miles"])


def _mixed(n=48, missing=True):
    """Images, sequences with lengths, a multilabel task with an unknown label, absent rows."""
    return as_double(_mixed_dataset(n, missing))


def mixed_net(seed, fusion="lstm"):
    torch.manual_seed(seed)
    return MultimodalNet({"img": ResNetEncoder(10, width=2, stem="imagenet"), "seq": LSTMEncoder(2, 4, 2)},
                         "multilabel", 3, fusion, token_dim=4, fusion_hidden=6).double()


@pytest.mark.parametrize("batched", [True, False], ids=["batched", "loop"])
def test_resnet_lstm_missing_rows_multilabel(batched):
    d = _mixed()
    _, together = both(d, mixed_net, lambda k: MILES(tau=0.1 * k, metric="auroc"), batched=batched, batch_size=16,
                       epochs=2)
    layout = set(together[0].info["layout"].values())
    assert layout == ({"batched"} if batched else {"loop"})


@pytest.mark.parametrize("batched", [True, False], ids=["batched", "loop"])
def test_recompute_bn_matches_separate_fits(batched):
    """Precise BatchNorm statistics before each evaluation (MIND's students) give every stacked run the
    statistics, losses and selected checkpoint it gets alone. (The tiny ResNet's ReLUs tie many image
    logits, so rank metrics such as AUPRC may flip on 1e-16 differences: losses are compared instead.)"""
    d = _mixed()
    kw = dict(epochs=2, batch_size=16, device="cpu", progress=False, recompute_bn=True, eval_batch_size=20)
    alone = [fit(mixed_net(s), d.split("train"), d.split("val"), seed=s, lr=lr, **kw) for s, lr in zip(SEEDS, LRS)]
    together = fit_many([mixed_net(s) for s in SEEDS], d.split("train"), d.split("val"), seeds=SEEDS, lrs=LRS,
                        batched=batched, **kw)
    for a, b in zip(alone, together):
        assert a.best_epoch == b.best_epoch
        for ha, hb in zip(a.history, b.history):
            losses = [k for k in ha if k.endswith("/loss")]
            assert [ha[k] for k in losses] == pytest.approx([hb[k] for k in losses], abs=1e-10)
        for (n, p), (_, q) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
            torch.testing.assert_close(p, q, atol=1e-10, rtol=0, msg=n)
    plain = fit(mixed_net(SEEDS[0]), d.split("train"), d.split("val"), seed=SEEDS[0], lr=LRS[0], **(kw | {"recompute_bn": False}))
    assert not torch.equal(plain.model.state_dict()["encoders.img.stem.1.running_mean"],
                           alone[0].model.state_dict()["encoders.img.stem.1.running_mean"])


def test_encoder_without_rows_in_a_batch_is_not_updated():
    """Modality b is absent from whole batches of some runs: a lone run's optimiser skips its encoder
    there (no gradient), and so must the stacked one."""
    d = _mixed(missing=False)
    present = dict(d.present, seq=torch.zeros(48, dtype=torch.bool))
    present["seq"][d.splits["train"][:3]] = True
    present["seq"][d.splits["val"][:3]] = True
    d = replace(d, present=present)
    for optimizer in ("adam", "sgd"):
        both(d, lambda s: mixed_net(s, "concat"), batch_size=8, epochs=2, optimizer=optimizer, weight_decay=1e-3)


def test_float32_within_1e4(data):
    d = replace(data, x={m: v.float() for m, v in data.x.items()})
    both(d, lambda s: mlp_net(s, dtype=torch.float32), METHODS["miles"], tol=1e-4)


def test_dropout_matches_separate_fits(data):
    """Each run draws its dropout masks from its own stream, so dropout runs agree too."""
    _, together = both(data, lambda s: mlp_net(s, dropout=0.3), METHODS["miles"], epochs=2)
    again = fit_many([mlp_net(s, dropout=0.3) for s in SEEDS], data.split("train"), data.split("val"), seeds=SEEDS,
                     lrs=LRS, methods=[METHODS["miles"](k) for k in range(3)], epochs=2, batch_size=32, device="cpu",
                     progress=False)
    assert [r.history for r in again] == [r.history for r in together]  # same seeds, same device: same numbers


def test_each_run_draws_its_own_masks():
    x = torch.ones(3, 2000, dtype=torch.float64)
    with RunStreams([1, 2, 1], torch.device("cpu")).dropout():
        y = run_dropout(x, 0.25, True)
    with RunStreams([2], torch.device("cpu")).dropout():
        alone = run_dropout(x[:1], 0.25, True)
    assert not torch.equal(y[0], y[1]) and torch.equal(y[0], y[2]) and torch.equal(y[1], alone[0])
    assert set(y.unique().tolist()) == {0.0, 1 / 0.75}
    assert float((y == 0).double().mean()) == pytest.approx(0.25, abs=0.02)
    torch.testing.assert_close(run_dropout(x, 0.25, False), x)


def test_patience_and_runs_without_validation(data):
    both(data, mlp_net, epochs=6, patience=1)
    both(data, mlp_net, METHODS["miles-train"], val=False, epochs=2)


def test_stacked_model_unstacks_into_the_runs():
    models = [mixed_net(s) for s in SEEDS]
    net = StackedMultimodalNet(models)
    for k, m in enumerate(models):
        for name, value in m.state_dict().items():
            torch.testing.assert_close(net.run_state(k)[name], value)


def test_errors(data):
    train, val = data.split("train"), data.split("val")
    kw = dict(epochs=1, device="cpu", progress=False)
    with pytest.raises(ValueError, match="one per model"):
        fit_many([mlp_net(0), mlp_net(1)], train, val, seeds=[0], **kw)
    with pytest.raises(ValueError, match="one balancing method"):
        fit_many([mlp_net(0), mlp_net(1)], train, val, seeds=[0, 1], methods=[MILES(), OGM()], **kw)
    miles = MILES()
    with pytest.raises(ValueError, match="its own balancing-method instance"):
        fit_many([mlp_net(0), mlp_net(1)], train, val, seeds=[0, 1], methods=[miles, miles], **kw)
    with pytest.raises(ValueError, match="one architecture"):
        fit_many([mlp_net(0), mlp_net(1, "sum")], train, val, seeds=[0, 1], **kw)
    t = {"a": [_teacher("a", 1)], "b": [_teacher("b", 2)]}
    with pytest.raises(ValueError, match="temperature"):
        fit_many([mlp_net(0), mlp_net(1)], train, val, seeds=[0, 1],
                 objectives=[MIND(t, {"a": 1.0}, temperature=1.0), MIND(t, {"a": 1.0}, temperature=2.0)], **kw)
    with pytest.raises(ValueError, match="differ in 'teachers'"):
        fit_many([mlp_net(0), mlp_net(1)], train, val, seeds=[0, 1],
                 objectives=[MIND(t, {"a": 1.0}), MIND({"a": [_teacher("a", 3)]}, {"a": 1.0})], **kw)
    with pytest.raises(ValueError, match="seed"):
        fit_many([mlp_net(0)], train, val, seeds=[-1], **kw)
    assert isinstance(fit(mlp_net(0), train, val, **kw).method, BalancingMethod)


@pytest.mark.parametrize("name", ["adam", "sgd"])
def test_run_optimizer_is_torch_optim_per_run(name):
    """Each run's slice follows torch.optim.Adam / SGD at the run's own rate (set mid-way, as the
    balancing methods do)."""
    from mmrepro.core.optim import RunOptimizer

    torch.manual_seed(0)
    stacked = torch.nn.Parameter(torch.randn(3, 4, 5, dtype=torch.float64))
    lrs = [1e-3, 5e-2, 0.0]
    opt = RunOptimizer({"g": [stacked]}, lrs, name, betas=(0.8, 0.95), weight_decay=1e-2, momentum=0.5)
    single = [torch.nn.Parameter(stacked[k].detach().clone()) for k in range(3)]
    cls = torch.optim.Adam if name == "adam" else torch.optim.SGD
    extra = dict(betas=(0.8, 0.95)) if name == "adam" else dict(momentum=0.5)
    refs = [cls([p], lr=lr, weight_decay=1e-2, **extra) for p, lr in zip(single, lrs)]
    for step in range(5):
        if step == 3:
            opt.run_view(1).param_groups[0]["lr"] = 1e-2
            refs[1].param_groups[0]["lr"] = 1e-2
        grads = torch.randn(3, 4, 5, dtype=torch.float64)
        stacked.grad = grads.clone()
        opt.step()
        for k, (p, ref) in enumerate(zip(single, refs)):
            p.grad = grads[k].clone()
            ref.step()
    for k, p in enumerate(single):
        if name == "adam":  # the fused kernel computes what torch.optim.Adam computes, bit for bit
            assert torch.equal(stacked[k].detach(), p.detach())
        torch.testing.assert_close(stacked[k].detach(), p.detach(), atol=1e-12, rtol=0)


@pytest.mark.parametrize("kind", ["binary", "multiclass", "multilabel"])
def test_score_runs_is_score_per_run(kind):
    from mmrepro.core.metrics import METRICS, score, score_runs

    g = torch.Generator().manual_seed(1)
    shape = {"binary": (3, 40), "multiclass": (3, 40, 4), "multilabel": (3, 40, 2)}[kind]
    p = torch.rand(shape, generator=g)
    p = p / p.sum(-1, keepdim=True) if kind == "multiclass" else p
    y = torch.randint(4, (3, 40), generator=g) if kind == "multiclass" else torch.randint(2, shape, generator=g).float()
    valid = torch.rand(3, 40, generator=g) > 0.3
    valid[2] = False
    names = [n for n in METRICS if n != "mse" and kind in METRICS[n]]
    assert {"accuracy", "auroc", "f1_macro"} <= set(names)
    for name in names:
        got = score_runs(name, y, p, kind, valid)
        for k in range(2):
            assert got[k] == pytest.approx(score(name, y[k][valid[k]], p[k][valid[k]], kind), abs=1e-12), name
        assert math.isnan(got[2])
    # a run whose rows hold one class only: AUROC undefined there (NaN), as score raises
    one = valid.clone()
    one[1] = (y[1] == 0) if kind == "multiclass" else (y[1].reshape(40, -1)[:, 0] == 0)
    assert math.isnan(score_runs("auroc", y, p, kind, one)[1])


def test_lstm_dropout_between_layers_runs_alone_or_together():
    d = _mixed()

    def net(seed):
        torch.manual_seed(seed)
        return MultimodalNet({"img": ResNetEncoder(3, width=2), "seq": LSTMEncoder(2, 4, 2, dropout=0.5)},
                             "multilabel", 3, "concat").double()

    both(d, net, batch_size=16, epochs=2)
