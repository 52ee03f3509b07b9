"""MultiModN's losses against hand computations: the per-pair losses of every decoder kind, the mean over
(state, decoder) pairs with a known target and a produced state (static and per-time targets, stacked
runs), the state-change penalty, and one Adam step of the fit on that loss."""
import copy
import math

import pytest
import torch
import torch.nn.functional as F

from mmrepro.papers.multimodn import MultiModN, fit_multimodn, output_loss
from mmrepro.papers.multimodn.heads import TaskSpec, pair_losses
from mmrepro.papers.multimodn.model import MultiModNOutput, state_change

NAN = float("nan")
LN2, LN3 = math.log(2.0), math.log(3.0)


def close(a, b, tol=1e-6):
    a = float(torch.as_tensor(a).detach())
    assert abs(a - b) < tol, (a, b)


def test_pair_losses_by_hand():
    # multiclass: softmax((0, ln 3, 0)) = (1/5, 3/5, 1/5)
    loss, valid = pair_losses(TaskSpec("multiclass", 3), torch.tensor([[0.0, LN3, 0.0]] * 3), torch.tensor([1, 0, -1]))
    assert valid.tolist() == [True, True, False]
    assert loss.tolist() == pytest.approx([math.log(5 / 3), math.log(5), 0.0])
    # binary BCE on a logit: sigmoid(ln 3) = 3/4
    loss, valid = pair_losses(TaskSpec("binary", 1), torch.tensor([[LN3], [LN3], [0.0]]), torch.tensor([1.0, 0.0, NAN]))
    assert valid.tolist() == [True, True, False] and loss.tolist() == pytest.approx([math.log(4 / 3), math.log(4), 0.0])
    # multilabel: BCE averaged over the known labels of the pair; no known label -> invalid, 0
    logits = torch.tensor([[LN3, 0.0, -LN3], [LN3, 0.0, -LN3], [LN3, 0.0, -LN3]])
    target = torch.tensor([[1.0, 0.0, 0.0], [0.0, NAN, NAN], [NAN, NAN, NAN]])
    loss, valid = pair_losses(TaskSpec("multilabel", 3), logits, target)
    assert valid.tolist() == [True, True, False]
    assert loss.tolist() == pytest.approx([(math.log(4 / 3) + LN2 + math.log(4 / 3)) / 3, math.log(4), 0.0])
    # regression: squared error
    loss, valid = pair_losses(TaskSpec("regression", 1), torch.tensor([[1.0], [-2.0]]), torch.tensor([3.0, NAN]))
    assert valid.tolist() == [True, False] and loss.tolist() == [4.0, 0.0]
    # multilabel pairs of (rows, states, labels) with more labels than states: the mean over each pair's labels
    z = torch.zeros(1, 2, 3)
    target = torch.tensor([[[1.0, NAN, NAN], [0.0, 1.0, NAN]]])
    loss, valid = pair_losses(TaskSpec("multilabel", 3), z, target)
    assert valid.tolist() == [[True, True]] and loss[0].tolist() == pytest.approx([LN2, LN2])
    z[0, 1, 1] = LN3
    assert pair_losses(TaskSpec("multilabel", 3), z, target)[0][0].tolist() == pytest.approx(
        [LN2, (LN2 + math.log(4 / 3)) / 2])
    # leading axes (runs, rows, states) are kept
    loss, valid = pair_losses(TaskSpec("binary", 1), torch.zeros(2, 3, 4, 1), torch.ones(2, 3, 4))
    assert loss.shape == valid.shape == (2, 3, 4) and loss.flatten().tolist() == pytest.approx([LN2] * 24)


def hand_output(logits, updated, tasks, step_time=None, n_times=0, states=None):
    """A MultiModNOutput with chosen logits and updated flags (the model is not needed for the loss)."""
    updated = torch.tensor(updated)
    k1 = updated.shape[-1]
    states = torch.zeros(*updated.shape, 2) if states is None else torch.tensor(states)
    step_time = torch.tensor(step_time if step_time is not None else [-1] * k1)
    return MultiModNOutput(states=states, logits={t: torch.tensor(v) for t, v in logits.items()}, updated=updated,
                           step_modality=[None] + ["m"] * (k1 - 1), step_time=step_time, n_times=n_times,
                           tasks={t: TaskSpec(*s) for t, s in tasks.items()})


