"""Batched training: K runs as one stacked model vs K runs one after another.

Three book-size cases, each trained as the chapters train it, with K different seeds (and, for
MILES, different learning rates, tau and mu):

* ``mfeat``: MILES on Multiple Features (pix + fou views, MLP encoders (64,), concatenation,
  batch 128): :func:`mmrepro.core.trainer.fit_many` vs :func:`mmrepro.core.trainer.fit` per run;
* ``pbcseq``: MultiModN on pbcseq (the chapter's benchmark: static, signs and lab visits,
  state 50, hidden 32, dropout 0.2, batch 16): :func:`mmrepro.papers.multimodn.batched.fit_many_multimodn` vs
  :func:`mmrepro.papers.multimodn.fit_multimodn` per run;
* ``transformer``: the E.4 transformer on the NYC weather series as the MultiModN chapter trains it (every
  3rd hour of the 24 h window, 4 blocks of 4 heads of size 256, batch 64, its four regression tasks):
  :func:`mmrepro.papers.multimodn.batched.fit_many_multimodn` vs :func:`mmrepro.papers.multimodn.fit_multimodn`
  per run (equivalence without dropout: tests/test_multimodn_batched.py);
* ``av_digits``: MILES on AV digits (ResNet-10 encoders of base width 8 with the ImageNet stem,
  1,200 training rows, batch 64), as ``mfeat``.

The clock covers training only: each way gets the same K freshly built models (same seeds), built
before its clock starts; stacking them into one model is inside ``fit_many`` and is timed. The two ways
are interleaved (sequential, batched, sequential, ...) and the best of the repeats is
kept, so that load from other users of a shared machine hits both alike; wall-clock and process
CPU time are printed, one line per case and K. The MILES cases check that both ways
give the same per-epoch validation losses (MultiModN's equivalence, without dropout, is in
tests/test_multimodn_batched.py: with dropout the runs draw different masks).

    python bench/bench_batched.py [--quick] [--cases mfeat pbcseq transformer av_digits] [--ks 1 4 16 64] [--repeats 2]

``--quick``: K = 16 only, one repeat, one epoch per case (AV digits on 600 rows): under a minute on
a quiet 2-core CPU. ``--tiny`` (what tests/test_bench.py runs): as ``--quick`` but K = 2 and AV digits on
120 rows, seconds per case; its ratios say nothing about speed.
"""
from __future__ import annotations

import argparse
import dataclasses
import time
from dataclasses import dataclass
from typing import Callable

import torch

from mmrepro.core.data import load_dataset
from mmrepro.core.trainer import fit, fit_many
from mmrepro.papers.miles.scheduler import MILES
from mmrepro.papers.miles.setup import Arch, JointSetup, build_model
from mmrepro.papers.multimodn import benchmarks as B
from mmrepro.papers.multimodn import fit_multimodn as mmn_fit
from mmrepro.papers.multimodn.batched import fit_many_multimodn as mmn_fit_many


@dataclass
class Case:
    """``build(K)`` makes the K runs' fresh models (off the clock: both ways train the same models, and
    building them is not what stacking changes); ``sequential`` and ``batched`` train them."""
    name: str
    build: Callable[[int], list]
    sequential: Callable[[list], list]
    batched: Callable[[list], list]
    check: Callable[[list, list], float] | None


def miles_case(name: str, setup: JointSetup, arch: Arch, epochs: int, batch_size: int) -> Case:
    kw = dict(epochs=epochs, batch_size=batch_size, metrics=("accuracy",), select_metric="accuracy",
              u_metric="accuracy", device="cpu", progress=False)
    taus, mus = (0.0, 0.05, 0.1, 0.2, 0.3), (0.1, 0.25, 0.5, 0.75)

    def run(k: int) -> tuple[torch.nn.Module, MILES, float]:
        torch.manual_seed(k)
        return (build_model(setup.data, "concat", arch), MILES(taus[k % 5], mus[k % 4]), 1e-3 * (1 + k % 3))

    def sequential(runs: list) -> list:
        return [fit(m, setup.train, setup.val, method=meth, lr=lr, seed=k, **kw)
                for k, (m, meth, lr) in enumerate(runs)]

    def batched(runs: list) -> list:
        models, methods, lrs = zip(*runs)
        return fit_many(list(models), setup.train, setup.val, methods=list(methods), lrs=list(lrs),
                        seeds=list(range(len(runs))), **kw)

    def check(a: list, b: list) -> float:
        return max(abs(ha["val/fusion/loss"] - hb["val/fusion/loss"])
                   for ra, rb in zip(a, b) for ha, hb in zip(ra.history, rb.history))

    return Case(name, lambda K: [run(k) for k in range(K)], sequential, batched, check)


