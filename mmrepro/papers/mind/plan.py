"""The MIND chapter's plan: what ``mmrepro plan mind`` counts. ``sections(params, device)`` turns the chapter's resolved
parameters into :class:`~mmrepro.runs.cost.Section` s, one per part of the notebook that trains, counted from
the constants the chapter iterates over and from its parameters; each section's cost probe trains the
section's real model on a slice of its real data for a few epochs. A chapter that changes what it trains
changes this count too (``mmrepro plan`` is only as good as it).

What the chapter trains: AV digits on one hold-out split (``test_recordings`` test recordings per speaker and
digit), the two PBC tasks on every fold of an ``n_folds``-fold partition (teachers and students refit per
fold). Per split or fold: every teacher candidate (architectures x learning rates, per modality), the
student's encoder trained as a teacher where it is not one of the teachers' architectures, a search of
``n_trials`` (``pbc_trials``) configurations and ``seeds`` (``pbc_seeds``) repeats for each trained method and
the same-size unimodal models, and, for the problems in ``ablations``, the ablation rows 3-5 and the six
ω settings over the seeds."""
from __future__ import annotations

from typing import Any, Callable

import torch

from mmrepro.runs.cost import PROBE_ROWS, Cost, Section, epoch_seconds, row_scale, stacked_units, stacks_of

Params = dict[str, Any]


def problem_settings(P: Params) -> dict[str, dict[str, Any]]:
    """Per problem: the folds it trains on and its training budget, from the chapter's parameters."""
    av = dict(folds=1, trials=P["n_trials"], seeds=P["seeds"], epochs=P["epochs"], teacher_epochs=P["teacher_epochs"],
              lrs=P["teacher_lrs"], batch=64)
    pbc = dict(folds=P["n_folds"], trials=P["pbc_trials"], seeds=P["pbc_seeds"], epochs=P["pbc_epochs"],
               teacher_epochs=P["pbc_teacher_epochs"], lrs=P["pbc_teacher_lrs"], batch=16)
    return {"av_digits": av, "pbc_death": pbc, "pbc_findings": pbc}


def sections(P: Params, device: torch.device) -> list[Section]:
    from mmrepro.core.trainer import fit
    from mmrepro.papers.mind.problems import arch_name, load_problem
    from mmrepro.papers.mind.students import ABLATION_METHODS, OMEGA_SETTINGS, STUDENT_METHODS, UNIMODAL

    options = {
        "av_digits": dict(paired_fraction=P["paired_fraction"], audio_snr_db=P["audio_snr_db"],
                          teacher_width=P["teacher_width"], student_width=P["width"],
                          test_recordings=P["test_recordings"]),
        "pbc_death": dict(paired_fraction=P["pbc_paired_fraction"], fold=0, n_folds=P["n_folds"]),
        "pbc_findings": dict(paired_fraction=P["pbc_paired_fraction"], fold=0, n_folds=P["n_folds"])}
    out = []
    for name, S in problem_settings(P).items():
        prob = load_problem(name, seed=P["seed"], **options[name])
        folds = S["folds"]
        each = f" x {folds} folds" if folds > 1 else ""
        kind = "resnet" if name == "av_digits" else None  # PBC's LSTM students: stacking not measured, no credit
        # per fold and method, a search stack of `trials` runs, then a stack of the `seeds` repeats
        selection = folds * (stacked_units([S["trials"]], kind) + stacked_units([S["seeds"]], kind))

        def fit_cost(label: str, build: Callable[[], Any], rows: Any, val: Any, prob=prob, batch=S["batch"]) -> Cost:
            def probe() -> float:
                sub = rows[:PROBE_ROWS]

                def train(epochs: int) -> None:
                    fit(build(), prob.rows(sub), prob.rows(val), task=prob.task, epochs=epochs, lr=1e-3,
                        batch_size=batch, select_metric=prob.select_metric, metrics=prob.report_metrics, seed=0,
                        device=device, progress=False)

                return epoch_seconds(train, row_scale(len(rows), len(sub), len(val)))

            return Cost(label, probe)

        for m in prob.modalities:
            specs = list(prob.teacher_specs[m])
            if prob.student_specs[m] not in specs:  # the student's encoder trained as the teachers are
                specs.append(prob.student_specs[m])
            for spec in specs:
                out.append(Section(f"{name}: teacher {m} {arch_name(spec)}{each}", folds * len(S["lrs"]),
                                   S["teacher_epochs"], fit_cost(f"{name} teacher {m} {spec}", lambda m=m, spec=spec,
                                                                 prob=prob: prob.teacher(m, spec),
                                                                 prob.unimodal[m]["train"], prob.unimodal[m]["val"]),
                                   units=folds * stacked_units([len(S["lrs"])], kind)))
        student = fit_cost(f"{name} student", lambda prob=prob: prob.student(), prob.paired["train"],
                           prob.paired["val"])
        per_selection = folds * (S["trials"] + S["seeds"])  # the search, then the selection repeated over the seeds
        searched = [m for m in STUDENT_METHODS if m != "ume"]
        out.append(Section(f"{name}: baselines ({len(searched)} methods){each}", len(searched) * per_selection,
                           S["epochs"], student, units=len(searched) * selection))
        out.append(Section(f"{name}: same-size unimodal models{each}", len(UNIMODAL) * per_selection, S["epochs"],
                           fit_cost(f"{name} unimodal", lambda prob=prob: prob.teacher(
                               prob.modalities[0], prob.student_specs[prob.modalities[0]]),
                               prob.paired["train"], prob.paired["val"]), units=len(UNIMODAL) * selection))
        if name in P["ablations"]:
            rows = [m for m in ABLATION_METHODS if m not in STUDENT_METHODS]
            out.append(Section(f"{name}: ablation I (rows 3-5){each}", len(rows) * per_selection, S["epochs"], student,
                               units=len(rows) * selection))
            out.append(Section(f"{name}: ablation II (omega){each}", folds * len(OMEGA_SETTINGS) * S["seeds"],
                               S["epochs"], student,
                               units=folds * stacked_units(stacks_of(len(OMEGA_SETTINGS) * S["seeds"]), kind)))
    return out
