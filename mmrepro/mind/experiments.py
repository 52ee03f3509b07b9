"""MIND experiments: baselines (Tables 1, 5, A4), ablation I (Table 4 / B4), ablation II (Sec. 5.4,
Fig. 3) and the random hyper-parameter search of App. A.3 (selection on validation, one test).

Every student is trained on the problem's paired training rows with :func:`mmrepro.trainer.fit`
(Adam, best validation checkpoint by accuracy or AUROC); teachers come from
:mod:`mmrepro.mind.teachers`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch
from torch import Tensor

from mmrepro.experiments.jobs import run_jobs
from mmrepro.experiments.space import Choice, LogUniform, sample
from mmrepro.losses import MIND, MKE, TS, Supervised
from mmrepro.metrics import bootstrap_ci, score
from mmrepro.mind.problems import Problem
from mmrepro.mind.teachers import Teacher, check_k
from mmrepro.models import FUSION_HEAD, MultimodalNet, count_parameters, probabilities
from mmrepro.models.ensemble import ume_proba
from mmrepro.runs.keys import dataset_fingerprint, fingerprint
from mmrepro.trainer import FitResult, fit

if TYPE_CHECKING:
    from mmrepro.runs.executors import Executor

METHODS = ("base", "base_3h", "mke_a", "mke_b", "ume", "ts", "mind")
TS_GRID = tuple(round(0.1 * i, 1) for i in range(10))  # alpha, beta in {0.0, ..., 0.9} (App. A.4)
# Ablation II (Sec. 5.4): (omega_A, omega_B) for  0, A << B, A < B, A = B, A > B, A >> B
OMEGA_SETTINGS = {"ω_A = ω_B = 0": (0.0, 0.0), "ω_A ≪ ω_B": (0.1, 4.0), "ω_A < ω_B": (1.0, 2.0),
                  "ω_A = ω_B": (2.0, 2.0), "ω_A > ω_B": (2.0, 1.0), "ω_A ≫ ω_B": (4.0, 0.1)}
ABLATION = ("L_SAB", "+ L_SA/B", "+ KD single teacher, ω = 1", "+ EKD ensemble, ω = 1",
            "+ KD single teacher, weighted ω", "MIND: EKD ensemble, weighted ω")


def method_name(method: str, problem: Problem) -> str:
    """Display name: MedFuse / Vanilla (by fusion), -3H, MKE-<MODALITY>, UME, TS, MIND."""
    base = "MedFuse" if problem.fusion == "lstm" else "Vanilla"
    a, b = (m.upper() for m in problem.modalities)
    return {"base": base, "base_3h": f"{base}-3H", "mke_a": f"MKE-{a}", "mke_b": f"MKE-{b}", "ume": "UME",
            "ts": "TS", "mind": "MIND"}[method]


@dataclass
class Setup:
    """What every student run shares: the problem, its teachers and the training budget."""

    problem: Problem
    teachers: dict[str, list[Teacher]]
    k: int = 3
    epochs: int = 30
    batch_size: int = 64
    patience: int | None = None
    device: str | torch.device = "cpu"

    def __post_init__(self) -> None:
        check_k(self.k, {m: len(ts) for m, ts in self.teachers.items()})

    def best(self, m: str) -> list[MultimodalNet]:
        return [self.teachers[m][0].model]

    def top(self, m: str) -> list[MultimodalNet]:
        return [t.model for t in self.teachers[m][: self.k]]


def build(setup: Setup, method: str, hp: dict[str, float]) -> tuple[MultimodalNet, Any]:
    """Model and objective of ``method`` (Table A4) with hyper-parameters ``hp``.

    Methods: the METHODS names (except ``ume``, which is not trained) and the ablation settings
    ``abl1`` ... ``abl6`` (Table 4 rows; ``abl6`` is MIND)."""
    p, (a, b) = setup.problem, setup.problem.modalities
    if method in ("base", "abl1"):
        return p.student(multihead=False), Supervised(heads=[FUSION_HEAD])
    if method in ("base_3h", "abl2"):
        return p.student(), Supervised()
    if method in ("mke_a", "mke_b"):
        m = a if method == "mke_a" else b
        return p.student(multihead=False), MKE(m, setup.best(m), gamma=hp.get("gamma", 1.0))
    if method == "ts":
        return p.student(multihead=False), TS({a: setup.best(a), b: setup.best(b)}, {a: hp["alpha"], b: hp["beta"]})
    if method in ("mind", "abl3", "abl4", "abl5", "abl6"):
        single = method in ("abl3", "abl5")
        teachers = {m: setup.best(m) if single else setup.top(m) for m in (a, b)}
        omega = {a: 1.0, b: 1.0} if method in ("abl3", "abl4") else {a: hp["omega_a"], b: hp["omega_b"]}
        return p.student(), MIND(teachers, omega)
    raise ValueError(f"unknown method {method!r}; valid: {METHODS[:4] + METHODS[5:]} and abl1..abl6")


def train(setup: Setup, method: str, hp: dict[str, float], seed: int, epochs: int | None = None,
          patience: int | None = -1) -> FitResult:
    """Train one student on the paired training rows; checkpoint on the paired validation rows."""
    p = setup.problem
    torch.manual_seed(seed)
    model, objective = build(setup, method, hp)
    return fit(model, p.rows(p.paired["train"]), p.rows(p.paired["val"]), task=p.task, objective=objective,
               epochs=epochs or setup.epochs, batch_size=setup.batch_size, lr=hp["lr"],
               patience=setup.patience if patience == -1 else patience, select_metric=p.select_metric,
               metrics=(p.select_metric,), seed=seed, device=setup.device, progress=False)


def sample_hps(method: str, n: int, seed: int, lr_range: Sequence[float], omega_range: Sequence[float]) -> list[dict]:
    """``n`` random configurations (App. A.3): log-uniform learning rate; MIND: log-uniform ω_A, ω_B in
    ``omega_range``; TS: α, β from {0.0, ..., 0.9} (App. A.4). Drawn with the project's one
    hyper-parameter sampler (:func:`mmrepro.experiments.space.sample`), a stream per method."""
    if n < 1:
        raise ValueError(f"the search needs at least one trial, got n_trials={n}")
    space: dict[str, Any] = {"lr": LogUniform(*lr_range)}
    if method == "mind":
        space["omega_a"] = space["omega_b"] = LogUniform(*omega_range)
    if method == "ts":
        space["alpha"] = space["beta"] = Choice(TS_GRID)
    stream = 100 * seed + (METHODS.index(method) if method in METHODS else 99)  # distinct per (seed, method)
    return [sample(space, stream, k) for k in range(n)]


RUN_SETTINGS = ("method", "epochs", "patience")  # keys of a student config that are not hyper-parameters


@dataclass
class Student:
    """One trained student (a search candidate, plain data): its configuration (``method``,
    hyper-parameters, optional ``epochs``/``patience`` overrides), seed, validation score, selected
    epoch and per-epoch history. Every head's predictions on the paired test rows
    (:func:`head_predictions`) are computed when training ends and revealed once, by
    :meth:`evaluate_test`."""

    config: dict[str, Any]
    seed: int
    score: float
    best_epoch: int
    history: list[dict[str, Any]]
    sealed_test: dict[str, Tensor] = field(default_factory=dict, repr=False)
    tested: bool = False

    @property
    def hp(self) -> dict[str, float]:
        return {k: v for k, v in self.config.items() if k not in RUN_SETTINGS}

    def evaluate_test(self) -> dict[str, Tensor]:
        """Test-split probabilities per head (``fusion`` and each modality); callable once."""
        if self.tested:
            raise RuntimeError("this student was already evaluated on the test split (test is used once)")
        self.tested = True
        return dict(self.sealed_test)


class Students:
    """``objective(config, seed) -> Student`` over a :class:`Setup` (the objective protocol of
    :mod:`mmrepro.experiments.jobs`): ``config["method"]`` is a :func:`build` method, the other
    keys its hyper-parameters, and optional ``epochs``/``patience`` override the setup's."""

    def __init__(self, setup: Setup) -> None:
        self.setup = setup

    @property
    def device(self) -> str | torch.device:
        return self.setup.device

    def _budget(self, config: dict[str, Any]) -> tuple[int, int | None]:
        return config.get("epochs") or self.setup.epochs, config.get("patience", self.setup.patience)

    def __call__(self, config: dict[str, Any], seed: int) -> Student:
        p = self.setup.problem
        epochs, patience = self._budget(config)
        hp = {k: v for k, v in config.items() if k not in RUN_SETTINGS}
        res = train(self.setup, config["method"], hp, seed, epochs=epochs, patience=patience)
        return Student(dict(config), seed, float(res.best_score), res.best_epoch, res.history,
                       head_predictions(res.model, p, p.paired["test"]))

    def key(self, config: dict[str, Any], seed: int) -> dict[str, Any]:
        s, p = self.setup, self.setup.problem
        epochs, patience = self._budget(config)
        return {"objective": "mind-student", "problem": p.name, "task": p.task,
                "data": fingerprint(dataset_fingerprint(p.data), p.paired), "student": p.student_specs,
                "fusion": p.fusion, "fusion_kw": p.fusion_kw, "k": s.k,
                "teachers": {m: [t.key for t in ts] for m, ts in s.teachers.items()},
                "epochs": epochs, "patience": patience, "batch_size": s.batch_size,
                "device": torch.device(s.device).type, "config": config, "seed": seed}

    def group(self, config: dict[str, Any]) -> str:
        return config["method"]


