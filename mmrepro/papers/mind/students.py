"""MIND experiments: baselines (Tables 1, 5, A4), ablation I (Table 4 / B4), ablation II (Sec. 5.4,
Fig. 3) and the random hyper-parameter search of App. A.3 (selection on validation), each selected
configuration then trained again over seeds shared by all methods (compared paired by seed).

Every student is trained on the problem's paired training rows with :func:`mmrepro.core.trainer.fit`
(Adam, best validation checkpoint by accuracy or AUROC) through the run layer
(:func:`mmrepro.runs.jobs.run_jobs`: cache, executors); teachers come from :mod:`mmrepro.papers.mind.teachers`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch
from torch import Tensor

from mmrepro.core.losses import Supervised
from mmrepro.core.metrics import score
from mmrepro.core.models import FUSION_HEAD, MultimodalNet, count_parameters, probabilities
from mmrepro.core.models.ensemble import ume_proba
from mmrepro.core.trainer import FitResult, fit_many
from mmrepro.papers.mind.objectives import MIND, MKE, TS
from mmrepro.papers.mind.problems import Problem, encoder_from_spec
from mmrepro.papers.mind.teachers import Teacher, check_k
from mmrepro.runs.jobs import run_jobs
from mmrepro.runs.keys import dataset_fingerprint, fingerprint
from mmrepro.runs.space import Choice, LogUniform, sample

if TYPE_CHECKING:
    from mmrepro.runs.executors import Executor

STUDENT_METHODS = ("base", "base_3h", "mke_a", "mke_b", "ume", "ts", "mind")
# Table 4 / B4 rows as methods: rows 1, 2 and 6 are the baselines MedFuse, MedFuse-3H and MIND themselves.
ABLATION_METHODS = ("base", "base_3h", "abl3", "abl4", "abl5", "mind")
ABLATION = ("L_SAB", "+ L_SA/B", "+ KD single teacher, ω = 1", "+ EKD ensemble, ω = 1",
            "+ KD single teacher, weighted ω", "MIND: EKD ensemble, weighted ω")
UNIMODAL = ("uni_a", "uni_b")  # one encoder of the student's size with its own head, on the paired rows
TRAINED = tuple(dict.fromkeys(m for m in STUDENT_METHODS + ABLATION_METHODS if m != "ume"))
TS_GRID = tuple(round(0.1 * i, 1) for i in range(10))  # alpha, beta in {0.0, ..., 0.9} (App. A.4)
# Ablation II (Sec. 5.4): (omega_A, omega_B) for  0, A << B, A < B, A = B, A > B, A >> B
OMEGA_SETTINGS = {"ω_A = ω_B = 0": (0.0, 0.0), "ω_A ≪ ω_B": (0.1, 4.0), "ω_A < ω_B": (1.0, 2.0),
                  "ω_A = ω_B": (2.0, 2.0), "ω_A > ω_B": (2.0, 1.0), "ω_A ≫ ω_B": (4.0, 0.1)}
REPEAT_SEED = 10_000_000  # repeat j of every selected configuration trains with seed + REPEAT_SEED + j
TRIAL_SEED_STEP = 1000  # search trial i trains with seed + TRIAL_SEED_STEP * (i + 1), below every repeat seed


def method_name(method: str, problem: Problem) -> str:
    """Display name: MedFuse / Vanilla (by fusion), -3H, MKE-<MODALITY>, UME, TS, MIND, the ablation rows
    and the same-size unimodal models."""
    base = "MedFuse" if problem.fusion == "lstm" else "Vanilla"
    a, b = (m.upper() for m in problem.modalities)
    names = {"base": base, "base_3h": f"{base}-3H", "mke_a": f"MKE-{a}", "mke_b": f"MKE-{b}", "ume": "UME",
             "ts": "TS", "mind": "MIND", "uni_a": f"{a} alone (student size)", "uni_b": f"{b} alone (student size)"}
    names.update({m: ABLATION[ABLATION_METHODS.index(m)] for m in ("abl3", "abl4", "abl5")})
    return names[method]


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

    Methods: the STUDENT_METHODS names (except ``ume``, which is not trained), the ablation settings ``abl3``,
    ``abl4``, ``abl5`` (Table 4 rows 3-5) and ``uni_a`` / ``uni_b`` (one modality, the student's encoder)."""
    p, (a, b) = setup.problem, setup.problem.modalities
    if method == "base":
        return p.student(multihead=False), Supervised(heads=[FUSION_HEAD])
    if method == "base_3h":
        return p.student(), Supervised()
    if method in UNIMODAL:
        m = a if method == "uni_a" else b
        return p.teacher(m, p.student_specs[m]), Supervised()
    if method in ("mke_a", "mke_b"):
        m = a if method == "mke_a" else b
        return p.student(multihead=False), MKE(m, setup.best(m), gamma=hp.get("gamma", 1.0))
    if method == "ts":
        return p.student(multihead=False), TS({a: setup.best(a), b: setup.best(b)}, {a: hp["alpha"], b: hp["beta"]})
    if method in ("mind", "abl3", "abl4", "abl5"):
        single = method in ("abl3", "abl5")
        teachers = {m: setup.best(m) if single else setup.top(m) for m in (a, b)}
        omega = {a: 1.0, b: 1.0} if method in ("abl3", "abl4") else {a: hp["omega_a"], b: hp["omega_b"]}
        return p.student(), MIND(teachers, omega)
    raise ValueError(f"unknown method {method!r}; valid: {TRAINED + UNIMODAL}")


