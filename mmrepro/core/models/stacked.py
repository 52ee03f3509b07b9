"""Stacked runs: K independent copies of one network, trained as one model.

A stacked layer holds every parameter and buffer of the per-run module with a new leading axis of
size K, under the per-run module's own names: run k's state dict is ``{name: tensor[k]}``, so K
trained runs unstack into K ordinary modules. Inputs and outputs carry the run axis first,
(K, N, ...), and every run sees its own rows (its own data order). BatchNorm statistics and
dropout masks are per run.

Each layer computes all runs at once where that was measured to pay (``bench/bench_batched.py``,
results in ``bench/README.md``) and otherwise loops over the runs, calling the per-run module on
run k's slices with :func:`torch.func.functional_call`, i.e. exactly the per-run computation:

* linear layers and MLPs: one batched matrix product per layer (``torch.baddbmm``; the
  "ensemble layer" form, measured faster on CPU than ``torch.func.vmap`` over ``functional_call``);
* ResNets: channels-last activations of all runs in one tensor, grouped convolutions (``groups=K``)
  or, on feature maps of a few pixels, each convolution as one batched matrix product, and batch
  normalisation over the K x C channels, which is per-run batch normalisation; when some rows of a
  batch are absent, the statistics are taken over each run's present rows only, as
  :func:`~mmrepro.core.models.fusion.encode_present` does (:mod:`mmrepro.core.models.stacked_resnet`);
* LSTMs: one LSTM cell per time step for all runs, each row's state frozen after its length
  (the semantics of ``pack_padded_sequence``).

:class:`StackedMultimodalNet` is a :class:`~mmrepro.core.models.MultimodalNet` made of such layers; it
inherits the fusion, heads and OGM contributions, which are written with axes counted from the end.
"""
from __future__ import annotations

import copy
import itertools
from contextlib import contextmanager
from contextvars import ContextVar
from functools import partial
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from mmrepro.core.models.encoders import LSTMEncoder, MLPEncoder, ResNetEncoder, last_hidden
from mmrepro.core.models.fusion import MultimodalNet, check_present, encode_present
from mmrepro.core.models.stacked_resnet import resnet_all_rows

_DROPOUT_GENERATORS: ContextVar[list[torch.Generator] | None] = ContextVar("dropout_generators", default=None)


class RunCheckpoints:
    """Each run's selected state of a stacked model ``net``: :meth:`keep` copies the current parameters
    and buffers of some runs, :meth:`state` gives run k's kept ones (its initial state until kept)."""

    def __init__(self, net: nn.Module) -> None:
        self.net = net
        self.kept = {n: v.detach().clone() for n, v in net.state_dict().items()}

    def keep(self, runs: Sequence[int]) -> None:
        if runs:
            sel = torch.tensor(list(runs), device=next(iter(self.kept.values())).device)
            for n, v in self.net.state_dict().items():
                self.kept[n][sel] = v.detach()[sel]

    def state(self, k: int) -> dict[str, Tensor]:
        return {n: v[k] for n, v in self.kept.items()}


class RunStreams:
    """Each run's own random streams: Gaussian noise (OGM-GE's gradient noise, MKE's input noise)
    and dropout masks. Run k draws from generators on the device seeded from its seed (two children
    of ``numpy.random.SeedSequence(seed)``, apart from the data-order stream), so a run draws the same
    numbers whether it trains alone or with any other runs."""

    def __init__(self, seeds: Sequence[int], device: torch.device) -> None:
        children = [np.random.SeedSequence(int(s)).spawn(2) for s in seeds]
        make = lambda ss: torch.Generator(device=device).manual_seed(int(ss.generate_state(1, np.uint64)[0]))  # noqa: E731
        self.noise_gens = [make(c[0]) for c in children]
        self.dropout_gens = [make(c[1]) for c in children]

    def noise(self, like: Tensor, runs: Tensor | None = None) -> Tensor:
        """Standard Gaussian noise shaped like ``like`` (K, ...); only the runs where ``runs`` (K,)
        is True draw (zeros elsewhere)."""
        out = torch.zeros_like(like)
        for k in range(len(self.noise_gens)) if runs is None else runs.nonzero().flatten().tolist():
            out[k] = torch.randn(like.shape[1:], generator=self.noise_gens[k], dtype=like.dtype, device=like.device)
        return out

    @contextmanager
    def dropout(self) -> Iterator[None]:
        """Within this block, stacked layers draw each run's dropout masks from its own stream."""
        token = _DROPOUT_GENERATORS.set(self.dropout_gens)
        try:
            yield
        finally:
            _DROPOUT_GENERATORS.reset(token)