def test_output_loss_static_tasks_by_hand():
    """2 samples x 3 states (s0, after a, after b); sample 0 lacks b (its last state is a copy)."""
    out = hand_output(
        logits={"yb": [[[0.0], [LN3], [LN3]], [[0.0], [-LN3], [LN3]]],
                "yc": [[[0.0, 0.0], [0.0, LN3], [0.0, LN3]], [[LN3, 0.0], [0.0, 0.0], [0.0, LN3]]]},
        updated=[[True, True, False], [True, True, True]],
        tasks={"yb": ("binary", 1), "yc": ("multiclass", 2)})
    y = {"yb": torch.tensor([1.0, NAN]), "yc": torch.tensor([1, 0])}
    pairs = [LN2, math.log(4 / 3),  # yb, sample 0: s0 (p = 1/2), after a (p = 3/4); its copied state is skipped
             LN2, math.log(4 / 3),  # yc, sample 0: (1/2, 1/2) and (1/4, 3/4) for class 1
             math.log(4 / 3), LN2, math.log(4)]  # yc, sample 1 (yb unknown): class 0 at p = 3/4, 1/2, 1/4
    close(output_loss(out, y), sum(pairs) / len(pairs))
    # every pair counted the same: a task with more known pairs weighs more (a pooled mean, not per task)
    close(output_loss(out, {"yb": torch.tensor([NAN, NAN]), "yc": y["yc"]}), sum(pairs[2:]) / 5)
    # a static multilabel task: BCE averaged over a pair's known labels, every produced state
    ml = hand_output({"yl": [[[0.0, LN3], [LN3, LN3]], [[0.0, 0.0], [0.0, 0.0]]]}, [[True, True], [True, False]],
                     {"yl": ("multilabel", 2)})
    close(output_loss(ml, {"yl": torch.tensor([[1.0, 0.0], [NAN, 1.0]])}),
          ((LN2 + math.log(4)) / 2 + (math.log(4 / 3) + math.log(4)) / 2 + LN2) / 3)
    # the same multilabel task for two stacked runs: one mean per run
    ml2 = hand_output({"yl": [ml.logits["yl"].tolist()] * 2}, [ml.updated.tolist(), [[True, False], [True, False]]],
                      {"yl": ("multilabel", 2)})
    got = output_loss(ml2, {"yl": torch.tensor([[[1.0, 0.0], [NAN, 1.0]]] * 2)})
    assert got.tolist() == pytest.approx([((LN2 + math.log(4)) / 2 + (math.log(4 / 3) + math.log(4)) / 2 + LN2) / 3,
                                          ((LN2 + math.log(4)) / 2 + LN2) / 2])
    none = output_loss(out, {"yb": torch.tensor([NAN, NAN]), "yc": torch.tensor([-1, -1])})
    assert float(none) == 0.0
    with pytest.raises(ValueError, match="y lacks a target for task 'yc'"):
        output_loss(out, {"yb": y["yb"]})


def test_output_loss_time_task_and_stacked_runs_by_hand():
    # one sample; steps: s0 and a static step predict time 0, then t = 0, 1, 1; the fourth step is skipped
    logits = [[[0.0], [1.0], [2.0], [9.0], [5.0]]]
    out = hand_output({"seq": logits}, [[True, True, True, False, True]], {"seq": ("regression", 1)},
                      step_time=[-1, -1, 0, 1, 1], n_times=2)
    y = {"seq": torch.tensor([[1.0, 3.0]])}
    close(output_loss(out, y, ["seq"]), (1 + 0 + 1 + 4) / 4)
    close(output_loss(out, {"seq": torch.tensor([[NAN, 3.0]])}, ["seq"]), 4.0)  # time 0 unknown
    # two runs stacked in front: one mean per run
    stacked = hand_output({"seq": [logits, [[[1.0], [1.0], [1.0], [1.0], [3.0]]]]},
                          [[[True, True, True, False, True]], [[True, False, True, True, True]]],
                          {"seq": ("regression", 1)}, step_time=[-1, -1, 0, 1, 1], n_times=2)
    got = output_loss(stacked, {"seq": torch.tensor([[[1.0, 3.0]], [[1.0, 2.0]]])}, ["seq"])
    assert got.shape == (2,) and got.tolist() == pytest.approx([6 / 4, (0 + 0 + 1 + 1) / 4])


