"""Unimodal teachers (MIND Sec. 4 "Ensembles", Algorithm 1 lines 1-2), trained once per split or fold and cached.

Per modality, every candidate (architecture x learning rate) is trained on all training rows that have
the modality (never a row of the split's or fold's test set), the checkpoint with the best validation
score is kept, and the ``k`` best candidates form the ensemble whose averaged probabilities are the
soft targets of eq. (4).

Trained weights are cached under ``$MMREPRO_CACHE/mind-teachers`` (default: the per-user cache,
see :func:`mmrepro.core.data.storage.cache_root`), keyed by a hash of the candidate's configuration, the
checksum of its training data, the seed and the package version, so re-running a chapter reuses them.
Entries are verified by their SHA-256 and their shapes before any weight is loaded
(:mod:`mmrepro.core.data.cache`); one that fails is retrained from the untouched initialisation.
"""
from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from mmrepro.common.checks import check_int
from mmrepro.core.data.cache import CorruptEntry, load_state_checked, load_verified, save_verified
from mmrepro.core.data.storage import cache_root
from mmrepro.core.models import MultimodalNet, count_parameters
from mmrepro.core.trainer import fit_many
from mmrepro.papers.mind.problems import Problem, arch_name

TEACHER_CACHE_FORMAT = 4  # bump when teacher training changes, so older cache entries are not reused (4: stacked per architecture)


@dataclass
class Teacher:
    """A trained unimodal teacher and how it was chosen."""

    modality: str
    spec: dict[str, Any]
    lr: float
    model: MultimodalNet
    val_score: float
    best_epoch: int
    n_train: int
    key: str
    from_cache: bool

    @property
    def name(self) -> str:
        return arch_name(self.spec)

    @property
    def n_params(self) -> int:
        return count_parameters(self.model)["total"]


def teacher_cache_dir() -> Path:
    """Folder of cached teachers: ``<cache_root>/mind-teachers``."""
    return cache_root() / "mind-teachers"


def teacher_key(problem: Problem, modality: str, spec: dict[str, Any], lr: float, epochs: int, batch_size: int,
                patience: int | None, seed: int) -> str:
    """Hash of everything that determines a teacher's weights."""
    from mmrepro.common.version import __version__

    parts = {"format": TEACHER_CACHE_FORMAT, "problem": problem.name, "task": problem.task, "modality": modality, "spec": spec,
             "lr": lr, "epochs": epochs, "batch_size": batch_size, "patience": patience, "seed": seed,
             "data": problem.checksum(modality), "version": __version__}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]


def _save(path: Path, entry: dict[str, Any]) -> None:
    try:
        save_verified(entry, path)
    except OSError as e:
        warnings.warn(f"could not cache teacher {path} ({e}); set MMREPRO_CACHE to a writable folder", stacklevel=3)


def train_teacher(problem: Problem, modality: str, spec: dict[str, Any], lr: float, *, epochs: int,
                  batch_size: int = 64, patience: int | None = None, seed: int = 0, device: str | torch.device = "cpu",
                  cache: bool = True) -> Teacher:
    """Train (or load from the cache) one unimodal teacher on every training row with ``modality``."""
    return train_candidates(problem, modality, spec, [lr], [seed], epochs=epochs, batch_size=batch_size,
                            patience=patience, device=device, cache=cache)[0]


