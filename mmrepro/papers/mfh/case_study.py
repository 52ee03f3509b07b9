"""The case study of MFH Section 3 (Table 1, Appendix B.1 Table 5) on AV digits, the package's
stand-in for AV-MNIST: MNIST images with PCA energy removed paired by class with noisy spoken
digits. An audio student is trained without KD, with unimodal KD from a larger audio teacher
(UM-KD) and with crossmodal KD from an image+audio late-fusion teacher (CM-KD), using Eq. (1)
with rho = 0 and 0.5 (Table 5; KL at temperature 1, summed over classes and averaged over samples).

Architectures follow Appendix B.1 in spirit, scaled down for a CPU: a 3-layer CNN student, a
6-layer CNN audio teacher, and a late-fusion teacher (LeNet-style image branch + 5-layer CNN audio
branch, concatenated features, linear head). Adam, mini-batches, the last epoch's test accuracy.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from mmrepro.papers.mfh.kd import run_generator
from mmrepro.runs.jobs import run_jobs
from mmrepro.runs.keys import fingerprint

__all__ = ["cnn", "LateFusion", "audio_teacher", "fusion_teacher", "student", "train_classifier", "CaseStudy", "CaseRun", "case_study", "summarise_case_study"]


def cnn(widths: tuple[int, ...], n_classes: int = 10, pool_every: int = 1) -> nn.Sequential:
    """3x3 conv + BatchNorm + ReLU blocks (max-pool after every ``pool_every`` blocks), average
    pooling to a 2x2 grid (keeps coarse layout, which digits need) and a linear head;
    ``len(widths)`` conv layers, one input channel."""
    layers, c = [], 1
    for i, w in enumerate(widths):
        layers += [nn.Conv2d(c, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU()]
        if (i + 1) % pool_every == 0:
            layers.append(nn.MaxPool2d(2, ceil_mode=True))
        c = w
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(4 * c, n_classes))


class LateFusion(nn.Module):
    """Image branch + audio branch, features concatenated, one linear head (the multimodal teacher)."""

    def __init__(self, image: nn.Sequential, audio: nn.Sequential, n_classes: int = 10):
        super().__init__()
        self.image, self.audio = image[:-1], audio[:-1]             # drop the branches' heads
        self.head = nn.Linear(image[-1].in_features + audio[-1].in_features, n_classes)

    def forward(self, image: Tensor, audio: Tensor) -> Tensor:
        return self.head(torch.cat([self.image(image), self.audio(audio)], dim=1))


def audio_teacher() -> nn.Sequential:
    """The larger audio teacher: a 6-layer CNN."""
    return cnn((16, 16, 32, 32, 64, 64), pool_every=2)


def fusion_teacher() -> LateFusion:
    """The image+audio teacher: LeNet-style image branch and a 5-layer CNN audio branch."""
    return LateFusion(cnn((6, 16)), cnn((16, 16, 32, 32, 64), pool_every=2))


def student() -> nn.Sequential:
    """The audio student: a 3-layer CNN."""
    return cnn((16, 32, 64))


def _batches(n: int, size: int, gen: torch.Generator):
    perm = torch.randperm(n, generator=gen)
    return [perm[i:i + size] for i in range(0, n, size)]


def train_classifier(model: nn.Module, inputs: tuple[Tensor, ...], y: Tensor, *, epochs: int, lr: float = 1e-3,
                     batch_size: int = 64, soft: Tensor | None = None, rho: float = 0.5,
                     gen: torch.Generator) -> nn.Module:
    """Mini-batch Adam on rho * CE + (1 - rho) * KL(soft || model) (Eq. (1)); plain CE without ``soft``."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(int(epochs)):
        for idx in _batches(len(y), batch_size, gen):
            out = model(*(x[idx] for x in inputs))
            loss = nn.functional.cross_entropy(out, y[idx])
            if soft is not None:
                kl = nn.functional.kl_div(torch.log_softmax(out, 1), soft[idx], reduction="batchmean")
                loss = rho * loss + (1 - rho) * kl
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


@torch.no_grad()
def _predict(model: nn.Module, inputs: tuple[Tensor, ...], batch_size: int = 500) -> Tensor:
    n = len(inputs[0])
    return torch.cat([model(*(x[i:i + batch_size] for x in inputs)) for i in range(0, n, batch_size)])


@dataclass
class CaseRun:
    """One seed of the case study (plain data): a row per method with the teacher's and the student's
    test accuracy and, per test row, whether each was right (``teacher_hits``, ``student_hits``)."""

    config: dict
    seed: int
    rows: list[dict]


