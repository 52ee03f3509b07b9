"""Batched training of the chapter's models: K runs of one architecture -- MultiModN, P-Fusion or the E.4
transformer; different seeds (initialisations and batch orders) and learning rates -- trained as one
stacked model.

Run k follows :func:`mmrepro.papers.multimodn.fit_multimodn` with ``seed=seeds[k]``: the same batches in the same
order, Adam at its own rate with its own state, gradient-norm clipping of its own gradients, selection of
its own best validation epoch (its own checkpoint); without dropout, results agree within floating-point
error (tests/test_multimodn_batched.py). Dropout masks come from each run's own stream
(:class:`~mmrepro.core.models.stacked.RunStreams`), not from torch's global one as in ``fit``: a run
gives the same numbers whichever runs it is trained with (``fit_many_multimodn([model])`` alone included),
but not ``fit_multimodn``'s.
MultiModN's encoders and decoders are the stacked Linear / ReLU / Dropout chains of
:mod:`mmrepro.core.models.stacked` (:class:`StackedMultiModN`); the baselines are in
:mod:`mmrepro.papers.multimodn.batched_baselines`. Every input, mask and output carries the run axis first.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import torch
from torch import Tensor, nn

from mmrepro.core.models.fusion import leading
from mmrepro.core.models.stacked import RunCheckpoints, StackedSequential, chain_ops, run_dropout
from mmrepro.core.optim import RunOptimizer
from mmrepro.papers.multimodn.batched_baselines import StackedPFusion, StackedTransformer
from mmrepro.papers.multimodn.inputs import check_inputs
from mmrepro.papers.multimodn.model import MultiModN
from mmrepro.papers.multimodn.pfusion import PFusion
from mmrepro.papers.multimodn.runrows import RowTable, RunDraws, as_runs
from mmrepro.papers.multimodn.train import (
    MultiModNFit,
    _fields,
    check_settings,
    epoch_batches,
    prediction_pairs,
    selection_score,
)
from mmrepro.papers.multimodn.transformer import FusionTransformer

__all__ = ["StackedMultiModN", "fit_many_multimodn", "stack_runs"]


class StackedMultiModN(MultiModN):
    """K MultiModN runs of one architecture as one model: the state dict has the per-run keys with a
    leading K axis; inputs (K, N, F) or (K, N, T, F), ``present`` and ``lengths`` (K, N)."""

    def __init__(self, models: Sequence[MultiModN]) -> None:
        nn.Module.__init__(self)
        if not models or not all(type(m) is MultiModN for m in models):
            raise ValueError("StackedMultiModN stacks a non-empty list of MultiModN models (not P-Fusion)")
        first = models[0]
        same = ("n_features", "tasks", "sequence_modalities", "time_tasks", "state_size", "error_weight",
                "state_change_weight")
        diff = [a for a in same for m in models[1:] if getattr(m, a) != getattr(first, a)]
        if diff:
            raise ValueError(f"the runs do not share one MultiModN architecture (they differ in {sorted(set(diff))})")
        for a in same:
            setattr(self, a, getattr(first, a))
        self.runs = len(models)
        self.state0 = nn.Parameter(torch.stack([m.state0.detach() for m in models]))
        self.encoders = nn.ModuleDict({m: StackedSequential([md.encoders[m] for md in models]) for m in first.encoders})
        self.decoders = nn.ModuleDict({t: StackedSequential([md.decoders[t] for md in models]) for t in first.decoders})
        self.idle = torch.zeros(self.runs, dtype=torch.bool)
        self.draws: RunDraws | None = None  # set by the training loop: each run's dropout stream and real rows

    def _inputs(self, x: Mapping[str, Tensor], present: Mapping[str, Tensor] | None,
                lengths: Mapping[str, Tensor] | None, order: Sequence[str]
                ) -> tuple[int, int, dict[str, Tensor], dict[str, Tensor]]:
        """Shapes checked on run 0 (:func:`~mmrepro.papers.multimodn.inputs.check_inputs`); every run's
        presence masks and lengths (K, N)."""
        present, lengths = dict(present or {}), dict(lengths or {})
        one = lambda d: {m: v[0] for m, v in d.items()}  # noqa: E731
        n, n_times, _, _ = check_inputs(one(x), one(present), one(lengths), order, self.n_features,
                                        self.sequence_modalities)
        rows = next(iter(x.values())).shape[:2]
        dev = next(iter(x.values())).device
        masks = {m: present.get(m, torch.ones(rows, dtype=torch.bool, device=dev)) for m in x}
        lens = {m: lengths.get(m, torch.full(rows, n_times, dtype=torch.int64, device=dev))
                for m in x if m in self.sequence_modalities}
        sequence = [m for m in order if m in self.sequence_modalities]
        if self.training:
            # each run's last time point (0: a lone run would not call the sequence encoders at all)
            last = (torch.stack([lens[m].masked_fill(~masks[m], 0).amax(dim=-1) for m in sequence]).amax(dim=0)
                    if sequence else torch.zeros(rows[0], dtype=torch.int64, device=dev))
            self.idle, self._sequence = last == 0, sequence
            # the runs that take each step of MultiModN.forward's plan (static steps, then time-major)
            takes = (last > t for t in range(int(last.max()) if last.numel() else 0) for _ in sequence)
            self._steps = iter([None] * (len(order) - len(sequence)) + [r.tolist() for r in takes])
        return n, n_times, masks, lens

    def check_inputs(self, x: Mapping[str, Tensor], present: Mapping[str, Tensor] | None,
                     lengths: Mapping[str, Tensor] | None) -> None:
        """Shapes and finite present values of rows (N, ...) without a run axis (the training data)."""
        check_inputs(x, present, lengths, list(x), self.n_features, self.sequence_modalities)

    def _encoder_ops(self, m: str) -> list:
        ops = chain_ops(self.encoders[m], self.encoders[m].template, self.training)
        return [(self._step_dropout, *args) if fn is run_dropout else (fn, *args) for fn, *args in ops]

    def _step_dropout(self, h: Tensor, p: float, training: bool) -> Tensor:
        """Input dropout of one encoder step, drawn (from each run's own stream, for its real rows) by the
        runs that take the step alone too."""
        if not training or p == 0:
            return h
        if self.draws is None:
            raise RuntimeError("stacked runs train through fit_many_multimodn, which gives each run its dropout stream")
        return self.draws.dropout(h, p, training, next(self._steps))

    def frozen_params(self) -> list[tuple[list[nn.Parameter], Tensor]]:
        """The sequence encoders of runs whose last training batch had no time step (see
        :meth:`mmrepro.core.models.stacked.StackedMultimodalNet.frozen_params`)."""
        if not bool(self.idle.any()):
            return []
        return [([p for m in self._sequence for p in self.encoders[m].parameters()], self.idle)]


def _clip_per_run(params: Sequence[Tensor], max_norm: float) -> None:
    """``torch.nn.utils.clip_grad_norm_`` for each run's slice of ``params``: as torch, the 2-norm of the
    tensors' 2-norms, scaled by ``max_norm / (norm + 1e-6)`` where that is below 1 (reductions, no copies)."""
    grads = [p.grad for p in params if p.grad is not None]
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.flatten(1), dim=1) for g in grads]), dim=0)
    coef = (max_norm / (norm + 1e-6)).clamp(max=1.0)
    torch._foreach_mul_(grads, [leading(coef, g) for g in grads])