def run_dropout(x: Tensor, p: float, training: bool, runs: Sequence[bool] | None = None,
                shape: Sequence[int] | None = None) -> Tensor:
    """Dropout of x (K, ...): inside :meth:`RunStreams.dropout`, run k's mask comes from its own
    stream (as ``F.dropout``: zero with probability p, survivors scaled by 1 / (1 - p)); elsewhere
    ``F.dropout`` itself (torch's global stream). Only the ``runs`` that would take this step if
    trained alone draw (the others' rows are discarded by the caller), and each draws a mask of its
    full per-run ``shape`` (x's own by default) and keeps the leading part x covers, so that what a
    run draws does not depend on the runs it is trained with."""
    gens = _DROPOUT_GENERATORS.get()
    if gens is None or not training or p == 0:
        return F.dropout(x, p, training)
    shape = tuple(shape or x.shape[1:])
    part = tuple(slice(0, n) for n in x.shape[1:])
    draw = lambda g: torch.rand(shape, generator=g, device=x.device, dtype=x.dtype)[part] >= p  # noqa: E731
    if len(gens) == 1 and (runs is None or runs[0]):
        keep = draw(gens[0]).unsqueeze(0)
    else:
        keep = torch.ones(x.shape, dtype=torch.bool, device=x.device)
        for k, g in enumerate(gens):
            if runs is None or runs[k]:
                keep[k] = draw(g)
    return x * keep / (1 - p)


class RunDropout(nn.Dropout):
    """``nn.Dropout`` with per-run masks (:func:`run_dropout`)."""

    def forward(self, x: Tensor) -> Tensor:
        return run_dropout(x, self.p, self.training)


#: the widest layer (ResNet base width, LSTM hidden size) for which computing all runs at once beat a
#: loop over runs on a 2-core CPU (bench/README.md, "choosing batched or loop")
CPU_BATCHED_WIDTH = {"resnet": 32, "lstm": 32}


def batched_pays(kind: str, runs: int, device: torch.device, width: int = 0) -> bool:
    """Whether computing ``runs`` runs of a ``kind`` layer ("linear", "mlp", "resnet", "lstm";
    ``width`` its base width or hidden size) at once beats a loop on ``device``. Linear layers and
    MLPs: always. On CPU, ResNets and LSTMs up to :data:`CPU_BATCHED_WIDTH` (measured); on CUDA the
    batched forms are assumed to pay from two runs on (not measured: no GPU was available)."""
    if kind in ("linear", "mlp"):
        return True
    if kind not in CPU_BATCHED_WIDTH or runs < 2:
        return False
    return device.type != "cpu" or width <= CPU_BATCHED_WIDTH[kind]


def _stack(parts: Sequence[Tensor]) -> Tensor:
    """The runs' tensors on a new leading axis, each run's slice with the strides of its own tensor:
    a channels-last convolution weight stays channels-last (on CPU a convolution takes the memory
    order of its weight when its input has one channel, and mixed orders are slow)."""
    first = parts[0].detach()
    if first.dim() != 4 or not first.is_contiguous(memory_format=torch.channels_last):
        return torch.stack([p.detach() for p in parts])
    out = torch.empty_strided((len(parts), *first.shape), (first.numel(), *first.stride()), dtype=first.dtype,
                              device=first.device)
    for slot, p in zip(out, parts):
        slot.copy_(p.detach())
    return out


