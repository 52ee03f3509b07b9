"""Benchmark: the Figure 2 sweep of the MFH paper (6 gamma settings x seeds; teacher, KD student and
no-KD student per run) trained as a plain per-run loop (one nn.Linear, autograd and optim.SGD per
model, as the reference code does) and as one batched optimisation (mmrepro.papers.mfh.distillation.distill).

Prints both wall times, the speed ratio and the largest difference between the two ways in any
per-setting mean accuracy. Paper settings by default: 10 seeds, 200 train / 1,000 test, 1,000
full-batch epochs. Both ways start from the same initial weights and see the same data. The
reference code also evaluates on the test set after every epoch; the loop here evaluates once at
the end, which makes it faster and the reported ratio conservative.

    .venv/bin/python bench/bench_mfh.py [--seeds 10] [--epochs 1000] [--threads 1] [--dtype float32] [--tiny]

``--tiny`` (what tests/test_bench.py runs): 2 seeds, 20 epochs.
"""
from __future__ import annotations

import argparse
import time

import torch

from mmrepro.papers.mfh.distillation import distill, distill_loop, summarise_distillation
from mmrepro.papers.mfh.generator import increase_gamma


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--epochs", type=int, default=1000)
    p.add_argument("--threads", type=int, default=1, help="torch threads for both ways")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--tiny", action="store_true", help="seconds: 2 seeds, 20 epochs (the tests')")
    args = p.parse_args()
    if args.tiny:
        args.seeds, args.epochs = 2, 20
    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    batch = increase_gamma(range(args.seeds), n_train=200, n_test=1000, dtype=dtype)
    print(f"Figure 2 sweep: {batch.n_settings} settings x {args.seeds} seeds = {batch.n_runs} runs, "
          f"3 models each, {args.epochs} full-batch epochs, {args.dtype}, {args.threads} thread(s)")

    t0 = time.perf_counter()
    vec = distill(batch, epochs=args.epochs, dtype=dtype)
    t_vec = time.perf_counter() - t0
    print(f"batched:      {t_vec:8.2f} s")

    t0 = time.perf_counter()
    loop = distill_loop(batch, epochs=args.epochs, dtype=dtype)
    t_loop = time.perf_counter() - t0
    print(f"per-run loop: {t_loop:8.2f} s")

    s_vec, s_loop = summarise_distillation(batch, vec), summarise_distillation(batch, loop)
    cols = [c for c in s_vec if c.endswith("_mean")]
    diff = float((s_vec[cols] - s_loop[cols]).abs().to_numpy().max())
    runs_diff = max(int((vec[k] != loop[k]).sum()) for k in vec)
    print(s_vec[["gamma", *cols]].round(2).to_string(index=False))
    print(f"speed ratio (loop / batched): {t_loop / t_vec:.1f}x")
    print(f"largest difference in a mean accuracy: {diff:.4f} percentage points "
          f"(runs whose test accuracy differs at all: {runs_diff} of {batch.n_runs})")


if __name__ == "__main__":
    main()
