"""Modality encoders: ResNets for images/spectrograms, LSTMs for time series, MLPs for tables.

Every encoder maps its modality tensor to a flat embedding (N, ``out_dim``).
"""
from __future__ import annotations

from typing import Literal, Sequence

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence
from torchvision.models.resnet import BasicBlock, conv1x1

from mmrepro.common.checks import check_int, check_number

# depth -> basic blocks per stage. ResNet-18/34 are He et al. (2016) Table 1; ResNet-10 is one block
# per stage (the MIND/MedFuse student). ResNet-3 (stem + one block) and ResNet-6 (stem + two stages
# of one block) are inferred from MIND Appendix C: with a 3x3 stem they give the reported
# ~151 k (two ResNet-3 encoders, 10 classes) and ~612 k (two ResNet-6, 1+3 channels, 6 classes).
RESNET_STAGES: dict[int, tuple[int, ...]] = {
    3: (1,),
    6: (1, 1),
    10: (1, 1, 1, 1),
    18: (2, 2, 2, 2),
    34: (3, 4, 6, 3),
}


class ResNetEncoder(nn.Module):
    """ResNet with basic blocks (torchvision's ``BasicBlock``) and a width parameter.

    Stage ``s`` has ``width * 2**s`` channels and stride 2 from the second stage on; the output
    is global-average pooled, so ``out_dim = width * 2**(n_stages - 1)``.

    ``stem="imagenet"``: 7x7/2 convolution + 3x3/2 max-pool (He et al.; MedFuse's chest X-rays).
    ``stem="small"``: one 3x3/1 convolution, no pooling (small images and spectrograms, the
    setting that matches MIND Appendix C parameter counts).
    ``stem="compact"``: one 3x3/2 convolution + 3x3/2 max-pool: the ImageNet stem's downsampling (4x) with
    the small stem's kernel and parameter count (28x28 inputs reach the blocks at 7x7).

    Input: (N, H, W) or (N, C, H, W) float.
    """

    def __init__(self, depth: int = 10, in_channels: int = 1, width: int = 64,
                 stem: Literal["small", "imagenet", "compact"] = "small") -> None:
        super().__init__()
        if depth not in RESNET_STAGES:
            raise ValueError(f"ResNet depth {depth} is not supported; choose one of {sorted(RESNET_STAGES)}")
        check_int("width", width, 1)
        check_int("in_channels", in_channels, 1)
        if stem == "imagenet":
            self.stem = nn.Sequential(
                nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=False), nn.BatchNorm2d(width),
                nn.ReLU(inplace=True), nn.MaxPool2d(3, stride=2, padding=1))
        elif stem == "small":
            self.stem = nn.Sequential(
                nn.Conv2d(in_channels, width, 3, stride=1, padding=1, bias=False), nn.BatchNorm2d(width),
                nn.ReLU(inplace=True))
        elif stem == "compact":
            self.stem = nn.Sequential(
                nn.Conv2d(in_channels, width, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(width),
                nn.ReLU(inplace=True), nn.MaxPool2d(3, stride=2, padding=1))
        else:
            raise ValueError(f"stem must be 'small', 'imagenet' or 'compact', got {stem!r}")
        self.depth, self.in_channels = depth, in_channels
        stages, inplanes = [], width
        for s, n_blocks in enumerate(RESNET_STAGES[depth]):
            planes, stride = width * 2**s, (1 if s == 0 else 2)
            down = None
            if stride != 1 or inplanes != planes:
                down = nn.Sequential(conv1x1(inplanes, planes, stride), nn.BatchNorm2d(planes))
            blocks = [BasicBlock(inplanes, planes, stride, down)]
            blocks += [BasicBlock(planes, planes) for _ in range(n_blocks - 1)]
            stages.append(nn.Sequential(*blocks))
            inplanes = planes
        self.stages = nn.Sequential(*stages)
        self.out_dim = inplanes
        for mod in self.modules():  # He initialisation, as torchvision's ResNet
            if isinstance(mod, nn.Conv2d):
                nn.init.kaiming_normal_(mod.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(mod, nn.BatchNorm2d):
                nn.init.ones_(mod.weight)
                nn.init.zeros_(mod.bias)
        self.to(memory_format=torch.channels_last)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        if x.dim() == 3:
            x = x.unsqueeze(1)
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"ResNetEncoder expects (N, H, W) or (N, {self.in_channels}, H, W), got {tuple(x.shape)}")
        return self.stages(self.stem(x.contiguous(memory_format=torch.channels_last))).mean(dim=(2, 3))


class LSTMEncoder(nn.Module):
    """Stacked LSTM over padded sequences (N, T, F); the embedding is the top layer's last hidden
    state at each sequence's own length (``pack_padded_sequence``), as MedFuse's EHR encoder."""

    def __init__(self, input_size: int, hidden_size: int = 256, num_layers: int = 2, dropout: float = 0.0) -> None:
        super().__init__()
        check_int("input_size", input_size, 1)
        check_int("hidden_size", hidden_size, 1)
        check_int("num_layers", num_layers, 1, 4)
        check_number("dropout", dropout, 0, 1, high_open=True)
        self.lstm = nn.LSTM(input_size, hidden_size, num_layers=num_layers, batch_first=True,
                            dropout=dropout if num_layers > 1 else 0.0)
        self.out_dim = hidden_size

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        if x.dim() != 3 or x.shape[2] != self.lstm.input_size:
            raise ValueError(f"LSTMEncoder expects (N, T, {self.lstm.input_size}), got {tuple(x.shape)}")
        if lengths is None:
            lengths = torch.full((x.shape[0],), x.shape[1], dtype=torch.int64)
        return last_hidden(self.lstm, x, lengths)


def last_hidden(lstm: nn.Module, x: Tensor, lengths: Tensor) -> Tensor:
    """The top layer's hidden state of ``lstm`` (batch first) after each row's first ``lengths``
    steps (clamped to [1, T]; padding beyond is never read, ``pack_padded_sequence``)."""
    steps = lengths.clamp(1, x.shape[1])
    if bool((steps == x.shape[1]).all()):  # nothing to pack
        return lstm(x)[1][0][-1]
    _, (h, _) = lstm(pack_padded_sequence(x, steps.cpu(), batch_first=True, enforce_sorted=False))
    return h[-1]


class MLPEncoder(nn.Module):
    """Linear-ReLU(-dropout) stack for tabular features (N, F); ``out_dim = hidden[-1]``."""

    def __init__(self, in_features: int, hidden: Sequence[int] = (64,), dropout: float = 0.0) -> None:
        super().__init__()
        check_int("in_features", in_features, 1)
        if isinstance(hidden, (str, bytes)) or not isinstance(hidden, Sequence):
            raise TypeError(f"hidden must be a sequence of layer widths, e.g. ({hidden},) for one layer of {hidden} "
                            f"units; got {hidden!r} ({type(hidden).__name__})")
        if not hidden:
            raise ValueError("hidden must give at least one layer width, e.g. (64,)")
        hidden = tuple(check_int(f"hidden[{i}]", h, 1) for i, h in enumerate(hidden))
        check_number("dropout", dropout, 0, 1, high_open=True)
        layers: list[nn.Module] = []
        for d_in, d_out in zip((in_features, *hidden[:-1]), hidden):
            layers += [nn.Linear(d_in, d_out), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
        self.net = nn.Sequential(*layers)
        self.in_features, self.out_dim = in_features, hidden[-1]

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        if x.dim() != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"MLPEncoder expects (N, {self.in_features}), got {tuple(x.shape)}")
        return self.net(x)
