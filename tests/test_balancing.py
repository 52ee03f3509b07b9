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
        rho = s["a"] / s["b"]  # OGM eqs. 5-7 by hand: the dominant modality gets 1 - tanh(alpha rho)
        assert run.coeffs[-1] == pytest.approx((1 - math.tanh(run.alpha * rho), 1.0) if rho > 1
                                               else (1.0, 1 - math.tanh(run.alpha / rho)))
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


# ----------------------------------------------------------------------------- MILES with earlier multipliers
PREV = (0.3, 0.7)  # neither 1 nor mu: a branch that keeps or resets a multiplier shows which one it took


@pytest.mark.parametrize("u_a, u_b, tau, expected", [
    (0.75, 0.5, 0.25, (1.0, 1.0)),     # lines 8-10: balanced resets both, whatever came before
    (0.6, 0.6, 0.0, (1.0, 1.0)),
    (-0.1, -0.6, 0.2, (1.0, 1.0)),     # lines 8-10: both negative
    (-0.6, -0.1, 0.2, (1.0, 1.0)),
    (0.4, -0.2, 0.2, (0.25, 0.7)),     # lines 12-13: A slowed, B keeps its previous multiplier
    (-0.2, 0.4, 0.2, (0.3, 0.25)),     # lines 14-15: B slowed, A keeps its previous multiplier
    (0.1, 0.6, 0.2, (0.3, 0.25)),      # lines 17-18: u_A < u_B
    (0.6, 0.1, 0.2, (0.25, 0.7)),      # lines 19-20
    (0.0, 0.5, 0.2, (0.3, 0.25)),      # u_A = 0: lines 17-18
    (0.5, 0.0, 0.2, (0.25, 0.7)),      # u_B = 0: lines 19-20
    (-0.5, 0.0, 0.2, (0.3, 0.25)),     # u_A < 0 = u_B: lines 17-18
    (0.0, -0.5, 0.2, (0.25, 0.7)),     # u_B < 0 = u_A: lines 19-20
    (0.75, 0.5, 0.25 - 1e-12, (0.25, 0.7)),  # delta just above tau
])
def test_miles_decision_every_branch_with_earlier_multipliers(u_a, u_b, tau, expected):
    assert miles_decision(u_a, u_b, tau, 0.25, previous=PREV) == expected
    # the mirror image: swapping the modalities swaps the multipliers
    assert miles_decision(u_b, u_a, tau, 0.25, previous=PREV[::-1]) == expected[::-1]


def test_miles_decision_accepts_the_ends_of_its_ranges():
    assert miles_decision(0.9, 0.1, 0.0, 1.0) == (1.0, 1.0)  # mu = 1: slowed to the global rate
    assert miles_decision(1.0, 0.0, 1.0, 0.5) == (1.0, 1.0)  # tau = 1: every gap within it
    for bad in (dict(tau=-1e-9), dict(tau=1 + 1e-9), dict(mu=0.0), dict(mu=1 + 1e-9), dict(u_b=math.inf),
                dict(tau=math.nan), dict(mu=math.nan)):
        with pytest.raises(ValueError):
            miles_decision(**(dict(u_a=0.1, u_b=0.2, tau=0.1, mu=0.5) | bad))