def pbcseq_case(epochs: int) -> Case:
    bench = B.BENCHMARKS["pbcseq"]
    ds = B.load_benchmark(bench, B.fold_runs(5, 1, 0)[0])
    train, val = ds.split("train"), ds.split("val")

    def model(k: int):
        torch.manual_seed(k)
        return B.make_model("MultiModN", ds, bench, list(bench.tasks))

    def sequential(models: list) -> list:
        return [mmn_fit(m, train, val, epochs=epochs, batch_size=bench.batch_size, seed=k)
                for k, m in enumerate(models)]

    def batched(models: list) -> list:
        return mmn_fit_many(models, train, val, seeds=list(range(len(models))), epochs=epochs,
                            batch_size=bench.batch_size)

    return Case("MultiModN / pbcseq", lambda K: [model(k) for k in range(K)], sequential, batched, None)


def transformer_case(epochs: int) -> Case:
    bench = dataclasses.replace(B.BENCHMARKS["nyc_weather"], time_every=3)
    ds = B.load_benchmark(bench, B.fold_runs(5, 1, 0)[0])
    train, val = ds.split("train"), ds.split("val")
    kw = dict(epochs=epochs, batch_size=bench.transformer.batch_size, select_tasks=bench.select)

    def model(k: int):
        torch.manual_seed(k)
        return B.make_model("Transformer", ds, bench, list(bench.tasks))

    def sequential(models: list) -> list:
        return [mmn_fit(m, train, val, seed=k, **kw) for k, m in enumerate(models)]

    def batched(models: list) -> list:
        return mmn_fit_many(models, train, val, seeds=list(range(len(models))), **kw)

    return Case("E.4 transformer / NYC weather", lambda K: [model(k) for k in range(K)], sequential, batched, None)


def timed(fn: Callable[[], list]) -> tuple[float, float, list]:
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - t0, time.process_time() - c0, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="K = 16 only, one repeat, one epoch per case")
    ap.add_argument("--cases", nargs="+", default=["mfeat", "pbcseq", "transformer", "av_digits"],
                    choices=["mfeat", "pbcseq", "transformer", "av_digits"])
    ap.add_argument("--ks", type=int, nargs="+", default=[1, 4, 16, 64])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--tiny", action="store_true", help="as --quick with K = 2 and 120 AV-digits rows (the tests')")
    args = ap.parse_args()
    args.quick = args.quick or args.tiny
    torch.set_num_threads(1)
    ks, repeats = ([16], 1) if args.quick else (args.ks, args.repeats)
    epochs = ({"mfeat": 1, "pbcseq": 1, "transformer": 1, "av_digits": 1} if args.quick
              else {"mfeat": 5, "pbcseq": 5, "transformer": 2, "av_digits": 2})
    cases = []
    if "mfeat" in args.cases:
        setup = JointSetup(load_dataset("mfeat", seed=0, views=["pix", "fou"]), Arch(), epochs["mfeat"], 128)
        cases.append(miles_case("MILES / Multiple Features (MLP)", setup, Arch(), epochs["mfeat"], 128))
    if "pbcseq" in args.cases:
        cases.append(pbcseq_case(epochs["pbcseq"]))
    if "transformer" in args.cases:
        cases.append(transformer_case(epochs["transformer"]))
    if "av_digits" in args.cases:
        arch = Arch(resnet_width=8)
        setup = JointSetup(load_dataset("av_digits", seed=0, audio_snr_db=5.0), arch, epochs["av_digits"], 64,
                           train_rows=(120 if args.tiny else 600) if args.quick else 1200)
        cases.append(miles_case("MILES / AV digits (ResNet-10, width 8)", setup, arch, epochs["av_digits"], 64))
    print(f"device=cpu threads=1 repeats={repeats} (interleaved, best kept); epochs {epochs}")
    for case in cases:
        for K in ([2] if args.tiny else ks):
            best = {"sequential": (float("inf"), 0.0), "batched": (float("inf"), 0.0)}
            out = {}
            for _ in range(repeats):
                for way, fn in (("sequential", case.sequential), ("batched", case.batched)):
                    runs = case.build(K)
                    wall, cpu, out[way] = timed(lambda: fn(runs))
                    best[way] = min(best[way], (wall, cpu))
            (sw, sc), (bw, bc) = best["sequential"], best["batched"]
            diff = "" if case.check is None else f"  max |d val loss| {case.check(out['sequential'], out['batched']):.1e}"
            print(f"{case.name:40s} K={K:3d}: sequential {sw:8.2f} s, batched {bw:8.2f} s -> {sw / bw:5.2f}x wall "
                  f"({sc / bc:5.2f}x CPU){diff}", flush=True)


if __name__ == "__main__":
    main()
