"""Training throughput: device-tensor batching (the trainer's) vs a per-sample DataLoader loop.

Model: ResNet-10 image encoder + 2-layer LSTM sequence encoder with MedFuse LSTM fusion and three
heads (MIND's student architecture, narrow by default so that it runs on a laptop CPU). Both loops
run the same optimisation step (Adam, MIND eq. 2 loss) over the same rows; only the way batches
are formed differs. Prints samples/s for both and their ratio, the batch-formation cost alone,
and a full ``fit`` (with its per-epoch evaluation and logging).

    python bench/bench_trainer.py [--width 16] [--n 2048] [--epochs 2] [--device auto] [--threads 1] [--repeats 3]

``--tiny`` (what tests/test_bench.py runs): width 4, 128 rows, one epoch, one repeat.
"""
from __future__ import annotations

import argparse
import time

import torch
from torch.utils.data import DataLoader, Dataset

from mmrepro.common.device import resolve_device
from mmrepro.core.data import MultimodalDataset, Task
from mmrepro.core.losses import Supervised
from mmrepro.core.models import LSTMEncoder, MultimodalNet, ResNetEncoder
from mmrepro.core.trainer import _bounds, _Rows, fit


def make_data(n: int, size: int = 28, steps: int = 24, feats: int = 8, n_classes: int = 10) -> MultimodalDataset:
    g = torch.Generator().manual_seed(0)
    y = torch.randint(n_classes, (n,), generator=g)
    img = torch.randn(n, 1, size, size, generator=g) + y.view(-1, 1, 1, 1) / n_classes
    seq = torch.randn(n, steps, feats, generator=g) + y.view(-1, 1, 1) / n_classes
    lengths = torch.randint(steps // 2, steps + 1, (n,), generator=g)
    ones = torch.ones(n, dtype=torch.bool)
    return MultimodalDataset("bench", {"img": img, "seq": seq}, {"seq": lengths}, {"img": ones, "seq": ones.clone()},
                             {"y": y}, {"y": Task("y", "multiclass", n_classes)}, {"train": torch.arange(n)})


def make_model(width: int, feats: int = 8, n_classes: int = 10) -> MultimodalNet:
    torch.manual_seed(0)
    enc = {"img": ResNetEncoder(10, 1, width), "seq": LSTMEncoder(feats, 4 * width, 2)}
    return MultimodalNet(enc, "multiclass", n_classes, "lstm", token_dim=4 * width, fusion_hidden=4 * width)


class PerSample(Dataset):
    """The plain way: one dict per row, batched by the DataLoader's default collate."""

    def __init__(self, data: MultimodalDataset) -> None:
        self.d = data

    def __len__(self) -> int:
        return self.d.n

    def __getitem__(self, i: int) -> dict:
        d = self.d
        return {"x": {m: v[i] for m, v in d.x.items()}, "present": {m: v[i] for m, v in d.present.items()},
                "lengths": {m: v[i] for m, v in d.lengths.items()}, "y": d.y["y"][i]}


def tensor_batches(rows: _Rows, batch_size: int, gen: torch.Generator):
    """The trainer's way: one permutation, each batch sliced from the rows already on the device."""
    order = torch.randperm(rows.n, generator=gen)
    for lo, hi in _bounds(rows.n, batch_size):
        yield rows.take(order[lo:hi])


def step(model, opt, objective, batch) -> None:
    out = model(batch.x, batch.present, batch.lengths)
    loss, _ = objective(model, batch, out)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def time_loop(batches, model, epochs: int, n: int, dev: torch.device) -> float:
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    objective = Supervised()
    model.to(dev).train()
    t0 = time.perf_counter()
    for _ in range(epochs):
        for b in batches():
            step(model, opt, objective, b)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return epochs * n / (time.perf_counter() - t0)


def time_batching(batches, n: int, dev: torch.device, epochs: int = 3) -> float:
    """Samples/s of forming batches only (no model), best epoch of ``epochs``."""
    best = 0.0
    for _ in range(epochs):
        t0 = time.perf_counter()
        for b in batches():
            b.y.sum()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        best = max(best, n / (time.perf_counter() - t0))
    return best


class _B:
    def __init__(self, d: dict, dev: torch.device) -> None:
        mv = lambda t: t.to(dev, non_blocking=True)  # noqa: E731
        self.x = {k: mv(v) for k, v in d["x"].items()}
        self.present = {k: mv(v) for k, v in d["present"].items()}
        self.lengths = {k: mv(v) for k, v in d["lengths"].items()}
        self.y = mv(d["y"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--n", type=int, default=2048)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--tiny", action="store_true", help="seconds: width 4, 128 rows, 1 epoch, 1 repeat")
    args = ap.parse_args()
    if args.tiny:
        args.width, args.n, args.epochs, args.repeats = 4, 128, 1, 1
    torch.set_num_threads(args.threads)
    dev = resolve_device(args.device)
    data = make_data(args.n)
    rows = _Rows(data, "y", dev)
    gen = torch.Generator().manual_seed(0)
    loader = DataLoader(PerSample(data), batch_size=args.batch_size, shuffle=True, generator=gen,
                        pin_memory=dev.type == "cuda")
    # warm-up (allocator, kernels), then interleaved repeats; best of each (robust to a busy machine)
    time_loop(lambda: [next(iter(tensor_batches(rows, args.batch_size, gen)))], make_model(args.width), 1, 1, dev)
    fast, slow = 0.0, 0.0
    for _ in range(args.repeats):
        fast = max(fast, time_loop(lambda: tensor_batches(rows, args.batch_size, gen), make_model(args.width),
                                   args.epochs, args.n, dev))
        slow = max(slow, time_loop(lambda: (_B(b, dev) for b in loader), make_model(args.width), args.epochs,
                                   args.n, dev))
    fetch_fast = time_batching(lambda: tensor_batches(rows, args.batch_size, gen), args.n, dev)
    fetch_slow = time_batching(lambda: (_B(b, dev) for b in loader), args.n, dev)
    t0 = time.perf_counter()
    fit(make_model(args.width), data, epochs=args.epochs, batch_size=args.batch_size, device=dev, progress=False)
    full = args.epochs * args.n / (time.perf_counter() - t0)
    print(f"device={dev} width={args.width} n={args.n} batch={args.batch_size} epochs={args.epochs} "
          f"threads={args.threads} best of {args.repeats}")
    print(f"device-tensor batching : {fast:8.1f} samples/s")
    print(f"DataLoader (per sample): {slow:8.1f} samples/s")
    print(f"fit() incl. evaluation : {full:8.1f} samples/s")
    print(f"ratio tensor/DataLoader: {fast / slow:.2f}x (training)")
    print(f"batch formation alone  : {fetch_fast:10.0f} vs {fetch_slow:.0f} samples/s, "
          f"ratio {fetch_fast / fetch_slow:.1f}x")


if __name__ == "__main__":
    main()
