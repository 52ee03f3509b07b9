"""The MIND chapter's prediction problems: two modalities, a paired student set and larger unimodal sets.

MIND (Sec. 4, App. A.2, App. C) trains the multimodal student on the paired set only, while each
modality's teachers use every training row that has that modality. A :class:`Problem` holds both
views of one dataset:

* ``av_digits`` (the S-MNIST analogue of Table 5, multiclass): every FSDD recording is paired with one
  MNIST image of its digit, so a row is one recording and one image, each used once. The test split
  holds ``test_recordings`` of the 50 recordings of every speaker and digit (FSDD's official 0-4 and more
  drawn from training with the seed: 17 give 1,020 test rows), validation the loader's 5; all training
  rows feed the unimodal teachers, but only a seeded ``paired_fraction`` of them stays paired for the
  student; the other pairs are broken up (their image and their recording are used only as unimodal
  samples), as S-MNIST's teachers saw the whole training set and the student 8,000 samples of it.
* ``pbc_death`` / ``pbc_findings`` (the in-hospital-mortality and clinical-conditions analogues,
  binary and multilabel): modality ``labs`` is the pbcseq lab time series (an LSTM encoder, like
  MedFuse's EHR branch), modality ``static`` the baseline demographics and trial arm; outcomes are
  counted from the end of the lab window (the data layer's landmark). With ``fold`` the patients are
  split by a stratified ``n_folds``-fold partition (that fold is the test set, validation is carved from
  the others, features standardised with the fold's training rows), so that the folds' test rows
  together hold every patient once. The student keeps a seeded ``paired_fraction`` of the trial
  patients' training pairs; the teachers train on all of them and, where the outcome is known, on the
  106 non-trial patients (their static data and their enrolment labs as a one-visit series;
  ``findings`` is never known for them, so that task gains none). As in the paper (App. C: a ResNet-10
  and a 2-layer LSTM, the smallest teachers), the student's encoders are the smallest teachers'
  architectures.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import Tensor, nn

from mmrepro.common.checks import check_int
from mmrepro.core.data import MultimodalDataset, load_dataset
from mmrepro.core.models import LSTMEncoder, MLPEncoder, MultimodalNet, ResNetEncoder

PROBLEMS = ("av_digits", "pbc_death", "pbc_findings")


def encoder_from_spec(spec: dict[str, Any]) -> nn.Module:
    """An encoder from a JSON-able spec: ``{"type": "resnet", "depth", "width", "in_channels", "stem"}``,
    ``{"type": "lstm", "input_size", "hidden", "layers"}`` or ``{"type": "mlp", "in_features", "hidden"}``."""
    kind = spec.get("type")
    if kind == "resnet":
        return ResNetEncoder(spec["depth"], spec.get("in_channels", 1), spec["width"], stem=spec.get("stem", "small"))
    if kind == "lstm":
        return LSTMEncoder(spec["input_size"], spec["hidden"], spec["layers"])
    if kind == "mlp":
        return MLPEncoder(spec["in_features"], tuple(spec["hidden"]))
    raise ValueError(f"unknown encoder type {kind!r} in {spec}; valid: 'resnet', 'lstm', 'mlp'")


def arch_name(spec: dict[str, Any]) -> str:
    """A short human name: ResNet-18 (w8), 3-layer LSTM (h32), MLP 64-64."""
    if spec["type"] == "resnet":
        return f"ResNet-{spec['depth']} (w{spec['width']})"
    if spec["type"] == "lstm":
        return f"{spec['layers']}-layer LSTM (h{spec['hidden']})"
    return "MLP " + "-".join(str(h) for h in spec["hidden"])


@dataclass
class Problem:
    """One task with modalities ``(A, B)``: the student's paired splits, each modality's teacher splits,
    encoder specs for the student and the teacher candidates, and the fusion of the base architecture."""

    name: str
    title: str
    data: MultimodalDataset          # the two modalities and the one task, all rows
    task: str
    modalities: tuple[str, str]
    paired: dict[str, Tensor]        # split -> rows with both modalities and a known target
    unimodal: dict[str, dict[str, Tensor]]  # modality -> split -> rows with that modality and a known target
    student_specs: dict[str, dict[str, Any]]
    teacher_specs: dict[str, list[dict[str, Any]]]
    fusion: str                      # "concat" (Vanilla, App. C) or "lstm" (MedFuse)
    fusion_kw: dict[str, Any] = field(default_factory=dict)
    fold: int | None = None          # the fold of an ``n_folds``-fold partition (None: one hold-out split)
    n_folds: int | None = None

    @property
    def kind(self) -> str:
        return self.data.tasks[self.task].kind

    @property
    def n_outputs(self) -> int:
        return self.data.tasks[self.task].n_outputs

    @property
    def select_metric(self) -> str:
        """Checkpoint and model selection metric: validation accuracy (multiclass) or AUROC (MIND Sec. 4)."""
        return "accuracy" if self.kind == "multiclass" else "auroc"

    @property
    def report_metrics(self) -> tuple[str, ...]:
        return ("accuracy",) if self.kind == "multiclass" else ("auroc", "auprc")

    def rows(self, idx: Tensor) -> MultimodalDataset:
        return self.data.subset(idx)

    def student(self, multihead: bool = True) -> MultimodalNet:
        """The small student (or a baseline with the same encoders): MIND Fig. 1 A.1 / A.2."""
        enc = {m: encoder_from_spec(self.student_specs[m]) for m in self.modalities}
        return MultimodalNet(enc, self.kind, self.n_outputs, fusion=self.fusion, multihead=multihead, **self.fusion_kw)

    def teacher(self, modality: str, spec: dict[str, Any]) -> MultimodalNet:
        """A unimodal teacher: one encoder and one head (its head is called ``"fusion"``)."""
        return MultimodalNet({modality: encoder_from_spec(spec)}, self.kind, self.n_outputs, fusion="concat",
                             multihead=False, dropout=self.fusion_kw.get("dropout", 0.0))

    def checksum(self, modality: str | None = None) -> str:
        """SHA-256 (16 hex) of the inputs of ``modality`` (all if None), the targets and the row sets."""
        h = hashlib.sha256()
        mods = self.modalities if modality is None else (modality,)
        for m in mods:
            h.update(self.data.x[m].nan_to_num(-7.0).numpy().tobytes())
            h.update(self.data.present[m].numpy().tobytes())
        h.update(self.data.y[self.task].nan_to_num(-7.0).numpy().tobytes())
        for part in (self.paired, *(self.unimodal[m] for m in mods)):
            for s in sorted(part):
                h.update(s.encode() + part[s].numpy().tobytes())
        return h.hexdigest()[:16]


def _known(y: Tensor) -> Tensor:
    return y >= 0 if y.dtype == torch.int64 else ~torch.isnan(y.view(len(y), -1)).any(dim=1)


def _restrict(d: MultimodalDataset, mods: tuple[str, str], task: str) -> MultimodalDataset:
    return replace(d, x={m: d.x[m] for m in mods}, present={m: d.present[m] for m in mods},
                   lengths={m: v for m, v in d.lengths.items() if m in mods},
                   y={task: d.y[task]}, tasks={task: d.tasks[task]})


def _split_rows(d: MultimodalDataset, task: str, mods: tuple[str, ...],
                only: Tensor | None = None) -> dict[str, Tensor]:
    """Per split, the rows with a known target and every modality of ``mods`` (and ``only``, a row mask)."""
    ok = _known(d.y[task])
    for m in mods:
        ok = ok & d.present[m]
    if only is not None:
        ok = ok & only
    return {s: idx[ok[idx]] for s, idx in d.splits.items()}


def _keep_pairs(train: Tensor, fraction: float, seed: int) -> Tensor:
    """A seeded ``fraction`` of the paired training rows that stays paired for the student; the other
    pairs are broken up (each of their modalities serves only its own teachers)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"paired_fraction must be in (0, 1], got {fraction}")
    n = max(2, round(fraction * len(train)))
    gen = torch.Generator().manual_seed(seed + 7919)
    return train[torch.randperm(len(train), generator=gen)[:n]].sort().values