def test_miles_pairwise_by_hand():
    # fusion 0.8; heads a 0.7, b 0.3, c 0.75: u for the pair (i, j) is (M_F - M_j) / M_F for i
    # (a, b): u_a = 0.625, u_b = 0.125 -> a slowed; (a, c): u_a = 0.0625, u_c = 0.125, delta 0.0625 <= 0.1
    # (b, c): u_b = 0.0625, u_c = 0.625 -> c slowed
    assert miles_decision_pairwise(0.8, {"a": 0.7, "b": 0.3, "c": 0.75}, 0.1, 0.4) == {"a": 0.4, "b": 1.0, "c": 0.4}
    # a heads beating the fusion head (both u negative) is no reason to slow anything
    assert miles_decision_pairwise(0.5, {"a": 0.6, "b": 0.9}, 0.1, 0.4) == {"a": 1.0, "b": 1.0}
    # two modalities: Algorithm 1 from global rates
    assert miles_decision_pairwise(0.8, {"a": 0.3, "b": 0.7}, 0.1, 0.4) == {"a": 1.0, "b": 0.4}
    with pytest.raises(ValueError, match="fusion metric is 0"):
        miles_decision_pairwise(0.0, {"a": 0.3, "b": 0.7}, 0.1, 0.4)
    # u is a share of the fusion metric: with M_F = 0.5, heads 0.45 and 0.3 give u = 0.4 and 0.1 (delta 0.3 > 0.2)
    assert miles_decision_pairwise(0.5, {"a": 0.45, "b": 0.3}, 0.2, 0.4) == {"a": 0.4, "b": 1.0}
    assert miles_decision_pairwise(0.5, {"a": 0.3, "b": 0.45}, 0.2, 0.4) == {"a": 1.0, "b": 0.4}


def test_miles_scheduler_keeps_the_unassigned_multiplier_across_epochs():
    tr = _fake_trainer()
    for g in tr.optimizer.param_groups:  # different global rates per group
        g["lr"] = tr.base_lr[g["name"]] = {"a": 1e-3, "b": 4e-3, "fusion": 2e-3}[g["name"]]
    sched = MILES(tau=0.1, mu=0.25)
    sched.setup(tr)
    lrs = lambda: {g["name"]: g["lr"] for g in tr.optimizer.param_groups}  # noqa: E731
    # epoch 0: fusion 0.8, a 0.3, b 0.7 -> u_a = 0.125, u_b = 0.625: B dominant, B slowed
    out = sched.on_epoch_end(tr, 0, _logs(0.8, 0.3, 0.7))
    assert lrs() == pytest.approx({"a": 1e-3, "b": 1e-3, "fusion": 2e-3})
    assert out == {"miles/u:a": pytest.approx(0.125), "miles/u:b": pytest.approx(0.625), "miles/delta": pytest.approx(0.5),
                   "miles/slowed": "b", "miles/mult:a": 1.0, "miles/mult:b": 0.25}
    # epoch 1: a over-utilised (u_a > 0 > u_b): A slowed, B keeps 0.25 (Algorithm 1 assigns only A)
    sched.on_epoch_end(tr, 1, _logs(0.8, 0.9, 0.4))
    assert lrs() == pytest.approx({"a": 0.25e-3, "b": 1e-3, "fusion": 2e-3})
    assert sched.decisions[-1]["slowed"] == "a,b"
    # epoch 2: B over-utilised (u_a < 0 < u_b): B slowed, A keeps 0.25
    sched.on_epoch_end(tr, 2, _logs(0.8, 0.4, 0.9))
    assert lrs() == pytest.approx({"a": 0.25e-3, "b": 1e-3, "fusion": 2e-3})
    # epoch 3: within tau: both back to their global rates
    sched.on_epoch_end(tr, 3, _logs(0.8, 0.75, 0.76))
    assert lrs() == pytest.approx({"a": 1e-3, "b": 4e-3, "fusion": 2e-3})
    assert sched.decisions[-1]["slowed"] == "none"
    # a fusion metric of 0 is an undefined u: no action, global rates
    sched.on_epoch_end(tr, 4, _logs(0.8, 0.3, 0.7))
    sched.on_epoch_end(tr, 5, _logs(0.0, 0.3, 0.7))
    assert lrs() == pytest.approx({"a": 1e-3, "b": 4e-3, "fusion": 2e-3})
    assert sched.decisions[-1] == {"epoch": 5, "note": "undefined u: no action", "slowed": "none",
                                   "mult:a": 1.0, "mult:b": 1.0}