class Stacked(nn.Module):
    """The parameters and buffers of ``modules`` (one per run, same architecture) stacked on a new
    leading axis under the modules' own names; :meth:`run_modules` gives the per-run module on each
    run's slices. Subclasses add a batched forward."""

    kind = "other"

    @staticmethod
    def width(module: nn.Module) -> int:
        """The size :func:`batched_pays` weighs (0 where it does not matter)."""
        return 0

    @staticmethod
    def dropout_inside(module: nn.Module) -> bool:
        """Whether the per-run module draws dropout masks that only the batched form takes from the
        runs' own streams (an ``nn.LSTM``'s dropout between layers)."""
        return False

    def __init__(self, modules: Sequence[nn.Module], batched: bool = True) -> None:
        super().__init__()
        if not modules:
            raise ValueError("stacking needs at least one module")
        first = modules[0]
        # the per-run module, unregistered: it only provides the computation for functional_call
        object.__setattr__(self, "template", copy.deepcopy(first).requires_grad_(False))
        self.runs, self.batched = len(modules), bool(batched)
        params = {n for n, _ in first.named_parameters()}
        tensors = [dict(itertools.chain(m.named_parameters(), m.named_buffers())) for m in modules]
        for name, ref in tensors[0].items():
            parts = [t.get(name) for t in tensors]
            if any(p is None or p.shape != ref.shape for p in parts):
                raise ValueError(f"the runs do not share one architecture: {name!r} has shapes "
                                 f"{[None if p is None else tuple(p.shape) for p in parts]}")
            stacked = _stack(parts)
            owner, leaf = self._owner(name)
            if name in params:
                owner.register_parameter(leaf, nn.Parameter(stacked))
            else:
                owner.register_buffer(leaf, stacked)

    def _owner(self, name: str) -> tuple[nn.Module, str]:
        *path, leaf = name.split(".")
        mod: nn.Module = self
        for part in path:
            if not hasattr(mod, part):
                mod.add_module(part, nn.Module())
            mod = getattr(mod, part)
        return mod, leaf

    def run_modules(self) -> list[partial]:
        """One callable per run: the per-run module on that run's parameters and buffers, in this
        module's train/eval mode. The tensors are views from one ``unbind`` per stacked tensor, so
        in-place buffer updates reach the stack and the backward pass has one node per tensor (indexing
        run by run would add one per run, each writing a zero-filled gradient of the whole stack)."""
        if self.template.training != self.training:
            self.template.train(self.training)
        named = list(itertools.chain(self.named_parameters(), self.named_buffers()))
        parts = [t.unbind(0) for _, t in named]
        return [partial(self._call, {n: p[k] for (n, _), p in zip(named, parts)}) for k in range(self.runs)]

    def _call(self, tensors: dict[str, Tensor], *args):
        return functional_call(self.template, tensors, args)

    def loop(self, *per_run: Tensor | None, apply=None) -> Tensor:
        """The runs one after another: ``apply(module_k, *inputs_k)`` (default ``module_k(*inputs_k)``)
        over the inputs' run axis (None stays None), stacked on a new leading axis."""
        split = [t.unbind(0) if t is not None else [None] * self.runs for t in per_run]
        apply = apply or (lambda module, *args: module(*args))
        return torch.stack([apply(module, *args) for module, *args in zip(self.run_modules(), *split)])

    def extra_repr(self) -> str:
        return f"runs={self.runs}, {type(self.template).__name__}, {'batched' if self.batched else 'loop'}"


