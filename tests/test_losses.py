"""Losses against hand-computed values (MIND eqs. 1-4, 7; MILES eq. 3; Table A4 baselines)."""
import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import log_loss

from mmrepro.core.losses import Supervised, kd_loss, multihead_loss, supervised_loss
from mmrepro.core.models import MLPEncoder, MultimodalNet, ensemble_probs
from mmrepro.papers.mind.objectives import MIND, MKE, TS

LN2, LN3 = math.log(2.0), math.log(3.0)


def close(a, b, tol=1e-6):
    a, b = (float(torch.as_tensor(v).detach()) for v in (a, b))
    assert abs(a - b) < tol, (a, b)


def test_supervised_binary_hand_and_sklearn():
    z = torch.tensor([[0.0], [LN3], [5.0]])
    y = torch.tensor([1.0, 0.0, float("nan")])  # unknown target ignored
    # -log(1/2) and -log(1/4): mean 1.5 ln 2
    close(supervised_loss(z, y, "binary"), 1.5 * LN2)
    close(supervised_loss(z, y, "binary"), log_loss([1, 0], [0.5, 0.75]))
    close(supervised_loss(z, y, "binary", mask=torch.tensor([True, False, True])), LN2)


def test_supervised_multiclass_multilabel_regression():
    z = torch.tensor([[0.0, 0.0, 0.0], [0.0, LN3, 0.0]])
    close(supervised_loss(z, torch.tensor([2, -1]), "multiclass"), LN3)
    close(supervised_loss(z, torch.tensor([2, 1]), "multiclass"), (LN3 + math.log(5 / 3)) / 2)
    zl = torch.tensor([[0.0, LN3]])
    close(supervised_loss(zl, torch.tensor([[1.0, 0.0]]), "multilabel"), (LN2 + math.log(4)) / 2)
    close(supervised_loss(zl, torch.tensor([[1.0, float("nan")]]), "multilabel"), LN2)
    close(supervised_loss(torch.tensor([[1.0], [3.0]]), torch.tensor([0.0, 1.0]), "regression"), 2.5)
    empty = supervised_loss(z, torch.tensor([-1, -1]), "multiclass")
    assert float(empty) == 0.0


def test_kd_multiclass_kl_with_temperature():
    z = torch.tensor([[0.0, LN3]])  # student probs (1/4, 3/4)
    t = torch.tensor([[0.5, 0.5]])
    close(kd_loss(z, t, "multiclass"), 0.5 * math.log(4 / 3))
    # T = 2: student softmax(z / 2), times T^2 (Hinton); cross-check with torch's KL
    ref = F.kl_div(F.log_softmax(z / 2, 1), t, reduction="batchmean") * 4
    close(kd_loss(z, t, "multiclass", temperature=2.0), ref)


def test_kd_binary_multilabel_bce_eq3():
    close(kd_loss(torch.tensor([[0.0]]), torch.tensor([[0.25]]), "binary"), LN2)
    z = torch.zeros(2, 3)
    t = torch.full((2, 3), 0.25)
    close(kd_loss(z, t, "multilabel"), 3 * LN2)  # eq. 3: sum over labels, mean over samples
    close(kd_loss(z, t, "multilabel", label_reduction="mean"), LN2)
    # rows with NaN teacher targets (absent teacher modality) are skipped
    t[1] = float("nan")
    close(kd_loss(z, t, "multilabel"), 3 * LN2)


@pytest.mark.parametrize("kind", ["binary", "multiclass", "multilabel"])
def test_kd_with_one_hot_teacher_is_supervised(kind):
    torch.manual_seed(0)
    if kind == "multiclass":
        z, y = torch.randn(6, 4), torch.randint(4, (6,))
        t = F.one_hot(y, 4).float()
    elif kind == "binary":
        z, y = torch.randn(6, 1), torch.randint(2, (6,)).float()
        t = y.view(-1, 1)
    else:
        z, y = torch.randn(6, 3), torch.randint(2, (6, 3)).float()
        t = y
    sup = supervised_loss(z, y, kind)
    close(kd_loss(z, t, kind, label_reduction="mean"), sup, 1e-5)
    if kind == "multilabel":
        close(kd_loss(z, t, kind), 3 * sup, 1e-5)


def test_kd_errors():
    with pytest.raises(ValueError, match="temperature"):
        kd_loss(torch.zeros(1, 2), torch.ones(1, 2) / 2, "multiclass", temperature=0)
    with pytest.raises(ValueError, match="classification"):
        kd_loss(torch.zeros(1, 1), torch.zeros(1, 1), "regression")
    with pytest.raises(ValueError, match="label_reduction"):
        kd_loss(torch.zeros(1, 1), torch.zeros(1, 1), "binary", label_reduction="max")
    with pytest.raises(ValueError, match="do not match"):
        kd_loss(torch.zeros(1, 3), torch.ones(1, 2) / 2, "multiclass")


def test_ensemble_probs_eq4():
    out = ensemble_probs([torch.tensor([[0.0]]), torch.tensor([[LN3]])], "binary")
    close(out[0, 0], 0.625)
    mc = ensemble_probs([torch.tensor([[0.0, 0.0]]), torch.tensor([[0.0, 2 * LN3]])], "multiclass", temperature=2.0)
    torch.testing.assert_close(mc, torch.tensor([[0.375, 0.625]]))
    with pytest.raises(ValueError, match="at least one"):
        ensemble_probs([], "binary")


