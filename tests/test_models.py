"""Encoders, fusion networks, heads, parameter counts (MIND Table A1 / App. C), teachers and UME."""
import math

import pytest
import torch

from mmrepro.core.models import (
    RESNET_STAGES,
    LSTMEncoder,
    MLPEncoder,
    MultimodalNet,
    ResNetEncoder,
    count_parameters,
    probabilities,
)
from mmrepro.core.models.ensemble import soft_targets, ume_proba


@pytest.mark.parametrize("depth,stages", [(3, 1), (6, 2), (10, 4), (18, 4), (34, 4)])
def test_resnet_depths_and_width(depth, stages):
    enc = ResNetEncoder(depth, in_channels=1, width=4)
    assert enc.out_dim == 4 * 2 ** (stages - 1)
    z = enc(torch.randn(3, 16, 16))  # (N, H, W) gets a channel axis
    assert z.shape == (3, enc.out_dim)
    assert [len(s) for s in enc.stages] == list(RESNET_STAGES[depth])


def test_compact_stem_reduces_4x_with_the_small_stems_parameters():
    small, compact = ResNetEncoder(3, 1, 8, stem="small"), ResNetEncoder(3, 1, 8, stem="compact")
    assert sum(p.numel() for p in small.parameters()) == sum(p.numel() for p in compact.parameters())
    assert compact.stem(torch.randn(2, 1, 28, 28)).shape == (2, 8, 7, 7)
    assert compact(torch.randn(2, 28, 28)).shape == (2, 8)
    with pytest.raises(ValueError, match="'small', 'imagenet' or 'compact'"):
        ResNetEncoder(3, stem="tiny")


def test_resnet_rejects_bad_input():
    with pytest.raises(ValueError, match="depth 11"):
        ResNetEncoder(11)
    with pytest.raises(ValueError, match="expects"):
        ResNetEncoder(3, in_channels=3, width=2)(torch.randn(2, 1, 8, 8))


def rel(a, b):
    return abs(a - b) / b


def test_parameter_counts_match_mind():
    # MIND App. C: two ResNet-3 encoders, 10 classes ~151 k; ResNet-6 (audio 1 ch, video 3 ch), 6 classes ~612 k
    r3 = MultimodalNet({"i": ResNetEncoder(3), "a": ResNetEncoder(3)}, "multiclass", 10, "sum")
    assert rel(count_parameters(r3)["total"], 151e3) < 0.01
    r6 = MultimodalNet({"a": ResNetEncoder(6), "v": ResNetEncoder(6, in_channels=3)}, "multiclass", 6, "sum")
    assert rel(count_parameters(r6)["total"], 612e3) < 0.01
    # teachers: ResNet-10 ~4.9 M, ResNet-18 ~11 M
    assert rel(count_parameters(ResNetEncoder(10))["total"], 4.9e6) < 0.01
    assert rel(count_parameters(ResNetEncoder(18, in_channels=3, stem="imagenet"))["total"], 11.2e6) < 0.01
    # MIND Table A1: MedFuse with ResNet-34 + 2-layer LSTM 23.9 M; ResNet-10 + 2-layer LSTM 7.5 M
    for depth, target in ((34, 23.9e6), (10, 7.5e6)):
        net = MultimodalNet({"cxr": ResNetEncoder(depth, 3, stem="imagenet"), "ehr": LSTMEncoder(76, 256, 2)},
                            "multilabel", 25, "lstm", multihead=False, token_dim=256, fusion_hidden=512)
        counts = count_parameters(net)
        assert rel(counts["total"], target) < 0.01
        assert counts["total"] == sum(p.numel() for p in net.parameters())


