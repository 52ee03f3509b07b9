"""Benchmark: vectorised bootstrap_ci vs a MedFuse-style per-label scikit-learn loop.

1,000 resamples of macro-AUROC over 25 labels x 2,000 samples (MIND's phenotyping setting).
Both sides use the same resample indices, so the intervals must agree to float round-off.
Run: .venv/bin/python bench/bench_bootstrap.py [--n-boot 1000 --labels 25 --samples 2000 --metric auroc]
(``--tiny``: 50 resamples x 3 labels x 200 samples, what tests/test_bench.py runs.)
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

from mmrepro.core.metrics import bootstrap_ci, bootstrap_indices, interval

SKLEARN = {"auroc": roc_auc_score, "auprc": average_precision_score}


def loop_baseline(metric, y: np.ndarray, s: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Per label, resample and call scikit-learn; the macro statistic is the mean over labels."""
    per_label = np.empty((idx.shape[0], y.shape[1]))
    for label in range(y.shape[1]):
        for b, rows in enumerate(idx):
            per_label[b, label] = metric(y[rows, label], s[rows, label])
    return per_label.mean(axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--labels", type=int, default=25)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--metric", choices=sorted(SKLEARN), default="auroc")
    parser.add_argument("--tiny", action="store_true", help="seconds: 50 resamples, 3 labels, 200 samples")
    args = parser.parse_args()
    if args.tiny:
        args.n_boot, args.labels, args.samples = 50, 3, 200
    torch.set_num_threads(1)

    rng = np.random.default_rng(args.seed)
    prevalence = rng.uniform(0.05, 0.4, size=args.labels)
    y = (rng.random((args.samples, args.labels)) < prevalence).astype(np.int64)
    s = np.clip(0.3 * y + rng.normal(0.35, 0.2, size=y.shape), 0, 1).round(3)  # rounded: ties occur

    t0 = time.perf_counter()
    fast = bootstrap_ci(args.metric, y, s, n_boot=args.n_boot, method="basic", seed=args.seed, task_kind="multilabel")
    t_fast = time.perf_counter() - t0

    t0 = time.perf_counter()
    idx = bootstrap_indices(args.samples, args.n_boot, args.seed)
    reps = loop_baseline(SKLEARN[args.metric], y, s, idx)
    point = float(np.mean([SKLEARN[args.metric](y[:, j], s[:, j]) for j in range(args.labels)]))
    loop_ci = (point, *interval(point, reps, 0.95, "basic"))
    t_loop = time.perf_counter() - t0

    diff = max(abs(a - b) for a, b in zip(fast, loop_ci))
    rep_diff = float(np.max(np.abs(fast.replicates - reps)))
    print(f"setting: {args.n_boot} resamples x {args.labels} labels x {args.samples} samples, macro-{args.metric.upper()}, basic 95% CI")
    print(f"vectorised bootstrap_ci: {t_fast:8.3f} s   -> {tuple(round(v, 6) for v in fast)}  (dropped {fast.n_dropped})")
    print(f"per-label sklearn loop:  {t_loop:8.3f} s   -> {tuple(round(v, 6) for v in loop_ci)}")
    print(f"speed ratio: {t_loop / t_fast:.1f}x")
    print(f"max |interval difference|: {diff:.3g}   max |replicate difference|: {rep_diff:.3g}")


if __name__ == "__main__":
    main()
