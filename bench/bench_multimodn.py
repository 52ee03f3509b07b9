"""Benchmark: MultiModN epoch time, per-sample masking in mini-batches vs batch-size-1 skipping.

The reference implementation skips an encoder for a whole batch when any row is NaN, so per-sample
skipping there needs batch size 1 (its Titanic missingness pipeline).  ``mmrepro.papers.multimodn`` masks
per sample inside a batch.  Both sides train the same model (time-series mode on pbcseq: static +
signs + up to 16 lab visits; the 106 non-trial patients lack signs and labs) with Adam and
gradient clipping; the batch-1 side encodes only each patient's present modalities and visits.
Before timing, the two ways must give the same predictions for every patient.
The speed-up is bounded by the ratio of sequential encoder calls: a mini-batch runs every time
point up to its longest patient, while batch size 1 runs each patient's own visits only, so it grows
with the batch size.  ``fit_multimodn(bucket_by_length=True)`` (batches of patients with similar series
length, batch order shuffled; off by default) shortens each batch's time loop; both numbers are
printed, masking alone and masking + bucketing.
Run: .venv/bin/python bench/bench_multimodn.py [--epochs 7 --batch-sizes 16 32 --data pbc|synthetic]
(``--tiny``: one epoch at batch 16, what tests/test_bench.py runs.)
"""
from __future__ import annotations

import argparse
import statistics
import time
from types import SimpleNamespace

import torch
from torch import nn

from mmrepro.papers.multimodn import MultiModN, fit_multimodn


def pbc_data(seed: int) -> SimpleNamespace:
    from mmrepro.core.data import load_dataset

    ds = load_dataset("pbc", seed=seed, labs="series", history_years=15).split("train")
    y = {t: ds.y[t] for t in ("death_5y", "stage")}
    return SimpleNamespace(x=ds.x, present=ds.present, lengths=ds.lengths, y=y,
                           tasks={t: ds.tasks[t] for t in y})


def synthetic_data(seed: int, n: int = 300, steps: int = 16) -> SimpleNamespace:
    """pbcseq-shaped: 4 static + 4 signs features, up to 16 visits of 8 labs, 25% without labs/signs."""
    g = torch.Generator().manual_seed(seed)
    trial = torch.rand(n, generator=g) > 0.25
    x = {"static": torch.randn(n, 4, generator=g), "signs": torch.randn(n, 4, generator=g),
         "labs": torch.randn(n, steps, 8, generator=g)}
    lengths = {"labs": torch.where(trial, torch.randint(1, steps + 1, (n,), generator=g), 0)}
    present = {"static": torch.ones(n, dtype=torch.bool), "signs": trial, "labs": trial}
    for m in ("signs", "labs"):
        x[m][~trial] = float("nan")
    y = {"death_5y": (torch.rand(n, generator=g) < 0.3).float(), "stage": torch.randint(0, 4, (n,), generator=g)}
    return SimpleNamespace(x=x, present=present, lengths=lengths, y=y,
                           tasks={"death_5y": ("binary", 1), "stage": ("multiclass", 4)})


def make_model(data: SimpleNamespace, seed: int) -> MultiModN:
    torch.manual_seed(seed)
    features = {m: v.shape[-1] for m, v in data.x.items()}
    return MultiModN(features, data.tasks, sequence_modalities=list(data.lengths), state_size=50, hidden=32,
                     dropout=0.2)


def per_sample(data: SimpleNamespace, i: int) -> tuple[dict, dict, list[str]]:
    """Patient ``i`` alone: its present modalities and its valid visits only."""
    order = [m for m in data.x if bool(data.present[m][i]) and (m not in data.lengths or int(data.lengths[m][i]) > 0)]
    x = {m: data.x[m][i:i + 1, :int(data.lengths[m][i])] if m in data.lengths else data.x[m][i:i + 1] for m in order}
    return x, {t: v[i:i + 1] for t, v in data.y.items()}, order


