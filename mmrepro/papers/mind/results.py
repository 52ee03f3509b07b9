"""The MIND chapter's pipeline for one problem (MIND Sec. 4-5): on each split or fold, teachers, a random
search per method, the selected configurations repeated over seeds, the same-size unimodal models,
ablation I and the ω study (:class:`Fold`); over the folds, every method's test predictions pooled out of
fold (:class:`ProblemResults`), whose heads are scored with the intervals of
:mod:`mmrepro.papers.mind.evidence`. Tables and figures are :mod:`mmrepro.papers.mind.report`, the paper's
claims :mod:`mmrepro.papers.mind.findings`.

With one hold-out split (AV digits) there is one fold. With K folds (PBC), fold k's test rows are the
k-th part of a stratified partition; its teachers, searches and students see only the other parts, and a
seed's predictions for every row come from the fold that holds the row out."""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from mmrepro.core.metrics import score
from mmrepro.core.models import FUSION_HEAD
from mmrepro.core.stats import Evidence
from mmrepro.papers.mind import evidence as ev
from mmrepro.papers.mind.problems import Problem, arch_name
from mmrepro.papers.mind.students import (
    ABLATION_METHODS,
    OMEGA_SETTINGS,
    REPEAT_SEED,
    STUDENT_METHODS,
    UNIMODAL,
    OmegaRun,
    Search,
    Setup,
    Student,
    omega_study,
    param_counts,
    repeats,
    searches,
    teacher_predictions,
    ume_predictions,
)
from mmrepro.papers.mind.teachers import Teacher, check_k, train_teachers

OMEGA_LABELS = tuple(OMEGA_SETTINGS)
LEARNS_MARGIN = 3.0  # points: a unimodal head "learns" if no more than this below a same-size unimodal model
TEACHER = "teacher"  # the best-validated teacher of a modality, as a "method" of :meth:`ProblemResults.preds`
ENSEMBLE = "ensemble"  # the top-k teachers' averaged probabilities (eq. 4: what MIND distils), likewise
ALONE_ALL = "alone_all"  # the student's encoder trained as a teacher is, on all rows of its modality (likewise)
ONCE = (TEACHER, ENSEMBLE, ALONE_ALL, "ume")  # trained once per fold, not per seed


@dataclass
class Fold:
    """One split's (or fold's) training: its problem, teachers, searches, repeats and ω runs."""

    problem: Problem
    setup: Setup
    searches: dict[str, Search]
    runs: dict[str, list[Student]]             # trained method -> its selected configuration, one run per seed
    tests: dict[str, list[dict[str, np.ndarray]]]  # trained method -> per seed, each head's test predictions
    once: dict[str, dict[str, np.ndarray]]     # TEACHER / ENSEMBLE / ALONE_ALL / "ume" -> head -> test predictions
    ume_val: dict[str, dict[str, float]]       # head -> metric -> UME's validation value
    candidates: list[dict[str, Any]]           # every teacher candidate: rank, size, rows, validation, test predictions
    omega: list[OmegaRun]
    cpu_seconds: dict[str, float] = field(default_factory=dict)  # this process's CPU time: teachers, students