def train(setup: Setup, method: str, hp: dict[str, float], seed: int, epochs: int | None = None,
          patience: int | None = -1) -> FitResult:
    """Train one student on the paired training rows; checkpoint on the paired validation rows (every
    head's selection metric logged each epoch). BatchNorm statistics are recomputed before each
    evaluation (the ResNets' few steps per epoch)."""
    return train_many(setup, method, [hp], [seed], epochs, patience)[0]


def train_many(setup: Setup, method: str, hps: Sequence[dict[str, float]], seeds: Sequence[int],
               epochs: int | None = None, patience: int | None = -1) -> list[FitResult]:
    """Students of one ``method`` with their own hyper-parameters and seeds, trained together as one
    stacked model (:func:`mmrepro.core.trainer.fit_many`): student k is ``train(setup, method, hps[k], seeds[k])``."""
    p = setup.problem
    built = []
    for hp, seed in zip(hps, seeds, strict=True):
        torch.manual_seed(seed)
        built.append(build(setup, method, hp))
    return fit_many([m for m, _ in built], p.rows(p.paired["train"]), p.rows(p.paired["val"]), task=p.task,
                    objectives=[o for _, o in built], epochs=epochs or setup.epochs, batch_size=setup.batch_size,
                    lrs=[hp["lr"] for hp in hps], patience=setup.patience if patience == -1 else patience,
                    select_metric=p.select_metric, metrics=(p.select_metric,), seeds=list(seeds),
                    device=setup.device, progress=False, recompute_bn=True)


def sample_hps(method: str, n: int, seed: int, lr_range: Sequence[float], omega_range: Sequence[float]) -> list[dict]:
    """``n`` random configurations (App. A.3): log-uniform learning rate; weighted MIND (and ablation row 5):
    log-uniform ω_A, ω_B in ``omega_range``; TS: α, β from {0.0, ..., 0.9} (App. A.4). Drawn with the
    project's one hyper-parameter sampler (:func:`mmrepro.runs.space.sample`), a stream per method."""
    if n < 1:
        raise ValueError(f"the search needs at least one trial, got n_trials={n}")
    if method not in TRAINED + UNIMODAL:
        raise ValueError(f"unknown method {method!r}; valid: {TRAINED + UNIMODAL}")
    space: dict[str, Any] = {"lr": LogUniform(*lr_range)}
    if method in ("mind", "abl5"):
        space["omega_a"] = space["omega_b"] = LogUniform(*omega_range)
    if method == "ts":
        space["alpha"] = space["beta"] = Choice(TS_GRID)
    stream = 100 * seed + (TRAINED + UNIMODAL).index(method)  # distinct per (seed, method)
    return [sample(space, stream, k) for k in range(n)]