def batch1_epoch(model: MultiModN, data: SimpleNamespace, optimiser: torch.optim.Optimizer, gen: torch.Generator) -> None:
    """One epoch the reference way: batch size 1, skipped encoders never called (same loop as ``fit``)."""
    model.train()
    params = list(model.parameters())
    for i in torch.randperm(len(data.y["death_5y"]), generator=gen).tolist():
        x, y, order = per_sample(data, i)
        loss = model.loss(x, None, None, y, order=order)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(params, 1.0)
        optimiser.step()


@torch.no_grad()
def check_same_predictions(model: MultiModN, data: SimpleNamespace) -> float:
    model.eval()
    batched = model.predict(data.x, data.present, data.lengths)
    worst = 0.0
    for i in range(len(data.y["death_5y"])):
        x, _, order = per_sample(data, i)
        alone = model.predict(x, order=order)
        worst = max(worst, max(float((alone[t][0] - batched[t][i]).abs().max()) for t in batched))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=7)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 32])
    parser.add_argument("--data", choices=["pbc", "synthetic"], default="pbc")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tiny", action="store_true", help="seconds: one epoch at batch 16 (the tests')")
    args = parser.parse_args()
    if args.tiny:
        args.epochs, args.batch_sizes = 1, [16]
    torch.set_num_threads(1)

    data = pbc_data(args.seed) if args.data == "pbc" else synthetic_data(args.seed)
    n = len(data.y["death_5y"])
    steps = next(iter(data.x[m] for m in data.lengths)).shape[1]
    print(f"data={args.data}: {n} training patients, up to {steps} visits, "
          f"modalities { {m: tuple(v.shape[1:]) for m, v in data.x.items()} }, "
          f"present { {m: int(p.sum()) for m, p in data.present.items()} }")
    model = make_model(data, args.seed)
    diff = check_same_predictions(model, data)
    print(f"max |batched - per-patient| prediction difference: {diff:.2e}")
    if diff > 1e-4:
        raise SystemExit("per-sample masking and batch-1 skipping disagree: the comparison is void")

    # epochs of every way are interleaved, so a change of load on this shared machine hits all alike;
    # wall-clock and process CPU time are both reported (CPU time is what other jobs do not inflate)
    model = make_model(data, args.seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(args.seed)
    ways = [(bs, bucket) for bs in args.batch_sizes for bucket in (False, True)]
    models = {way: make_model(data, args.seed) for way in ways}
    times: dict = {way: [] for way in [None, *ways]}
    for epoch in range(args.epochs):
        t0, c0 = time.perf_counter(), time.process_time()
        batch1_epoch(model, data, optimiser, gen)
        times[None].append((time.perf_counter() - t0, time.process_time() - c0))
        for (batch_size, bucket), mmn in models.items():
            t0, c0 = time.perf_counter(), time.process_time()
            fit_multimodn(mmn, data, epochs=1, batch_size=batch_size, seed=args.seed + epoch, bucket_by_length=bucket)
            times[batch_size, bucket].append((time.perf_counter() - t0, time.process_time() - c0))
    med = {way: [statistics.median(col) for col in zip(*rows)] for way, rows in times.items()}
    s_wall, s_cpu = med[None]
    print(f"batch-size-1 skipping (reference way): {s_wall:.3f} s/epoch wall, {s_cpu:.3f} s CPU "
          f"(median of {args.epochs})")
    for (batch_size, bucket) in ways:
        wall, cpu = med[batch_size, bucket]
        how = "masking + length bucketing" if bucket else "masking alone            "
        print(f"per-sample {how}, batch {batch_size:3d}: {wall:.3f} s wall, {cpu:.3f} s CPU -> speed-up "
              f"{s_wall / wall:.1f}x wall, {s_cpu / cpu:.1f}x CPU (target >= 10x)")

if __name__ == "__main__":
    main()
