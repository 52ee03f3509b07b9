"""MILES Algorithm 1 branch table, OGM/OGM-GE coefficients and noise, G-Blend weights, MSES, MSLR."""
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from mmrepro.core.balancing import MSES, MSLR, OGM, gblend_weights
from mmrepro.core.balancing.ogm import ogm_coefficients
from mmrepro.core.metrics import conditional_utilization
from mmrepro.core.models import MLPEncoder, MultimodalNet
from mmrepro.papers.miles.scheduler import MILES, miles_decision, miles_decision_pairwise

MU = 0.5
# (u_A, u_B, tau, expected (m_A, m_B), Algorithm 1 lines)
TABLE = [
    (0.75, 0.5, 0.25, (1.0, 1.0)),      # 8-10: delta exactly at tau -> balanced
    (0.5, 0.5, 0.0, (1.0, 1.0)),        # 8-10: delta = 0 = tau
    (0.75, 0.5, 0.2, (MU, 1.0)),        # 17-20: both positive, u_A > u_B -> slow A
    (0.1, 0.6, 0.2, (1.0, MU)),         # 17-18: both positive, u_A < u_B -> slow B
    (-0.1, -0.6, 0.2, (1.0, 1.0)),      # 8-10: both negative, even with delta > tau
    (0.4, -0.2, 0.2, (MU, 1.0)),        # 12-13: A over-utilised
    (-0.2, 0.4, 0.2, (1.0, MU)),        # 14-15: B over-utilised
    (0.0, 0.5, 0.2, (1.0, MU)),         # u_A = 0 is neither > 0 nor < 0: lines 17-18
    (0.5, 0.0, 0.2, (MU, 1.0)),         # u_B = 0: lines 19-20
    (0.0, -0.5, 0.2, (MU, 1.0)),        # u_A = 0 > u_B: lines 19-20
    (-0.5, 0.0, 0.2, (1.0, MU)),        # u_A < u_B = 0: lines 17-18
    (0.0, 0.0, 0.0, (1.0, 1.0)),        # both zero: delta = 0 <= tau
]


@pytest.mark.parametrize("u_a,u_b,tau,expected", TABLE)
def test_miles_decision_branch_table(u_a, u_b, tau, expected):
    assert miles_decision(u_a, u_b, tau, MU) == expected


def test_miles_decision_keeps_unassigned_rate_and_validates():
    # lines 12-20 assign only the slowed modality; the other keeps its previous multiplier
    assert miles_decision(0.75, 0.5, 0.2, MU, previous=(1.0, MU)) == (MU, MU)
    assert miles_decision(0.75, 0.5, 0.25, MU, previous=(MU, MU)) == (1.0, 1.0)
    for bad in (dict(mu=0.0), dict(mu=1.5), dict(tau=-0.1), dict(tau=1.5), dict(u_a=math.nan)):
        args = dict(u_a=0.1, u_b=0.2, tau=0.1, mu=0.5) | bad
        with pytest.raises(ValueError, match=next(iter(bad))):
            miles_decision(**args)


def test_miles_decision_from_metrics_matches_eq4():
    # fusion 0.9, A head 0.85, B head 0.45 -> u_A = (0.9-0.45)/0.9 = 0.5, u_B = (0.9-0.85)/0.9
    u_a, u_b = conditional_utilization(0.9, 0.85, 0.45)
    assert miles_decision(u_a, u_b, 0.2, MU) == (MU, 1.0)
    assert miles_decision_pairwise(0.9, {"a": 0.85, "b": 0.45}, 0.2, MU) == {"a": MU, "b": 1.0}


def test_miles_pairwise_extension_three_modalities():
    mult = miles_decision_pairwise(0.9, {"a": 0.85, "b": 0.45, "c": 0.8}, 0.2, MU)
    # pairs (a,b) and (c,b) slow a and c; (a,c) is balanced (delta = 0.05/0.9)
    assert mult == {"a": MU, "b": 1.0, "c": MU}


def _fake_trainer(modalities=("a", "b"), lr=1e-3):
    torch.manual_seed(0)
    model = MultimodalNet({m: MLPEncoder(2, (3,)) for m in modalities}, "multiclass", 3)
    groups = [{"params": ps, "name": g, "lr": lr} for g, ps in model.parameter_groups().items()]
    opt = torch.optim.Adam(groups, lr=lr)
    return SimpleNamespace(model=model, optimizer=opt, base_lr={g["name"]: lr for g in groups}, epoch=0)


