"""Knowing the cost before paying it: the pieces of ``mmrepro plan``.

A paper's plan (``mmrepro/papers/<paper>/plan.py``) turns its chapter's resolved parameters into
:class:`Section` s: how many training runs each section of the notebook trains and for how many
epochs, and a :class:`Cost` that measures, on this device, the seconds of one epoch of one run (a
short calibration: a few epochs of the real model on a slice of the real training rows, scaled to
all rows). :func:`estimate` prices the sections and :func:`report` prints them; the command itself,
which resolves a notebook's parameters without a kernel, is :mod:`mmrepro.publish.planning`.

Chapters train runs that share a configuration as one stacked model (``fit_many``, up to
:data:`~mmrepro.runs.executors.MAX_CHUNK` runs at once). A plan prices such a section as trained with
:func:`stacked_units`: each stack of K runs costs K one-run epochs divided by the speed-up that stacking K runs of
that kind of model measured in ``bench/bench_batched.py`` (:data:`BATCHING`, :func:`batching_speedup`).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

PROBE_ROWS = 256  # training rows a calibration run uses (scaled to the full training set)

# Speed-up of K runs trained as one stacked model over K runs one after another (sequential wall seconds /
# stacked wall seconds), per kind of model, measured on the 2-core CPU (one torch thread, shared with other
# jobs) by `python bench/bench_batched.py --ks 1 4 16 --repeats 1` at commit 5de76c1 (bench/README.md, "Batched
# training"): "mlp": MILES on Multiple Features (MLP encoders, 5 epochs), "resnet": MILES on AV digits (ResNet-10
# encoders of width 8, 2 epochs), "multimodn": MultiModN on pbcseq (fit_many_multimodn, 5 epochs). K = 1 is 1 by
# definition (a stack of one run is that run; measured 0.90, 1.01, 0.78). Between measured K the speed-up is
# interpolated linearly in log K; above the largest measured K it is held at that K's value.
BATCHING: dict[str, dict[int, float]] = {
    "mlp": {1: 1.0, 4: 2.21, 16: 4.10},
    "resnet": {1: 1.0, 4: 2.30, 16: 2.90},
    "multimodn": {1: 1.0, 4: 3.12, 16: 4.13},
}


def batching_speedup(kind: str | None, k: int) -> float:
    """How much faster ``k`` runs of ``kind`` train stacked than one after another (:data:`BATCHING`); 1 for
    ``k`` = 1 or an unmeasured ``kind`` (None: no credit)."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k (runs per stack) must be an int >= 1, got {k!r}")
    if kind is None or k == 1:
        return 1.0
    if kind not in BATCHING:
        raise ValueError(f"no batching measurement for kind {kind!r}; measured: {sorted(BATCHING)} (or None)")
    points = sorted(BATCHING[kind].items())
    if k >= points[-1][0]:
        return points[-1][1]
    for (k0, r0), (k1, r1) in zip(points, points[1:]):
        if k0 <= k <= k1:
            return r0 + (r1 - r0) * (math.log(k) - math.log(k0)) / (math.log(k1) - math.log(k0))
    raise AssertionError("unreachable: the table starts at K = 1")


def stacked_units(stacks: Iterable[int], kind: str | None) -> float:
    """One-run epochs paid per epoch by stacks of the given sizes (runs trained at once) of ``kind``:
    the sum of K / :func:`batching_speedup` (kind, K); an empty stack (K = 0) costs nothing. Stacks of one run
    each cost what the runs cost alone."""
    return sum(k / batching_speedup(kind, k) for k in stacks if k != 0)


def stacks_of(n: int, chunk: int | None = None) -> list[int]:
    """The stack sizes :func:`mmrepro.runs.jobs.run_jobs` trains ``n`` jobs of one group in: chunks of at most
    ``chunk`` (:data:`~mmrepro.runs.executors.MAX_CHUNK`)."""
    if chunk is None:
        from mmrepro.runs.executors import MAX_CHUNK

        chunk = MAX_CHUNK
    return [min(chunk, n - lo) for lo in range(0, n, chunk)]


@dataclass(frozen=True)
class Cost:
    """What one run costs, measured on this device: ``probe()`` returns the seconds of one epoch, or (seconds
    of one epoch, seconds each run pays once whatever its epochs: construction, final evaluation, refitted
    read-outs; :func:`epoch_and_run_seconds`)."""

    name: str
    probe: Callable[[], float | tuple[float, float]] = field(compare=False, repr=False)


@dataclass(frozen=True)
class Section:
    """``runs`` training runs of ``epochs`` epochs (at most: early stopping may end them sooner).

    ``units`` is how many times one measured ``cost`` epoch is paid per epoch: the runs for
    sections that train run after run (the default), 1 for a section that trains all its runs as
    one vectorised batch, :func:`stacked_units` for runs trained as stacked models."""

    name: str
    runs: int
    epochs: int
    cost: Cost | None
    units: float | None = None

    @property
    def total_epochs(self) -> int:
        return self.runs * self.epochs


# ----------------------------------------------------------------------------- measuring

def timed(fn: Callable[[], Any]) -> float:
    """Seconds of one call. With CUDA, wall seconds (the device synchronised after the call); on a
    CPU, the process's CPU seconds per torch thread, so that other programs sharing the machine do
    not inflate the estimate (what the call takes on the same machine when it is otherwise idle)."""
    import torch

    if torch.cuda.is_available():
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        return time.perf_counter() - start
    start = time.process_time()
    fn()
    return (time.process_time() - start) / torch.get_num_threads()


