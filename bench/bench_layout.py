"""Benchmark: the memory order of the ResNet encoders on CPU. One training step (forward, backward,
Adam) of MIND's AV-digits student encoder (ResNet-3, width 32, compact stem, 64 images of 28 x 28)
with weights and activations channels-last (what :class:`~mmrepro.core.models.ResNetEncoder` does)
against the same network in the usual NCHW order; one thread, interleaved, best of ``--repeats``.
Both give the same outputs (checked here in eval mode, to float32 round-off).

    .venv/bin/python bench/bench_layout.py [--repeats 5] [--steps 20] [--width 32] [--depth 3] [--tiny]

``--tiny`` (what tests/test_bench.py runs): one repeat of 2 steps at width 8.
"""
from __future__ import annotations

import argparse
import copy
import time

import torch

from mmrepro.common.device import set_threads
from mmrepro.core.models import ResNetEncoder


def nchw(encoder: ResNetEncoder) -> ResNetEncoder:
    """The same encoder computing in NCHW order: weights in the usual order, input not converted."""
    plain = copy.deepcopy(encoder).to(memory_format=torch.contiguous_format)
    plain.forward = lambda x, lengths=None: plain.stages(plain.stem(x)).mean(dim=(2, 3))
    return plain


def step_time(model: torch.nn.Module, x: torch.Tensor, steps: int) -> float:
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(3):
        model(x).square().mean().backward()
    start = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad()
        model(x).square().mean().backward()
        opt.step()
    return (time.perf_counter() - start) / steps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--tiny", action="store_true", help="seconds: one repeat of 2 steps at width 8 (the tests')")
    args = p.parse_args()
    if args.tiny:
        args.repeats, args.steps, args.width = 1, 2, 8
    set_threads(1)
    torch.manual_seed(0)
    ours = ResNetEncoder(args.depth, 1, args.width, stem="compact")
    plain, x = nchw(ours), torch.randn(64, 1, 28, 28)
    with torch.no_grad():
        diff = float((ours.eval()(x) - plain.eval()(x)).abs().max())
    ours.train(), plain.train()
    times: dict[str, list[float]] = {"ours": [], "plain": []}
    for _ in range(args.repeats):
        times["plain"].append(step_time(plain, x, args.steps))
        times["ours"].append(step_time(ours, x, args.steps))
    t_ours, t_plain = min(times["ours"]), min(times["plain"])
    print(f"ResNet-{args.depth} width {args.width}: {1000 * t_plain:.1f} ms NCHW, {1000 * t_ours:.1f} ms channels-last "
          f"per step: {t_plain / t_ours:.2f}x (largest output difference {diff:.1e})", flush=True)


if __name__ == "__main__":
    main()
