"""The MIND chapter's pipeline for one problem (MIND Sec. 4-5): teachers, a random search per method, the
selected configurations repeated over seeds, the same-size unimodal models, ablation I and the ω study,
gathered in :class:`ProblemResults`, whose heads are scored with the intervals of
:mod:`mmrepro.papers.mind.evidence`. Tables and figures are :mod:`mmrepro.papers.mind.report`, the paper's
claims :mod:`mmrepro.papers.mind.findings`."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from mmrepro.core.metrics import score
from mmrepro.core.models import FUSION_HEAD
from mmrepro.core.stats import Evidence
from mmrepro.papers.mind import evidence as ev
from mmrepro.papers.mind.problems import Problem
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
from mmrepro.papers.mind.teachers import check_k, train_teachers

OMEGA_LABELS = tuple(OMEGA_SETTINGS)
LEARNS_MARGIN = 3.0  # points: a unimodal head "learns" if no more than this below a same-size unimodal model
TEACHER = "teacher"  # the best-validated teacher of a modality, as a "method" of :meth:`ProblemResults.preds`
ALONE_ALL = "alone_all"  # the student's encoder trained as a teacher is, on all rows of its modality (likewise)


@dataclass
class ProblemResults:
    """Everything the chapter reports for one problem."""

    problem: Problem
    setup: Setup
    searches: dict[str, Search]
    runs: dict[str, list[Student]]             # trained method -> its selected configuration, one run per seed
    tests: dict[str, list[dict[str, np.ndarray]]]  # trained method -> per seed, each head's test predictions
    ume: dict[str, np.ndarray]                 # head -> UME's test predictions
    ume_val: dict[str, dict[str, float]]       # head -> metric -> UME's validation value
    teachers: list[dict[str, Any]]             # every teacher candidate: rank, size, data, val and test predictions
    alone_all: list[dict[str, Any]]            # the same for the student's encoder trained on the teachers' rows
    omega: list[OmegaRun]
    sizes: dict[str, Any]
    y_test: np.ndarray                         # targets of the paired test rows
    draws: ev.Draws                            # the test-row resamples every comparison shares
    _scored: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def has_ablations(self) -> bool:
        return all(m in self.runs for m in ABLATION_METHODS)

    @property
    def n_seeds(self) -> int:
        return len(self.tests["mind"])

    def preds(self, method: str, head: str) -> list[np.ndarray]:
        """Test predictions of ``head`` (``"fusion"`` or a modality) of ``method``: one array per seed
        for trained methods, one for UME, for the best teacher of a modality (``method="teacher"``) and for
        the best student-size model on the teachers' rows (``method="alone_all"``)."""
        if method == "ume":
            return [self.ume[head]]
        if method in (TEACHER, ALONE_ALL):
            models = self.teachers if method == TEACHER else self.alone_all
            return [next(t["test"] for t in models if t["modality"] == head and t["rank"] == 1)]
        return [t[head] for t in self.tests[method]]

    def score(self, method: str, head: str, metric: str) -> ev.Scored:
        """A head's test metric per seed, its seed mean and its row-bootstrap replicates
        (:func:`~mmrepro.papers.mind.evidence.scored`), computed once per problem: every table and claim reuses them."""
        key = (method, head, metric)
        if key not in self._scored:
            self._scored[key] = ev.scored(metric, self.y_test, self.preds(method, head), self.problem.kind, self.draws)
        return self._scored[key]

    def metric(self, method: str, head: str, metric: str | None = None) -> Evidence:
        """Seed-mean test metric of a head with its interval (seeds and rows counted)."""
        return ev.evidence(self.score(method, head, metric or self.problem.report_metrics[0]), len(self.y_test))

    def difference(self, a: tuple[str, str], b: tuple[str, str], metric: str | None = None) -> Evidence:
        """(method, head) ``a`` minus ``b`` on the test rows, in points, paired by seed and row
        (:func:`~mmrepro.papers.mind.evidence.evidence` of the paired difference, from the stored scores)."""
        metric = metric or self.problem.report_metrics[0]
        return ev.evidence(self.score(*a, metric) - self.score(*b, metric), len(self.y_test), difference=True).scaled(100)

    def per_seed(self, method: str, head: str = FUSION_HEAD, metric: str | None = None) -> list[float]:
        metric = metric or self.problem.report_metrics[0]
        return [score(metric, self.y_test, p, self.problem.kind) for p in self.preds(method, head)]


