"""MultiModN model, P-Fusion, interpretability and the fit helper on tiny synthetic tensors."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import balanced_accuracy_score, mean_squared_error, roc_auc_score

from mmrepro.core.data import MultimodalDataset, Task
from mmrepro.papers.multimodn import (
    FusionTransformer,
    MultiModN,
    PFusion,
    Standardizer,
    cumulative_probabilities,
    evaluation_pairs,
    fit_multimodn,
    importance_scores,
    output_loss,
    selection_score,
)
from mmrepro.papers.multimodn.heads import TaskSpec, pair_losses
from mmrepro.papers.multimodn.train import epoch_batches

NAN = float("nan")


def static_batch(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = {"a": torch.randn(n, 3, generator=g), "b": torch.randn(n, 2, generator=g), "c": torch.randn(n, 4, generator=g)}
    present = {"a": torch.ones(n, dtype=torch.bool), "b": torch.tensor([True, False] * (n // 2)),
               "c": torch.tensor([False, True, True] * (n // 3))}
    for m in x:
        x[m][~present[m]] = NAN
    y = {"yb": torch.tensor([0.0, 1.0] * (n // 2)), "yr": torch.randn(n, generator=g)}
    return x, present, y


def static_model(seed=0, **kw):
    torch.manual_seed(seed)
    model = MultiModN({"a": 3, "b": 2, "c": 4}, {"yb": "binary", "yr": "regression"}, state_size=5, hidden=8, **kw)
    return model.eval()


def rows(d, i):
    return {k: v[i:i + 1] for k, v in d.items()}


# ----------------------------------------------------------------------------- skip semantics
def test_missing_modality_leaves_state_unchanged():
    x, present, _ = static_batch()
    out = static_model()(x, present)
    assert out.step_modality == [None, "a", "b", "c"]
    expected = torch.stack([torch.ones(6, dtype=torch.bool), present["a"], present["b"], present["c"]], 1)
    assert torch.equal(out.updated, expected)
    for k in range(1, 4):
        same = torch.isclose(out.states[:, k], out.states[:, k - 1]).all(1)
        assert torch.equal(same[~out.updated[:, k]], torch.ones(int((~out.updated[:, k]).sum()), dtype=torch.bool))
        assert not same[out.updated[:, k]].any()


def test_per_sample_skipping_in_mixed_batch_equals_running_each_sample_alone():
    x, present, _ = static_batch()
    model = static_model()
    out = model(x, present)
    for i in range(6):
        mine = [m for m in model.modalities if present[m][i]]
        alone = model({m: x[m][i:i + 1] for m in mine}, order=mine)
        for t in model.tasks:
            torch.testing.assert_close(out.final(t)[i], alone.final(t)[0])


def test_nan_inputs_never_reach_outputs_or_gradients():
    x, present, y = static_batch()
    model = static_model().train()
    out = model(x, present)
    assert all(torch.isfinite(v).all() for v in out.logits.values()) and torch.isfinite(out.states).all()
    output_loss(out, y).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    model.eval()  # whatever sits in absent rows is ignored
    junk = {m: torch.where(present[m][:, None], v, torch.full_like(v, 1e6)) for m, v in x.items()}
    for t in model.tasks:
        torch.testing.assert_close(model(junk, present).logits[t], model(x, present).logits[t])


@pytest.mark.parametrize("bad", [NAN, float("inf")])
def test_nan_or_inf_inside_a_present_row_is_an_error_not_a_skip(bad):
    x, present, y = static_batch()
    x["a"][4, 1] = bad
    model = static_model()
    with pytest.raises(ValueError, match=r"x\['a'\] has NaN or inf in 1 row\(s\) marked present \(first: row 4\); "
                       r"mark a missing modality with present\['a'\]=False"):
        model(x, present)
    with pytest.raises(ValueError, match=r"x\['a'\] has NaN or inf"):
        fit_multimodn(model, type("D", (), {"x": x, "present": present, "y": y})(), epochs=1)
    x, present, lengths, _ = series_batch()
    x["u"][1, 2, 0] = bad  # within sample 1's length 3
    with pytest.raises(ValueError, match=r"x\['u'\] has NaN or inf in 1 row\(s\) marked present \(first: row 1\)"):
        series_model()(x, present, lengths)
    x["u"][1, 2, 0] = 0.0
    x["u"][1, 3, 0] = bad  # beyond its length: padding, ignored
    assert torch.isfinite(series_model()(x, present, lengths).states).all()


def test_missing_modality_contributes_no_loss():
    x, present, y = static_batch()
    model = static_model()
    absent = dict(present, b=torch.zeros(6, dtype=torch.bool))
    loss = model.loss(x, absent, None, y)
    torch.testing.assert_close(loss, model.loss(x, present, None, y, order=["a", "c"]))
    model.zero_grad()
    loss.backward()
    assert all(p.grad is None or not p.grad.any() for p in model.encoders["b"].parameters())
    assert any(p.grad.abs().sum() > 0 for p in model.encoders["a"].parameters())


def test_loss_is_mean_over_updated_state_decoder_pairs():
    x, present, y = static_batch()
    y["yr"][2] = NAN  # unknown target: its pairs do not count either
    model = static_model()
    total, count = 0.0, 0
    for i in range(6):
        mine = [m for m in model.modalities if present[m][i]]
        out = model({m: x[m][i:i + 1] for m in mine}, order=mine)
        for t, fn in (("yb", F.binary_cross_entropy_with_logits), ("yr", F.mse_loss)):
            if math.isnan(float(y[t][i])):
                continue
            for k in range(len(mine) + 1):
                total += fn(out.logits[t][0, k, 0], y[t][i])
                count += 1
    assert count == 2 * (6 + int(sum(present[m].sum() for m in present))) - (1 + int(present["b"][2]) + int(present["c"][2]) + 1)
    torch.testing.assert_close(model.loss(x, present, None, y), total / count)


def test_all_targets_unknown_gives_zero_loss_with_graph():
    x, present, y = static_batch()
    y = {t: torch.full_like(v, NAN) for t, v in y.items()}
    loss = static_model().loss(x, present, None, y)
    assert loss.item() == 0.0 and loss.requires_grad


# ----------------------------------------------------------------------------- order and subsets
def test_order_and_subset_plumbing_matches_manual_composition():
    x, _, _ = static_batch()
    x = {m: v.nan_to_num(0.5) for m, v in x.items()}  # every row observed
    model = static_model()
    out = model(x, order=["c", "a"])
    assert out.step_modality == [None, "c", "a"] and out.states.shape == (6, 3, 5)
    s0 = model.state0.expand(6, -1)
    s1 = model.encoders["c"](torch.cat([x["c"], s0], -1))
    s2 = model.encoders["a"](torch.cat([x["a"], s1], -1))
    torch.testing.assert_close(out.states[:, 2], s2)
    torch.testing.assert_close(out.final("yb"), model.decoders["yb"](s2))
    prior = model({"a": x["a"]}, order=[])
    assert prior.states.shape == (6, 1, 5)
    torch.testing.assert_close(prior.final("yr"), model.decoders["yr"](s0))
    only_b = model.predict({"b": x["b"]}, order=["b"])
    assert set(only_b) == {"yb", "yr"} and only_b["yb"].shape == (6, 1)


def test_shuffle_order_draws_permutations_per_batch(monkeypatch):
    x, present, y = static_batch()
    data = type("D", (), {"x": x, "present": present, "y": y})()
    model = static_model()
    seen = []
    original = model.loss

    def spy(*args, order=None):
        seen.append(tuple(order))
        return original(*args, order=order)

    monkeypatch.setattr(model, "loss", spy)
    fit_multimodn(model, data, epochs=8, batch_size=3, shuffle_order=True)
    assert len(seen) == 16 and all(sorted(o) == ["a", "b", "c"] for o in seen)
    assert len(set(seen)) > 1
    with pytest.raises(ValueError, match="shuffle_order applies to MultiModN only"):
        fit_multimodn(PFusion({"a": 3}, {"yb": "binary"}), data, shuffle_order=True)


# ----------------------------------------------------------------------------- time series
def series_batch():
    g = torch.Generator().manual_seed(1)
    n, T = 4, 5
    x = {"s": torch.randn(n, 2, generator=g), "u": torch.randn(n, T, 3, generator=g), "v": torch.randn(n, T, 2, generator=g)}
    lengths = {"u": torch.tensor([5, 3, 0, 2]), "v": torch.tensor([5, 5, 1, 4])}
    present = {"s": torch.tensor([True, True, False, True]), "u": torch.tensor([True, True, True, False]),
               "v": torch.ones(n, dtype=torch.bool)}
    x["s"][~present["s"]] = NAN
    x["u"][~present["u"]] = NAN
    for m in ("u", "v"):
        beyond = torch.arange(T)[None, :] >= lengths[m][:, None]
        x[m][beyond] = NAN
    y = {"stat": torch.tensor([1.0, 0.0, 1.0, NAN]), "seq": torch.randn(n, T, generator=g)}
    return x, present, lengths, y


def series_model():
    torch.manual_seed(0)
    return MultiModN({"s": 2, "u": 3, "v": 2}, {"stat": "binary", "seq": "regression"}, sequence_modalities=["u", "v"],
                     time_tasks=["seq"], state_size=4, hidden=6).eval()


def test_time_series_steps_respect_lengths_and_presence():
    x, present, lengths, y = series_batch()
    model = series_model()
    out = model(x, present, lengths)
    assert out.step_modality == [None, "s"] + ["u", "v"] * 5
    assert out.step_time.tolist() == [-1, -1] + [t for t in range(5) for _ in range(2)]
    u_steps = torch.tensor([m == "u" for m in out.step_modality])
    times = out.step_time[u_steps]
    want_u = present["u"][:, None] & (times[None, :] < lengths["u"][:, None])
    assert torch.equal(out.updated[:, u_steps], want_u)
    assert torch.isfinite(out.states).all()
    assert out.at_times("seq").shape == (4, 5, 1)
    # beyond every length the state is carried: predictions stay constant
    at = out.at_times("seq")
    torch.testing.assert_close(at[2, 1:], at[2, :1].expand(4, 1))
    # sample 1 alone, truncated to its own lengths, gives the same trajectory up to t = 2
    alone = model({"s": x["s"][1:2], "u": x["u"][1:2, :3], "v": x["v"][1:2, :3]})
    torch.testing.assert_close(alone.at_times("seq")[0], at[1, :3])


def test_time_points_after_every_samples_last_step_are_not_run():
    x, present, lengths, _ = series_batch()
    model = series_model()
    short = {m: v.clamp(max=2) for m, v in lengths.items()}
    out = model(x, present, short)
    assert out.step_modality == [None, "s", "u", "v", "u", "v"] and out.n_times == 5
    full = model(x, present, lengths)
    at = out.at_times("seq")
    assert at.shape == (4, 5, 1)
    torch.testing.assert_close(at[:, 2:], at[:, 1:2].expand(4, 3, 1))
    torch.testing.assert_close(at[:, :2], full.at_times("seq")[:, :2])


def test_time_task_loss_pairs_states_with_their_time_point():
    x, present, lengths, y = series_batch()
    model = series_model()
    out = model(x, present, lengths)
    tt = out.step_time.clamp(min=0)
    total, count = 0.0, 0
    for i in range(4):
        for k in range(out.updated.shape[1]):
            if not out.updated[i, k]:
                continue
            total += (out.logits["seq"][i, k, 0] - y["seq"][i, tt[k]]) ** 2
            count += 1
            if not math.isnan(float(y["stat"][i])):
                total += F.binary_cross_entropy_with_logits(out.logits["stat"][i, k, 0], y["stat"][i])
                count += 1
    torch.testing.assert_close(output_loss(out, y, ["seq"]), total / count)
    pred = model.predict(x, present, lengths)
    assert pred["seq"].shape == (4, 5, 1) and pred["stat"].shape == (4, 1)



def autograd_encoder_loop(model, x, present, lengths):
    """The encoder loop written with plain modules and autograd (the definition of the model)."""
    n = x["s"].shape[0]
    state = model.state0.expand(n, -1)
    states = [state]
    plan = [("s", x["s"], present["s"])]
    plan += [(m, x[m][:, t], present[m] & (t < lengths[m])) for t in range(5) for m in ("u", "v")]
    for m, inp, mask in plan:
        ok = mask & torch.isfinite(inp).all(-1)
        new = model.encoders[m](torch.cat([torch.nan_to_num(inp) * ok[:, None], state], -1))
        state = torch.where(ok[:, None], new, state)
        states.append(state)
    return torch.stack(states, 1)


@pytest.mark.parametrize("training", [False, True])
def test_encoder_loop_states_and_gradients_match_its_definition(training):
    x, present, lengths, _ = series_batch()
    x = {m: v.double() for m, v in x.items()}
    model = series_model().double().train(training)
    weights = torch.randn(4, 12, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    grads = []
    for run in (lambda: model(x, present, lengths).states, lambda: autograd_encoder_loop(model, x, present, lengths)):
        torch.manual_seed(7)  # the same dropout noise on both sides
        model.zero_grad()
        states = run()
        (states * weights).sum().backward()
        grads.append((states.detach(), {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}))
    (s_fast, g_fast), (s_ref, g_ref) = grads
    torch.testing.assert_close(s_fast, s_ref, rtol=1e-12, atol=1e-12)
    assert set(g_fast) == set(g_ref) and len(g_ref) == 1 + 3 * 2 * 3  # state0 + 3 encoders x 3 Linear x (W, b)
    for k in g_ref:
        torch.testing.assert_close(g_fast[k], g_ref[k], rtol=1e-10, atol=1e-12, msg=k)
    assert any(g.abs().sum() > 0 for g in g_ref.values())


def test_epoch_batches_random_and_length_bucketed():
    gen = torch.Generator().manual_seed(0)
    plain = epoch_batches(10, 4, gen)
    assert [len(b) for b in plain] == [4, 4, 2] and sorted(torch.cat(plain).tolist()) == list(range(10))
    steps = torch.tensor([0, 5, 1, 5, 0, 3, 1, 3, 0, 5, 1, 3])
    orders, firsts = set(), set()
    for _ in range(20):
        chunks = epoch_batches(12, 3, gen, steps)
        assert sorted(torch.cat(chunks).tolist()) == list(range(12))
        assert all(len(set(steps[c].tolist())) == 1 for c in chunks)  # 3 samples per length: pure buckets
        orders.add(tuple(int(steps[c[0]]) for c in chunks))
        firsts.add(tuple(chunks[0].tolist()))
    assert len(orders) > 1 and len(firsts) > 1  # batch order and tie order are both shuffled


def test_fit_bucket_by_length_is_an_explicit_deterministic_option():
    x, present, lengths, y = series_batch()
    data = type("D", (), {"x": x, "present": present, "lengths": lengths, "y": y})()
    runs = []
    for bucket in (True, True, False):
        model = series_model()
        runs.append([h["train_loss"] for h in fit_multimodn(model, data, epochs=3, batch_size=2, seed=1,
                                                   bucket_by_length=bucket).history])
    assert runs[0] == runs[1] and runs[0] != runs[2]
    xs, ps, ys = static_batch()
    with pytest.raises(ValueError, match="bucket_by_length needs sequence data"):
        fit_multimodn(static_model(), type("D", (), {"x": xs, "present": ps, "y": ys})(), bucket_by_length=True)

# ----------------------------------------------------------------------------- decoders per kind
def test_pair_losses_match_torch_for_each_kind():
    logits = torch.randn(5, 3)
    cls = torch.tensor([0, 2, -1, 1, 2])
    loss, valid = pair_losses(TaskSpec("multiclass", 3), logits, cls)
    assert valid.tolist() == [True, True, False, True, True]
    torch.testing.assert_close(loss[valid].mean(), F.cross_entropy(logits[valid], cls[valid]))
    multi = torch.tensor([[1.0, 0.0, NAN], [NAN, NAN, NAN], [0.0, 1.0, 1.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    loss, valid = pair_losses(TaskSpec("multilabel", 3), logits, multi)
    assert valid.tolist() == [True, False, True, True, True]
    expected = F.binary_cross_entropy_with_logits(logits[0, :2], multi[0, :2])
    torch.testing.assert_close(loss[0], expected)
    bin_t = torch.tensor([1.0, NAN, 0.0, 1.0, 0.0])
    loss, valid = pair_losses(TaskSpec("binary", 1), logits[:, :1], bin_t)
    torch.testing.assert_close(loss[valid].mean(), F.binary_cross_entropy_with_logits(logits[valid, 0], bin_t[valid]))
    loss, valid = pair_losses(TaskSpec("regression", 1), logits[:, :1], bin_t)
    torch.testing.assert_close(loss[valid].mean(), F.mse_loss(logits[valid, 0], bin_t[valid]))


def test_decoder_shapes_and_probabilities_per_task_kind():
    torch.manual_seed(0)
    tasks = {"b": Task("b", "binary", 1), "c": ("multiclass", 4), "l": ("multilabel", 3), "r": "regression"}
    model = MultiModN({"a": 3}, tasks, state_size=4, hidden=5)
    out = model({"a": torch.randn(7, 3)})
    shapes = {t: tuple(out.logits[t].shape) for t in tasks}
    assert shapes == {"b": (7, 2, 1), "c": (7, 2, 4), "l": (7, 2, 3), "r": (7, 2, 1)}
    torch.testing.assert_close(out.probabilities("c").sum(-1), torch.ones(7, 2))
    torch.testing.assert_close(out.probabilities("b"), torch.sigmoid(out.logits["b"]))
    torch.testing.assert_close(out.probabilities("r"), out.logits["r"])
    y = {"b": torch.ones(7), "c": torch.tensor([0, 1, 2, 3, -1, 0, 1]), "l": torch.zeros(7, 3), "r": torch.zeros(7)}
    assert torch.isfinite(output_loss(out, y))


# ----------------------------------------------------------------------------- P-Fusion
def test_pfusion_pads_and_encodes_missing_inputs():
    x, present, lengths, y = series_batch()
    model = PFusion({"s": 2, "u": 3, "v": 2}, {"stat": "binary"}, sequence_steps={"u": 5, "v": 5}, pad_value=-7.0,
                    embedding_size=4, hidden=6).eval()
    padded = model.padded_inputs(x, present, lengths)
    assert {m: tuple(v.shape) for m, v in padded.items()} == {"s": (4, 2), "u": (4, 15), "v": (4, 10)}
    assert torch.all(padded["s"][2] == -7.0) and torch.all(padded["u"][3] == -7.0)
    assert torch.all(padded["u"][1, 9:] == -7.0) and torch.isfinite(padded["u"][1, :9]).all()
    assert not (padded["u"][1, :9] == -7.0).any()
    logits = model(x, present, lengths)
    assert logits.shape == (4, 1) and torch.isfinite(logits).all()
    # missingness is encoded, not skipped: hiding a present modality changes the output
    hidden = dict(present, v=torch.tensor([False, True, True, True]))
    assert not torch.allclose(model(x, hidden, lengths)[0], logits[0])
    torch.testing.assert_close(model(x, hidden, lengths)[1:], logits[1:])
    assert model.encoders["u"][0].p == 0.2 and model.decoder[-1].out_features == 1


def test_pfusion_early_fusion_variant_and_loss():
    x, present, _ = static_batch()
    model = PFusion({"a": 3, "b": 2, "c": 4}, {"yb": "binary"}, fusion="early", hidden=5, dropout=0.3).eval()
    assert len(model.encoders) == 0 and model.decoder[0].in_features == 9  # no input dropout (reference HAIM)
    assert not any(isinstance(layer, torch.nn.Dropout) for layer in model.decoder)
    inputs = torch.cat([x[m].nan_to_num(0.0) for m in ("a", "b", "c")], -1)
    torch.testing.assert_close(model(x, present), model.decoder(inputs))
    y = {"yb": torch.tensor([0.0, 1.0, NAN, 1.0, 0.0, 1.0])}
    keep = ~torch.isnan(y["yb"])
    expected = F.binary_cross_entropy_with_logits(model(x, present)[keep, 0], y["yb"][keep])
    torch.testing.assert_close(model.loss(x, present, None, y), expected)


def test_pfusion_and_multimodn_share_layer_widths():
    mmn = MultiModN({"a": 3, "b": 2}, {"t": "binary"}, state_size=6, hidden=7, dropout=0.1)
    pf = PFusion({"a": 3, "b": 2}, {"t": "binary"}, embedding_size=6, hidden=7, dropout=0.1)
    widths = lambda seq: [(l.in_features, l.out_features) for l in seq if isinstance(l, torch.nn.Linear)]  # noqa: E731
    assert widths(pf.encoders["a"]) == [(3, 7), (7, 7), (7, 6)]
    assert widths(mmn.encoders["a"]) == [(3 + 6, 7), (7, 7), (7, 6)]
    assert widths(pf.decoder) == [(12, 7), (7, 7), (7, 1)] and widths(mmn.decoders["t"]) == [(6, 7), (7, 7), (7, 1)]


# ----------------------------------------------------------------------------- interpretability
def test_importance_scores_are_single_encoder_minus_prior():
    x, present, _ = static_batch()
    model = static_model().train()
    scores = importance_scores(model, x, present)
    assert model.training  # mode restored
    model.eval()
    prior = torch.sigmoid(model.decoders["yb"](model.state0))
    for j, m in enumerate(model.modalities):
        s1 = model.encoders[m](torch.cat([x[m].nan_to_num(), model.state0.expand(6, -1)], -1))
        want = torch.sigmoid(model.decoders["yb"](s1)) - prior
        got = scores["yb"][:, j]
        assert torch.isnan(got[~present[m]]).all()
        torch.testing.assert_close(got[present[m]], want[present[m]])
    assert scores["yr"].shape == (6, 3, 1)


def test_cumulative_probabilities_follow_the_sequence():
    x, present, lengths, _ = series_batch()
    model = series_model()
    traj = cumulative_probabilities(model, x, present, lengths, order=["v", "s"])
    assert traj.step_labels[:4] == ["prior", "s", "v@0", "v@1"] and len(traj.step_labels) == 7
    out = model(x, present, lengths, order=["v", "s"])
    torch.testing.assert_close(traj.probabilities["stat"], torch.sigmoid(out.logits["stat"]))
    with pytest.raises(ValueError, match="needs a MultiModN"):
        cumulative_probabilities(PFusion({"a": 1}, {"t": "binary"}), {"a": torch.zeros(1, 1)})


# ----------------------------------------------------------------------------- features
def test_standardizer_uses_observed_training_values_only():
    x, present, lengths, _ = series_batch()
    st = Standardizer().fit(x, present, lengths)
    u = x["u"].numpy().reshape(-1, 3)
    u = u[~np.isnan(u).any(1)]
    np.testing.assert_allclose(st.mean["u"].numpy(), u.mean(0), rtol=1e-5)
    np.testing.assert_allclose(st.std["u"].numpy(), u.std(0), rtol=1e-5)
    z = st.transform(x)
    assert torch.equal(torch.isnan(z["u"]), torch.isnan(x["u"]))
    with pytest.raises(ValueError, match="not fitted on modalities"):
        st.transform({"w": torch.zeros(2, 2)})


# ----------------------------------------------------------------------------- fit
def easy_dataset(n=120, seed=0):
    g = torch.Generator().manual_seed(seed)
    a, b = torch.randn(n, 2, generator=g), torch.randn(n, 2, generator=g)
    present = {"a": torch.ones(n, dtype=torch.bool), "b": torch.rand(n, generator=g) > 0.3}
    label = ((a[:, 0] + b[:, 0]) > 0).float()
    b[~present["b"]] = NAN
    idx = torch.randperm(n, generator=g)
    return MultimodalDataset(
        name="easy", x={"a": a, "b": b}, lengths={}, present=present,
        y={"t": label, "r": a[:, 1].clone()},
        tasks={"t": Task("t", "binary", 1), "r": Task("r", "regression", 1)},
        splits={"train": idx[:80], "val": idx[80:100], "test": idx[100:]})


def test_fit_learns_selects_and_is_deterministic():
    ds = easy_dataset()
    results, states = [], []
    for _ in range(2):
        torch.manual_seed(3)
        model = MultiModN({"a": 2, "b": 2}, ds.tasks, state_size=6, hidden=8, dropout=0.1)
        results.append(fit_multimodn(model, ds.split("train"), ds.split("val"), epochs=40, batch_size=16, lr=1e-2, seed=3))
        states.append(model.state_dict())
    assert results[0] == results[1]
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    r = results[0]
    assert r.best_score == max(h["val_score"] for h in r.history) == r.history[r.best_epoch - 1]["val_score"]
    assert r.history[-1]["train_loss"] < r.history[0]["train_loss"]
    pairs = evaluation_pairs(model, ds.split("test"))
    y_true, y_prob = pairs["t"]
    assert roc_auc_score(y_true, y_prob) > 0.8
    score = selection_score(pairs, {"t": "binary", "r": "regression"})
    want = (roc_auc_score(y_true, y_prob) + balanced_accuracy_score(y_true, y_prob >= 0.5)
            - mean_squared_error(*pairs["r"]))
    assert score == pytest.approx(want)


def test_fit_pfusion_and_evaluation_pairs_shapes():
    ds = easy_dataset()
    torch.manual_seed(0)
    model = PFusion({"a": 2, "b": 2}, {"t": ds.tasks["t"]}, embedding_size=4, hidden=8)
    r = fit_multimodn(model, ds.split("train"), ds.split("val"), epochs=3, select_tasks=["t"])
    assert 1 <= r.best_epoch <= 3
    pairs = evaluation_pairs(model, ds.split("test"))
    assert set(pairs) == {"t"} and pairs["t"][0].shape == pairs["t"][1].shape == (20,)
    with pytest.raises(ValueError, match="order is only meaningful for MultiModN"):
        evaluation_pairs(model, ds.split("test"), order=["a"])


# ----------------------------------------------------------------------------- bad input
def test_bad_inputs_raise_clear_errors():
    x, present, y = static_batch()
    model = static_model()
    with pytest.raises(ValueError, match="does not know"):
        model(dict(x, z=torch.zeros(6, 1)))
    with pytest.raises(ValueError, match=r"expected \(N, F\) with F=3"):
        model(dict(x, a=torch.zeros(6, 4)))
    with pytest.raises(ValueError, match="lacks modalities"):
        model({"a": x["a"]})
    with pytest.raises(ValueError, match="must be a bool tensor"):
        model(x, dict(present, a=torch.ones(6)))
    with pytest.raises(ValueError, match="rows but other modalities"):
        model(dict(x, b=torch.zeros(5, 2)))
    with pytest.raises(ValueError, match="distinct modalities"):
        model(x, present, order=["a", "a"])
    with pytest.raises(ValueError, match="distinct modalities"):
        model(x, present, order=["q"])
    with pytest.raises(ValueError, match="lacks a target"):
        model.loss(x, present, None, {"yb": y["yb"]})
    with pytest.raises(ValueError, match="only 0, 1 or NaN"):
        model.loss(x, present, None, dict(y, yb=torch.full((6,), 2.0)))
    with pytest.raises(ValueError, match="has shape"):
        model.loss(x, present, None, dict(y, yr=torch.zeros(6, 2)))
    with pytest.raises(ValueError, match="must be a float tensor"):
        model.loss(x, present, None, dict(y, yr=torch.zeros(6, dtype=torch.int64)))
    xs, ps, ls, ys = series_batch()
    smodel = series_model()
    with pytest.raises(ValueError, match=r"lengths\['u'\] must lie in"):
        smodel(xs, ps, dict(ls, u=torch.tensor([6, 1, 1, 1])))
    with pytest.raises(ValueError, match="share the time axis"):
        smodel(dict(xs, v=torch.zeros(4, 3, 2)), ps, ls)
    multiclass = MultiModN({"a": 3}, {"c": ("multiclass", 3)})
    with pytest.raises(ValueError, match="labels outside"):
        multiclass.loss({"a": x["a"]}, None, None, {"c": torch.full((6,), 3)})
    with pytest.raises(ValueError, match="must be int64 class indices"):
        multiclass.loss({"a": x["a"]}, None, None, {"c": torch.zeros(6)})
    with pytest.raises(ValueError, match="kind 'ordinal' is not one of"):
        MultiModN({"a": 3}, {"t": "ordinal"})
    with pytest.raises(ValueError, match="n_outputs=2 is invalid"):
        MultiModN({"a": 3}, {"t": ("binary", 2)})
    with pytest.raises(ValueError, match="time_tasks need at least one sequence modality"):
        MultiModN({"a": 3}, {"t": "binary"}, time_tasks=["t"])
    with pytest.raises(ValueError, match="without '.'"):
        MultiModN({"a.b": 3}, {"t": "binary"})
    with pytest.raises(ValueError, match="P-Fusion is single-task"):
        PFusion({"a": 3}, {"t": "binary", "u": "binary"})
    with pytest.raises(ValueError, match="fusion='late' is not one of"):
        PFusion({"a": 3}, {"t": "binary"}, fusion="late")
    with pytest.raises(ValueError, match="select_tasks"):
        fit_multimodn(model, type("D", (), {"x": x, "present": present, "y": y})(), select_tasks=["nope"])
    with pytest.raises(ValueError, match="data must have x, present, y"):
        fit_multimodn(model, object())


# ----------------------------------------------------------------------------- state-change penalty
def test_state_change_penalty_adds_the_mean_squared_change_of_updated_states():
    x, present, y = static_batch()
    plain = static_model()
    penalised = static_model(error_weight=0.7, state_change_weight=0.003)
    with torch.no_grad():
        out = penalised(x, present)
    change, count = 0.0, 0
    for i in range(6):
        for k in range(1, out.states.shape[1]):
            if out.updated[i, k]:
                change += float(((out.states[i, k] - out.states[i, k - 1]) ** 2).mean())
                count += 1
    want = 0.7 * plain.loss(x, present, None, y) + 0.003 * change / count
    torch.testing.assert_close(penalised.loss(x, present, None, y), want)
    with pytest.raises(ValueError, match="state_change_weight"):
        static_model(state_change_weight=-1.0)
    with pytest.raises(ValueError, match="error_weight must be > 0"):
        static_model(error_weight=0)


# ----------------------------------------------------------------------------- E.4 transformer
def keras_parameter_count(width, length, setting, n_outputs):
    """Trainable parameters of the Keras time-series transformer with these sizes (hand-counted)."""
    hd = setting.heads * setting.head_size
    block = 4 * width + (3 * (width * hd + hd)) + (hd * width + width) + (width * setting.ff_dim + setting.ff_dim) \
        + (setting.ff_dim * width + width)
    return setting.blocks * block + length * setting.mlp_units + setting.mlp_units + setting.mlp_units * n_outputs + n_outputs


def test_transformer_tokens_pad_missing_inputs_and_count_parameters():
    from mmrepro.papers.multimodn.transformer import EDU_WEATHER, MIMIC

    x, present, y = static_batch()
    tf = FusionTransformer({"a": 3, "b": 2, "c": 4}, {"yb": "binary", "yr": "regression"}, setting=MIMIC).eval()
    tokens = tf.tokens(x, present)
    assert tokens.shape == (6, 9, 1)  # static data: one token per feature
    torch.testing.assert_close(tokens[:, 3:5, 0], torch.where(present["b"][:, None], x["b"], torch.zeros(())))
    assert set(tf.predict(x, present)) == {"yb", "yr"}
    assert sum(p.numel() for p in tf.parameters()) == keras_parameter_count(1, 9, MIMIC, 2)
    # EDU-sized time series (10 weekly steps, 25 features): the paper reports 427,421 parameters
    edu = FusionTransformer({"w": 25}, {"pass": "binary"}, sequence_steps={"w": 10}, setting=EDU_WEATHER)
    assert sum(p.numel() for p in edu.parameters()) == keras_parameter_count(25, 10, EDU_WEATHER, 1)
    assert abs(sum(p.numel() for p in edu.parameters()) - 427_421) < 0.01 * 427_421


def test_transformer_time_series_tokens_repeat_static_inputs_and_respect_lengths():
    g = torch.Generator().manual_seed(0)
    x = {"s": torch.randn(4, 2, generator=g), "q": torch.randn(4, 5, 3, generator=g)}
    lengths = {"q": torch.tensor([5, 3, 0, 5])}
    present = {"s": torch.tensor([True, True, True, False]), "q": torch.tensor([True, True, False, True])}
    tf = FusionTransformer({"s": 2, "q": 3}, {"t": "regression"}, sequence_steps={"q": 5}).eval()
    tokens = tf.tokens(x, present, lengths)
    assert tokens.shape == (4, 5, 5)
    torch.testing.assert_close(tokens[0, :, :2], x["s"][0].expand(5, 2))
    assert bool((tokens[3, :, :2] == 0).all()) and bool((tokens[2, :, 2:] == 0).all())
    assert bool((tokens[1, 3:, 2:] == 0).all()) and torch.equal(tokens[1, :3, 2:], x["q"][1, :3])
    y = {"t": torch.tensor([0.5, NAN, -1.0, 2.0])}
    known = ~torch.isnan(y["t"])
    want = ((tf(x, present, lengths)["t"][known, 0] - y["t"][known]) ** 2).mean()
    torch.testing.assert_close(tf.loss(x, present, lengths, y), want)
    with pytest.raises(ValueError, match="one shared T|share one positive T"):
        FusionTransformer({"q": 3, "r": 1}, {"t": "binary"}, sequence_steps={"q": 5, "r": 4})


def test_transformer_attention_is_softmax_attention_with_its_own_head_size():
    """Each head: softmax(q k^T / sqrt(head_size)) v, heads of head_size each (not width / heads)."""
    from mmrepro.papers.multimodn.transformer import _Attention

    torch.manual_seed(0)
    att = _Attention(width=5, heads=3, head_size=4, dropout=0.25).eval()
    x = torch.randn(2, 6, 5)
    q, k, v = att.qkv(x).view(2, 6, 3, 3, 4).unbind(2)  # (N, L, heads, head_size) each
    weights = torch.softmax(torch.einsum("nlhd,nmhd->nhlm", q, k) / 2.0, dim=-1)
    want = att.out(torch.einsum("nhlm,nmhd->nlhd", weights, v).reshape(2, 6, 12))
    torch.testing.assert_close(att(x), want)
    att.train()  # dropout on the attention weights: training outputs differ from eval ones
    assert not torch.allclose(att(x), want)


def test_fit_trains_the_transformer_and_selects_on_validation():
    g = torch.Generator().manual_seed(1)
    n = 200
    x = {"a": torch.randn(n, 3, generator=g), "b": torch.randn(n, 2, generator=g)}
    y = {"t": (x["a"][:, 0] + x["b"][:, 1] > 0).float()}
    data = MultimodalDataset(name="toy", x=x, lengths={}, present={m: torch.ones(n, dtype=torch.bool) for m in x},
                             y=y, tasks={"t": Task("t", "binary", 1)},
                             splits={"train": torch.arange(150), "val": torch.arange(150, 200)})
    torch.manual_seed(0)
    tf = FusionTransformer({"a": 3, "b": 2}, {"t": "binary"})
    result = fit_multimodn(tf, data.split("train"), data.split("val"), epochs=15, batch_size=32, seed=0)
    truth, prob = evaluation_pairs(tf, data.split("val"))["t"]
    assert roc_auc_score(truth, prob) > 0.85 and result.best_epoch >= 1
