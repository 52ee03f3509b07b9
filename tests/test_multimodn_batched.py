"""multimodn.fit_many_multimodn: K MultiModN runs trained as one stacked model give the numbers of K separate
fit calls (per-epoch losses and validation scores, selected epochs, final weights; 1e-5 in float64)."""
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