RUN_SETTINGS = ("method", "epochs", "patience")  # keys of a student config that are not hyper-parameters


@dataclass
class Student:
    """One trained student (plain data): its configuration (``method``, hyper-parameters, optional
    ``epochs``/``patience`` overrides), seed, validation score, selected epoch, per-epoch history and
    every head's report metrics on the validation rows at the selected epoch (Tables B1-B6). Every
    head's predictions on the paired test rows (:func:`head_predictions`) are computed when training
    ends and revealed once, by :meth:`evaluate_test`."""

    config: dict[str, Any]
    seed: int
    score: float
    best_epoch: int
    history: list[dict[str, Any]]
    val_metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    sealed_test: dict[str, Tensor] = field(default_factory=dict, repr=False)
    tested: bool = False

    @property
    def hp(self) -> dict[str, float]:
        return {k: v for k, v in self.config.items() if k not in RUN_SETTINGS}

    def val(self, head: str, metric: str) -> float:
        """A head's validation metric at the selected epoch (NaN where undefined)."""
        return float(self.val_metrics.get(head, {}).get(metric, math.nan))

    def evaluate_test(self) -> dict[str, np.ndarray]:
        """Test-split probabilities per head (``fusion`` and each modality); callable once."""
        if self.tested:
            raise RuntimeError("this student was already evaluated on the test split (test is used once)")
        self.tested = True
        return {h: v.numpy() for h, v in self.sealed_test.items()}


class Students:
    """``objective(config, seed) -> Student`` over a :class:`Setup` (the objective protocol of
    :mod:`mmrepro.runs.protocol`): ``config["method"]`` is a :func:`build` method, the other keys its
    hyper-parameters; optional ``epochs`` / ``patience`` override the setup's (the ω study trains a fixed
    number of epochs)."""

    def __init__(self, setup: Setup) -> None:
        self.setup = setup

    @property
    def device(self) -> str | torch.device:
        return self.setup.device

    def _budget(self, config: dict[str, Any]) -> tuple[int, int | None]:
        return config.get("epochs") or self.setup.epochs, config.get("patience", self.setup.patience)

    def __call__(self, config: dict[str, Any], seed: int) -> Student:
        return self.many([(config, seed)])[0]

    def many(self, jobs: Sequence[tuple[dict[str, Any], int]]) -> list[Student]:
        """Students of one :meth:`group` trained together (:func:`train_many`); each is the student
        ``objective(config, seed)`` trains."""
        p = self.setup.problem
        (method, epochs, patience), *rest = {self.group(c) for c, _ in jobs}
        if rest:
            raise ValueError("Students.many trains jobs of one group (method, epochs, patience); split them by group")
        hps = [{k: v for k, v in c.items() if k not in RUN_SETTINGS} for c, _ in jobs]
        results = train_many(self.setup, method, hps, [s for _, s in jobs], epochs=epochs, patience=patience)
        y_val = p.data.y[p.task][p.paired["val"]].numpy()
        students = []
        for (c, s), res in zip(jobs, results):
            val = {h: {m: _metric(m, y_val, v.numpy(), p.kind) for m in p.report_metrics}
                   for h, v in head_predictions(res.model, p, p.paired["val"]).items()}
            students.append(Student(dict(c), s, float(res.best_score), res.best_epoch, res.history, val,
                                    head_predictions(res.model, p, p.paired["test"])))
        return students

    def key(self, config: dict[str, Any], seed: int) -> dict[str, Any]:
        s, p = self.setup, self.setup.problem
        epochs, patience = self._budget(config)
        return {"objective": "mind-student", "problem": p.name, "task": p.task,
                "data": fingerprint(dataset_fingerprint(p.data), p.paired), "student": p.student_specs,
                "fusion": p.fusion, "fusion_kw": p.fusion_kw, "k": s.k,
                "teachers": {m: [t.key for t in ts] for m, ts in s.teachers.items()},
                "epochs": epochs, "patience": patience, "batch_size": s.batch_size,
                "metrics": list(p.report_metrics), "device": torch.device(s.device).type, "config": config,
                "seed": seed}

    def group(self, config: dict[str, Any]) -> tuple[str, int, int | None]:
        """Jobs that can share one stacked model: the same method (architecture and objective) and budget."""
        return (config["method"], *self._budget(config))