def test_miles_scheduler_with_three_modalities_uses_the_pairwise_extension():
    tr = _fake_trainer(("a", "b", "c"))
    sched = MILES(tau=0.1, mu=0.4, split="train", metric="f1_macro")
    sched.setup(tr)
    logs = {"train/fusion/f1_macro": 0.8, "train/a/f1_macro": 0.7, "train/b/f1_macro": 0.3, "train/c/f1_macro": 0.75}
    out = sched.on_epoch_end(tr, 0, logs)
    assert {g["name"]: g["lr"] for g in tr.optimizer.param_groups} == pytest.approx(
        {"a": 0.4e-3, "b": 1e-3, "c": 0.4e-3, "fusion": 1e-3})
    assert out["miles/note"] == "pairwise extension" and out["miles/slowed"] == "a,c"


def test_reference_miles_rates_with_earlier_multipliers():
    from mmrepro.papers.miles.scheduler import reference_miles_rates

    # u_a = (0.9 - 0.88) / 0.9, u_b = (0.9 - 0.5) / 0.9: both positive, u_a < u_b -> B slowed, A keeps 0.5
    rates = reference_miles_rates({"fusion": 0.9, "a": 0.5, "b": 0.88}, {"a": 1e-3, "b": 2e-3, "fusion": 5e-3},
                                  {"a": 0.5, "b": 1.0}, tau=0.2, mu=0.5)
    assert rates == pytest.approx({"a": 0.5e-3, "b": 1e-3, "fusion": 5e-3})


# ----------------------------------------------------------------------------- OGM scores and noise
def official_score(logits_2d, y):
    """The official code's score line: s = sum_i softmax(out)[i, y_i] (multiclass logits (N, C))."""
    return float(torch.softmax(logits_2d, dim=-1)[torch.arange(len(y)), y].sum())


def test_ogm_score_multiclass_is_the_official_line():
    from mmrepro.core.balancing.ogm import true_target_score

    z = torch.tensor([[0.0, math.log(3.0), 0.0], [1.0, 2.0, 3.0], [0.5, -0.5, 0.0], [2.0, 0.0, 0.0]])
    y = torch.tensor([1, 2, -1, 0])  # the unknown target is skipped, and so is the row masked out
    mask = torch.tensor([True, True, True, False])
    got = float(true_target_score(z, y, "multiclass", mask))
    assert got == pytest.approx(official_score(z[:2], y[:2]))
    assert got == pytest.approx(3 / 5 + math.exp(3) / (math.e + math.exp(2) + math.exp(3)))


def test_ogm_score_binary_and_multilabel_are_the_official_line_on_two_class_logits():
    """A single logit z is the two-class head (0, z): softmax((0, z))[y] = sigmoid(z) if y = 1 else 1 - sigmoid(z)."""
    from mmrepro.core.balancing.ogm import true_target_score

    z = torch.tensor([[math.log(3.0)], [0.0], [-math.log(4.0)], [2.0], [1.0]])
    y = torch.tensor([1.0, 0.0, 0.0, float("nan"), 1.0])
    mask = torch.tensor([True, True, True, True, False])
    got = float(true_target_score(z, y, "binary", mask))
    assert got == pytest.approx(0.75 + 0.5 + 0.8)  # by hand
    two = torch.cat([torch.zeros_like(z), z], dim=1)
    assert got == pytest.approx(official_score(two[:3], y[:3].long()))
    # multilabel: every label its own two-class head, summed over labels and rows
    zl = torch.tensor([[math.log(3.0), 0.0, -1.0], [2.0, -math.log(4.0), 0.5]])
    yl = torch.tensor([[1.0, 0.0, float("nan")], [0.0, 0.0, 1.0]])
    got = float(true_target_score(zl, yl, "multilabel", torch.tensor([True, True])))
    ref = sum(official_score(torch.stack([torch.zeros(1), zl[i, j:j + 1]], 1), yl[i, j:j + 1].long())
              for i in range(2) for j in range(3) if not math.isnan(float(yl[i, j])))
    assert got == pytest.approx(ref)
    assert got == pytest.approx(0.75 + 0.5 + (1 - 1 / (1 + math.exp(-2))) + 0.8 + 1 / (1 + math.exp(-0.5)))
    assert float(true_target_score(zl, yl, "multilabel", torch.tensor([False, True]))) == pytest.approx(got - 1.25)
    # runs axis first: one score per run
    stacked = true_target_score(torch.stack([z, -z]), torch.stack([y, y]), "binary", torch.stack([mask, mask]))
    assert stacked.tolist() == pytest.approx([0.75 + 0.5 + 0.8, 0.25 + 0.5 + 0.2])
    with pytest.raises(ValueError, match="classification"):
        true_target_score(z, y, "regression", mask)


