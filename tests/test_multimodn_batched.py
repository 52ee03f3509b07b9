"""multimodn.fit_many_multimodn: K MultiModN runs trained as one stacked model give the numbers of K separate
fit calls (per-epoch losses and validation scores, selected epochs, final weights; 1e-5 in float64)."""
import dataclasses
from types import SimpleNamespace

import pytest
import torch

from mmrepro.papers.multimodn import MultiModN, fit_multimodn
from mmrepro.papers.multimodn.batched import fit_many_multimodn

SEEDS, LRS = (1, 4, 9), (1e-3, 3e-3, 1e-2)


def series(n=48, steps=6, no_labs=0.25, seed=0):
    """pbcseq-shaped: static and signs features, up to ``steps`` lab visits, some patients without
    signs and labs; a static binary task, a static 3-class task and a per-visit binary task."""
    g = torch.Generator().manual_seed(seed)
    trial = torch.rand(n, generator=g) > no_labs
    x = {"static": torch.randn(n, 3, generator=g, dtype=torch.float64),
         "signs": torch.randn(n, 2, generator=g, dtype=torch.float64),
         "labs": torch.randn(n, steps, 4, generator=g, dtype=torch.float64)}
    lengths = {"labs": torch.where(trial, torch.randint(1, steps + 1, (n,), generator=g), 0)}
    present = {"static": torch.ones(n, dtype=torch.bool), "signs": trial.clone(), "labs": trial.clone()}
    for m in ("signs", "labs"):
        x[m][~trial] = float("nan")
    y = {"death": (x["static"][:, 0] + torch.randn(n, generator=g, dtype=torch.float64) > 0).double(),
         "stage": torch.randint(0, 3, (n,), generator=g),
         "event": (torch.rand(n, steps, generator=g) < 0.3).double()}
    y["death"][3] = float("nan")
    return SimpleNamespace(x=x, present=present, lengths=lengths, y=y)


def split(d, rows):
    return SimpleNamespace(**{f: {k: v[rows] for k, v in getattr(d, f).items()} for f in ("x", "present", "lengths", "y")})


def model(seed, dropout=0.0, state_change_weight=0.0):
    torch.manual_seed(seed)
    return MultiModN({"static": 3, "signs": 2, "labs": 4},
                     {"death": ("binary", 1), "stage": ("multiclass", 3), "event": ("binary", 1)},
                     sequence_modalities=["labs"], time_tasks=["event"], state_size=6, hidden=5,
                     dropout=dropout, error_weight=1.0 - state_change_weight,
                     state_change_weight=state_change_weight).double()


@pytest.mark.parametrize("no_labs,batch_size,change", [(0.25, 8, 0.0), (0.85, 4, 0.0), (0.25, 8, 0.3)],
                         ids=["pbcseq-like", "batches-without-visits", "state-change-penalty"])
def test_fit_many_matches_separate_fits(no_labs, batch_size, change):
    d = series(no_labs=no_labs)
    train, val = split(d, slice(0, 36)), split(d, slice(36, 48))
    kw = dict(epochs=3, batch_size=batch_size, select_tasks=["death", "stage"])
    alone = [model(s, state_change_weight=change) for s in SEEDS]
    results = [fit_multimodn(m, train, val, seed=s, lr=lr, **kw) for m, s, lr in zip(alone, SEEDS, LRS)]
    together = [model(s, state_change_weight=change) for s in SEEDS]
    batched = fit_many_multimodn(together, train, val, seeds=SEEDS, lrs=LRS, **kw)
    for a, b, ma, mb in zip(results, batched, alone, together):
        assert a.best_epoch == b.best_epoch
        for ra, rb in zip(a.history, b.history):
            assert ra.keys() == rb.keys()
            for key in ra:
                assert ra[key] == pytest.approx(rb[key], abs=1e-5), key
        for (name, p), (_, q) in zip(ma.state_dict().items(), mb.state_dict().items()):
            torch.testing.assert_close(p, q, atol=1e-5, rtol=0, msg=name)
    assert len({r.best_score for r in batched}) > 1