def _test_recordings(d: MultimodalDataset, n_index: int, seed: int) -> dict[str, Tensor]:
    """The loader's splits with the test split grown to ``n_index`` of the 50 recording indices of every
    speaker and digit: FSDD's official 0-4 and ``n_index - 5`` indices drawn with ``seed`` from those the
    loader put in training. A row is one recording and one image, so every recording and every image
    stays in one split."""
    from mmrepro.core.data.av_digits import parse_recording

    names = d.meta["recordings"]
    index = torch.tensor([parse_recording(names[int(r)])[2] for r in d.meta["recording_id"]])
    train_index = torch.unique(index[d.splits["train"]])
    extra = n_index - int(torch.unique(index[d.splits["test"]]).numel())
    if not 0 <= extra <= len(train_index) - 1:
        raise ValueError(f"test_recordings must be in [5, {5 + len(train_index) - 1}] (FSDD's 5 test recordings "
                         f"plus some of the {len(train_index)} training ones, leaving one), got {n_index}")
    gen = torch.Generator().manual_seed(seed + 104729)
    moved = train_index[torch.randperm(len(train_index), generator=gen)[:extra]]
    to_test = torch.isin(index, moved)
    train = d.splits["train"][~to_test[d.splits["train"]]]
    test = torch.cat([d.splits["test"], d.splits["train"][to_test[d.splits["train"]]]]).sort().values
    return {"train": train, "val": d.splits["val"], "test": test}