def test_ogm_coefficients_by_hand_for_runs():
    s_a, s_b = torch.tensor([2.0, 1.0, 3.0, 0.5], dtype=torch.float64), torch.tensor([1.0, 4.0, 3.0, 0.25],
                                                                                    dtype=torch.float64)
    alpha = torch.tensor([0.5, 0.1, 0.5, 0.3], dtype=torch.float64)
    k_a, k_b = ogm_coefficients(s_a, s_b, alpha)
    assert k_a.tolist() == pytest.approx([1 - math.tanh(1.0), 1.0, 1.0, 1 - math.tanh(0.6)])
    assert k_b.tolist() == pytest.approx([1.0, 1 - math.tanh(0.4), 1.0, 1.0])
    with pytest.raises(ValueError, match="positive"):
        ogm_coefficients(s_a, -s_b, alpha)
    for zero in ((0.0, 1.0), (1.0, 0.0)):
        with pytest.raises(ValueError, match="positive"):
            ogm_coefficients(*zero, 0.5)


def _ogm_setup(widths, kind="multiclass", n_out=3):
    """Two stacked runs whose encoders have parameters of several sizes (a width-1 layer has a bias of one
    entry), one backward pass of the summed head losses."""
    from mmrepro.core.models.stacked import StackedMultimodalNet

    torch.manual_seed(0)
    nets = [MultimodalNet({"a": MLPEncoder(3, widths), "b": MLPEncoder(2, (2,))}, kind, n_out, "concat")
            for _ in range(2)]
    model = StackedMultimodalNet(nets)
    x = {"a": 2 * torch.randn(2, 16, 3), "b": 0.1 * torch.randn(2, 16, 2)}
    y = torch.randint(n_out, (2, 16)) if kind == "multiclass" else torch.randint(2, (2, 16, n_out)).float()
    present = {m: torch.ones(2, 16, dtype=torch.bool) for m in x}
    out = model(x, present)
    for z in out.logits.values():
        loss = (torch.nn.functional.cross_entropy(z.flatten(0, 1), y.flatten()) if kind == "multiclass"
                else torch.nn.functional.binary_cross_entropy_with_logits(z, y))
        loss.backward(retain_graph=True)
    return nets, model, out, SimpleNamespace(y=y, present=present)


