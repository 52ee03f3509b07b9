"""Stacked ResNets: the layers of K runs of one torchvision-style ResNet computed at once.

Activations of all runs share one channels-last tensor (N, K*C, H, W): run k's channels are
[k*C, (k+1)*C), so its memory is (N, H, W, K, C). A convolution is computed for all runs in one of
two forms, chosen per layer from its spatial size (:func:`conv_form`, measured in ``bench/README.md``):

* ``"grouped"``: one grouped convolution (``groups=K``), oneDNN's channels-last kernel;
* ``"dense"``: for feature maps so small that every output pixel sees every input pixel (the last
  stages of a ResNet on 28 x 28 inputs: 2 x 2 and 1 x 1 maps), the convolution as the dense linear map it is, one matrix (H*W*C, Ho*Wo*O) per run assembled from the kernel's
  taps (:func:`tap_matrix`), applied with one batched matrix product. It computes the same sums;
  taps that fall into the padding contribute exact zeros.

Batch normalisation is per run: over the K*C channels (``F.batch_norm``), or, when some rows of a
batch are absent, over each run's present rows only, as
:func:`~mmrepro.core.models.fusion.encode_present` does for a lone run.
"""
from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.resnet import BasicBlock

CONV_FORMS = ("auto", "grouped", "dense")


def conv_form(conv: nn.Conv2d, height: int, width: int, device: torch.device, form: str = "auto") -> str:
    """How to compute ``conv`` for all runs on an input of ``height`` x ``width`` pixels: ``form``
    unless "auto"; else, on CPU, "dense" where the map is dense, i.e. every output pixel's window
    covers every input pixel (a 3 x 3 convolution on 2 x 2 or 1 x 1 maps; plain convolutions only), and
    "grouped" otherwise. Measured at K = 16, widths 8 and 32 (bench/README.md): the dense form was
    1.5-7x faster on such maps and up to 16x slower where its matrix is mostly zeros; on CUDA
    "grouped" (not measured)."""
    if form not in CONV_FORMS:
        raise ValueError(f"conv form must be one of {CONV_FORMS}, got {form!r}")
    plain = conv.groups == 1 and conv.dilation == (1, 1) and conv.padding_mode == "zeros"
    if form == "dense" and not plain:
        raise ValueError(f"the dense form computes plain convolutions (groups 1, dilation 1, zero padding); got {conv}")
    if form != "auto":
        return form
    dense = plain and device.type == "cpu" and _covers(height, width, conv.kernel_size, conv.stride, conv.padding)
    return "dense" if dense else "grouped"


@lru_cache(maxsize=64)
def _covers(height: int, width: int, kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int]) -> bool:
    """Whether every output pixel's window covers every input pixel."""
    return bool(tap_matrix(height, width, kernel, stride, padding, torch.float32, torch.device("cpu")).any(1).all())


def _out_size(conv: nn.Conv2d, height: int, width: int) -> tuple[int, int]:
    (kh, kw), (sh, sw), (ph, pw) = conv.kernel_size, conv.stride, conv.padding
    return (height + 2 * ph - kh) // sh + 1, (width + 2 * pw - kw) // sw + 1