def av_digits_problem(seed: int = 0, paired_fraction: float = 0.25, audio_snr_db: float | None = None,
                      teacher_width: int = 64, student_width: int = 64, teacher_depths: tuple[int, ...] = (18, 10, 6),
                      student_depth: int = 3, stem: str = "compact", test_recordings: int = 17) -> Problem:
    """AV digits (image, audio) for MIND's Table 5 / App. C: Vanilla concatenation fusion, ResNet
    teachers of three depths on all training rows, a ResNet-3 student on ``paired_fraction`` of them;
    ``test_recordings`` of every speaker's 50 recordings of a digit are test rows (17: 1,020 rows).
    At width 64 the student has the paper's ~151 k parameters and the ResNet-10 teacher its ~4.9 M."""
    loaded = _restrict(load_dataset("av_digits", seed=seed, audio_snr_db=audio_snr_db), ("image", "audio"), "digit")
    d = replace(loaded, splits=_test_recordings(loaded, check_int("test_recordings", test_recordings, 5), seed))
    mods = ("image", "audio")
    uni = _split_rows(d, "digit", mods)
    paired = {"train": _keep_pairs(uni["train"], paired_fraction, seed), "val": uni["val"], "test": uni["test"]}
    res = lambda depth, width: {"type": "resnet", "depth": depth, "width": width, "in_channels": 1,  # noqa: E731
                                "stem": stem}
    return Problem(
        name="av_digits", title="AV digits (digit, multiclass)", data=d, task="digit", modalities=mods,
        paired=paired, unimodal={m: dict(uni) for m in mods},
        student_specs={m: res(student_depth, student_width) for m in mods},
        teacher_specs={m: [res(k, teacher_width) for k in teacher_depths] for m in mods},
        fusion="concat")


def pbc_problem(task: str = "death", seed: int = 0, death_years: float = 5.0, history_years: float = 0.5,
                paired_fraction: float = 0.5, nontrial_labs: bool = True, teacher_hidden: int = 32,
                student_hidden: int | None = None, fold: int | None = None, n_folds: int = 5) -> Problem:
    """PBC (labs series, static) for MIND Tables 1-4: MedFuse LSTM fusion, 2/3/4-layer LSTM and three MLP
    teachers (``teacher_hidden`` wide), a student whose encoders are the smallest of them (a 2-layer LSTM
    and a one-layer MLP, App. C; ``student_hidden`` gives them another width). MedFuse's fusion LSTM is
    twice the time-series encoder's width (MedFuse: 512 over 256, the sizes of Table A1). ``task`` is ``"death"`` (binary, death within ``death_years``) or
    ``"findings"`` (multilabel); ``fold`` (of ``n_folds``) picks the fold of a stratified K-fold partition
    that is the test set (None: a 70/15/15 hold-out split).

    The student's pairs are the trial patients with a lab series; it keeps ``paired_fraction`` of the
    training pairs. Each modality's teachers train on every training row that has that modality and a
    known target: all trial patients' pairs, broken up or not, and (``nontrial_labs``) the non-trial
    patients, whose enrolment labs form a one-visit series and whose static data is complete."""
    if task not in ("death", "findings"):
        raise ValueError(f"unknown PBC task {task!r}; valid: 'death', 'findings'")
    full = load_dataset("pbc", seed=seed, labs="series", death_years=death_years, history_years=history_years,
                        nontrial_labs=nontrial_labs, fold=fold, n_folds=n_folds)
    tname = f"death_{death_years:g}y" if task == "death" else "findings"
    mods = ("labs", "static")
    d = _restrict(full, mods, tname)
    n_lab, n_static = d.x["labs"].shape[2], d.x["static"].shape[1]
    lstm = lambda layers, hidden: {"type": "lstm", "input_size": n_lab, "hidden": hidden, "layers": layers}  # noqa: E731
    mlp = lambda *h: {"type": "mlp", "in_features": n_static, "hidden": list(h)}  # noqa: E731
    th, sh = teacher_hidden, student_hidden or teacher_hidden
    teachers = {"labs": [lstm(k, th) for k in (2, 3, 4)],
                "static": [mlp(th), mlp(2 * th, 2 * th), mlp(4 * th, 4 * th, 4 * th)]}
    pairs = _split_rows(d, tname, mods, only=full.meta["trial"])
    paired = {**pairs, "train": _keep_pairs(pairs["train"], paired_fraction, seed)}
    return Problem(
        name=f"pbc_{task}", title=f"PBC ({tname}, {d.tasks[tname].kind})", data=d, task=tname, modalities=mods,
        paired=paired, unimodal={m: _split_rows(d, tname, (m,)) for m in mods},
        student_specs={"labs": lstm(2, sh), "static": mlp(sh)}, teacher_specs=teachers,
        fusion="lstm", fusion_kw={"token_dim": sh, "fusion_hidden": 2 * sh, "dropout": 0.3},
        fold=fold, n_folds=None if fold is None else n_folds)


def load_problem(name: str, seed: int = 0, **options: Any) -> Problem:
    """``av_digits``, ``pbc_death`` or ``pbc_findings`` (options go to the builder; ``fold`` / ``n_folds``
    for PBC)."""
    if name == "av_digits":
        return av_digits_problem(seed=seed, **options)
    if name in ("pbc_death", "pbc_findings"):
        return pbc_problem(task=name.split("_")[1], seed=seed, **options)
    raise ValueError(f"unknown MIND problem {name!r}; valid: {PROBLEMS}")