def _linear(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """x (K, ..., in) times each run's weight (K, out, in), plus its bias (K, out)."""
    flat = x.reshape(weight.shape[0], -1, x.shape[-1])
    wt = weight.transpose(1, 2)
    out = torch.bmm(flat, wt) if bias is None else torch.baddbmm(bias.unsqueeze(1), flat, wt)
    return out.view(*x.shape[:-1], weight.shape[1])


class StackedLinear(Stacked):
    """Runs of ``nn.Linear``: (K, ..., in) -> (K, ..., out)."""

    kind = "linear"

    def forward(self, x: Tensor) -> Tensor:
        if self.batched:
            return _linear(x, self.weight, getattr(self, "bias", None))
        return self.loop(x)


def chain_ops(owner: nn.Module, template: nn.Sequential, training: bool, linear=_linear) -> list[tuple]:
    """A Linear / ReLU / Dropout chain (``MLPEncoder.net``, ``multimodn.heads.mlp``) as
    ``(function, *args)`` steps applied in turn to the activation: the layers of ``template`` with the
    weights held by ``owner`` (stacked runs with :func:`_linear`; a plain chain with ``F.linear``)."""
    ops: list[tuple] = []
    for name, layer in template.named_children():
        if isinstance(layer, nn.Linear):
            lin = getattr(owner, name)
            ops.append((linear, lin.weight, getattr(lin, "bias", None)))
        elif isinstance(layer, nn.ReLU):
            ops.append((torch.relu,))
        elif isinstance(layer, nn.Dropout):
            ops.append((run_dropout, layer.p, training))
        else:
            raise TypeError(f"no batched form for {type(layer).__name__} in a Linear/ReLU/Dropout chain")
    return ops


def _chain(stacked: nn.Module, template: nn.Sequential, h: Tensor, training: bool) -> Tensor:
    for fn, *args in chain_ops(stacked, template, training):
        h = fn(h, *args)
    return h


class StackedSequential(Stacked):
    """Runs of a Linear / ReLU / Dropout ``nn.Sequential``: (K, ..., in) -> (K, ..., out)."""

    kind = "mlp"

    def forward(self, x: Tensor) -> Tensor:
        if self.batched:
            return _chain(self, self.template, x, self.training)
        return self.loop(x)


class StackedEncoder(Stacked):
    """Runs of a modality encoder: ``forward(x (K, N, ...), present (K, N), lengths (K, N) | None)``
    -> (K, N, out_dim), zeros on absent rows. Without a batched form (this base class), each run
    encodes its present rows with :func:`~mmrepro.core.models.fusion.encode_present`."""

    def __init__(self, modules: Sequence[nn.Module], batched: bool = True) -> None:
        super().__init__(modules, batched and type(self) is not StackedEncoder)
        self.out_dim = int(getattr(modules[0], "out_dim"))

    def forward(self, x: Tensor, present: Tensor, lengths: Tensor | None = None) -> Tensor:
        if self.batched:
            if lengths is None and bool(present.all()):  # every row present, hence finite (check_present)
                return self.all_rows(x, present, lengths)
            z = self.all_rows(torch.nan_to_num(x), present, lengths)
            return torch.where(present.unsqueeze(-1), z, 0.0)
        return self.loop(x, present, lengths,
                         apply=lambda module, *args: encode_present(module, self.out_dim, *args))

    def all_rows(self, x: Tensor, present: Tensor, lengths: Tensor | None) -> Tensor:
        """Every row of every run at once (absent rows are zeroed by :meth:`forward`)."""
        raise NotImplementedError


class StackedMLPEncoder(StackedEncoder):
    kind = "mlp"

    def all_rows(self, x: Tensor, present: Tensor, lengths: Tensor | None) -> Tensor:
        if x.dim() != 3 or x.shape[-1] != self.template.in_features:
            raise ValueError(f"MLPEncoder runs expect (K, N, {self.template.in_features}), got {tuple(x.shape)}")
        return _chain(self.net, self.template.net, x, self.training)


class StackedResNetEncoder(StackedEncoder):
    """Runs of a :class:`~mmrepro.core.models.ResNetEncoder` (:mod:`mmrepro.core.models.stacked_resnet`);
    ``conv_form`` ("auto", "grouped" or "dense") picks how its convolutions are computed."""

    kind = "resnet"
    conv_form = "auto"

    @staticmethod
    def width(module: nn.Module) -> int:
        return module.stem[0].out_channels

    def all_rows(self, x: Tensor, present: Tensor, lengths: Tensor | None) -> Tensor:
        t = self.template
        if x.dim() == 4:
            x = x.unsqueeze(2)
        if x.dim() != 5 or x.shape[2] != t.in_channels:
            raise ValueError(f"ResNetEncoder runs expect (K, N, H, W) or (K, N, {t.in_channels}, H, W), "
                             f"got {tuple(x.shape)}")
        rows = None if bool(present.all()) else present
        return resnet_all_rows(t, self, x, rows, self.training, self.conv_form)


def _lstm_last(st: nn.Module, lstm: nn.LSTM, x: Tensor, lengths: Tensor, training: bool) -> Tensor:
    """Top-layer hidden state after each row's first ``lengths`` steps (clamped to [1, T]) for all
    runs: x (K, N, T, F), lengths (K, N) -> (K, N, H). Gates as ``nn.LSTM`` (i, f, g, o); a row's
    state stays fixed after its length, so padding is never read."""
    if lstm.bidirectional or lstm.proj_size or not lstm.batch_first:
        raise ValueError("stacked LSTMs support unidirectional, batch-first LSTMs without projections")
    steps = lengths.clamp(1, x.shape[2])
    n_steps = int(steps.max()) if steps.numel() else 0
    valid = (torch.arange(n_steps, device=x.device) < steps.unsqueeze(-1)).unsqueeze(-1)  # (K, N, T, 1)
    h_in = x[:, :, :n_steps]
    for layer in range(lstm.num_layers):
        w_ih, w_hh = getattr(st, f"weight_ih_l{layer}"), getattr(st, f"weight_hh_l{layer}")
        bias = getattr(st, f"bias_ih_l{layer}") + getattr(st, f"bias_hh_l{layer}") if lstm.bias else None
        gates_in = _linear(h_in, w_ih, bias)
        h = x.new_zeros(*x.shape[:2], lstm.hidden_size)
        c = torch.zeros_like(h)
        outs = []
        w_hh_t = w_hh.transpose(1, 2)
        for t in range(n_steps):
            gates = torch.baddbmm(gates_in[:, :, t], h, w_hh_t)
            i, f, g, o = gates.chunk(4, dim=-1)
            c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h_new = torch.sigmoid(o) * torch.tanh(c_new)
            h = torch.where(valid[:, :, t], h_new, h)
            c = torch.where(valid[:, :, t], c_new, c)
            outs.append(h)
        if layer < lstm.num_layers - 1:  # masks drawn for all T steps, whatever steps the batch needs
            h_in = run_dropout(torch.stack(outs, dim=2), lstm.dropout, training,
                               shape=(x.shape[1], x.shape[2], lstm.hidden_size))
    return h


class StackedLSTM(Stacked):
    """Runs of an ``nn.LSTM`` read at each row's length: ``forward(x (K, N, T, F), lengths (K, N))``
    -> (K, N, H), as :func:`~mmrepro.core.models.encoders.last_hidden` run by run."""

    kind = "lstm"

    @staticmethod
    def width(module: nn.Module) -> int:
        return module.hidden_size

    @staticmethod
    def dropout_inside(module: nn.Module) -> bool:
        return module.dropout > 0 and module.num_layers > 1

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        if self.batched:
            return _lstm_last(self, self.template, x, lengths, self.training)
        return self.loop(x, lengths, apply=last_hidden)


class StackedLSTMEncoder(StackedEncoder):
    kind = "lstm"

    @staticmethod
    def width(module: nn.Module) -> int:
        return module.lstm.hidden_size

    @staticmethod
    def dropout_inside(module: nn.Module) -> bool:
        return StackedLSTM.dropout_inside(module.lstm)

    def all_rows(self, x: Tensor, present: Tensor, lengths: Tensor | None) -> Tensor:
        lstm = self.template.lstm
        if x.dim() != 4 or x.shape[-1] != lstm.input_size:
            raise ValueError(f"LSTMEncoder runs expect (K, N, T, {lstm.input_size}), got {tuple(x.shape)}")
        if lengths is None:
            lengths = torch.full(x.shape[:2], x.shape[2], dtype=torch.int64, device=x.device)
        return _lstm_last(self.lstm, lstm, x, lengths, self.training)


ENCODERS = {MLPEncoder: StackedMLPEncoder, ResNetEncoder: StackedResNetEncoder, LSTMEncoder: StackedLSTMEncoder}


def stack(modules: Sequence[nn.Module], cls: type[Stacked], batched: bool | str, device: torch.device) -> Stacked:
    """``cls`` over ``modules``; ``batched="auto"`` follows :func:`batched_pays` for the layer kind,
    except that layers with dropout inside take the batched form, whose masks come from each run's
    own stream (a run then gives the same numbers alone or with others)."""
    if batched == "auto":
        batched = (batched_pays(cls.kind, len(modules), device, cls.width(modules[0]))
                   or cls.dropout_inside(modules[0]))
    return cls(modules, bool(batched))


class StackedMultimodalNet(MultimodalNet):
    """K runs of one :class:`~mmrepro.core.models.MultimodalNet` architecture as one model: every input,
    presence mask, length and output has the run axis first ((K, N, ...)), and the state dict has the
    per-run model's keys with a leading K axis.

    ``batched``: "auto" (each layer as :func:`stack` decides), True (every layer with a batched form
    computes all runs at once) or False (every layer loops over the runs; dropout inside a looped
    module, e.g. an MLP encoder's or an LSTM's between layers, then draws from torch's global stream).

    ``inputs_checked``: True where the caller has already checked every row it will pass (as
    :func:`~mmrepro.core.trainer.fit_many` checks its splits once), so that batches skip
    :func:`~mmrepro.core.models.fusion.check_present`.
    """

    inputs_checked = False

    def __init__(self, models: Sequence[MultimodalNet], batched: bool | str = "auto",
                 device: str | torch.device = "cpu") -> None:
        nn.Module.__init__(self)
        if not models or not all(isinstance(m, MultimodalNet) for m in models):
            raise ValueError("StackedMultimodalNet stacks a non-empty list of MultimodalNet models")
        first = models[0]
        same = ("modalities", "kind", "n_outputs", "fusion", "multihead")
        for m in models[1:]:
            diff = [a for a in same if getattr(m, a) != getattr(first, a)] + (
                ["dropout"] if m.dropout.p != first.dropout.p else []) + (
                ["probes"] if (m.probes is None) != (first.probes is None) else [])
            if diff or [type(e) for e in m.encoders.values()] != [type(e) for e in first.encoders.values()]:
                raise ValueError(f"the runs do not share one architecture (they differ in {diff or 'encoders'})")
        dev = torch.device(device)
        self.modalities = list(first.modalities)
        self.kind, self.n_outputs, self.fusion, self.multihead = first.kind, first.n_outputs, first.fusion, first.multihead
        self.runs = len(models)
        self.encoders = nn.ModuleDict({
            m: stack([md.encoders[m] for md in models], ENCODERS.get(type(first.encoders[m]), StackedEncoder),
                     batched, dev) for m in self.modalities})
        self.dropout = RunDropout(first.dropout.p)
        self.proj = nn.ModuleDict({
            m: nn.Identity() if isinstance(p, nn.Identity) else stack([md.proj[m] for md in models], StackedLinear,
                                                                      batched, dev)
            for m, p in first.proj.items()})
        if first.fusion == "lstm":
            self.fusion_lstm = stack([md.fusion_lstm for md in models], StackedLSTM, batched, dev)
        self.heads = nn.ModuleDict({h: stack([md.heads[h] for md in models], StackedLinear, batched, dev)
                                    for h in first.heads})
        self.probes = None if first.probes is None else nn.ModuleDict({
            m: stack([md.probes[m] for md in models], StackedLinear, batched, dev) for m in first.probes})
        self.idle: dict[str, Tensor] = {}
        self.to(dev)

    def _encode(self, m: str, x: Tensor, present: Tensor, lengths: Tensor | None) -> Tensor:
        if self.training:  # runs whose batch has no row of m: their encoder gets no gradient (frozen_params)
            self.idle[m] = ~present.any(dim=-1)
        if not self.inputs_checked:
            check_present(m, x, present, lengths)
        return self.encoders[m](x, present, lengths)

    def _last_hidden(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        return self.fusion_lstm(tokens, lengths)

    def frozen_params(self) -> list[tuple[list[nn.Parameter], Tensor]]:
        """(encoder parameters, runs (K,) bool) of the last training pass's encoders that saw no row
        in some runs: a lone run would not have called them, and its optimiser skips them."""
        return [(list(self.encoders[m].parameters()), idle) for m, idle in self.idle.items() if bool(idle.any())]

    def layout(self) -> dict[str, str]:
        """How each stacked layer runs: ``{name: "batched" | "loop"}``."""
        return {n: "batched" if mod.batched else "loop" for n, mod in self.named_modules() if isinstance(mod, Stacked)}

    def run_state(self, k: int) -> dict[str, Tensor]:
        """Run k's state dict (the per-run model's keys), as copies."""
        return {n: t[k].clone() for n, t in self.state_dict().items()}