@lru_cache(maxsize=64)
def tap_matrix(height: int, width: int, kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int],
               dtype: torch.dtype, device: torch.device) -> Tensor:
    """One-hot (Ho*Wo*H*W, kh*kw): row (output pixel, input pixel) marks the kernel tap that links them
    in a convolution (an all-zero row where none does, i.e. the input pixel is outside the window)."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    ho, wo = (height + 2 * ph - kh) // sh + 1, (width + 2 * pw - kw) // sw + 1
    i = torch.arange(ho).view(ho, 1, 1, 1)
    j = torch.arange(wo).view(1, wo, 1, 1)
    a = torch.arange(height).view(1, 1, height, 1)
    b = torch.arange(width).view(1, 1, 1, width)
    u, v = a - sh * i + ph, b - sw * j + pw  # the tap of input pixel (a, b) in output pixel (i, j)'s window
    inside = (u >= 0) & (u < kh) & (v >= 0) & (v < kw)
    tap = torch.where(inside, u * kw + v, kh * kw).reshape(-1)
    return F.one_hot(tap, kh * kw + 1)[:, :kh * kw].to(dtype=dtype, device=device)


def dense_conv(h: Tensor, weight: Tensor, conv: nn.Conv2d) -> Tensor:
    """``conv`` of every run as one batched matrix product: h (N, K*C, H, W) channels-last, weight
    (K, O, C, kh, kw) -> (N, K*O, Ho, Wo) channels-last. Each run's map is the matrix
    T_k[(i, j, o), (a, b, c)] = w_k[o, c, tap(a, b; i, j)] (zero where no tap links the pixels)."""
    n, kc, height, width = h.shape
    k, o, c, kh, kw = weight.shape
    ho, wo = _out_size(conv, height, width)
    taps = tap_matrix(height, width, conv.kernel_size, conv.stride, conv.padding, h.dtype, h.device)
    w = weight.permute(0, 1, 3, 4, 2).reshape(k * o, kh * kw, c)  # a view for channels-last per-run weights
    t = torch.matmul(taps, w).view(k, o, ho * wo, height * width * c)  # (K*O, Ho*Wo*H*W, C) as (K, O, Ho*Wo, H*W*C)
    t = t.transpose(1, 2).reshape(k, ho * wo * o, height * width * c)
    x = h.permute(0, 2, 3, 1).reshape(n, height * width, k, c).permute(2, 0, 1, 3).reshape(k, n, height * width * c)
    out = torch.bmm(x, t.transpose(1, 2))  # (K, N, Ho*Wo*O)
    out = out.view(k, n, ho, wo, o).permute(1, 2, 3, 0, 4).reshape(n, ho, wo, k * o)
    return out.permute(0, 3, 1, 2)


def conv_runs(h: Tensor, conv: nn.Conv2d, weight: Tensor, bias: Tensor | None, form: str = "auto") -> Tensor:
    """``conv`` (the per-run template) with each run's ``weight`` (K, O, C/groups, kh, kw) and ``bias``
    (K, O) on h (N, K*C, H, W), in the form :func:`conv_form` picks."""
    k = weight.shape[0]
    if conv_form(conv, h.shape[2], h.shape[3], h.device, form) == "dense":
        out = dense_conv(h, weight, conv)
        return out if bias is None else out + bias.reshape(1, -1, 1, 1)
    return F.conv2d(h, weight.reshape(-1, *weight.shape[2:]), None if bias is None else bias.reshape(-1), conv.stride,
                    conv.padding, conv.dilation, groups=k * conv.groups)


def batch_norm_runs(h: Tensor, bn: nn.BatchNorm2d, st: nn.Module, rows: Tensor | None, training: bool) -> Tensor:
    """Per-run batch normalisation of h (N, K*C, H, W). In training with ``rows`` (K, N), the
    statistics (and running-statistics updates) of run k use its present rows only."""
    if bn.momentum is None:
        raise ValueError("stacked BatchNorm needs a momentum (cumulative averages are not supported)")
    flat = lambda t: t.reshape(-1)  # noqa: E731
    if not training or rows is None:
        if training:
            st.num_batches_tracked.add_(1)
        return F.batch_norm(h, flat(st.running_mean), flat(st.running_var), flat(st.weight), flat(st.bias),
                            training, bn.momentum, bn.eps)
    n, kc, hh, ww = h.shape
    k = rows.shape[0]
    x = h.view(n, k, kc // k, hh, ww)
    m = rows.t().to(h.dtype).view(n, k, 1, 1, 1)
    count = rows.sum(dim=1).to(h.dtype) * (hh * ww)
    denom = count.clamp(min=1).view(1, k, 1, 1, 1)
    mean = (x * m).sum(dim=(0, 3, 4), keepdim=True) / denom
    var = ((x - mean).pow(2) * m).sum(dim=(0, 3, 4), keepdim=True) / denom
    out = (x - mean) * torch.rsqrt(var + bn.eps) * st.weight.view(1, k, -1, 1, 1) + st.bias.view(1, k, -1, 1, 1)
    with torch.no_grad():
        used = count > 0
        unbiased = var.view(k, -1) * (count / (count - 1).clamp(min=1)).view(k, 1)
        st.running_mean[used] = torch.lerp(st.running_mean, mean.view(k, -1), bn.momentum)[used]
        st.running_var[used] = torch.lerp(st.running_var, unbiased, bn.momentum)[used]
        st.num_batches_tracked.add_(used.to(st.num_batches_tracked.dtype))
    return out.view(n, kc, hh, ww)


def resnet_layer(template: nn.Module, st: nn.Module, h: Tensor, rows: Tensor | None, training: bool,
                 form: str = "auto") -> Tensor:
    """One layer of a torchvision-style ResNet (``template``, the per-run module) for all runs, with
    the runs' stacked tensors held by ``st``; channels of run k at [k*C, (k+1)*C)."""
    if isinstance(template, nn.Conv2d):
        return conv_runs(h, template, st.weight, getattr(st, "bias", None), form)
    if isinstance(template, nn.BatchNorm2d):
        return batch_norm_runs(h, template, st, rows, training)
    if isinstance(template, nn.ReLU):
        return torch.relu_(h) if template.inplace else torch.relu(h)
    if isinstance(template, nn.MaxPool2d):
        return template(h)
    if isinstance(template, nn.Sequential):
        for name, child in template.named_children():
            h = resnet_layer(child, getattr(st, name, None), h, rows, training, form)
        return h
    if isinstance(template, BasicBlock):
        run = lambda name, x: resnet_layer(getattr(template, name), getattr(st, name, None), x, rows, training,  # noqa: E731
                                           form)
        out = torch.relu_(run("bn1", run("conv1", h)))  # in place, as BasicBlock's own ReLU
        out = run("bn2", run("conv2", out))
        return torch.relu_(out + (h if template.downsample is None else run("downsample", h)))
    raise TypeError(f"no batched form for {type(template).__name__} in a ResNet")


def resnet_all_rows(template: nn.Module, st: nn.Module, x: Tensor, rows: Tensor | None, training: bool,
                    form: str = "auto") -> Tensor:
    """A :class:`~mmrepro.core.models.ResNetEncoder`'s embedding for every run: x (K, N, C, H, W) ->
    (K, N, out_dim). The runs' images are laid out channels-last (N, H, W, K, C) from the start, so that
    every layer reads and writes that order (a grouped convolution keeps its input's order)."""
    k, n = x.shape[:2]
    h = x.transpose(0, 1).reshape(n, -1, *x.shape[3:]).contiguous(memory_format=torch.channels_last)
    h = resnet_layer(template.stem, st.stem, h, rows, training, form)
    h = resnet_layer(template.stages, st.stages, h, rows, training, form)
    return h.mean(dim=(2, 3)).view(n, k, -1).transpose(0, 1)