def _metric(name: str, y: np.ndarray, p: np.ndarray, kind: str) -> float:
    try:
        return float(score(name, y, p, kind))
    except ValueError:  # undefined, e.g. AUROC where a label has one class in these rows
        return math.nan


def train_jobs(setup: Setup, jobs: Sequence[tuple[dict[str, Any], int]],
               executor: str | Executor = "local") -> list[Student]:
    """Every ``(config, seed)`` job trained (or loaded from the run cache) through
    :func:`mmrepro.runs.jobs.run_jobs` on ``executor``, in order."""
    return run_jobs(Students(setup), list(jobs), executor)


@dataclass
class Search:
    """A method's random search: every trial's configuration, seed and validation score, and the selected
    trial (its test predictions stay sealed: the selection is repeated over seeds and those are tested)."""

    method: str
    trials: list[dict[str, Any]]
    best: Student

    @property
    def best_hp(self) -> dict[str, float]:
        return self.best.hp

    @property
    def best_score(self) -> float:
        return float(self.best.score)


def searches(setup: Setup, methods: Sequence[str], n_trials: int, seed: int,
             lr_range: Sequence[float] = (1e-4, 1e-2), omega_range: Sequence[float] = (0.1, 10.0),
             executor: str | Executor = "local") -> dict[str, Search]:
    """Random search for each of ``methods`` (trial ``i`` trains with seed ``seed + 1000 (i + 1)``, apart from the repeats' seeds), every
    trial of every method submitted at once through :func:`train_jobs`; per method the configuration with
    the best validation score is selected."""
    if TRIAL_SEED_STEP * (n_trials + 1) >= REPEAT_SEED:
        raise ValueError(f"n_trials={n_trials} would reuse the repeats' seeds; use fewer than "
                         f"{REPEAT_SEED // TRIAL_SEED_STEP - 1} trials")
    hps = {m: sample_hps(m, n_trials, seed, lr_range, omega_range) for m in methods}
    jobs = [({"method": m, **hp}, seed + TRIAL_SEED_STEP * (i + 1)) for m in methods for i, hp in enumerate(hps[m])]
    done = iter(train_jobs(setup, jobs, executor))
    out = {}
    for m in methods:
        best, trials = None, []
        for _ in hps[m]:
            cand = next(done)
            trials.append({**cand.hp, "seed": cand.seed, "val": cand.score, "best_epoch": cand.best_epoch})
            if math.isfinite(cand.score) and (best is None or cand.score > best.score):
                best = cand
        if best is None:
            raise RuntimeError(f"every {m} trial gave an undefined validation score")
        out[m] = Search(m, trials, best)
    return out


def repeats(setup: Setup, configs: dict[str, dict[str, float]], seeds: Sequence[int],
            executor: str | Executor = "local") -> dict[str, list[Student]]:
    """Every method's selected configuration trained again with each of ``seeds`` (the same seeds for
    every method, so that methods are compared paired by seed)."""
    jobs = [({"method": m, **hp}, s) for m, hp in configs.items() for s in seeds]
    done = iter(train_jobs(setup, jobs, executor))
    return {m: [next(done) for _ in seeds] for m in configs}


# ----------------------------------------------------------------------------- evaluation