def _logs(f, a, b, split="val"):
    return {f"{split}/fusion/accuracy": f, f"{split}/a/accuracy": a, f"{split}/b/accuracy": b}


def test_miles_scheduler_applies_and_records():
    tr = _fake_trainer()
    sched = MILES(tau=0.2, mu=MU)
    sched.setup(tr)
    lrs = lambda: {g["name"]: g["lr"] for g in tr.optimizer.param_groups}  # noqa: E731
    out = sched.on_epoch_end(tr, 0, _logs(0.9, 0.85, 0.45))   # A dominant
    assert lrs() == {"a": MU * 1e-3, "b": 1e-3, "fusion": 1e-3}
    assert out["miles/slowed"] == "a" and out["miles/mult:a"] == MU
    sched.on_epoch_end(tr, 1, _logs(0.9, 0.5, 0.88))           # B dominant; A keeps mu (Algorithm 1)
    assert lrs() == {"a": MU * 1e-3, "b": MU * 1e-3, "fusion": 1e-3}
    sched.on_epoch_end(tr, 2, _logs(0.5, 0.6, 0.7))            # both u < 0 -> back to global
    assert lrs() == {"a": 1e-3, "b": 1e-3, "fusion": 1e-3}
    sched.on_epoch_end(tr, 3, _logs(math.nan, 0.6, 0.7))       # undefined u -> no action
    assert lrs()["a"] == 1e-3 and sched.decisions[-1]["note"].startswith("undefined")
    assert [d["epoch"] for d in sched.decisions] == [0, 1, 2, 3]
    assert sched.decisions[0]["u:a"] == pytest.approx(0.5)


def test_miles_validates():
    with pytest.raises(ValueError, match="split"):
        MILES(split="test")
    with pytest.raises(ValueError, match="higher-is-better"):
        MILES(metric="mse")
    tr = _fake_trainer(("a",))
    with pytest.raises(ValueError, match="at least two"):
        MILES().setup(tr)


def test_ogm_coefficients():
    assert ogm_coefficients(2.0, 1.0, 0.5) == (pytest.approx(1 - math.tanh(1.0)), 1.0)
    assert ogm_coefficients(1.0, 4.0, 0.1) == (1.0, pytest.approx(1 - math.tanh(0.4)))
    assert ogm_coefficients(3.0, 3.0, 0.5) == (1.0, 1.0)
    with pytest.raises(ValueError, match="positive"):
        ogm_coefficients(0.0, 1.0, 0.5)


@pytest.mark.parametrize("ge", [False, True])
def test_ogm_modulates_encoder_gradients(ge):
    # two runs with their own alpha and batch, modulated in one call (the stacked form fit uses)
    from mmrepro.core.models.stacked import RunStreams, StackedMultimodalNet

    torch.manual_seed(0)
    nets = [MultimodalNet({"a": MLPEncoder(64, (256,)), "b": MLPEncoder(64, (256,))}, "multiclass", 3, "concat")
            for _ in range(2)]
    model = StackedMultimodalNet(nets)
    x = {"a": 3 * torch.randn(2, 64, 64), "b": 0.1 * torch.randn(2, 64, 64)}
    y = torch.randint(3, (2, 64))
    present = {m: torch.ones(2, 64, dtype=torch.bool) for m in x}
    out = model(x, present)
    sum(torch.nn.functional.cross_entropy(z.flatten(0, 1), y.flatten()) for z in out.logits.values()).backward()
    raw = {n: p.grad.clone() for n, p in model.named_parameters()}
    batch = SimpleNamespace(y=y, present=present)
    runs = [OGM(alpha=0.5, ge=ge), OGM(alpha=0.2, ge=ge)]
    OGM.before_step(runs, SimpleNamespace(model=model, epoch=0, noise=RunStreams([1, 2], torch.device("cpu")).noise),
                    out, batch)
    assert runs[0].coeffs != runs[1].coeffs
    for k, (run, net) in enumerate(zip(runs, nets)):
        coeffs = dict(zip(("a", "b"), run.coeffs[-1]))
        # scores from run k's own fusion-head weight blocks (OGM eq. 5)
        contrib = net.fusion_contributions(net({m: v[k] for m, v in x.items()}).embeddings)
        s = {m: float(torch.softmax(contrib[m].detach(), 1).gather(1, y[k, :, None]).sum()) for m in coeffs}
        assert run.coeffs[-1] == pytest.approx(ogm_coefficients(s["a"], s["b"], run.alpha))
        assert min(coeffs.values()) < 1  # one modality is slowed
        for n, p in model.named_parameters():
            m = n.split(".")[1] if n.startswith("encoders.") else None
            if m is None:
                torch.testing.assert_close(p.grad[k], raw[n][k])  # heads / fusion untouched
                continue
            resid = p.grad[k] - coeffs[m] * raw[n][k]
            if not ge:
                torch.testing.assert_close(resid, torch.zeros_like(resid))
            elif raw[n][k].numel() >= 10_000:  # GE noise ~ N(0, std(g)^2)
                sd = float(raw[n][k].std())
                assert abs(float(resid.mean())) < 5 * sd / math.sqrt(resid.numel())
                assert float(resid.std()) == pytest.approx(sd, rel=0.05)
        logs = run.on_epoch_end(SimpleNamespace(model=net), 0, {})
        assert logs["ogm/k:a"] == pytest.approx(coeffs["a"])


