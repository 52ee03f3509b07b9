"""Benchmark: the MILES chapter's refitted linear probe (standardised features, multinomial logistic
regression, L2 with C = 1) on frozen ReLU embeddings of the AV-digits audio, solved by scikit-learn's
default lbfgs (as a plain call would) and by Newton-CG to a gradient tolerance of 1e-6 (what
``mmrepro.experiments.joint.probe_accuracy`` uses).

Prints each solver's median time over ``--repeats`` fits, the speed ratio, and each solution's
largest coefficient distance to a reference solved by lbfgs to 1e-10 (how converged each is).

    MMREPRO_DATA=../shared/data .venv/bin/python bench/bench_probe.py [--repeats 5] [--width 64]
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

from mmrepro.data import load_dataset
from mmrepro.device import set_threads
from mmrepro.experiments import flattened


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--width", type=int, default=64, help="embedding width (the book's MLP encoder: 64)")
    args = p.parse_args()
    set_threads(1)
    data = flattened(load_dataset("av_digits", seed=0, audio_snr_db=0.0)).split("train")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(data.x["audio"].shape[1], 128), torch.nn.ReLU(),
                              torch.nn.Linear(128, args.width), torch.nn.ReLU())
    with torch.no_grad():
        x = net(data.x["audio"]).double().numpy()
    y = data.y[next(iter(data.tasks))].numpy()

    def fit(**kw):
        return make_pipeline(StandardScaler(), LogisticRegression(C=1.0, **kw)).fit(x, y)[-1].coef_

    reference = fit(tol=1e-10, max_iter=20000)
    times = {}
    for name, kw in (("lbfgs (default tol)", dict(max_iter=2000)),
                     ("newton-cg tol 1e-6", dict(solver="newton-cg", tol=1e-6, max_iter=1000))):
        runs = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            coef = fit(**kw)
            runs.append(time.perf_counter() - t)
        times[name] = statistics.median(runs)
        print(f"{name:22s} median {times[name]:.3f} s   max |coef - reference| {np.abs(coef - reference).max():.2e}")
    print(f"ratio (lbfgs / newton-cg): {times['lbfgs (default tol)'] / times['newton-cg tol 1e-6']:.1f}x "
          f"({x.shape[0]} rows, {x.shape[1]} features, {len(np.unique(y))} classes)")


if __name__ == "__main__":
    main()