def test_dropout_runs_do_not_depend_on_their_companions():
    """With dropout, a run's masks come from its own stream: trained alone or with others, same numbers."""
    d = series()
    train, val = split(d, slice(0, 36)), split(d, slice(36, 48))
    kw = dict(epochs=2, batch_size=8)
    together = fit_many_multimodn([model(s, dropout=0.3) for s in SEEDS], train, val, seeds=SEEDS, lrs=LRS, **kw)
    for s, lr, run in zip(SEEDS, LRS, together):
        alone = fit_many_multimodn([model(s, dropout=0.3)], train, val, seeds=[s], lrs=[lr], **kw)[0]
        assert alone.best_epoch == run.best_epoch
        for ra, rb in zip(alone.history, run.history):
            assert ra == pytest.approx(rb, abs=1e-5)


def test_errors():
    d = series()
    train = split(d, slice(0, 36))
    with pytest.raises(ValueError, match="one seed and one learning rate per model"):
        fit_many_multimodn([model(0)], train, seeds=[0, 1])
    other = MultiModN({"static": 3, "signs": 2, "labs": 4}, {"death": ("binary", 1)}, sequence_modalities=["labs"],
                      state_size=6, hidden=5).double()
    with pytest.raises(ValueError, match="one MultiModN architecture"):
        fit_many_multimodn([model(0), other], train, seeds=[0, 1])


# ------------------------------------------------------------------ the baselines stacked over runs
def baseline(kind, seed, dropout=0.0, static=False):
    """A P-Fusion (death) or an E.4 transformer (death and stage) for ``series`` data, in float64; ``static``
    leaves the lab series out (the transformer then reads one feature per token)."""
    from mmrepro.papers.multimodn import FusionTransformer, PFusion, TransformerSetting

    torch.manual_seed(seed)
    feats = {"static": 3, "signs": 2} if static else {"static": 3, "signs": 2, "labs": 4}
    steps = {} if static else {"labs": 6}
    if kind == "P-Fusion":
        model = PFusion(feats, {"death": ("binary", 1)}, sequence_steps=steps, embedding_size=3, hidden=5,
                        dropout=dropout)
    else:
        setting = TransformerSetting(blocks=2, heads=2, head_size=3, mlp_units=4, dropout=dropout,
                                     mlp_dropout=dropout, batch_size=8)
        model = FusionTransformer(feats, {"death": ("binary", 1), "stage": ("multiclass", 3)}, sequence_steps=steps,
                                  setting=setting)
    return model.double()


def without_labs(d):
    return SimpleNamespace(x={k: v for k, v in d.x.items() if k != "labs"},
                           present={k: v for k, v in d.present.items() if k != "labs"}, lengths={}, y=d.y)


@pytest.mark.parametrize("kind,static", [("P-Fusion", False), ("Transformer", False), ("Transformer", True)],
                         ids=["pfusion", "transformer-series", "transformer-static"])
def test_stacked_baselines_match_separate_fits(kind, static):
    """Each run of a stacked P-Fusion / transformer keeps its own batches, Adam state, clipping and selected
    epoch: the histories, selected epochs and weights of K separate fits (no dropout, float64)."""
    d = series(no_labs=0.3)
    d = without_labs(d) if static else d
    train, val = split(d, slice(0, 36)), split(d, slice(36, 48))
    kw = dict(epochs=3, batch_size=8)
    alone = [baseline(kind, s, static=static) for s in SEEDS]
    results = [fit_multimodn(m, train, val, seed=s, lr=lr, **kw) for m, s, lr in zip(alone, SEEDS, LRS)]
    together = [baseline(kind, s, static=static) for s in SEEDS]
    batched = fit_many_multimodn(together, train, val, seeds=SEEDS, lrs=LRS, **kw)
    for a, b, ma, mb in zip(results, batched, alone, together):
        assert a.best_epoch == b.best_epoch
        for ra, rb in zip(a.history, b.history):
            assert ra == pytest.approx(rb, abs=1e-6)
        for (name, p), (_, q) in zip(ma.state_dict().items(), mb.state_dict().items()):
            torch.testing.assert_close(p, q, atol=1e-6, rtol=0, msg=name)
    assert len({r.history[-1]["train_loss"] for r in batched}) == len(SEEDS)