@dataclass
class Search:
    """A method's random search: every trial's validation score and the selected student."""

    method: str
    trials: list[dict[str, Any]]
    best: Student
    best_hp: dict[str, float]
    best_seed: int

    @property
    def val_score(self) -> float:
        return float(self.best.score)


def searches(setup: Setup, methods: Sequence[str], n_trials: int, seed: int,
             lr_range: Sequence[float] = (1e-4, 1e-2), omega_range: Sequence[float] = (0.1, 10.0),
             executor: str | Executor = "local") -> dict[str, Search]:
    """Random search for each of ``methods`` (trial ``i`` trains with seed ``seed + 1000 (i + 1)``),
    every trial of every method submitted at once through :func:`mmrepro.experiments.run_jobs`; per
    method the trial with the best validation score is kept (test once, later)."""
    hps = {m: sample_hps(m, n_trials, seed, lr_range, omega_range) for m in methods}
    jobs = [({"method": m, **hp}, seed + 1000 * (i + 1)) for m in methods for i, hp in enumerate(hps[m])]
    done = iter(run_jobs(Students(setup), jobs, executor))
    out = {}
    for m in methods:
        best, trials = None, []
        for hp in hps[m]:
            cand = next(done)
            trials.append({**hp, "seed": cand.seed, "val": cand.score, "best_epoch": cand.best_epoch})
            if cand.score > (best.score if best is not None else -math.inf):
                best = cand
        if best is None:
            raise RuntimeError(f"every {m} trial gave an undefined validation score")
        out[m] = Search(m, trials, best, best.hp, best.seed)
    return out


