"""The MultiModN chapter's plan: what ``mmrepro plan multimodn`` counts. ``sections(params, device)`` turns the
chapter's resolved parameters into :class:`~mmrepro.runs.cost.Section` s, one per model kind and part of the
notebook that trains, counted from the constants the chapter iterates over and from its parameters.

The chapter trains every group of runs that share a configuration (model kind, tasks, setting) as stacked
models of at most :data:`~mmrepro.runs.executors.MAX_CHUNK` runs each
(:meth:`~mmrepro.papers.multimodn.studies.Repetitions.many`), so a section's cost probe trains one such stack
(its real model on real data, as many runs as one stack holds) and the section pays it once per stack and
epoch (``units``). A chapter that changes what it trains changes this count too (``mmrepro plan`` is only as
good as it)."""
from __future__ import annotations

import math
from typing import Any

import torch

from mmrepro.runs.cost import Cost, Section, epoch_seconds

Params = dict[str, Any]


def sections(P: Params, device: torch.device) -> list[Section]:
    import dataclasses

    from mmrepro.papers.multimodn import benchmarks as B
    from mmrepro.papers.multimodn.studies import Repetitions
    from mmrepro.runs.executors import MAX_CHUNK

    runs = B.fold_runs(P["n_folds"], P["n_inits"], P["seed"], P["n_repeats"])
    per_setting = {"MultiModN": len(runs), "P-Fusion": len(runs),
                   "Transformer": len([r for r in runs if r.init_index < P["transformer_inits"]])}
    bench = dict(B.BENCHMARKS)
    bench["nyc_weather"] = dataclasses.replace(bench["nyc_weather"], time_every=P["weather_every"])
    epochs = {"MultiModN": P["epochs"], "P-Fusion": P["epochs"], "Transformer": P["transformer_epochs"]}
    probes: dict[tuple, Cost] = {}

    def stack_cost(b: B.Benchmark, kind: str, k: int) -> Cost:
        """One epoch of a stack of ``k`` single-task runs of ``kind`` on fold 0 (a multi-task model costs about as
        much: its extra decoders are small next to the encoders)."""
        if (b.name, kind, k) not in probes:
            def probe() -> float:
                obj = Repetitions(b, {"d": B.load_benchmark(b, runs[0])}, device)
                config = {"model": kind, "tasks": [b.tasks[0]], "select": None, "data": "d", "setting": {}}

                def train(n_epochs: int) -> None:
                    obj.many([(dict(config, epochs=n_epochs), seed) for seed in range(k)])

                return epoch_seconds(train)

            probes[(b.name, kind, k)] = Cost(f"{b.name} {kind}, {k} runs stacked", probe)
        return probes[(b.name, kind, k)]

    def section(name: str, b: B.Benchmark, kind: str, groups: int, runs_per_group: int) -> Section:
        stacks = math.ceil(runs_per_group / MAX_CHUNK)
        k = math.ceil(runs_per_group / stacks)
        return Section(name, groups * runs_per_group, epochs[kind], stack_cost(b, kind, k), units=groups * stacks)

    out = []
    for b in bench.values():
        multi = 1 if len(b.tasks) > 1 else 0
        variants = 1 if b.name == "titanic" else 0  # the notebook's run without the state-change penalty
        for kind in B.MODEL_KINDS:
            groups = len(b.tasks) + (multi if kind != "P-Fusion" else 0) + (variants if kind == "MultiModN" else 0)
            out.append(section(f"Experiments 1-2, E.4: {b.name}, {kind}", b, kind, groups, per_setting[kind]))
    settings = 1 + 2 * (len(P["mnar_rates"]) - 1)  # rate 0 once; MNAR and MAR for every other rate
    for kind in ("MultiModN", "P-Fusion"):  # one group: the same model on every fold and missingness pattern
        out.append(section(f"Experiment 4: pbc missingness, {kind}", bench["pbc"], kind, 1,
                           settings * per_setting[kind]))
    centre = bench["pbcseq"]
    sweep = 1 + sum(v != getattr(centre, p) for p, values in P["sensitivity_grid"].items() for v in values)
    fig9 = len(B.fold_runs(P["n_folds"], P["sensitivity_inits"], P["seed"], P["n_repeats"]))
    out.append(section("Figure 9: pbcseq sensitivity, MultiModN", centre, "MultiModN", sweep, fig9))
    return out