def _val_metrics(problem: Problem, preds: dict[str, torch.Tensor], rows: torch.Tensor) -> dict[str, dict[str, float]]:
    y = problem.data.y[problem.task][rows].numpy()
    return {h: {m: float(score(m, y, p.numpy(), problem.kind)) for m in problem.report_metrics}
            for h, p in preds.items()}


def run_problem(problem: Problem, *, teacher_lrs: Sequence[float], teacher_epochs: int, epochs: int, n_trials: int,
                n_seeds: int, omega_epochs: int, n_boot: int, seed: int = 0, device: str | torch.device = "cpu",
                k: int = 3, batch_size: int = 64, lr_range: Sequence[float] = (1e-4, 1e-2),
                omega_range: Sequence[float] = (0.1, 10.0), patience: int | None = None, ablations: bool = True,
                cache: bool = True, executor: str = "local") -> ProblemResults:
    """Teachers (cached), and the student's encoders trained the same way on the teachers' rows (to tell
    what the teachers gain from data from what they gain from size); a random search of ``n_trials``
    configurations for every trained method, the same-size unimodal models and (``ablations``) the
    ablation rows 3-5, each selected on validation;
    every selected configuration trained again with the same ``n_seeds`` seeds; (``ablations``) the ω
    study with those seeds at MIND's selected learning rate. Students train through
    :func:`mmrepro.runs.jobs.run_jobs` on ``executor`` ("local" or "ray"), finished runs from the run cache."""
    check_k(k, {m: len(specs) * len(teacher_lrs) for m, specs in problem.teacher_specs.items()})  # before training
    teachers = train_teachers(problem, teacher_lrs, epochs=teacher_epochs, batch_size=batch_size, patience=patience,
                              seed=seed, device=device, cache=cache)
    student_size = dataclasses.replace(problem, teacher_specs={m: [s] for m, s in problem.student_specs.items()})
    alone_all = train_teachers(student_size, teacher_lrs, epochs=teacher_epochs, batch_size=batch_size,
                               patience=patience, seed=seed, device=device, cache=cache)
    setup = Setup(problem, teachers, k=k, epochs=epochs, batch_size=batch_size, patience=patience, device=device)
    test_rows, val_rows = problem.paired["test"], problem.paired["val"]
    methods = list(dict.fromkeys([m for m in STUDENT_METHODS + (ABLATION_METHODS if ablations else ()) if m != "ume"]
                                 + list(UNIMODAL)))
    found = searches(setup, methods, n_trials, seed, lr_range, omega_range, executor)
    seeds = [seed + REPEAT_SEED + j for j in range(n_seeds)]
    runs = repeats(setup, {m: s.best_hp for m, s in found.items()}, seeds, executor)
    omega = omega_study(setup, found["mind"].best_hp["lr"], seeds, omega_epochs, executor=executor) if ablations else []
    ume = {h: p.numpy() for h, p in ume_predictions(setup, test_rows).items()}
    y_test = problem.data.y[problem.task][test_rows].numpy()
    tests = {m: [s.evaluate_test() for s in students] for m, students in runs.items()}  # the one look at test
    ume_val = _val_metrics(problem, ume_predictions(setup, val_rows), val_rows)
    return ProblemResults(problem, setup, found, runs, tests, ume, ume_val, _candidates(problem, teachers, k),
                          _candidates(problem, alone_all, 0), omega, param_counts(setup), y_test,
                          ev.Draws.make(len(y_test), n_boot, seed))


def _candidates(problem: Problem, trained: dict[str, list], k: int) -> list[dict[str, Any]]:
    """Every candidate of :func:`train_teachers`, best first per modality: rank, size, data, validation
    metrics and test predictions (``in_ensemble``: among the ``k`` best)."""
    test_rows, val_rows = problem.paired["test"], problem.paired["val"]
    val = lambda m, t: _val_metrics(problem, {m: teacher_predictions(t, problem, val_rows)}, val_rows)[m]  # noqa: E731
    return [{"modality": m, "model": t.name, "lr": t.lr, "rank": rank, "in_ensemble": rank <= k, "n_train": t.n_train,
             "params": t.n_params, "val": val(m, t), "test": teacher_predictions(t, problem, test_rows).numpy(),
             "cached": t.from_cache}
            for m, ts in trained.items() for rank, t in enumerate(ts, start=1)]