def test_lstm_encoder_ignores_padding():
    torch.manual_seed(0)
    enc = LSTMEncoder(3, 5, num_layers=2)
    x = torch.randn(2, 6, 3)
    lengths = torch.tensor([6, 2])
    padded = x.clone()
    padded[1, 2:] = 99.0
    z = enc(padded, lengths)
    torch.testing.assert_close(z[1], enc(x[1:2, :2], torch.tensor([2]))[0])
    torch.testing.assert_close(z[0], enc(x[0:1], torch.tensor([6]))[0])
    with pytest.raises(ValueError, match=r"num_layers=5 is out of range: it must be an integer in \[1, 4\]"):
        LSTMEncoder(3, 5, num_layers=5)


def _inputs(n=4):
    torch.manual_seed(1)
    x = {"img": torch.randn(n, 1, 8, 8), "seq": torch.randn(n, 5, 3)}
    present = {"img": torch.tensor([True, False, True, True]), "seq": torch.tensor([True, True, False, True])}
    x["img"][~present["img"]] = float("nan")
    x["seq"][~present["seq"]] = float("nan")
    lengths = {"seq": torch.tensor([5, 3, 0, 2])}
    return x, present, lengths


def _net(fusion="lstm", kind="multilabel", n_out=3):
    torch.manual_seed(0)
    return MultimodalNet({"img": ResNetEncoder(3, width=4), "seq": LSTMEncoder(3, 4, 1)}, kind, n_out, fusion,
                         token_dim=4, fusion_hidden=6)


@pytest.mark.parametrize("fusion", ["concat", "sum", "lstm"])
def test_absent_rows_never_propagate_nan(fusion):
    net = _net(fusion)
    x, present, lengths = _inputs()
    out = net(x, present, lengths)
    assert set(out.logits) == {"fusion", "img", "seq"}
    for z in out.logits.values():
        assert z.shape == (4, 3) and torch.isfinite(z).all()
    assert (out.embeddings["img"][1] == 0).all() and (out.embeddings["seq"][2] == 0).all()
    sum(z.sum() for z in out.logits.values()).backward()
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)


def test_lstm_fusion_drops_absent_token():
    net = _net("lstm").eval()
    x, present, lengths = _inputs()
    out = net(x, present, lengths)
    # row 1 has only "seq": the fusion LSTM sees the single seq token
    tok = net.proj["seq"](out.embeddings["seq"][1:2]).unsqueeze(1)
    _, (h, _) = net.fusion_lstm(tok)
    torch.testing.assert_close(out.logits["fusion"][1], net.heads["fusion"](h[-1])[0])
    # the content of an absent modality does not matter
    x2 = {k: v.clone() for k, v in x.items()}
    x2["img"][1] = 5.0
    torch.testing.assert_close(net(x2, present, lengths).logits["fusion"], out.logits["fusion"])


@pytest.mark.parametrize("fusion", ["concat", "sum"])
def test_fusion_contributions_add_up(fusion):
    net = _net(fusion, "multiclass", 4).eval()
    x, _, lengths = _inputs()
    x = {k: torch.nan_to_num(v) for k, v in x.items()}
    out = net(x, None, lengths)
    contrib = net.fusion_contributions(out.embeddings)
    torch.testing.assert_close(contrib["img"] + contrib["seq"], out.logits["fusion"])
    assert _net("lstm").fusion_contributions(out.embeddings) is None


def test_predict_proba_routes_by_available_modalities():
    net = _net("concat", "multiclass", 4).eval()
    x, present, lengths = _inputs()
    present["img"][2] = False  # row 2 now has nothing
    out = net(x, present, lengths)
    p = net.predict_proba(x, present, lengths)
    sm = lambda z: torch.softmax(z, 1)  # noqa: E731
    torch.testing.assert_close(p[0], sm(out.logits["fusion"])[0])
    torch.testing.assert_close(p[1], sm(out.logits["seq"])[1])
    assert torch.isnan(p[2]).all()
    p_img = net.predict_proba(x, present, lengths, modalities=["img"])
    torch.testing.assert_close(p_img[3], sm(out.logits["img"])[3])
    single = MultimodalNet({"img": ResNetEncoder(3, width=4), "seq": LSTMEncoder(3, 4, 1)}, "multiclass", 4,
                           multihead=False)
    with pytest.raises(ValueError, match="multihead=True"):
        single.predict_proba(x, present, lengths)
    with pytest.raises(ValueError, match="unknown modalities"):
        net.predict_proba(x, present, lengths, modalities=["txt"])