def test_gblend_weights_on_constructed_history():
    # fusion: dG = 0.2, dO = 0.2 -> 5; a: dG = 0.1, dO = 0.1 -> 10; b: hold-out loss got worse -> 0
    train0 = {"fusion": 0.9, "a": 0.9, "b": 0.9}
    hold0 = {"fusion": 1.0, "a": 1.0, "b": 1.0}
    train1 = {"fusion": 0.5, "a": 0.7, "b": 0.5}
    hold1 = {"fusion": 0.8, "a": 0.9, "b": 1.1}
    w = gblend_weights(train0, hold0, train1, hold1)
    assert w == pytest.approx({"fusion": 1 / 3, "a": 2 / 3, "b": 0.0})
    # against a direct numpy evaluation of w ~ dG / dO^2
    dg = np.array([0.2, 0.1, 0.0])
    do = np.array([0.2, 0.1, 0.5])
    ref = dg / do**2
    assert list(w.values()) == pytest.approx(list(ref / ref.sum()))
    flat = gblend_weights(train0, hold0, train0, hold0)
    assert flat == pytest.approx({"fusion": 1 / 3, "a": 1 / 3, "b": 1 / 3})


def test_mses_stops_each_part_after_patience():
    tr = _fake_trainer()
    mses = MSES(patience=2)
    mses.setup(tr)
    seq = [_logs(0.5, 0.5, 0.5), _logs(0.6, 0.5, 0.6), _logs(0.7, 0.4, 0.6), _logs(0.6, 0.6, 0.7),
           _logs(0.6, 0.6, 0.6), _logs(0.6, 0.6, 0.6)]
    for e, lg in enumerate(seq):
        mses.on_epoch_end(tr, e, lg)
    assert mses.stopped == {"a": 2, "fusion": 4, "b": 5}
    assert mses.should_stop
    assert all(g["lr"] == 0.0 for g in tr.optimizer.param_groups)


def test_mses_and_mslr_d_monitor_probes_without_unimodal_heads():
    """Trained on the fused loss only (no unimodal heads), MSES and MSLR-D watch the detached probes."""
    torch.manual_seed(0)
    model = MultimodalNet({m: MLPEncoder(2, (3,)) for m in "ab"}, "multiclass", 3, multihead=False, probes=True)
    groups = [{"params": ps, "name": g, "lr": 1e-3} for g, ps in model.parameter_groups().items()]
    tr = SimpleNamespace(model=model, optimizer=torch.optim.Adam(groups), base_lr={g["name"]: 1e-3 for g in groups},
                         epoch=0)
    probe = lambda f, a, b: {"val/fusion/accuracy": f, "val/probe:a/accuracy": a, "val/probe:b/accuracy": b}  # noqa: E731
    mses = MSES(patience=1)
    mses.setup(tr)
    mses.on_epoch_end(tr, 0, probe(0.5, 0.5, 0.5))
    mses.on_epoch_end(tr, 1, probe(0.6, 0.4, 0.6))
    assert mses.stopped == {"a": 1}
    lrs = {g["name"]: g["lr"] for g in tr.optimizer.param_groups}
    assert lrs["a"] == 0.0 and lrs["probes"] == 1e-3  # a probe keeps measuring a stopped encoder
    d = MSLR({"a": 1e-3, "b": 1e-3}, "dynamic", interval=2)
    d.setup(tr)
    d.on_epoch_end(tr, 0, probe(0.5, 0.5, 0.5))
    d.on_epoch_end(tr, 1, probe(0.5, 0.7, 0.5))
    assert d.lrs == pytest.approx({"a": 1e-3 * 0.7 / 0.6, "b": 1e-3})
    bare = SimpleNamespace(model=MultimodalNet({m: MLPEncoder(2, (3,)) for m in "ab"}, "multiclass", 3, multihead=False),
                           optimizer=tr.optimizer)
    with pytest.raises(ValueError, match="probes=True"):
        MSES().setup(bare)


