"""Benchmark: the MILES chapter's refitted linear probe (standardised features, multinomial logistic
regression, L2 with C = 1) on the frozen audio embeddings of the chapter's vanilla concatenation
model (AV digits, MLP encoders, trained as the `book` profile trains it), solved by scikit-learn's
default lbfgs (what a plain call does) and by Newton-CG to a gradient tolerance of 1e-6 (what
``mmrepro.papers.miles.setup.probe_accuracy`` uses).

Prints each solver's median time over ``--repeats`` fits, the speed ratio, and each solution's
largest coefficient distance to a reference solved by lbfgs to 1e-10 (how converged each is).

    MMREPRO_DATA=../shared/data .venv/bin/python bench/bench_probe.py [--repeats 5] [--epochs 12] [--tiny]

``--tiny`` (what tests/test_bench.py runs): one repeat, a vanilla model of one epoch.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mmrepro.common.device import set_threads
from mmrepro.core.data import load_dataset
from mmrepro.core.trainer import fit
from mmrepro.papers.miles.setup import Arch, build_model, flattened


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--epochs", type=int, default=12, help="epochs of the vanilla model (book profile: 12)")
    p.add_argument("--tiny", action="store_true", help="seconds: one repeat, one epoch (the tests')")
    args = p.parse_args()
    if args.tiny:
        args.repeats, args.epochs = 1, 1
    set_threads(1)
    data = flattened(load_dataset("av_digits", seed=0, audio_snr_db=0.0))
    torch.manual_seed(0)
    model = build_model(data, "concat", Arch(mlp_hidden=(128, 64)), multihead=False, probes=True)
    model = fit(model, data.split("train"), data.split("val"), epochs=args.epochs, lr=1e-3, device="cpu",
                progress=False).model.eval()
    train = data.split("train")
    with torch.no_grad():
        x = model.encode(train.x)[0]["audio"].double().numpy()
    y = train.y[next(iter(train.tasks))].numpy()

    def solve(**kw):
        return make_pipeline(StandardScaler(), LogisticRegression(C=1.0, **kw)).fit(x, y)[-1]

    reference = solve(tol=1e-10, max_iter=20000).coef_
    times = {}
    for name, kw in (("lbfgs (default tol)", dict(max_iter=2000)),
                     ("newton-cg tol 1e-6", dict(solver="newton-cg", tol=1e-6, max_iter=1000))):
        runs = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            probe = solve(**kw)
            runs.append(time.perf_counter() - t)
        times[name] = statistics.median(runs)
        print(f"{name:22s} median {times[name]:.3f} s  iterations {int(probe.n_iter_[0]):4d}  "
              f"max |coef - reference| {np.abs(probe.coef_ - reference).max():.2e}")
    print(f"ratio (lbfgs / newton-cg): {times['lbfgs (default tol)'] / times['newton-cg tol 1e-6']:.1f}x "
          f"({x.shape[0]} rows, {x.shape[1]} features, {len(np.unique(y))} classes)")


if __name__ == "__main__":
    main()