def epoch_seconds(train: Callable[[int], Any], scale: float = 1.0, epochs: int = 1) -> float:
    """Seconds of one epoch: ``train(epochs)`` timed after a one-epoch warm-up, divided by
    ``epochs`` and multiplied by ``scale`` (full rows / probed rows). Model construction and the
    final evaluation are inside the timing, so the figure is slightly high."""
    train(1)
    return timed(lambda: train(epochs)) / epochs * scale


def epoch_and_run_seconds(train: Callable[[int], Any], scale: float = 1.0, epochs: int = 8) -> tuple[float, float]:
    """(seconds of one epoch, seconds a run pays once), after a one-epoch warm-up: the epoch from the
    difference of ``train(1 + epochs)`` and ``train(1)`` (at least a tenth of ``train(1)``), multiplied by
    ``scale`` (full rows / probed rows); the rest of ``train(1)`` is the run's fixed cost, not scaled (the
    probe evaluates on the whole validation and test splits, as the full run does)."""
    train(1)
    base = timed(lambda: train(1))
    epoch = max((timed(lambda: train(1 + epochs)) - base) / epochs, 0.1 * base)
    return epoch * scale, max(base - epoch, 0.0)


def row_scale(n_full: int, n_probe: int, n_val: int = 0) -> float:
    """Scale from a probe on ``n_probe`` training rows to ``n_full`` (validation rows stay whole)."""
    return (n_full + n_val) / max(1, n_probe + n_val)


# ----------------------------------------------------------------------------- estimating

@dataclass
class Estimate:
    """A plan with its calibration: seconds per epoch of each cost, and the total."""

    notebook: str
    params: dict[str, Any]
    device: str
    sections: list[Section]
    per_epoch: dict[str, float]
    calibration_s: float
    #: seconds each run of a cost pays once (its probe's second value; absent: 0)
    per_run: dict[str, float] = field(default_factory=dict)

    @property
    def calibrated(self) -> bool:
        return bool(self.per_epoch)

    def seconds(self, s: Section) -> float:
        if s.cost is None or s.cost.name not in self.per_epoch:
            return 0.0
        return ((s.runs if s.units is None else s.units) * s.epochs * self.per_epoch[s.cost.name]
                + s.runs * self.per_run.get(s.cost.name, 0.0))

    @property
    def total_s(self) -> float:
        return sum(self.seconds(s) for s in self.sections)

    def rows(self) -> list[dict[str, Any]]:
        out = [{"section": s.name, "runs": s.runs, "epochs/run": s.epochs, "epochs": s.total_epochs,
                "s/epoch": self.per_epoch.get(s.cost.name) if s.cost else None, "estimate_s": self.seconds(s)}
               for s in self.sections]
        out.append({"section": "total", "runs": sum(s.runs for s in self.sections), "epochs/run": None,
                    "epochs": sum(s.total_epochs for s in self.sections), "s/epoch": None,
                    "estimate_s": self.total_s})
        return out


def estimate(notebook: str, params: dict[str, Any], sections: list[Section], device: str,
             calibrate: bool = True) -> Estimate:
    """Measure every distinct cost of ``sections`` once (its probe) and price the plan; without
    ``calibrate`` only the runs and epochs are counted."""
    start = time.perf_counter()
    per_epoch: dict[str, float] = {}
    per_run: dict[str, float] = {}
    for s in sections if calibrate else []:
        if s.cost is not None and s.cost.name not in per_epoch and s.runs and s.epochs:
            measured = s.cost.probe()
            per_epoch[s.cost.name], per_run[s.cost.name] = measured if isinstance(measured, tuple) else (measured, 0.0)
    return Estimate(notebook, params, device, sections, per_epoch, time.perf_counter() - start, per_run)


def duration(seconds: float) -> str:
    """3 s, 4.2 min, 1 h 05 min."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    h = int(seconds // 3600)
    return f"{h} h {round((seconds - 3600 * h) / 60):02d} min"


def report(e: Estimate, device_name: str) -> str:
    """The table ``mmrepro plan`` prints."""
    rows = e.rows()
    width = max(len(r["section"]) for r in rows)
    head = f"{'section':<{width}}  {'runs':>6}  {'epochs/run':>10}  {'epochs':>8}"
    if e.calibrated:
        head += f"  {'s/epoch':>8}  {'estimate':>10}"
    lines = [f"{e.notebook}, profile {e.params['profile']}, on {e.device} ({device_name})", head, "-" * len(head)]
    for r in rows:
        if r["section"] == "total":
            lines.append("-" * len(head))
        per = "" if r["s/epoch"] is None else (f"{r['s/epoch']:.3f}" if r["s/epoch"] < 10 else f"{r['s/epoch']:.1f}")
        line = f"{r['section']:<{width}}  {r['runs']:>6}  {'' if r['epochs/run'] is None else r['epochs/run']:>10}"
        line += f"  {r['epochs']:>8}"
        if e.calibrated:
            line += f"  {per:>8}  {duration(r['estimate_s']):>10}"
        lines.append(line)
    if not e.calibrated:
        return "\n".join(lines + ["not calibrated (--count-only): no time estimate"])
    clock = "wall time" if e.device.startswith("cuda") else "CPU time per torch thread, as on an idle machine"
    lines.append(f"calibration took {duration(e.calibration_s)}: each s/epoch is one epoch of one run of that "
                 f"section's model, timed here ({clock}) on up to {PROBE_ROWS} training rows and scaled to all "
                 "of them (for a vectorised section: one epoch of the whole batch; stacked runs are credited the "
                 "speed-up bench_batched.py measured for their kind and stack size). Epochs are upper bounds "
                 "where early stopping may end a run; runs found in the run cache are not trained again. A run's "
                 "evaluation counts only where its section's probe measures what a run pays once (MILES); data "
                 "loading, bootstraps and figures are not counted.")
    return "\n".join(lines)