def test_heads_and_kinds():
    z = torch.tensor([[0.0, math.log(3.0)]])
    torch.testing.assert_close(probabilities(z, "multiclass"), torch.tensor([[0.25, 0.75]]))
    torch.testing.assert_close(probabilities(z[:, 1:], "binary"), torch.tensor([0.75]))
    with pytest.raises(ValueError, match="n_outputs=1"):
        MultimodalNet({"a": MLPEncoder(3)}, "binary", 2)
    with pytest.raises(ValueError, match="unknown task kind"):
        MultimodalNet({"a": MLPEncoder(3)}, "ordinal", 2)
    with pytest.raises(ValueError, match="token_dim"):
        MultimodalNet({"a": MLPEncoder(3, (4,)), "b": MLPEncoder(3, (5,))}, "binary", 1, "sum")
    net = MultimodalNet({"a": MLPEncoder(3, (4,)), "b": MLPEncoder(3, (5,))}, "regression", 1, "concat")
    groups = net.parameter_groups()
    assert set(groups) == {"a", "b", "fusion"}
    assert sum(p.numel() for ps in groups.values() for p in ps) == count_parameters(net)["total"]


def test_soft_targets_and_ume():
    torch.manual_seed(0)
    x = {"a": torch.randn(5, 3), "b": torch.randn(5, 2)}
    present = {"a": torch.tensor([1, 1, 0, 1, 1]).bool(), "b": torch.ones(5, dtype=torch.bool)}
    t1 = MultimodalNet({"a": MLPEncoder(3, (4,))}, "multiclass", 3, multihead=False)
    t2 = MultimodalNet({"a": MLPEncoder(3, (4,))}, "multiclass", 3, multihead=False)
    soft = soft_targets([t1, t2], "a", x, present, {}, "multiclass", temperature=2.0, batch_size=2)
    expect = (torch.softmax(t1(x).logits["fusion"] / 2, 1) + torch.softmax(t2(x).logits["fusion"] / 2, 1)) / 2
    torch.testing.assert_close(soft[present["a"]], expect[present["a"]].detach())
    assert torch.isnan(soft[2]).all()
    tb = MultimodalNet({"b": MLPEncoder(2, (4,))}, "multiclass", 3, multihead=False)
    p = ume_proba({"a": t1, "b": tb}, x, present)
    pa, pb = torch.softmax(t1(x).logits["fusion"], 1), torch.softmax(tb(x).logits["fusion"], 1)
    torch.testing.assert_close(p[0], ((pa + pb) / 2)[0].detach())
    torch.testing.assert_close(p[2], pb[2].detach())


@pytest.mark.parametrize("build, error, match", [
    (lambda: MLPEncoder(16, 8), TypeError, r"hidden must be a sequence of layer widths, e\.g\. \(8,\) for one layer"),
    (lambda: MLPEncoder(16, (8, 0)), ValueError, r"hidden\[1\]=0 is out of range: it must be an integer >= 1"),
    (lambda: MLPEncoder(0, (8,)), ValueError, r"in_features=0 is out of range"),
    (lambda: MLPEncoder(16, (8,), dropout=1.0), ValueError, r"dropout=1.0 is out of range: .* in \[0, 1\)"),
    (lambda: LSTMEncoder(3.0, 4), TypeError, r"input_size must be an integer >= 1, got 3.0 \(float\)"),
    (lambda: ResNetEncoder(10, width=0), ValueError, r"width=0 is out of range"),
])
def test_encoder_arguments_are_named(build, error, match):
    with pytest.raises(error, match=match):
        build()