@pytest.mark.parametrize("kind", ["multiclass", "multilabel"])
def test_ogm_ge_noise_on_every_parameter_size(kind):
    """With the noise draw fixed to ones, the modulated gradient is k g + std(g): the unbiased std of the
    run's unscaled gradient, for tensors of 2 entries up; a tensor of one entry (std undefined) gets none."""
    nets, model, out, batch = _ogm_setup((1, 2, 5), kind)
    raw = {n: p.grad.clone() for n, p in model.named_parameters()}
    sizes = {raw[n][0].numel() for n in raw if n.startswith("encoders.a")}
    assert {1, 2, 3, 5, 10} <= sizes  # bias of 1, weights of 3 (1 x 3) and 2, biases of 2 and 5, weight of 10
    runs = [OGM(alpha=0.8, ge=True), OGM(alpha=0.1, ge=True)]
    ones = lambda g, active: torch.ones_like(g) * active.view(-1, *[1] * (g.dim() - 1))  # noqa: E731
    OGM.before_step(runs, SimpleNamespace(model=model, epoch=0, noise=ones), out, batch)
    for k, run in enumerate(runs):
        coeffs = dict(zip(("a", "b"), run.coeffs[-1]))
        for n, p in model.named_parameters():
            if not n.startswith("encoders."):
                torch.testing.assert_close(p.grad[k], raw[n][k])
                continue
            g = raw[n][k]
            noise = float(g.flatten().std()) if g.numel() > 1 else 0.0
            if g.numel() > 1:  # by hand: sqrt(sum (g - mean)^2 / (n - 1))
                assert noise == pytest.approx(math.sqrt(float(((g - g.mean()) ** 2).sum()) / (g.numel() - 1)))
            torch.testing.assert_close(p.grad[k], coeffs[n.split(".")[1]] * g + noise, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("kind, n_out", [("binary", 1), ("multilabel", 3)])
def test_ogm_coefficients_on_binary_and_multilabel_heads(kind, n_out):
    """The coefficients of a run come from the official score of each modality's share of the fusion logits."""
    nets, model, out, batch = _ogm_setup((4,), kind, n_out)
    if kind == "binary":
        batch.y = batch.y[..., 0]
    runs = [OGM(alpha=0.5), OGM(alpha=0.2)]
    OGM.before_step(runs, SimpleNamespace(model=model, epoch=0, noise=None), out, batch)
    for k, run in enumerate(runs):
        contrib = {m: c[k] for m, c in model.fusion_contributions(out.embeddings).items()}
        y = batch.y[k].reshape(16, -1)
        s = {}
        for m, z in contrib.items():
            two = torch.stack([torch.zeros_like(z), z], dim=-1).reshape(-1, 2)
            s[m] = official_score(two.detach(), y.reshape(-1).long())
        rho = s["a"] / s["b"]
        expected = (1 - math.tanh(run.alpha * rho), 1.0) if rho > 1 else (1.0, 1 - math.tanh(run.alpha / rho))
        assert run.coeffs[-1] == pytest.approx(expected)
        assert min(expected) < 1


def test_ogm_modulates_only_in_its_epochs_and_averages_its_coefficients():
    nets, model, out, batch = _ogm_setup((4,))
    raw = {n: p.grad.clone() for n, p in model.named_parameters()}
    runs = [OGM(alpha=0.5, start=1, end=3), OGM(alpha=0.5, start=1, end=3)]
    for epoch, active in ((0, False), (1, True), (2, True), (3, False)):
        before = len(runs[0].coeffs)
        OGM.before_step(runs, SimpleNamespace(model=model, epoch=epoch, noise=None), out, batch)
        assert (len(runs[0].coeffs) == before + 1) == active, epoch
    assert not torch.equal(dict(model.named_parameters())["encoders.a.net.0.weight"].grad, raw["encoders.a.net.0.weight"])
    ogm = OGM(alpha=0.5)
    ogm.coeffs = [(0.2, 1.0), (0.6, 1.0), (1.0, 0.4)]
    assert ogm.on_epoch_end(SimpleNamespace(model=nets[0]), 0, {}) == pytest.approx({"ogm/k:a": 0.6, "ogm/k:b": 0.8})
    assert ogm.coeffs == [] and ogm.on_epoch_end(SimpleNamespace(model=nets[0]), 1, {}) == {}


def test_mses_min_delta_nan_epochs_and_its_log():
    tr = _fake_trainer()
    mses = MSES(patience=2, min_delta=0.05)
    mses.setup(tr)
    assert not mses.should_stop
    out = mses.on_epoch_end(tr, 0, _logs(math.nan, 0.5, 0.5))  # an undefined fusion metric: no improvement
    assert mses.wait == {"a": 0, "b": 0, "fusion": 1} and out == {"mses/stopped:a": 0.0, "mses/stopped:b": 0.0,
                                                                 "mses/stopped:fusion": 0.0}
    mses.on_epoch_end(tr, 1, _logs(0.6, 0.54, 0.56))  # a gains 0.04 < min_delta: not an improvement; b gains 0.06
    assert mses.wait == {"a": 1, "b": 0, "fusion": 0} and mses.best["b"] == 0.56
    out = mses.on_epoch_end(tr, 2, _logs(0.6, 0.545, 0.62))  # a: 0.045 above its best, again no gain: stopped
    assert mses.stopped == {"a": 2} and out["mses/stopped:a"] == 1.0 and out["mses/stopped:b"] == 0.0
    assert {g["name"]: g["lr"] for g in tr.optimizer.param_groups} == {"a": 0.0, "b": 1e-3, "fusion": 1e-3}
    # a lower-is-better metric: a fall of more than min_delta is the improvement
    loss = MSES(patience=1, metric="loss", min_delta=0.1)
    loss.setup(tr)
    logs = lambda f, a, b: {"val/fusion/loss": f, "val/a/loss": a, "val/b/loss": b}  # noqa: E731
    loss.on_epoch_end(tr, 0, logs(1.0, 1.0, 1.0))
    loss.on_epoch_end(tr, 1, logs(0.85, 0.94, 1.2))  # fusion fell 0.15; a only 0.06; b rose
    assert loss.stopped == {"a": 1, "b": 1}


def test_ogm_setup_epochs_and_a_batch_without_a_modality():
    from mmrepro.core.balancing.ogm import true_target_score

    tr = _fake_trainer()
    ogm = OGM(alpha=0.5)
    ogm.coeffs = [(0.5, 1.0)]
    ogm.setup(tr)
    assert ogm.coeffs == [] and OGM(ge=True).name == "ogm-ge" and ogm.name == "ogm"
    with pytest.raises(ValueError, match="two modalities"):
        OGM().setup(_fake_trainer(("a", "b", "c")))
    lstm = SimpleNamespace(model=MultimodalNet({m: MLPEncoder(2, (3,)) for m in "ab"}, "multiclass", 3, "lstm",
                                               multihead=False, token_dim=3, fusion_hidden=4))
    with pytest.raises(ValueError, match="needs the unimodal heads"):
        OGM().setup(lstm)
    lstm.model.multihead = True
    OGM().setup(lstm)
    with pytest.raises(ValueError, match="end=2 must be after start=2"):
        OGM(start=2, end=2)
    # run 1's batch has no row of modality b: its score is 0, so that run skips the batch (no coefficient)
    nets, model, out, batch = _ogm_setup((4,))
    batch.present = {"a": batch.present["a"], "b": torch.stack([torch.ones(16, dtype=torch.bool),
                                                                torch.zeros(16, dtype=torch.bool)])}
    raw = {n: p.grad.clone() for n, p in model.named_parameters()}
    runs = [OGM(alpha=0.5), OGM(alpha=0.5)]
    OGM.before_step(runs, SimpleNamespace(model=model, epoch=0, noise=None), out, batch)
    assert len(runs[0].coeffs) == 1 and runs[1].coeffs == []
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad[1], raw[n][1])  # run 1 untouched
    # a score below 1 (one row of b in run 1's batch) is a score: that run is modulated
    one = torch.zeros(2, 16, dtype=torch.bool)
    one[:, 0] = True
    batch.present = {"a": torch.ones(2, 16, dtype=torch.bool), "b": one}
    runs = [OGM(alpha=0.5), OGM(alpha=0.5)]
    OGM.before_step(runs, SimpleNamespace(model=model, epoch=0, noise=None), out, batch)
    assert len(runs[0].coeffs) == len(runs[1].coeffs) == 1
    batch.present = {"a": one, "b": torch.ones(2, 16, dtype=torch.bool)}
    runs = [OGM(alpha=0.5), OGM(alpha=0.5)]
    OGM.before_step(runs, SimpleNamespace(model=model, epoch=0, noise=None), out, batch)
    assert len(runs[0].coeffs) == len(runs[1].coeffs) == 1
    # and the same when the other modality is the missing one
    batch.present = {"a": torch.stack([torch.ones(16, dtype=torch.bool), torch.zeros(16, dtype=torch.bool)]),
                     "b": torch.ones(2, 16, dtype=torch.bool)}
    runs = [OGM(alpha=0.5), OGM(alpha=0.5)]
    OGM.before_step(runs, SimpleNamespace(model=model, epoch=0, noise=None), out, batch)
    assert len(runs[0].coeffs) == 1 and runs[1].coeffs == []
    # multilabel scores of stacked runs: the mask of each run applies to its own rows
    z = torch.zeros(2, 2, 3)
    y = torch.ones(2, 2, 3)
    mask = torch.tensor([[True, False], [True, True]])
    assert true_target_score(z, y, "multilabel", mask).tolist() == pytest.approx([1.5, 3.0])


