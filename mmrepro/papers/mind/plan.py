"""The MIND chapter's plan: what ``mmrepro plan mind`` counts. ``sections(params, device)`` turns the chapter's resolved
parameters into :class:`~mmrepro.runs.cost.Section` s, one per part of the notebook that trains, counted from
the constants the chapter iterates over and from its parameters; each section's cost probe trains the
section's real model on a slice of its real data for a few epochs. A chapter that changes what it trains
changes this count too (``mmrepro plan`` is only as good as it)."""
from __future__ import annotations

from typing import Any, Callable

import torch

from mmrepro.runs.cost import PROBE_ROWS, Cost, Section, epoch_seconds, row_scale, stacked_units, stacks_of

Params = dict[str, Any]


def sections(P: Params, device: torch.device) -> list[Section]:
    from mmrepro.core.trainer import fit
    from mmrepro.papers.mind.problems import arch_name, load_problem
    from mmrepro.papers.mind.students import ABLATION_METHODS, OMEGA_SETTINGS, STUDENT_METHODS, UNIMODAL

    problems = {
        "av_digits": dict(paired_fraction=P["paired_fraction"], audio_snr_db=P["audio_snr_db"],
                          teacher_width=P["teacher_width"], student_width=P["width"]),
        "pbc_death": dict(paired_fraction=P["pbc_paired_fraction"]),
        "pbc_findings": dict(paired_fraction=P["pbc_paired_fraction"])}
    out = []
    for name, options in problems.items():
        prob = load_problem(name, seed=P["seed"], **options)
        av = name == "av_digits"
        t_epochs, s_epochs = (P["teacher_epochs"], P["epochs"]) if av else (P["pbc_teacher_epochs"], P["pbc_epochs"])
        lrs = P["teacher_lrs"] if av else P["pbc_teacher_lrs"]
        batch = 64 if av else 16

        def fit_cost(label: str, build: Callable[[], Any], rows: Any, val: Any, prob=prob, batch=batch) -> Cost:
            def probe() -> float:
                sub = rows[:PROBE_ROWS]

                def train(epochs: int) -> None:
                    fit(build(), prob.rows(sub), prob.rows(val), task=prob.task, epochs=epochs, lr=1e-3,
                        batch_size=batch, select_metric=prob.select_metric, metrics=prob.report_metrics, seed=0,
                        device=device, progress=False)

                return epoch_seconds(train, row_scale(len(rows), len(sub), len(val)))

            return Cost(label, probe)

        for m in prob.modalities:
            for spec in prob.teacher_specs[m]:
                out.append(Section(f"{name}: teacher {m} {arch_name(spec)}", len(lrs), t_epochs,
                                   fit_cost(f"{name} teacher {m} {spec}", lambda m=m, spec=spec, prob=prob:
                                            prob.teacher(m, spec), prob.unimodal[m]["train"],
                                            prob.unimodal[m]["val"])))
        student = fit_cost(f"{name} student", lambda prob=prob: prob.student(), prob.paired["train"],
                           prob.paired["val"])
        per_selection = P["n_trials"] + P["seeds"]  # the search, then the selection repeated over the seeds
        # students train stacked per method (Students.group): a stack of the search's trials, one of the repeats;
        # PBC's LSTM students: stacking not measured (runs.cost.BATCHING), so no credit
        kind = "resnet" if av else None
        selection = stacked_units([P["n_trials"], P["seeds"]], kind)
        searched = [m for m in STUDENT_METHODS if m != "ume"]
        out.append(Section(f"{name}: baselines ({len(searched)} methods)", len(searched) * per_selection, s_epochs,
                           student, units=len(searched) * selection))
        out.append(Section(f"{name}: same-size unimodal models", len(UNIMODAL) * per_selection, s_epochs,
                           fit_cost(f"{name} unimodal", lambda prob=prob: prob.teacher(
                               prob.modalities[0], prob.student_specs[prob.modalities[0]]),
                               prob.paired["train"], prob.paired["val"]), units=len(UNIMODAL) * selection))
        if name in P["ablations"]:
            rows = [m for m in ABLATION_METHODS if m not in STUDENT_METHODS]
            out.append(Section(f"{name}: ablation I (rows 3-5)", len(rows) * per_selection, s_epochs, student,
                               units=len(rows) * selection))
            out.append(Section(f"{name}: ablation II (omega)", len(OMEGA_SETTINGS) * P["seeds"], s_epochs, student,
                               units=stacked_units(stacks_of(len(OMEGA_SETTINGS) * P["seeds"]), kind)))
    return out