def test_nan_inside_a_present_row_is_an_error_and_absent_rows_stay_ignored():
    torch.manual_seed(0)
    model = MultimodalNet({"a": MLPEncoder(3, (4,)), "s": LSTMEncoder(2, 4, 1)}, "binary", 1, "concat")
    x = {"a": torch.randn(5, 3), "s": torch.randn(5, 4, 2)}
    lengths = {"s": torch.tensor([4, 2, 1, 3, 4])}
    x["s"][1, 2:] = float("nan")  # beyond row 1's length: padding, never read
    assert torch.isfinite(model(x, None, lengths).logits["fusion"]).all()
    x["a"][2, 0] = float("inf")
    with pytest.raises(ValueError, match=r"x\['a'\] has NaN or inf in 1 row\(s\) marked present \(first: row 2\)"):
        model(x, None, lengths)
    present = {"a": torch.tensor([True, True, False, True, True]), "s": torch.ones(5, dtype=torch.bool)}
    assert torch.isfinite(model(x, present, lengths).logits["fusion"]).all()
    x["s"][3, 1, 1] = float("nan")  # within row 3's length
    with pytest.raises(ValueError, match=r"x\['s'\] has NaN or inf in 1 row\(s\) marked present \(first: row 3\)"):
        model(x, present, lengths)


def test_probes_measure_encoders_without_gradients():
    """Probes read detached embeddings: their loss trains the probes only, never an encoder (MILES chapter)."""
    torch.manual_seed(0)
    net = MultimodalNet({m: MLPEncoder(3, (4,)) for m in "ab"}, "multiclass", 3, multihead=False, probes=True)
    out = net({m: torch.randn(5, 3) for m in "ab"})
    assert set(out.logits) == {"fusion", "probe:a", "probe:b"} and net.head_names == ["fusion"]
    assert net.probe_names == ["probe:a", "probe:b"] and net.unimodal_head("a") == "probe:a"
    sum(out.logits[h].sum() for h in net.probe_names).backward()
    assert all(p.grad is None for p in net.encoders.parameters())
    assert all(p.grad is not None for p in net.probes.parameters())
    assert set(net.parameter_groups()) == {"a", "b", "fusion", "probes"}
    assert MultimodalNet({m: MLPEncoder(3, (4,)) for m in "ab"}, "multiclass", 3).unimodal_head("b") == "b"
    with pytest.raises(ValueError, match="probes=True"):
        MultimodalNet({m: MLPEncoder(3, (4,)) for m in "ab"}, "multiclass", 3, multihead=False).unimodal_head("a")


def test_resnet_computes_channels_last_with_the_values_of_the_usual_order():
    """ResNetEncoder keeps its weights and activations channels-last (CPU convolutions, batch norm and
    max-pool are faster there, and mixed orders slower still); the values are those of the same network
    in the usual (NCHW) order, and stacked runs keep each run's weights channels-last."""
    import copy

    from mmrepro.core.models.stacked import StackedResNetEncoder

    torch.manual_seed(0)
    enc = ResNetEncoder(3, 1, 8, stem="compact").eval()
    conv = enc.stages[0][0].conv1.weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    plain = copy.deepcopy(enc).to(memory_format=torch.contiguous_format)
    x = torch.randn(5, 1, 28, 28)
    torch.testing.assert_close(enc(x), plain.stages(plain.stem(x)).mean(dim=(2, 3)))
    stacked = StackedResNetEncoder([enc, copy.deepcopy(enc)], batched=False)
    for name, w in (("stages.0.0.conv1.weight", conv), ("stem.0.weight", enc.stem[0].weight)):
        slices = stacked.get_parameter(name).unbind(0)
        assert all(v.stride() == w.stride() and torch.equal(v, w) for v in slices), name


