"""Stacked ResNets (mmrepro.core.models.stacked_resnet): every way of computing K runs' convolutions
gives each run's own convolution, forward and backward, and a stacked encoder gives each run's
encoder (outputs, gradients, BatchNorm statistics), whichever form its convolutions take."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmrepro.core.models import ResNetEncoder
from mmrepro.core.models import stacked_resnet as R
from mmrepro.core.models.encoders import RESNET_STAGES
from mmrepro.core.models.fusion import encode_present
from mmrepro.core.models.stacked import StackedResNetEncoder, batched_pays
from mmrepro.core.optim import RunOptimizer

K = 3
CL = torch.channels_last


def _runs_input(n: int, c: int, h: int, w: int, requires_grad: bool = True) -> torch.Tensor:
    """(N, K*C, H, W) channels-last, as the stacked layers hold activations."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, K * c, h, w, generator=g, dtype=torch.float64).contiguous(memory_format=CL)
    return x.requires_grad_(requires_grad)


# (in, out, kernel, stride, padding, H, W): ResNet layers on small maps, where "auto" picks the dense
# form (2 x 2 and 1 x 1 maps) and where it does not (4 x 4, non-square, 1 x 1 kernels)
CONVS = [(4, 6, 3, 1, 1, 2, 2), (4, 6, 3, 2, 1, 2, 2), (5, 3, 3, 1, 1, 1, 1), (4, 6, 3, 2, 1, 4, 4),
         (4, 6, 1, 2, 0, 4, 4), (2, 3, 3, 1, 1, 3, 2), (1, 4, 7, 2, 3, 8, 8), (3, 2, 2, 1, 0, 3, 3)]