def search(setup: Setup, method: str, n_trials: int, seed: int, lr_range: Sequence[float] = (1e-4, 1e-2),
           omega_range: Sequence[float] = (0.1, 10.0), executor: str | Executor = "local") -> Search:
    """Random search for ``method`` (:func:`searches` with one method)."""
    return searches(setup, [method], n_trials, seed, lr_range, omega_range, executor)[method]


# ----------------------------------------------------------------------------- evaluation

@torch.no_grad()
def head_predictions(model: MultimodalNet, problem: Problem, rows: Tensor) -> dict[str, Tensor]:
    """Predictions of the fused model and from each modality alone. Multi-head models use their
    unimodal heads; single-head models get the other modality marked absent (MedFuse's treatment of
    a missing modality: its token is dropped / its embedding is zero)."""
    d = problem.rows(rows)
    dev = next(model.parameters()).device
    x = {m: v.to(dev) for m, v in d.x.items()}
    pres = {m: v.to(dev) for m, v in d.present.items()}
    lens = {m: v.to(dev) for m, v in d.lengths.items()}
    model.eval()
    out = model(x, pres, lens)
    preds = {FUSION_HEAD: probabilities(out.logits[FUSION_HEAD], problem.kind).cpu()}
    for m in problem.modalities:
        if model.multihead:
            preds[m] = probabilities(out.logits[m], problem.kind).cpu()
        else:
            only = {k: v & (k == m) for k, v in pres.items()}
            preds[m] = probabilities(model(x, only, lens).logits[FUSION_HEAD], problem.kind).cpu()
    return preds


@torch.no_grad()
def teacher_predictions(teacher: Teacher, problem: Problem, rows: Tensor) -> Tensor:
    d = problem.rows(rows)
    dev = next(teacher.model.parameters()).device
    teacher.model.eval()
    out = teacher.model({m: v.to(dev) for m, v in d.x.items()}, {m: v.to(dev) for m, v in d.present.items()},
                        {m: v.to(dev) for m, v in d.lengths.items()})
    return probabilities(out.logits[FUSION_HEAD], problem.kind).cpu()