@dataclass
class ProblemResults:
    """Everything the chapter reports for one problem: its folds and every method's pooled test predictions."""

    folds: list[Fold]
    sizes: dict[str, Any]
    y_test: np.ndarray                         # targets of the pooled paired test rows
    test_rows: np.ndarray                      # their row indices in the dataset (each row once)
    draws: ev.Draws                            # the test-row resamples every comparison shares
    parameter: str = "seeds"                   # the notebook parameter that sets the seeds
    _scored: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def problem(self) -> Problem:
        return self.folds[0].problem

    @property
    def setup(self) -> Setup:
        return self.folds[0].setup

    @property
    def n_folds(self) -> int:
        return len(self.folds)

    @property
    def rows_floor(self) -> bool:
        """Every available row is a test row (K folds): more runs cannot add rows."""
        return self.n_folds > 1

    @property
    def has_ablations(self) -> bool:
        return all(m in self.folds[0].runs for m in ABLATION_METHODS)

    @property
    def n_seeds(self) -> int:
        return len(self.folds[0].tests["mind"])

    @property
    def searches(self) -> dict[str, list[Search]]:
        """Per trained method, its search on every fold."""
        return {m: [f.searches[m] for f in self.folds] for m in self.folds[0].searches}

    @property
    def runs(self) -> dict[str, list[Student]]:
        """Per trained method, its repeats on every fold (fold by fold, seed by seed)."""
        return {m: [s for f in self.folds for s in f.runs[m]] for m in self.folds[0].runs}

    @property
    def cpu_seconds(self) -> dict[str, float]:
        """This process's CPU time over the folds: training or loading the teachers, and the students."""
        return {k: sum(f.cpu_seconds.get(k, 0.0) for f in self.folds) for k in ("teachers", "students")}

    @property
    def omega(self) -> list[OmegaRun]:
        return [o for f in self.folds for o in f.omega]

    @property
    def ume_val(self) -> dict[str, dict[str, float]]:
        """UME's validation metrics, mean over the folds."""
        first = self.folds[0].ume_val
        return {h: {x: float(np.nanmean([f.ume_val[h][x] for f in self.folds])) for x in first[h]} for h in first}

    @property
    def teachers(self) -> list[dict[str, Any]]:
        """Every teacher candidate (architecture x learning rate) over the folds: its ranks, how often it was
        in the ensemble, its mean training rows and validation metrics, and its pooled test predictions."""
        out = []
        for c in self.folds[0].candidates:
            same = [next(d for d in f.candidates if d["id"] == c["id"]) for f in self.folds]
            out.append({**{k: c[k] for k in ("id", "modality", "model", "lr", "params")},
                        "ranks": [d["rank"] for d in same], "in_ensemble": sum(d["in_ensemble"] for d in same),
                        "n_train": round(float(np.mean([d["n_train"] for d in same]))),
                        "val": {x: float(np.mean([d["val"][x] for d in same])) for x in c["val"]},
                        "test": np.concatenate([d["test"] for d in same])})
        return out

    def best_teacher_val(self, modality: str) -> dict[str, float]:
        """Validation metrics of the best-validated teacher of ``modality``, mean over the folds."""
        best = [next(c["val"] for c in f.candidates if c["modality"] == modality and c["rank"] == 1) for f in self.folds]
        return {x: float(np.mean([b[x] for b in best])) for x in best[0]}

    def preds(self, method: str, head: str) -> list[np.ndarray]:
        """Pooled test predictions of ``head`` (``"fusion"`` or a modality) of ``method``: one array per seed
        for trained methods, one for UME, the best teacher of a modality (``method="teacher"``), its
        ensemble (``"ensemble"``) and the best student-size model on the teachers' rows (``"alone_all"``)."""
        if method in ONCE:
            return [np.concatenate([f.once[method][head] for f in self.folds])]
        return [np.concatenate([f.tests[method][j][head] for f in self.folds]) for j in range(self.n_seeds)]

    def score(self, method: str, head: str, metric: str) -> ev.Scored:
        """A head's test metric per seed, its seed mean and its row-bootstrap replicates
        (:func:`~mmrepro.papers.mind.evidence.scored`), computed once per problem: every table and claim reuses them."""
        key = (method, head, metric)
        if key not in self._scored:
            self._scored[key] = ev.scored(metric, self.y_test, self.preds(method, head), self.problem.kind, self.draws)
        return self._scored[key]

    def evidence(self, s: ev.Scored, difference: bool = False) -> Evidence:
        """The interval of a scored quantity with this problem's design (seeds parameter, rows floor)."""
        e = ev.evidence(s, len(self.y_test), difference=difference, parameter=self.parameter,
                        rows_floor=self.rows_floor)
        return e.scaled(100) if difference else e

    def metric(self, method: str, head: str, metric: str | None = None) -> Evidence:
        """Seed-mean test metric of a head with its interval (seeds and rows counted)."""
        return self.evidence(self.score(method, head, metric or self.problem.report_metrics[0]))

    def difference(self, a: tuple[str, str], b: tuple[str, str], metric: str | None = None) -> Evidence:
        """(method, head) ``a`` minus ``b`` on the test rows, in points, paired by seed and row
        (:func:`~mmrepro.papers.mind.evidence.evidence` of the paired difference, from the stored scores)."""
        metric = metric or self.problem.report_metrics[0]
        return self.evidence(self.score(*a, metric) - self.score(*b, metric), difference=True)

    def per_seed(self, method: str, head: str = FUSION_HEAD, metric: str | None = None) -> list[float]:
        metric = metric or self.problem.report_metrics[0]
        return [score(metric, self.y_test, p, self.problem.kind) for p in self.preds(method, head)]


def _val_metrics(problem: Problem, preds: dict[str, torch.Tensor], rows: torch.Tensor) -> dict[str, dict[str, float]]:
    y = problem.data.y[problem.task][rows].numpy()
    return {h: {m: float(score(m, y, p.numpy(), problem.kind)) for m in problem.report_metrics}
            for h, p in preds.items()}


def student_size_teachers(problem: Problem, teachers: dict[str, list[Teacher]], lrs: Sequence[float], **options
                          ) -> dict[str, list[Teacher]]:
    """The student's encoder of each modality trained as the teachers are (their learning rates, epochs and
    rows), best first: where the student's encoder is one of the teachers' architectures (PBC, as in the
    paper), those teachers themselves; else trained (:func:`train_teachers`)."""
    out = {m: [t for t in teachers[m] if t.spec == problem.student_specs[m]] for m in problem.modalities}
    missing = [m for m, ts in out.items() if not ts]
    if missing:
        sized = dataclasses.replace(problem, modalities=tuple(missing),
                                    teacher_specs={m: [problem.student_specs[m]] for m in missing})
        out.update(train_teachers(sized, lrs, **options))
    return out


