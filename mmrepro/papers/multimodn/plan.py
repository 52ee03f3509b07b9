"""The MultiModN chapter's plan: what ``mmrepro plan multimodn`` counts. ``sections(params, device)`` turns the chapter's resolved
parameters into :class:`~mmrepro.runs.cost.Section` s, one per part of the notebook that trains, counted from
the constants the chapter iterates over and from its parameters; each section's cost probe trains the
section's real model on a slice of its real data for a few epochs. A chapter that changes what it trains
changes this count too (``mmrepro plan`` is only as good as it)."""
from __future__ import annotations

from typing import Any

import torch

from mmrepro.runs.cost import Cost, Section, epoch_seconds

Params = dict[str, Any]


def sections(P: Params, device: torch.device) -> list[Section]:
    import dataclasses

    from mmrepro.papers.multimodn import benchmarks as B
    from mmrepro.papers.multimodn.studies import Repetitions

    reps = len(B.fold_runs(P["n_folds"], P["n_inits"], P["seed"]))
    bench = dict(B.BENCHMARKS)
    bench["nyc_weather"] = dataclasses.replace(bench["nyc_weather"], time_every=P["weather_every"])
    epochs = {"MultiModN": P["epochs"], "P-Fusion": P["epochs"], "Transformer": P["transformer_epochs"]}

    def cost(b: B.Benchmark, kind: str) -> Cost:
        """One epoch of a single-task model (a multi-task model costs about as much: its extra
        decoders are small next to the encoders)."""
        def probe() -> float:
            obj = Repetitions(b, {"d": B.load_benchmark(b, B.fold_runs(P["n_folds"], 1, P["seed"])[0])}, device)

            def train(n_epochs: int) -> None:
                obj({"model": kind, "tasks": [b.tasks[0]], "select": None, "data": "d", "epochs": n_epochs,
                     "setting": {}}, 0)

            return epoch_seconds(train)

        return Cost(f"{b.name} {kind}", probe)

    out = []
    for b in bench.values():
        multi = 1 if len(b.tasks) > 1 else 0
        variants = 1 if b.name == "titanic" else 0  # the notebook's run without the state-change penalty
        for kind in B.MODEL_KINDS:
            n = len(b.tasks) + (multi if kind != "P-Fusion" else 0) + (variants if kind == "MultiModN" else 0)
            out.append(Section(f"Experiments 1-2, E.4: {b.name}, {kind}", reps * n, epochs[kind], cost(b, kind)))
    settings = 1 + 2 * (len(P["mnar_rates"]) - 1)  # rate 0 once; MNAR and MAR for every other rate
    for kind in ("MultiModN", "P-Fusion"):
        out.append(Section(f"Experiment 4: pbc missingness, {kind}", reps * settings, P["epochs"],
                           cost(bench["pbc"], kind)))
    centre = bench["pbcseq"]
    sweep = 1 + sum(v != getattr(centre, p) for p, values in P["sensitivity_grid"].items() for v in values)
    out.append(Section("Figure 9: pbcseq sensitivity, MultiModN",
                       len(B.fold_runs(P["n_folds"], P["sensitivity_inits"], P["seed"])) * sweep, P["epochs"],
                       cost(centre, "MultiModN")))
    return out