@torch.no_grad()
def head_predictions(model: MultimodalNet, problem: Problem, rows: Tensor) -> dict[str, Tensor]:
    """Predictions of the fused model and from each modality alone. Multi-head models use their
    unimodal heads; single-head models get the other modality marked absent (MedFuse's treatment of
    a missing modality: its token is dropped / its embedding is zero); a unimodal model predicts its
    own modality only."""
    d = problem.rows(rows)
    dev = next(model.parameters()).device
    x = {m: v.to(dev) for m, v in d.x.items()}
    pres = {m: v.to(dev) for m, v in d.present.items()}
    lens = {m: v.to(dev) for m, v in d.lengths.items()}
    model.eval()
    out = model(x, pres, lens)
    preds = {FUSION_HEAD: probabilities(out.logits[FUSION_HEAD], problem.kind).cpu()}
    if len(model.modalities) == 1:
        return {**preds, model.modalities[0]: preds[FUSION_HEAD]}
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


def param_counts(setup: Setup) -> dict[str, Any]:
    """Student size vs teachers (MIND Table A1, App. C): the compression ratio compares, as Table A1 does
    (MedFuse with ResNet-34 against MIND with ResNet-10), the base architecture built with the largest
    teacher of each modality as its encoders with the MIND student."""
    p = setup.problem
    student = count_parameters(p.student())["total"]
    largest = {m: max(ts, key=lambda t: t.n_params) for m, ts in setup.teachers.items()}
    base = MultimodalNet({m: encoder_from_spec(t.spec) for m, t in largest.items()}, p.kind, p.n_outputs,
                         fusion=p.fusion, multihead=False, **p.fusion_kw)
    ens = {m: sum(t.n_params for t in ts[: setup.k]) for m, ts in setup.teachers.items()}
    large = count_parameters(base)["total"]
    return {"student": student, "base_largest": large, "ensembles": sum(ens.values()),
            "ratio_largest": large / student, "ratio_ensembles": sum(ens.values()) / student,
            "per_modality_largest": {m: t.n_params for m, t in largest.items()}}


@dataclass
class OmegaRun:
    """One ω run of ablation II: its setting, seed, per-epoch history, selected epoch and score (``fold``:
    the fold it trained on, 0 for a hold-out split)."""

    label: str
    omega: tuple[float, float]
    seed: int
    history: list[dict[str, Any]]
    best_epoch: int
    val_score: float
    fold: int = 0


def omega_study(setup: Setup, lr: float, seeds: Sequence[int], epochs: int,
                settings: dict[str, tuple[float, float]] | None = None,
                executor: str | Executor = "local") -> list[OmegaRun]:
    """Ablation II (Sec. 5.4): MIND with each (ω_A, ω_B) and each seed, a fixed number of epochs (no
    early stopping), per-epoch u_A, u_B from the validation metric (eq. 6) and the best-validation epoch.
    Settings share the seeds, so they are compared paired by seed."""
    settings = settings or OMEGA_SETTINGS
    jobs = [({"method": "mind", "lr": lr, "omega_a": wa, "omega_b": wb, "epochs": epochs, "patience": None}, s)
            for wa, wb in settings.values() for s in seeds]
    done = iter(train_jobs(setup, jobs, executor))
    return [OmegaRun(label, omega, s.seed, s.history, s.best_epoch, s.score)
            for label, omega in settings.items() for s in (next(done) for _ in seeds)]


def utilisation(run: OmegaRun, modalities: tuple[str, str]) -> tuple[np.ndarray, np.ndarray]:
    """Per-epoch (u_A, u_B) of a run (NaN where undefined)."""
    a, b = modalities
    ua = np.array([h.get(f"u:{a}", np.nan) for h in run.history], dtype=float)
    ub = np.array([h.get(f"u:{b}", np.nan) for h in run.history], dtype=float)
    return ua, ub


__all__ = ["STUDENT_METHODS", "ABLATION", "ABLATION_METHODS", "UNIMODAL", "TRAINED", "OMEGA_SETTINGS", "TS_GRID",
           "REPEAT_SEED", "RUN_SETTINGS", "Setup", "Student", "Students", "Search", "OmegaRun", "build", "train",
           "train_many", "train_jobs", "sample_hps", "searches", "repeats", "head_predictions", "teacher_predictions",
           "ume_predictions", "param_counts", "omega_study", "utilisation", "method_name"]