def test_miles_needs_validation_only_on_its_validation_split():
    assert MILES().needs_val and not MILES(split="train").needs_val
    assert MILES(metric="auroc").metrics == ("auroc",)


def test_gblend_holdout_split_and_arguments():
    from mmrepro.core.balancing import GBlend

    gb = GBlend(holdout=0.2)
    train, extra = gb.split_train(torch.arange(100, 150), torch.Generator().manual_seed(0))
    hold = extra["holdout"]
    assert len(hold) == 10 and len(train) == 40 and sorted(torch.cat([train, hold]).tolist()) == list(range(100, 150))
    assert torch.equal(train, train.sort().values) and torch.equal(hold, hold.sort().values)
    train, extra = GBlend(holdout=0.01).split_train(torch.arange(20), torch.Generator().manual_seed(0))
    assert len(extra["holdout"]) == 1 and len(train) == 19  # at least one row held out
    for bad in (0.0, 1.0):
        with pytest.raises(ValueError, match="holdout"):
            GBlend(holdout=bad)
    with pytest.raises(ValueError, match="multihead=True"):
        GBlend().setup(SimpleNamespace(model=SimpleNamespace(multihead=False)))
    tr = _fake_trainer(("a", "b", "c"))
    gb = GBlend()
    gb.setup(tr)
    assert gb.weights == pytest.approx({"fusion": 0.25, "a": 0.25, "b": 0.25, "c": 0.25})


