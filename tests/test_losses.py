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


def _hand_batch():
    """Two rows, two classes, logits chosen so that every probability is a simple fraction:
    softmax((0, ln 3)) = (1/4, 3/4), softmax((0, 0)) = (1/2, 1/2)."""
    from mmrepro.core.models.fusion import ModelOutput

    logits = {"fusion": torch.tensor([[0.0, LN3], [0.0, 0.0]]), "a": torch.tensor([[LN3, 0.0], [0.0, 0.0]]),
              "b": torch.tensor([[0.0, 0.0], [0.0, LN3]])}
    mask = {"fusion": torch.tensor([True, True]), "a": torch.tensor([True, False]), "b": torch.tensor([True, True])}
    soft = {"a": torch.tensor([[0.5, 0.5], [NAN, NAN]]), "b": torch.tensor([[0.5, 0.5], [0.5, 0.5]])}
    batch = SimpleNamespace(y=torch.tensor([1, 0]), soft=soft, present=mask)
    return SimpleNamespace(kind="multiclass"), batch, ModelOutput(logits, mask, {})


NAN = float("nan")
KL_HALF_VS_QUARTER = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)  # KL((1/2, 1/2) || (1/4, 3/4))


def test_mind_objective_eq7_by_hand():
    model, batch, out = _hand_batch()
    ce_fusion = (math.log(4 / 3) + LN2) / 2  # row 0: class 1 at 3/4; row 1: class 0 at 1/2
    ce_a = math.log(4)                       # row 0 only (a absent in row 1): class 1 at 1/4
    ce_b = (LN2 + math.log(4)) / 2            # class 1 at 1/2; class 0 at 1/4
    kd_a = KL_HALF_VS_QUARTER                  # row 0 only (the teacher's row 1 is NaN and a absent)
    kd_b = (0.0 + KL_HALF_VS_QUARTER) / 2       # row 0: (1/2, 1/2) against itself
    loss, parts = MIND({"a": [], "b": []}, {"a": 2.0, "b": 3.0})(model, batch, out)
    close(loss, ce_fusion + ce_a + ce_b + 2 * kd_a + 3 * kd_b)
    for name, want in (("fusion", ce_fusion), ("a", ce_a), ("b", ce_b), ("kd:a", kd_a), ("kd:b", kd_b)):
        close(parts[name], want)
    close(MIND({"a": [], "b": []}, {"a": 0.0, "b": 0.0})(model, batch, out)[0], ce_fusion + ce_a + ce_b)  # eq. 2
    close(MIND({"a": [], "b": []}, {"b": 1.0})(model, batch, out)[0], ce_fusion + ce_a + ce_b + kd_b)
    # temperature 2: the student's softmax of z / 2 and the KL times T^2 (the teacher's probabilities as given)
    q = [1 / (1 + math.sqrt(3)), math.sqrt(3) / (1 + math.sqrt(3))]  # softmax((ln 3 / 2, 0)) reversed for a
    kd_a_t2 = 4 * (0.5 * math.log(0.5 / q[1]) + 0.5 * math.log(0.5 / q[0]))
    _, parts = MIND({"a": [], "b": []}, {"a": 1.0}, temperature=2.0)(model, batch, out)
    close(parts["kd:a"], kd_a_t2)
    with pytest.raises(ValueError, match="without teachers"):
        MIND({"a": []}, {"b": 1.0})


def test_mind_needs_the_unimodal_heads():
    net, b, _ = _setup()
    single = MultimodalNet({"a": MLPEncoder(3, (4,)), "b": MLPEncoder(2, (4,))}, "multiclass", 3, multihead=False)
    with pytest.raises(ValueError, match="multihead=True"):
        MIND({"a": [], "b": []}, {"a": 1.0})(single, b, single(b.x, b.present))


def test_ts_by_hand():
    model, batch, out = _hand_batch()
    ce_fusion = (math.log(4 / 3) + LN2) / 2
    kd_a = KL_HALF_VS_QUARTER                       # the fusion head (1/4, 3/4) against a's teacher, row 0 only
    kd_b = (KL_HALF_VS_QUARTER + 0.0) / 2           # row 1: (1/2, 1/2) against (1/2, 1/2)
    loss, parts = TS({"a": [], "b": []}, {"a": 0.3, "b": 0.7})(model, batch, out)
    close(loss, ce_fusion + 0.3 * kd_a + 0.7 * kd_b)
    assert set(parts) == {"fusion", "kd:a", "kd:b"}  # the unimodal heads are not trained by TS
    with pytest.raises(ValueError, match="same modalities"):
        TS({"a": []}, {"a": 0.3, "b": 0.7})


class _LogitsAreInputs(torch.nn.Module):
    """A "model" whose fusion logits are its input a: MKE's noisy pass is then known by hand."""

    kind = "multiclass"

    def forward(self, x, present, lengths=None):
        from mmrepro.core.models.fusion import ModelOutput

        return ModelOutput({"fusion": x["a"]}, {"fusion": present["a"]}, {})


def test_mke_by_hand():
    model = _LogitsAreInputs()
    z = torch.tensor([[0.0, LN3], [0.0, 0.0], [5.0, 1.0]])
    present = {"a": torch.tensor([True, True, False])}
    soft = {"a": torch.tensor([[0.5, 0.5], [0.25, 0.75], [0.5, 0.5]])}
    # the noise draw: +1 on class 0's logit, so the noisy probabilities of row 0 are softmax((s, ln 3))
    batch = SimpleNamespace(x={"a": z}, present=present, lengths={}, y=torch.tensor([1, 0, 0]), soft=soft,
                            noise=lambda v: torch.tensor([[1.0, 0.0]]).expand_as(v))
    out = model(batch.x, present)
    loss, parts = MKE("a", [], gamma=5.0, noise_std=LN3)(model, batch, out)
    kd = (KL_HALF_VS_QUARTER + (0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5))) / 2  # row 2 absent
    # row 0: logits (ln 3, ln 3) -> (1/2, 1/2) against (1/4, 3/4); row 1: (ln 3, 0) -> (3/4, 1/4) against (1/2, 1/2)
    reg = ((0.25**2 + 0.25**2) / 2 + (0.25**2 + 0.25**2) / 2) / 2
    close(parts["kd:a"], kd)
    close(parts["reg"], reg)
    close(loss, kd + 5.0 * reg)
    _, parts = MKE("a", [], gamma=5.0, noise_std=0.0)(model, batch, out)
    assert float(parts["reg"]) == 0.0


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