def ume_predictions(setup: Setup, rows: Tensor) -> dict[str, Tensor]:
    """UME (Du et al. 2023): average of the best unimodal model per modality; unimodal = that model."""
    p = setup.problem
    d = p.rows(rows)
    models = {m: setup.teachers[m][0].model for m in p.modalities}
    fused = ume_proba(models, d.x, d.present, d.lengths)
    return {FUSION_HEAD: fused.cpu(), **{m: teacher_predictions(setup.teachers[m][0], p, rows) for m in p.modalities}}


def metric_ci(problem: Problem, y: Tensor, p: Tensor, metric: str, n_boot: int, seed: int) -> tuple[float, float, float]:
    """Point value and 95 % basic bootstrap interval (MIND Sec. 4: 1,000 resamples; MedFuse's basic interval)."""
    r = bootstrap_ci(metric, y.numpy(), p.numpy(), n_boot=n_boot, method="basic", seed=seed, task_kind=problem.kind)
    return float(r[0]), float(r[1]), float(r[2])


def point(problem: Problem, y: Tensor, p: Tensor, metric: str) -> float:
    return float(score(metric, y.numpy(), p.numpy(), problem.kind))


def fmt_ci(v: tuple[float, float, float]) -> str:
    return f"{v[0]:.3f} ({v[1]:.3f}, {v[2]:.3f})"


def param_counts(setup: Setup) -> dict[str, Any]:
    """Student size vs teachers (MIND Table A1, App. C): the compression ratio is the parameters of a
    multimodal model built from the largest teacher of each modality over the MIND student's."""
    p = setup.problem
    student = count_parameters(p.student())["total"]
    largest = {m: max(t.n_params for t in ts) for m, ts in setup.teachers.items()}
    ens = {m: sum(t.n_params for t in ts[: setup.k]) for m, ts in setup.teachers.items()}
    return {"student": student, "largest_teachers": sum(largest.values()), "ensembles": sum(ens.values()),
            "ratio_largest": sum(largest.values()) / student, "ratio_ensembles": sum(ens.values()) / student,
            "per_modality_largest": largest}


@dataclass
class OmegaRun:
    label: str
    omega: tuple[float, float]
    seed: int
    history: list[dict[str, Any]]
    best_epoch: int
    val_score: float


def omega_study(setup: Setup, lr: float, seeds: Sequence[int], epochs: int,
                settings: dict[str, tuple[float, float]] | None = None,
                executor: str | Executor = "local") -> list[OmegaRun]:
    """Ablation II (Sec. 5.4): MIND with each (ω_A, ω_B) and each seed, a fixed number of epochs (no
    early stopping), per-epoch u_A, u_B from the validation metric (eq. 6) and the best-validation epoch.
    Settings share the seeds, so they are compared paired by seed. Every run goes through
    :func:`mmrepro.experiments.run_jobs` on ``executor``."""
    settings = settings or OMEGA_SETTINGS
    cells = [(label, omega, s) for label, omega in settings.items() for s in seeds]
    jobs = [({"method": "mind", "lr": lr, "omega_a": wa, "omega_b": wb, "epochs": epochs, "patience": None}, s)
            for _, (wa, wb), s in cells]
    return [OmegaRun(label, omega, s, res.history, res.best_epoch, res.score)
            for (label, omega, s), res in zip(cells, run_jobs(Students(setup), jobs, executor))]


def utilisation(run: OmegaRun, modalities: tuple[str, str]) -> tuple[np.ndarray, np.ndarray]:
    """Per-epoch (u_A, u_B) of a run (NaN where undefined)."""
    a, b = modalities
    ua = np.array([h.get(f"u:{a}", np.nan) for h in run.history], dtype=float)
    ub = np.array([h.get(f"u:{b}", np.nan) for h in run.history], dtype=float)
    return ua, ub


__all__ = ["METHODS", "OMEGA_SETTINGS", "ABLATION", "TS_GRID", "Setup", "Search", "Student", "Students", "OmegaRun",
           "build", "train", "sample_hps", "search", "searches", "head_predictions", "teacher_predictions", "ume_predictions", "metric_ci",
           "point", "fmt_ci", "param_counts", "omega_study", "utilisation", "method_name"]