@pytest.mark.parametrize("form", ["grouped", "dense", "auto"])
@pytest.mark.parametrize("c_in,c_out,kernel,stride,padding,h,w", CONVS)
def test_conv_forms_are_each_runs_convolution(form, c_in, c_out, kernel, stride, padding, h, w):
    """Outputs and the gradients of inputs, weights and biases equal K separate F.conv2d calls
    (float64), in every form, the dense one included where most of its matrix is zeros."""
    conv = nn.Conv2d(c_in, c_out, kernel, stride, padding)
    x = _runs_input(2, c_in, h, w)
    g = torch.Generator().manual_seed(2)
    weight = torch.randn(K, c_out, c_in, kernel, kernel, generator=g, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(K, c_out, generator=g, dtype=torch.float64, requires_grad=True)
    out = R.conv_runs(x, conv, weight, bias, form)
    assert out.is_contiguous(memory_format=CL)
    upstream = torch.randn(out.shape, generator=g, dtype=torch.float64)
    grads = torch.autograd.grad(out, (x, weight, bias), upstream)
    xs = x.detach().split(c_in, dim=1)
    for k in range(K):
        xk = xs[k].clone().requires_grad_()
        wk, bk = weight.detach()[k].clone().requires_grad_(), bias.detach()[k].clone().requires_grad_()
        ref = F.conv2d(xk, wk, bk, stride, padding)
        torch.testing.assert_close(out[:, k * c_out:(k + 1) * c_out], ref, atol=1e-12, rtol=0)
        gx, gw, gb = torch.autograd.grad(ref, (xk, wk, bk), upstream[:, k * c_out:(k + 1) * c_out])
        torch.testing.assert_close(grads[0][:, k * c_in:(k + 1) * c_in], gx, atol=1e-12, rtol=0)
        torch.testing.assert_close(grads[1][k], gw, atol=1e-12, rtol=0)
        torch.testing.assert_close(grads[2][k], gb, atol=1e-12, rtol=0)


def test_conv_form_is_dense_exactly_where_every_output_sees_every_input():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    c3, c3s2, c1s2 = nn.Conv2d(4, 4, 3, 1, 1), nn.Conv2d(4, 8, 3, 2, 1), nn.Conv2d(4, 8, 1, 2, 0)
    assert R.conv_form(c3, 2, 2, cpu) == "dense" and R.conv_form(c3, 1, 1, cpu) == "dense"
    assert R.conv_form(c3s2, 2, 2, cpu) == "dense"  # the last stage of ResNet-10 on 28 x 28 images
    assert R.conv_form(c3, 4, 4, cpu) == "grouped" and R.conv_form(c3s2, 4, 4, cpu) == "grouped"
    assert R.conv_form(c1s2, 2, 2, cpu) == "grouped"  # a 1 x 1 kernel sees one input pixel of four
    assert R.conv_form(c3, 2, 2, cuda) == "grouped"  # not measured on CUDA
    grouped = nn.Conv2d(4, 4, 3, 1, 1, groups=2)
    assert R.conv_form(grouped, 1, 1, cpu) == "grouped"
    with pytest.raises(ValueError, match="plain convolutions"):
        R.conv_form(grouped, 1, 1, cpu, "dense")
    with pytest.raises(ValueError, match="conv form must be one of"):
        R.conv_form(c3, 2, 2, cpu, "fast")


def test_tap_matrix_marks_the_tap_linking_each_pair_of_pixels():
    taps = R.tap_matrix(2, 2, (3, 3), (2, 2), (1, 1), torch.float64, torch.device("cpu"))
    # one output pixel, four input pixels at taps (1, 1), (1, 2), (2, 1), (2, 2) of the 3 x 3 kernel
    assert taps.shape == (4, 9) and taps.sum(1).tolist() == [1.0] * 4
    assert taps.argmax(1).tolist() == [4, 5, 7, 8]
    outside = R.tap_matrix(4, 4, (1, 1), (2, 2), (0, 0), torch.float64, torch.device("cpu"))
    assert int(outside.sum()) == 4  # a 1 x 1 kernel with stride 2 reads 4 of the 16 input pixels


def _encoders(depth: int = 10, width: int = 2, stem: str = "imagenet") -> list[ResNetEncoder]:
    out = []
    for k in range(K):
        torch.manual_seed(k)
        enc = ResNetEncoder(depth, 1, width, stem=stem).double()
        for mod in enc.modules():  # BatchNorm affine parameters away from 1 and 0, so that they matter
            if isinstance(mod, nn.BatchNorm2d):
                nn.init.uniform_(mod.weight, 0.5, 1.5)
                nn.init.uniform_(mod.bias, -0.5, 0.5)
        out.append(enc)
    return out


@pytest.mark.parametrize("form", ["grouped", "dense", "auto"])
@pytest.mark.parametrize("missing", [False, True], ids=["all rows", "missing rows"])
def test_stacked_encoder_is_each_runs_encoder(form, missing):
    """Training-mode outputs, parameter gradients and BatchNorm running statistics of a stacked
    ResNet-10 (16 x 16 images: maps of 4 x 4 down to 1 x 1, so "auto" mixes both forms) equal each
    run's own encoder on its own rows (its present rows only, where some are missing)."""
    encs = _encoders()
    st = StackedResNetEncoder(encs, True).train()
    st.conv_form = form
    g = torch.Generator().manual_seed(3)
    x = torch.randn(K, 6, 1, 16, 16, generator=g, dtype=torch.float64)
    present = torch.ones(K, 6, dtype=torch.bool)
    if missing:
        present[0, 1] = present[2, 4] = present[2, 5] = False
        x[~present] = float("nan")
    z = st(x, present)
    upstream = torch.randn(z.shape, generator=g, dtype=torch.float64)
    grads = dict(zip([n for n, _ in st.named_parameters()],
                     torch.autograd.grad(z, list(st.parameters()), upstream)))
    for k, enc in enumerate(encs):
        enc.train()
        ref = encode_present(enc, enc.out_dim, x[k], present[k], None)
        torch.testing.assert_close(z[k], ref, atol=1e-10, rtol=0)
        ref_grads = torch.autograd.grad(ref, list(enc.parameters()), upstream[k])
        for (name, _), gk in zip(enc.named_parameters(), ref_grads):
            torch.testing.assert_close(grads[name][k], gk, atol=1e-10, rtol=0, msg=name)
        for name, buf in enc.named_buffers():
            torch.testing.assert_close(st.get_buffer(name)[k], buf, atol=1e-12, rtol=0, msg=name)


def test_stacked_layers_keep_activations_channels_last(monkeypatch):
    """Every convolution reads channels-last activations (an NCHW input makes oneDNN compute the
    whole network in NCHW, with a copy per layer: 1.6x slower at K = 16, bench/README.md)."""
    seen = []
    conv_runs = R.conv_runs

    def spy(h, *args, **kw):
        seen.append(h.is_contiguous(memory_format=CL))
        return conv_runs(h, *args, **kw)

    monkeypatch.setattr(R, "conv_runs", spy)
    st = StackedResNetEncoder(_encoders(), True).train()
    st(torch.randn(K, 4, 1, 16, 16, dtype=torch.float64), torch.ones(K, 4, dtype=torch.bool))
    n_convs = 1 + sum(2 * b for b in RESNET_STAGES[10]) + 3  # stem, two per block, three downsamples
    assert len(seen) == n_convs and all(seen)


def test_resnets_stack_up_to_width_32_on_cpu():
    cpu = torch.device("cpu")
    assert batched_pays("resnet", 16, cpu, 32) and not batched_pays("resnet", 16, cpu, 64)
    assert not batched_pays("resnet", 1, cpu, 8)


def test_adam_leaves_weights_without_gradients_as_torch_does():
    """Weights that never get a gradient (second moments that stay 0) keep their values; every step
    equals torch.optim.Adam's bit for bit (the fused kernel)."""
    torch.manual_seed(0)
    stacked = torch.nn.Parameter(torch.randn(2, 6, 3))
    opt = RunOptimizer({"g": [stacked]}, [1e-3, 1e-2])
    single = [torch.nn.Parameter(stacked[k].detach().clone()) for k in range(2)]
    refs = [torch.optim.Adam([p], lr=lr) for p, lr in zip(single, (1e-3, 1e-2))]
    for _ in range(4):
        grads = torch.randn(2, 6, 3) * 1e-3
        grads[:, :2] = 0.0
        stacked.grad = grads.clone()
        opt.step()
        for k, (p, ref) in enumerate(zip(single, refs)):
            p.grad = grads[k].clone()
            ref.step()
    for k, p in enumerate(single):
        assert torch.equal(stacked[k, :2].detach(), p[:2].detach())
        assert torch.equal(stacked[k].detach(), p.detach())


def test_training_without_the_nan_fill_is_bitwise_the_same(monkeypatch):
    """Deterministic mode without filling new tensors (mmrepro.common.device.deterministic_kernels) trains the
    same bits as with the fill: no kernel reads memory it has not written (stacked ResNets, float32)."""
    from mmrepro.common import device as D
    from mmrepro.core.data import MultimodalDataset, Task
    from mmrepro.core.models import MultimodalNet
    from mmrepro.core.trainer import fit_many

    g = torch.Generator().manual_seed(0)
    n = 48
    y = torch.randint(3, (n,), generator=g)
    x = {"img": torch.randn(n, 1, 12, 12, generator=g) + y.view(-1, 1, 1, 1)}
    data = MultimodalDataset("t", x, {}, {"img": torch.ones(n, dtype=torch.bool)}, {"y": y},
                             {"y": Task("y", "multiclass", 3)}, {"train": torch.arange(32), "val": torch.arange(32, n)})

    def train(fill: bool) -> list[dict]:
        def kernels() -> None:
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.utils.deterministic.fill_uninitialized_memory = fill

        monkeypatch.setattr(D, "deterministic_kernels", kernels)
        models = []
        for k in range(3):
            torch.manual_seed(k)
            models.append(MultimodalNet({"img": ResNetEncoder(10, 1, 4)}, "multiclass", 3))
        res = fit_many(models, data.split("train"), data.split("val"), epochs=2, batch_size=16, seeds=[0, 1, 2],
                       lrs=[1e-3] * 3, device="cpu", progress=False)
        return [{k: v.clone() for k, v in r.model.state_dict().items()} for r in res]

    try:
        filled, unfilled = train(True), train(False)
    finally:
        D.deterministic_kernels()
    assert torch.utils.deterministic.fill_uninitialized_memory is False
    for a, b in zip(filled, unfilled):
        assert all(torch.equal(a[k], b[k]) for k in a)