@pytest.mark.parametrize("kind", ["P-Fusion", "Transformer"])
def test_stacked_baseline_dropout_streams_do_not_depend_on_companions(kind):
    """With dropout, each run draws its masks from its own stream: alone or with others, the same numbers."""
    d = series()
    train, val = split(d, slice(0, 36)), split(d, slice(36, 48))
    kw = dict(epochs=2, batch_size=8)
    together = fit_many_multimodn([baseline(kind, s, dropout=0.3) for s in SEEDS], train, val, seeds=SEEDS, lrs=LRS, **kw)
    for s, lr, run in zip(SEEDS, LRS, together):
        alone = fit_many_multimodn([baseline(kind, s, dropout=0.3)], train, val, seeds=[s], lrs=[lr], **kw)[0]
        assert alone.best_epoch == run.best_epoch
        for ra, rb in zip(alone.history, run.history):
            assert ra == pytest.approx(rb, abs=1e-6)
    undropped = fit_many_multimodn([baseline(kind, SEEDS[0])], train, val, seeds=SEEDS[:1], lrs=LRS[:1], **kw)[0]
    assert undropped.history[0]["train_loss"] != pytest.approx(together[0].history[0]["train_loss"], abs=1e-6)


def test_stacking_refuses_mixed_kinds_and_architectures():
    d = series()
    train = split(d, slice(0, 36))
    with pytest.raises(ValueError, match="one kind"):
        fit_many_multimodn([model(0), baseline("P-Fusion", 1)], train, seeds=[0, 1])
    wider = baseline("Transformer", 1)
    wider.setting = dataclasses.replace(wider.setting, mlp_units=8)
    with pytest.raises(ValueError, match="one FusionTransformer architecture"):
        fit_many_multimodn([baseline("Transformer", 0), wider], train, seeds=[0, 1])


# ------------------------------------------------------------------ runs on different data (folds)
FOLDS = ((slice(0, 30), slice(30, 40)), (slice(8, 45), slice(0, 8)), (slice(12, 33), slice(33, 48)))


@pytest.mark.parametrize("kind", ["MultiModN", "P-Fusion", "Transformer"])
def test_runs_on_different_folds_match_separate_fits(kind):
    """Each run trains on its own rows (30, 37 and 21 training rows: different numbers of batches and a
    different last batch): the numbers of K separate fits on those rows (no dropout, float64)."""
    d = series(no_labs=0.3)
    trains, vals = [split(d, tr) for tr, _ in FOLDS], [split(d, va) for _, va in FOLDS]
    make = (lambda s: model(s)) if kind == "MultiModN" else (lambda s: baseline(kind, s))
    kw = dict(epochs=3, batch_size=8)
    alone = [make(s) for s in SEEDS]
    results = [fit_multimodn(m, tr, va, seed=s, lr=lr, **kw) for m, tr, va, s, lr in zip(alone, trains, vals, SEEDS, LRS)]
    together = [make(s) for s in SEEDS]
    batched = fit_many_multimodn(together, trains, vals, seeds=SEEDS, lrs=LRS, **kw)
    for a, b, ma, mb in zip(results, batched, alone, together):
        assert a.best_epoch == b.best_epoch
        for ra, rb in zip(a.history, b.history):
            assert ra == pytest.approx(rb, abs=1e-6)
        for (name, p), (_, q) in zip(ma.state_dict().items(), mb.state_dict().items()):
            torch.testing.assert_close(p, q, atol=1e-6, rtol=0, msg=name)


@pytest.mark.parametrize("kind", ["MultiModN", "Transformer"])
def test_dropout_on_different_folds_does_not_depend_on_companions(kind):
    """With dropout, a run on its own rows gives the same numbers alone as beside runs with more rows."""
    d = series(no_labs=0.3)
    trains, vals = [split(d, tr) for tr, _ in FOLDS], [split(d, va) for _, va in FOLDS]
    make = (lambda s: model(s, dropout=0.3)) if kind == "MultiModN" else (lambda s: baseline(kind, s, dropout=0.3))
    kw = dict(epochs=2, batch_size=8)
    together = fit_many_multimodn([make(s) for s in SEEDS], trains, vals, seeds=SEEDS, lrs=LRS, **kw)
    for k, (s, lr) in enumerate(zip(SEEDS, LRS)):
        alone = fit_many_multimodn([make(s)], trains[k], vals[k], seeds=[s], lrs=[lr], **kw)[0]
        for ra, rb in zip(alone.history, together[k].history):
            assert ra == pytest.approx(rb, abs=1e-6)


def test_per_run_data_errors():
    d = series()
    with pytest.raises(ValueError, match="2 data objects for 3 runs"):
        fit_many_multimodn([model(s) for s in SEEDS], [split(d, slice(0, 10))] * 2, seeds=SEEDS)
    with pytest.raises(ValueError, match="no rows for run"):
        fit_many_multimodn([model(0), model(1)], [split(d, slice(0, 10)), split(d, slice(0, 0))], seeds=[0, 1])