def test_mslr_strategies():
    tr = _fake_trainer()
    MSLR({"a": 1e-3, "b": 3e-3}, "keep").setup(tr)
    assert {g["name"]: g["lr"] for g in tr.optimizer.param_groups} == {"a": 1e-3, "b": 3e-3, "fusion": 1e-3}
    s = MSLR({"a": 1e-3, "b": 3e-3}, "smooth", smooth=0.5)
    assert s.lrs == pytest.approx({"a": 1.5e-3, "b": 2.5e-3})
    d = MSLR({"a": 1e-3, "b": 1e-3}, "dynamic", interval=2)
    d.setup(tr)
    d.on_epoch_end(tr, 0, {"val/a/accuracy": 0.5, "val/b/accuracy": 0.5})
    d.on_epoch_end(tr, 1, {"val/a/accuracy": 0.7, "val/b/accuracy": 0.5})
    assert d.lrs == pytest.approx({"a": 1e-3 * 0.7 / 0.6, "b": 1e-3})
    with pytest.raises(ValueError, match="strategy"):
        MSLR({"a": 1e-3}, "fast")
    with pytest.raises(ValueError, match="exactly the modalities"):
        MSLR({"a": 1e-3}).setup(tr)


def test_lower_is_better_metrics():
    # u (eq. 4) and the MSLR-D ratio assume higher is better; MSES flips the sign for losses
    for metric in ("mse", "loss"):
        with pytest.raises(ValueError, match="higher-is-better"):
            MILES(metric=metric)
        with pytest.raises(ValueError, match="higher-is-better"):
            MSLR({"a": 1e-3, "b": 1e-3}, "dynamic", metric=metric)
    tr = _fake_trainer()
    mses = MSES(patience=1, metric="loss")
    mses.setup(tr)
    for e, v in enumerate((0.9, 0.8, 0.7)):  # falling losses = improving
        mses.on_epoch_end(tr, e, {"val/a/loss": v, "val/b/loss": v, "val/fusion/loss": v})
    assert mses.stopped == {}


def test_gblend_windows_span_window_epochs():
    # the first estimate used to come one epoch early (anchor at epoch 0, update at epoch window - 1)
    from mmrepro.core.balancing import GBlend

    tr = _fake_trainer()
    gb = GBlend(window=3)
    gb.setup(tr)
    updates = []
    for e in range(10):
        loss = 1.0 / (e + 1)
        logs = {f"{s}/{h}/loss": loss * (1.0 + 0.1 * i + (s == "holdout"))
                for s in ("train", "holdout") for i, h in enumerate(("fusion", "a", "b"))}
        before = dict(gb.weights)
        gb.on_epoch_end(tr, e, logs)
        if gb.weights != before:
            updates.append(e)
    assert updates == [3, 6, 9]


@pytest.mark.parametrize("build, error, match", [
    (lambda: MILES(tau=1.2), ValueError, r"tau=1.2 is out of range: MILES' tolerated utilisation gap tau lies in \[0, 1\]"),
    (lambda: MILES(metric="acc"), ValueError, r"MILES: unknown metric 'acc'; accepted: accuracy, f1_macro"),
    (lambda: MILES(metric="mse"), ValueError, r"MILES needs a higher-is-better metric"),
    (lambda: MSES(metric="acuracy"), ValueError, r"MSES: unknown metric 'acuracy'; accepted: .*loss"),
    (lambda: MSES(patience=2.5), TypeError, r"patience must be an integer >= 1"),
    (lambda: MSLR({"a": 1e-3}, "dynamic", metric="f2"), ValueError, r"MSLR-D: unknown metric 'f2'"),
    (lambda: MSLR({}, "keep"), ValueError, r"lrs must give one learning rate per modality"),
    (lambda: OGM(alpha=0.5, start=3, end=2), ValueError, r"end=2 must be after start=3"),
    (lambda: OGM(alpha=float("nan")), ValueError, r"alpha=nan is out of range"),
])
def test_methods_check_their_arguments_when_built(build, error, match):
    """Checked at construction: a typo would otherwise surface only once training has started."""
    with pytest.raises(error, match=match):
        build()