Trainable = MultiModN | PFusion | FusionTransformer


def stack_runs(models: Sequence[Trainable]) -> StackedMultiModN | StackedPFusion | StackedTransformer:
    """The K ``models`` (one architecture: all MultiModN, all P-Fusion or all transformers) as one stacked model."""
    kinds = {type(m) for m in models}
    for cls, stacked in ((MultiModN, StackedMultiModN), (PFusion, StackedPFusion), (FusionTransformer, StackedTransformer)):
        if kinds == {cls}:
            return stacked(models)
    raise ValueError(f"stacks runs of one kind (MultiModN, PFusion or FusionTransformer), got "
                     f"{sorted(k.__name__ for k in kinds) or 'no models'}")


def fit_many_multimodn(models: Sequence[Trainable], train: Any, val: Any | None = None, *, seeds: Sequence[int],
                       lrs: float | Sequence[float] = 1e-3, epochs: int = 100, batch_size: int = 16,
                       grad_clip: float | None = 1.0, device: str | torch.device = "cpu",
                       select_tasks: Sequence[str] | None = None) -> list[MultiModNFit]:
    """Train K ``models`` of one architecture (MultiModN, P-Fusion or the E.4 transformer) at once; run k is
    ``fit_multimodn(models[k], train[k], val[k], seed=seeds[k], lr=lrs[k], ...)`` (see
    :func:`mmrepro.papers.multimodn.fit_multimodn` for the arguments). ``train`` and ``val`` are one data object
    for every run or a list of one per run (e.g. the folds of a K-fold partition; row counts may differ, see
    :mod:`mmrepro.papers.multimodn.runrows`). Each model is trained in place and holds its selected parameters."""
    K = len(models)
    lrs = [float(lrs)] * K if isinstance(lrs, (int, float)) else [float(v) for v in lrs]
    if K < 1 or len(seeds) != K or len(lrs) != K:
        raise ValueError(f"need one seed and one learning rate per model: {K} models, {len(seeds)} seeds, "
                         f"{len(lrs)} learning rates")
    net = stack_runs(models)
    for lr, seed in zip(lrs, seeds):
        check_settings(epochs, batch_size, lr, seed, grad_clip, select_tasks, net.tasks)
    device = torch.device(device)
    net.to(device)
    fields = [_fields(t, device) for t in as_runs(train, K, "train")]
    counts = [int(next(iter(f[0].values())).shape[0]) for f in fields]
    if min(counts) == 0:
        raise ValueError(f"train has no rows for run(s) {[k for k, c in enumerate(counts) if c == 0]}: "
                         "pass non-empty training splits.")
    for x, present, lengths, _ in fields:  # every training row checked once; batches then check run 0's shapes
        net.check_inputs(x, present, lengths)
    rows = RowTable(fields)
    gens = [torch.Generator().manual_seed(int(s)) for s in seeds]  # batch orders, as fit_multimodn draws them
    net.draws = RunDraws(seeds, device)
    params = list(net.parameters())
    opt = RunOptimizer({"all": params}, lrs)
    kinds = {t: s.kind for t, s in net.tasks.items()}
    if val is not None:
        val_fields = [_fields(v, device) for v in as_runs(val, K, "val")]
        val_rows = RowTable(val_fields)
        val_counts = val_rows.counts
        vx, vp, vl, _ = val_rows.gather(val_rows.indices([torch.arange(c) for c in val_counts], max(val_counts)))
    histories: list[list[dict[str, float]]] = [[] for _ in range(K)]
    best = [(-math.inf, 0)] * K
    kept = RunCheckpoints(net)
    for epoch in range(1, epochs + 1):
        net.train()
        chunks = [epoch_batches(n, batch_size, g) for n, g in zip(counts, gens)]
        steps = max(len(c) for c in chunks)
        order = rows.indices([torch.cat(c) for c in chunks], steps * batch_size).to(device)
        total = torch.zeros(K, dtype=torch.float64, device=device)
        for j in range(steps):
            real = [max(0, min(batch_size, n - j * batch_size)) for n in counts]
            batch = order[:, j * batch_size:j * batch_size + max(real)]
            net.draws.rows = real
            loss = net.loss(*rows.gather(batch))
            opt.zero_grad()
            loss.sum().backward()
            if grad_clip is not None:
                _clip_per_run(params, grad_clip)
            idle = torch.tensor([r == 0 for r in real], device=device)
            opt.step(net.frozen_params() + ([(params, idle)] if bool(idle.any()) else []))
            total += loss.detach() * ~idle
        net.draws.rows = None
        rows_ = [{"epoch": epoch, "train_loss": t / len(c)} for t, c in zip(total.tolist(), chunks)]
        if val is not None:
            net.eval()
            with torch.no_grad():
                logits = net.predict(vx, vp, vl)
            improved = []
            for k, row in enumerate(rows_):
                pairs = prediction_pairs(net.tasks, {t: v[k, :val_counts[k]] for t, v in logits.items()},
                                         val_fields[k][3])
                row["val_score"] = selection_score(pairs, kinds, select_tasks)
                if row["val_score"] > best[k][0]:
                    best[k] = (row["val_score"], epoch)
                    improved.append(k)
            kept.keep(improved)
        for history, row in zip(histories, rows_):
            history.append(row)
    kept.keep([k for k in range(K) if val is None or best[k][1] == 0])  # no selection: the final parameters
    net.draws = None
    results = []
    for k, model in enumerate(models):
        model.to(device).load_state_dict(kept.state(k))
        results.append(MultiModNFit(epochs if val is None else best[k][1],
                                    math.nan if val is None else best[k][0], histories[k]))
    return results