def train_candidates(problem: Problem, modality: str, spec: dict[str, Any], lrs: Sequence[float], seeds: Sequence[int],
                     *, epochs: int, batch_size: int = 64, patience: int | None = None,
                     device: str | torch.device = "cpu", cache: bool = True) -> list[Teacher]:
    """Teachers of one architecture, one per (learning rate, seed), each loaded from the cache or trained on
    every training row with ``modality``; those not cached train together as one stacked model
    (:func:`mmrepro.core.trainer.fit_many`: candidate j is what ``fit`` with ``lrs[j]`` and ``seeds[j]`` trains)."""
    rows = problem.unimodal[modality]
    out: list[Teacher | None] = []
    todo = []
    for lr, seed in zip(lrs, seeds, strict=True):
        key = teacher_key(problem, modality, spec, lr, epochs, batch_size, patience, seed)
        path = teacher_cache_dir() / f"{problem.name}-{modality}-{key}.pt"
        torch.manual_seed(seed)
        model = problem.teacher(modality, spec)
        if cache and path.exists():
            try:
                entry = load_verified(path)
                load_state_checked(model, entry["state"], f"cached teacher {path}")
                out.append(Teacher(modality, spec, lr, model.to(device).eval(), float(entry["val_score"]),
                                   int(entry["best_epoch"]), len(rows["train"]), key, True))
                continue
            except (CorruptEntry, OSError, KeyError, TypeError, ValueError) as e:
                warnings.warn(f"{e}; retraining the teacher", stacklevel=2)
                torch.manual_seed(seed)
                model = problem.teacher(modality, spec)  # a clean start, not a half-loaded model
        todo.append((len(out), lr, seed, key, path, model))
        out.append(None)
    if todo:
        results = fit_many([t[5] for t in todo], problem.rows(rows["train"]), problem.rows(rows["val"]),
                           task=problem.task, epochs=epochs, batch_size=batch_size, lrs=[t[1] for t in todo],
                           patience=patience, select_metric=problem.select_metric, seeds=[t[2] for t in todo],
                           device=device, metrics=(problem.select_metric,), progress=False, recompute_bn=True)
        for (i, lr, seed, key, path, _), res in zip(todo, results):
            if cache:
                _save(path, {"state": {k: v.cpu() for k, v in res.model.state_dict().items()},
                             "val_score": float(res.best_score), "best_epoch": int(res.best_epoch)})
            out[i] = Teacher(modality, spec, lr, res.model.eval(), float(res.best_score), int(res.best_epoch),
                             len(rows["train"]), key, False)
    return out


def train_teachers(problem: Problem, lrs: Sequence[float], *, epochs: int, batch_size: int = 64,
                   patience: int | None = None, seed: int = 0, device: str | torch.device = "cpu",
                   cache: bool = True) -> dict[str, list[Teacher]]:
    """All candidates (architectures x ``lrs``) per modality, best validation score first (the same rule
    for every modality: MIND Sec. 4 keeps the top performers of each); the learning rates of one
    architecture train together (:func:`train_candidates`)."""
    if not lrs:
        raise ValueError("teachers need at least one learning rate")
    out: dict[str, list[Teacher]] = {}
    for m in problem.modalities:
        cands = [t for i, spec in enumerate(problem.teacher_specs[m])
                 for t in train_candidates(problem, m, spec, [float(lr) for lr in lrs],
                                           [seed + 101 * i + j for j in range(len(lrs))], epochs=epochs,
                                           batch_size=batch_size, patience=patience, device=device, cache=cache)]
        out[m] = sorted(cands, key=lambda t: -t.val_score)
    return out


def check_k(k: int, candidates: dict[str, int]) -> int:
    """``k`` teachers per ensemble need at least ``k`` candidates per modality (``candidates``: modality ->
    count); a smaller ensemble than the one reported would be a silent change of method."""
    fewest = min(candidates.values(), default=0)
    if check_int("k", k, 1) > fewest:
        raise ValueError(f"k={k} teachers per ensemble, but there are only {candidates} candidate teachers per "
                         f"modality (architectures x learning rates): use k in [1, {fewest}] or add candidates")
    return k


def ensemble(teachers: dict[str, list[Teacher]], k: int = 3) -> dict[str, list[MultimodalNet]]:
    """The top ``k`` teachers' models per modality (eq. 4 averages their probabilities)."""
    check_k(k, {m: len(ts) for m, ts in teachers.items()})
    return {m: [t.model for t in ts[:k]] for m, ts in teachers.items()}