def run_fold(problem: Problem, *, teacher_lrs: Sequence[float], teacher_epochs: int, epochs: int, n_trials: int,
             n_seeds: int, omega_epochs: int, seed: int = 0, device: str | torch.device = "cpu", k: int = 3,
             batch_size: int = 64, lr_range: Sequence[float] = (1e-4, 1e-2),
             omega_range: Sequence[float] = (0.1, 10.0), patience: int | None = None,
             teacher_patience: int | None = None, ablations: bool = True, cache: bool = True,
             executor: str = "local") -> Fold:
    """One split's (or fold's) training. Teachers (cached) on the split's training rows, and the student's
    encoders trained the same way (to tell what the teachers gain from data from what they gain from size);
    a random search of ``n_trials`` configurations for every trained method, the same-size unimodal models
    and (``ablations``) the ablation rows 3-5, each selected on validation; every selected configuration
    trained again with the same ``n_seeds`` seeds; (``ablations``) the ω study with those seeds at MIND's
    selected learning rate. Students train through :func:`mmrepro.runs.jobs.run_jobs` on ``executor``
    ("local" or "ray"), finished runs from the run cache. Test predictions are taken once, at the end."""
    check_k(k, {m: len(specs) * len(teacher_lrs) for m, specs in problem.teacher_specs.items()})  # before training
    options = dict(epochs=teacher_epochs, batch_size=batch_size, patience=teacher_patience, seed=seed, device=device,
                   cache=cache)
    started = time.process_time()
    teachers = train_teachers(problem, teacher_lrs, **options)
    alone_all = student_size_teachers(problem, teachers, teacher_lrs, **options)
    taught = time.process_time()
    setup = Setup(problem, teachers, k=k, epochs=epochs, batch_size=batch_size, patience=patience, device=device)
    test_rows, val_rows = problem.paired["test"], problem.paired["val"]
    methods = list(dict.fromkeys([m for m in STUDENT_METHODS + (ABLATION_METHODS if ablations else ()) if m != "ume"]
                                 + list(UNIMODAL)))
    found = searches(setup, methods, n_trials, seed, lr_range, omega_range, executor)
    seeds = [seed + REPEAT_SEED + j for j in range(n_seeds)]
    runs = repeats(setup, {m: s.best_hp for m, s in found.items()}, seeds, executor)
    omega = omega_study(setup, found["mind"].best_hp["lr"], seeds, omega_epochs, executor=executor) if ablations else []
    tests = {m: [s.evaluate_test() for s in students] for m, students in runs.items()}  # the one look at test
    predict = lambda t: teacher_predictions(t, problem, test_rows).numpy()  # noqa: E731
    once = {"ume": {h: p.numpy() for h, p in ume_predictions(setup, test_rows).items()},
            TEACHER: {m: predict(ts[0]) for m, ts in teachers.items()},
            ENSEMBLE: {m: np.mean([predict(t) for t in ts[:k]], axis=0) for m, ts in teachers.items()},
            ALONE_ALL: {m: predict(ts[0]) for m, ts in alone_all.items()}}
    ume_val = _val_metrics(problem, ume_predictions(setup, val_rows), val_rows)
    for o in omega:
        o.fold = problem.fold or 0
    cpu = {"teachers": taught - started, "students": time.process_time() - taught}
    return Fold(problem, setup, found, runs, tests, once, ume_val, _candidates(problem, teachers, k), omega, cpu)


def run_problem(problems: Problem | Sequence[Problem], *, n_boot: int, seed: int = 0, parameter: str = "seeds",
                **options: Any) -> ProblemResults:
    """:func:`run_fold` on one split or on every fold of a partition (``problems``: one :class:`Problem`
    per fold, their test rows disjoint), the test predictions pooled out of fold; ``parameter`` names the
    notebook parameter that sets the seeds (for the claims' runs-to-decide)."""
    problems = [problems] if isinstance(problems, Problem) else list(problems)
    rows = torch.cat([p.paired["test"] for p in problems])
    if len(torch.unique(rows)) != len(rows):
        raise ValueError("the folds' test rows overlap: pass the folds of one partition")
    folds = [run_fold(p, seed=seed, **options) for p in problems]
    y = np.concatenate([p.data.y[p.task][p.paired["test"]].numpy() for p in problems])
    return ProblemResults(folds, param_counts(folds[0].setup), y, rows.numpy(), ev.Draws.make(len(y), n_boot, seed),
                          parameter)


def _candidates(problem: Problem, trained: dict[str, list[Teacher]], k: int) -> list[dict[str, Any]]:
    """Every candidate of :func:`train_teachers`, best first per modality: rank, size, data, validation
    metrics and test predictions (``in_ensemble``: among the ``k`` best)."""
    test_rows, val_rows = problem.paired["test"], problem.paired["val"]
    val = lambda m, t: _val_metrics(problem, {m: teacher_predictions(t, problem, val_rows)}, val_rows)[m]  # noqa: E731
    return [{"id": (m, arch_name(t.spec), t.lr), "modality": m, "model": t.name, "lr": t.lr, "rank": rank,
             "in_ensemble": rank <= k, "n_train": t.n_train, "params": t.n_params, "val": val(m, t),
             "test": teacher_predictions(t, problem, test_rows).numpy(), "cached": t.from_cache}
            for m, ts in trained.items() for rank, t in enumerate(ts, start=1)]