def test_mslr_smooth_ends_names_and_undefined_accuracies():
    rates = {"a": 1e-3, "b": 3e-3}
    assert MSLR(rates, "smooth", smooth=1.0).lrs == pytest.approx({"a": 2e-3, "b": 2e-3})
    assert MSLR(rates, "smooth", smooth=0.0).lrs == pytest.approx(rates)
    assert [MSLR(rates, s).name for s in ("keep", "smooth", "dynamic")] == ["mslr-k", "mslr-s", "mslr-d"]
    assert MSLR(rates, "dynamic").needs_val and not MSLR(rates, "keep").needs_val
    for bad in (-0.1, 1.1):
        with pytest.raises(ValueError, match="smooth must be in"):
            MSLR(rates, "smooth", smooth=bad)
    with pytest.raises(ValueError, match="learning rates must be positive"):
        MSLR({"a": 0.0, "b": 1e-3})
    tr = _fake_trainer()
    d = MSLR(rates, "dynamic", interval=2)
    d.setup(tr)
    for e, (a, b) in enumerate([(0.0, 0.5), (0.0, math.nan), (0.4, 0.5), (0.6, 0.5)]):
        d.on_epoch_end(tr, e, {"val/a/accuracy": a, "val/b/accuracy": b})
        if e == 1:  # a's mean is 0 and b's last value undefined: no change
            assert d.lrs == pytest.approx(rates)
    assert d.lrs == pytest.approx({"a": 1e-3 * 0.6 / 0.5, "b": 3e-3})
    assert {g["name"]: g["lr"] for g in tr.optimizer.param_groups}["a"] == pytest.approx(1.2e-3)