def test_state_change_by_hand():
    states = [[[0.0, 0.0], [2.0, 1.0], [3.0, 1.0], [3.5, 1.0]]]
    out = hand_output({}, [[True, True, False, True]], {}, states=states)
    # steps 1 and 3 updated: mean((2, 1)^2) = 2.5 and mean((0.5, 0)^2) = 0.125; step 2 (not an update) not counted
    close(state_change(out), (2.5 + 0.125) / 2)
    out = hand_output({}, [[True, False, False, True]], {}, states=states)  # one update: its change alone
    close(state_change(out), 0.125)
    out = hand_output({}, [[True, False, False, False]], {}, states=states)
    assert float(state_change(out)) == 0.0
    two = hand_output({}, [[[True, True, False, True]], [[True, False, True, False]]], {}, states=[states, states])
    assert state_change(two).tolist() == pytest.approx([(2.5 + 0.125) / 2, 0.5])


def test_the_model_loss_weighs_error_and_state_change():
    torch.manual_seed(0)
    model = MultiModN({"a": 2, "b": 3}, {"y": "binary"}, state_size=3, hidden=4, dropout=0.0, error_weight=0.7,
                      state_change_weight=0.2).eval()
    x = {"a": torch.randn(4, 2), "b": torch.randn(4, 3)}
    present = {"a": torch.ones(4, dtype=torch.bool), "b": torch.tensor([True, False, True, True])}
    y = {"y": torch.tensor([1.0, 0.0, 0.0, 1.0])}
    with torch.no_grad():
        out = model(x, present)
        want = _loss_from_states(model, out, present, y)
    close(model.loss(x, present, None, y), want, 1e-5)


def _loss_from_states(model, out, present, y):
    """0.7 x the mean BCE of the decoder on every produced state + 0.2 x the mean squared change of each update."""
    # by hand from the states: decoders on every state, BCE per produced state, and the squared changes
    bce, n, change, m = 0.0, 0, 0.0, 0
    for i in range(4):
        for k in range(3):
            if k < 2 or bool(present["b"][i]):  # s0, after a (always present), after b where present
                z = float(model.decoders["y"](out.states[i, k])[0])
                p = 1 / (1 + math.exp(-z))
                bce += -math.log(p) if float(y["y"][i]) == 1 else -math.log(1 - p)
                n += 1
                if k > 0:
                    change += float(((out.states[i, k] - out.states[i, k - 1]) ** 2).mean())
                    m += 1
    return 0.7 * bce / n + 0.2 * change / m


def test_one_fit_epoch_is_one_adam_step_on_the_defined_loss():
    """One batch, no dropout, no clipping: the epoch's loss is the model's loss before the step, and every
    parameter moves by Adam's first step, -lr g / (|g| + eps)."""
    torch.manual_seed(0)
    model = MultiModN({"a": 2, "b": 3}, {"y": "binary", "r": "regression"}, state_size=3, hidden=4, dropout=0.0)
    g = torch.Generator().manual_seed(1)
    x = {"a": torch.randn(5, 2, generator=g), "b": torch.randn(5, 3, generator=g)}
    present = {"a": torch.ones(5, dtype=torch.bool), "b": torch.tensor([True, False, True, True, False])}
    x["b"][~present["b"]] = NAN
    y = {"y": torch.tensor([1.0, 0.0, NAN, 1.0, 0.0]), "r": torch.randn(5, generator=g)}
    before = copy.deepcopy(model)
    # the loss by its definition: every sample alone, its produced states, BCE and squared error per pair
    total, count = 0.0, 0
    for i in range(5):
        mods = [m for m in ("a", "b") if present[m][i]]
        out = before({m: x[m][i:i + 1] for m in mods}, order=mods)
        for k in range(len(mods) + 1):
            if not math.isnan(float(y["y"][i])):
                total = total + F.binary_cross_entropy_with_logits(out.logits["y"][0, k, 0], y["y"][i])
                count += 1
            total = total + (out.logits["r"][0, k, 0] - y["r"][i]) ** 2
            count += 1
    loss = total / count
    grads = torch.autograd.grad(loss, list(before.parameters()))
    data = type("D", (), {"x": x, "present": present, "y": y})()
    r = fit_multimodn(model, data, epochs=1, batch_size=5, lr=0.01, grad_clip=None, seed=3)
    assert r.history[0]["train_loss"] == pytest.approx(float(loss.detach()), rel=1e-6)
    for (name, p0), p1, gr in zip(before.named_parameters(), model.parameters(), grads):
        torch.testing.assert_close(p1.detach(), p0.detach() - 0.01 * gr / (gr.abs() + 1e-8), rtol=1e-5, atol=1e-6,
                                   msg=name)