class CaseStudy:
    """``objective(config, seed) -> CaseRun``: both teachers and the three students of one seed (the
    objective protocol of :mod:`mmrepro.runs.protocol`, so seeds are cached and can run on Ray);
    ``config`` is empty: everything else is fixed here."""

    def __init__(self, img: Tensor, aud: Tensor, y: Tensor, tr: Tensor, te: Tensor, *, epochs: int,
                 teacher_epochs: int, rhos: tuple[float, ...], device: torch.device) -> None:
        self.img, self.aud, self.y, self.tr, self.te = img, aud, y, tr, te
        self.epochs, self.teacher_epochs, self.rhos, self.device = epochs, teacher_epochs, tuple(rhos), device
        self.data = fingerprint(img, aud, y, tr, te)

    def key(self, config: dict, seed: int) -> dict:
        return {"objective": "mfh-case-study", "data": self.data,
                "epochs": self.epochs, "teacher_epochs": self.teacher_epochs, "rhos": list(self.rhos),
                "device": self.device.type, "config": config, "seed": seed}

    def __call__(self, config: dict, seed: int) -> CaseRun:
        device, tr, te = self.device, self.tr, self.te
        img, aud, y = self.img.to(device), self.aud.to(device), self.y.to(device)
        hit = lambda logits, rows: (logits.argmax(1) == y[rows]).cpu()  # noqa: E731
        gen = run_generator(seed, 11)
        torch.manual_seed(seed)
        audio_t = train_classifier(audio_teacher().to(device), (aud[tr],), y[tr], epochs=self.teacher_epochs, gen=gen)
        mm_t = train_classifier(fusion_teacher().to(device), (img[tr], aud[tr]), y[tr], epochs=self.teacher_epochs,
                                gen=gen)
        soft_um = torch.softmax(_predict(audio_t, (aud[tr],)), 1)
        soft_cm = torch.softmax(_predict(mm_t, (img[tr], aud[tr])), 1)
        t_um, t_cm = hit(_predict(audio_t, (aud[te],)), te), hit(_predict(mm_t, (img[te], aud[te])), te)
        rows = []
        runs = [("No-KD", None, "-", None, 1.0)] + [
            (m, soft, t_mod, t_hits, float(r)) for r in self.rhos
            for m, soft, t_mod, t_hits in (("UM-KD", soft_um, "A", t_um), ("CM-KD", soft_cm, "I+A", t_cm))]
        for method, soft, t_mod, t_hits, rho in runs:
            torch.manual_seed(seed + 1)                     # same student initialisation for all methods
            trained = train_classifier(student().to(device), (aud[tr],), y[tr], epochs=self.epochs, soft=soft,
                                       rho=rho, gen=run_generator(seed, 12))
            s_hits = hit(_predict(trained, (aud[te],)), te)
            rows.append(dict(seed=seed, method=method, rho=rho, teacher_modality=t_mod,
                             teacher_acc=float("nan") if t_hits is None else float(t_hits.double().mean()) * 100,
                             student_modality="A", student_acc=float(s_hits.double().mean()) * 100,
                             teacher_hits=t_hits, student_hits=s_hits))
        return CaseRun(dict(config), seed, rows)


def case_study(data, seeds, *, epochs: int = 10, teacher_epochs: int | None = None, rhos=(0.5,),
               downsample: int = 1, max_train: int | None = None,
               device: torch.device | str = "cpu", executor: str = "local") -> pd.DataFrame:
    """Table 1 / Table 5 pattern on a MultimodalDataset with modalities ``image`` and ``audio`` and task
    ``digit``. One row per (seed, method, rho): teacher modality/accuracy and student accuracy (%), and their
    per-row hits on the test rows (bool tensors; no teacher: None); the no-KD student (labels only) has rho = 1.
    ``downsample`` > 1 average-pools both inputs by that factor first and ``max_train`` keeps only
    the first training rows (cheaper CPU runs). Seeds train through
    :func:`mmrepro.runs.jobs.run_jobs` on ``executor`` ("local" or "ray")."""
    if not {"image", "audio"} <= set(data.x) or "digit" not in data.y:
        raise ValueError(f"case_study needs modalities 'image' and 'audio' and task 'digit', got {list(data.x)}, {list(data.y)}")
    if int(downsample) != downsample or downsample < 1:
        raise ValueError(f"downsample must be a positive integer, got {downsample!r}")
    pool = lambda t: nn.functional.avg_pool2d(t, downsample) if downsample > 1 else t  # noqa: E731
    study = CaseStudy(pool(data.x["image"]), pool(data.x["audio"]), data.y["digit"], data.splits["train"][:max_train],
                      data.splits["test"], epochs=epochs, teacher_epochs=epochs if teacher_epochs is None else teacher_epochs,
                      rhos=rhos, device=torch.device(device))
    runs = run_jobs(study, [({}, int(s)) for s in seeds], executor)
    return pd.DataFrame([row for r in runs for row in r.rows])


def summarise_case_study(df: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over seeds per method and rho, in the order of Table 5."""
    g = df.groupby(["method", "rho"], sort=False)
    out = g.agg(teacher_modality=("teacher_modality", "first"), teacher_acc=("teacher_acc", "mean"),
                student_acc=("student_acc", "mean"),
                student_std=("student_acc", lambda v: float(np.std(v))))
    return out.reset_index()