def test_gblend_weights_edges_and_its_update_by_hand():
    from mmrepro.core.balancing import GBlend

    # a head that generalised without overfitting more (dO = 0) takes (almost) all the weight
    w = gblend_weights({"f": 1.0, "a": 1.0}, {"f": 1.5, "a": 1.5}, {"f": 0.8, "a": 0.8}, {"f": 1.3, "a": 1.4})
    assert w["f"] == pytest.approx(1.0) and w["a"] == pytest.approx(0.0, abs=1e-9)
    # small ratios still normalise to 1: dG = 0.01, dO = 1 for both heads -> equal, not the fallback by luck
    w = gblend_weights({"f": 1.0, "a": 1.0}, {"f": 1.0, "a": 1.0}, {"f": 0.0, "a": 0.0}, {"f": 0.99, "a": 0.995})
    assert w == pytest.approx({"f": 0.01 / 0.99**2 / (0.01 / 0.99**2 + 0.005 / 0.995**2),
                               "a": 0.005 / 0.995**2 / (0.01 / 0.99**2 + 0.005 / 0.995**2)})
    tr = _fake_trainer()
    gb = GBlend(window=1)
    gb.setup(tr)
    hist = [({"fusion": 1.0, "a": 1.0, "b": 1.0}, {"fusion": 1.2, "a": 1.3, "b": 1.1}),
            ({"fusion": 0.6, "a": 0.9, "b": 0.7}, {"fusion": 1.0, "a": 1.25, "b": 1.15})]
    for e, (train, hold) in enumerate(hist):
        logs = {f"train/{h}/loss": v for h, v in train.items()} | {f"holdout/{h}/loss": v for h, v in hold.items()}
        out = gb.on_epoch_end(tr, e, logs)
    # fusion: dG 0.2, dO (1.0 - 0.6) - (1.2 - 1.0) = 0.2 -> 5; a: dG 0.05, dO 0.05 -> 20; b: dG < 0 -> 0
    assert out == pytest.approx({"gblend/w:fusion": 0.2, "gblend/w:a": 0.8, "gblend/w:b": 0.0})


def test_mslr_dynamic_every_third_epoch_and_its_arguments():
    tr = _fake_trainer()
    d = MSLR({"a": 1e-3, "b": 1e-3}, "dynamic", interval=3)
    assert d.metrics == ("accuracy",) and MSLR({"a": 1e-3}, "keep").metrics == ()
    d.setup(tr)
    accs = [(0.5, 0.5), (0.6, 0.5), (0.7, 0.5), (0.9, 0.2)]
    for e, (a, b) in enumerate(accs):
        d.on_epoch_end(tr, e, {"val/a/accuracy": a, "val/b/accuracy": b})
        if e < 2:
            assert d.lrs == pytest.approx({"a": 1e-3, "b": 1e-3})  # no update before the third epoch
    assert d.lrs == pytest.approx({"a": 1e-3 * 0.7 / 0.6, "b": 1e-3})  # after epoch 2, from epochs 0-2
    one = MSLR({"a": 1e-3, "b": 1e-3}, "dynamic", interval=1)  # every epoch: the ratio of a value to itself
    one.setup(tr)
    one.on_epoch_end(tr, 0, {"val/a/accuracy": 0.7, "val/b/accuracy": 0.2})
    assert one.lrs == pytest.approx({"a": 1e-3, "b": 1e-3})
    from mmrepro.core.balancing import GBlend

    assert GBlend(window=1).window == 1