def _setup(kind="multiclass"):
    torch.manual_seed(0)
    net = MultimodalNet({"a": MLPEncoder(3, (4,)), "b": MLPEncoder(2, (4,))}, kind, 3)
    x = {"a": torch.randn(5, 3), "b": torch.randn(5, 2)}
    present = {"a": torch.tensor([1, 1, 1, 0, 1]).bool(), "b": torch.ones(5, dtype=torch.bool)}
    y = torch.randint(3, (5,))
    soft = {m: torch.softmax(torch.randn(5, 3), 1) for m in ("a", "b")}
    soft["a"][3] = float("nan")
    batch = SimpleNamespace(x=x, present=present, lengths={}, y=y, soft=soft, noise=torch.randn_like)
    return net, batch, net(x, present)


def test_multihead_loss_is_eq2():
    net, b, out = _setup()
    total, parts = multihead_loss(out, b.y, "multiclass")
    close(parts["a"], F.cross_entropy(out.logits["a"][b.present["a"]], b.y[b.present["a"]]))
    close(total, parts["fusion"] + parts["a"] + parts["b"])
    weighted, _ = multihead_loss(out, b.y, "multiclass", {"fusion": 0.5, "a": 2.0, "b": 0.0})
    close(weighted, 0.5 * parts["fusion"] + 2 * parts["a"])
    close(Supervised(["fusion"])(net, b, out)[0], parts["fusion"])


def test_mind_objective_eq7():
    net, b, out = _setup()
    t = {"a": [], "b": []}
    eq2, parts = multihead_loss(out, b.y, "multiclass")
    close(MIND(t, {"a": 0.0, "b": 0.0})(net, b, out)[0], eq2)
    loss, p = MIND(t, {"a": 2.0, "b": 3.0})(net, b, out)
    kd_a = kd_loss(out.logits["a"], b.soft["a"], "multiclass", mask=b.present["a"])
    kd_b = kd_loss(out.logits["b"], b.soft["b"], "multiclass")
    close(loss, eq2 + 2 * kd_a + 3 * kd_b, 1e-5)
    close(p["kd:a"], kd_a)
    with pytest.raises(ValueError, match="without teachers"):
        MIND({"a": []}, {"b": 1.0})
    single = MultimodalNet({"a": MLPEncoder(3, (4,)), "b": MLPEncoder(2, (4,))}, "multiclass", 3, multihead=False)
    with pytest.raises(ValueError, match="multihead=True"):
        MIND(t, {"a": 1.0})(single, b, single(b.x, b.present))


def test_ts_and_mke():
    net, b, out = _setup()
    sup = supervised_loss(out.logits["fusion"], b.y, "multiclass")
    kd_a = kd_loss(out.logits["fusion"], b.soft["a"], "multiclass", mask=b.present["a"])
    kd_b = kd_loss(out.logits["fusion"], b.soft["b"], "multiclass")
    close(TS({"a": [], "b": []}, {"a": 0.3, "b": 0.7})(net, b, out)[0], sup + 0.3 * kd_a + 0.7 * kd_b, 1e-5)
    with pytest.raises(ValueError, match="same modalities"):
        TS({"a": []}, {"a": 0.3, "b": 0.7})
    net.eval()
    out = net(b.x, b.present)
    loss, parts = MKE("a", [], gamma=5.0, noise_std=0.0)(net, b, out)
    close(parts["reg"], 0.0)
    close(loss, kd_loss(out.logits["fusion"], b.soft["a"], "multiclass", mask=b.present["a"]))
    loss, parts = MKE("a", [], gamma=5.0, noise_std=1.0)(net, b, out)
    assert float(parts["reg"].detach()) > 0
    close(loss, parts["kd:a"] + 5.0 * parts["reg"], 1e-5)


@pytest.mark.parametrize("call, error, match", [
    (lambda: supervised_loss(torch.zeros(4, 1), torch.tensor([0, 1, 1, 0]), "binary"), TypeError,
     r"y must be a float tensor for a binary loss \(NaN = unknown\), got torch.int64: use y.float\(\)"),
    (lambda: supervised_loss(torch.zeros(4, 3), torch.tensor([0.0, 1.0, 2.0, 0.0]), "multiclass"), TypeError,
     r"y must be int64 class indices of shape \(N,\) for a multiclass loss"),
    (lambda: supervised_loss(torch.zeros(4, 1), torch.zeros(3), "binary"), ValueError,
     r"logits of shape \(4, 1\) do not match 3 targets"),
    (lambda: supervised_loss(torch.zeros(4, 2), torch.zeros(4), "multilabel"), ValueError,
     r"y has shape \(4,\); a multilabel loss on logits \(4, 2\) needs \(4, 2\)"),
    (lambda: supervised_loss(torch.zeros(4, 1), torch.zeros(4), "ordinal"), ValueError,
     r"kind='ordinal' is not a task kind"),
    (lambda: MIND({"a": []}, {"a": -1.0}), ValueError, r"omega\['a'\]=-1.0 is out of range: .* >= 0"),
    (lambda: MIND({"a": []}, {"a": 1.0}, temperature=0), ValueError, r"temperature=0 is out of range"),
    (lambda: TS({"a": []}, {"a": float("nan")}), ValueError, r"weights\['a'\]=nan is out of range"),
    (lambda: MKE("a", [], gamma=-0.5), ValueError, r"gamma=-0.5 is out of range"),
    (lambda: MKE("a", [], noise_std="0.1"), TypeError, r"noise_std must be a number"),
    (lambda: MIND({"a": ["not a model"]}, {"a": 1.0}), TypeError, r"teachers\['a'\] must be a model or a list of models"),
])
def test_losses_name_bad_arguments(call, error, match):
    with pytest.raises(error, match=match):
        call()
