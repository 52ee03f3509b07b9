"""The MILES chapter's experiments, in the order of the paper (MILES Sec. IV-V): the search for a stand-in in
S-MNIST's regime (Figure 1's imbalance), the unimodal references (Table I), the main comparison of every
balancing method and of eq. 3 without the scheduler (Tables II-III), the τ and μ sensitivity (Tables IV-V),
u from training metrics (Table VI), the learning dynamics (Figure 2) and the three-view extension (Sec. VII).

:class:`MilesStudy` holds the chapter's datasets and setups (:mod:`mmrepro.papers.miles.setup`) and trains
through :mod:`mmrepro.runs` (the run cache first); its methods return plain pandas frames that
:mod:`~mmrepro.papers.miles.report` turns into tables and figures and :mod:`~mmrepro.papers.miles.findings`
into claims. Every test number is kept per test row (:meth:`MilesStudy.rows`), so that intervals count the
seeds and the test rows.
"""
from __future__ import annotations

import copy
import json
import math
import re
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Mapping

import numpy as np
import pandas as pd

from mmrepro.core.data import load_dataset
from mmrepro.papers.miles.setup import CONTROL, METHODS, Arch, JointRun, JointSetup, flattened, method_space
from mmrepro.runs.jobs import run_jobs
from mmrepro.runs.repeat import Repeated, search_then_repeat, seeds_from
from mmrepro.runs.space import LogUniform

FUSIONS = ("concat", "sum")
FUSION_SYMBOL = {"concat": "⊕", "sum": "+"}
MAIN = "av_digits"
NAMES = {"av_digits": "AV digits", "mfeat": "Multiple Features", "synthetic": "Synthetic"}
PAPER_MUS = (1.0, 0.75, 0.5, 0.25, 0.1, 0.05, 0.01)  # Table V's μ values
#: S-MNIST's regime (Table I, Table II's vanilla row) as the regime search asks for it on validation rows:
#: the strong modality saturates alone, the fused head adds little to it, the weak one is clearly below,
#: and inside vanilla the weak encoder lags while the strong one does not
REGIME = {"strong alone at least": 97.0, "fused within": 1.0, "weak below strong by at least": 5.0,
          "lag at least": 15.0, "strong gap at most": 2.0}


def numbers(text: Any) -> list[str]:
    """The numbers in a comma-separated parameter ("5,0,-5"; a command line may hand over "(5, 0, -5)")."""
    return re.findall(r"[-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?", str(text))


def per_seed(frame: pd.DataFrame, col: str, **where: Any) -> np.ndarray:
    """``col`` of the rows matching ``where``, ordered by seed (methods share seeds: pairs line up)."""
    sel = frame
    for k, v in where.items():
        sel = sel[sel[k] == v]
    return sel.sort_values("seed")[col].to_numpy(dtype=float)


def correct_rows(runs: list[JointRun], key: str) -> np.ndarray:
    """(seeds, test rows) matrix of 100 x correct of readout ``key``, the runs ordered by seed."""
    return 100 * np.stack([r.test_rows(key).numpy() for r in sorted(runs, key=lambda r: r.seed)]).astype(float)


def distinct_jobs(objective: Any, jobs: list[tuple[dict[str, Any], int]], executor: str) -> list[JointRun]:
    """:func:`run_jobs` training each distinct ``(config, seed)`` once (in one stacked call where they fit);
    a repeated job gets its own copy of the run (each is evaluated on the test split once)."""
    key = lambda job: json.dumps(job, sort_keys=True)  # noqa: E731
    distinct = {key(job): job for job in jobs}
    trained = dict(zip(distinct, run_jobs(objective, list(distinct.values()), executor)))
    seen: set[str] = set()
    out = []
    for job in jobs:
        k = key(job)
        out.append(trained[k] if k not in seen else copy.deepcopy(trained[k]))
        seen.add(k)
    return out


@dataclass(frozen=True)
class Regime:
    """A candidate stand-in for S-MNIST on AV digits: the encoders (``"resnet"``, ResNet-10 on both 28 x 28
    inputs as the paper; ``"mlp"``, flattened standardised inputs), the pairing (``"images"``: every MNIST
    image paired by class; ``"recordings"``: one image per recording) and the white noise on the recordings."""

    encoder: str
    pairing: str
    snr_db: float

    @classmethod
    def parse(cls, text: str, snr_db: float) -> "Regime":
        """``"encoder/pairing"`` (noise ``snr_db``) or ``"encoder/pairing/snr"``, e.g. ``"resnet/images/-5"``."""
        parts = [p.strip() for p in text.split("/")]
        if len(parts) not in (2, 3) or parts[0] not in ("resnet", "mlp") or parts[1] not in ("images", "recordings"):
            raise ValueError(f"a regime is 'encoder/pairing' or 'encoder/pairing/snr' with encoder resnet or mlp and "
                             f"pairing images or recordings, e.g. 'resnet/images' or 'mlp/recordings/5'; got {text!r}")
        return cls(parts[0], parts[1], float(parts[2]) if len(parts) == 3 else float(snr_db))

    def label(self) -> str:
        """A short name for tables and figures, e.g. ``"ResNet-10, by image, 0 dB"``."""
        enc = "ResNet-10" if self.encoder == "resnet" else "MLP"
        return f"{enc}, by {'image' if self.pairing == 'images' else 'recording'}, {self.snr_db:g} dB"

    def describe(self, n_train: int) -> str:
        enc = "ResNet-10" if self.encoder == "resnet" else "MLP (flattened)"
        pairs = "paired by image" if self.pairing == "images" else "one image per recording"
        return f"{enc}, {n_train:,} training pairs ({pairs}), audio at {self.snr_db:g} dB"


def parse_regimes(text: str, snr_db: float) -> list[Regime]:
    """The comma-separated candidates of the ``regimes`` parameter, in the order they are tried (noise
    ``snr_db``, the ``audio_snr_db`` parameter, where a candidate names none)."""
    out = [Regime.parse(t, snr_db) for t in str(text).split(",") if t.strip()]
    if not out:
        raise ValueError(f"regimes must name at least one candidate, e.g. 'resnet/images/-5'; got {text!r}")
    return out


@dataclass
class Ablations:
    """The τ and μ sweeps (Tables IV-V) and eq. 3 without the scheduler at the same rate: one row per run
    (``study`` is "tau", "mu" or "eq3") and the runs themselves, keyed (study, value, fusion) (value None for
    eq3)."""

    rows: pd.DataFrame
    runs: dict[tuple[str, float | None, str], list[JointRun]]
    taus: list[float]
    mus: list[float]
    seeds: list[int]


class MilesStudy:
    """The chapter's datasets, setups and experiments for the resolved notebook parameters ``params``
    (the names of the notebook's parameters cell) on ``device``."""

    def __init__(self, params: Mapping[str, Any], device: Any) -> None:
        P = self.P = SimpleNamespace(**dict(params))
        self.device = device
        self.views2 = [v.strip() for v in P.mf_views.split(",")]
        self.views3 = [v.strip() for v in P.mf_views3.split(",")]
        if len(self.views2) != 2 or len(self.views3) != 3:
            raise ValueError(f"mf_views needs two views and mf_views3 three, got {self.views2} and {self.views3}")
        self.regimes = parse_regimes(P.regimes, P.audio_snr_db)
        self.fusions_abl = [f.strip() for f in P.ablation_fusions.split(",")]
        self.lr = LogUniform(P.lr_low, P.lr_high)
        self.lr_mid = math.sqrt(P.lr_low * P.lr_high)  # the fixed rate of the regime search
        self.arch = Arch(resnet_depth=10, resnet_width=P.resnet_width, resnet_stem="imagenet", mlp_hidden=(128, 64))
        self.seeds = {"av_digits": seeds_from(P.seed, P.n_seeds), "mfeat": seeds_from(P.seed, P.n_seeds_other),
                      "synthetic": seeds_from(P.seed, P.n_seeds_other)}
        self.trials = {"av_digits": P.n_trials, "mfeat": P.n_trials_other, "synthetic": P.n_trials_other}
        self.data: dict[str, Any] = {
            "mfeat": load_dataset("mfeat", seed=P.seed, views=self.views2),
            "synthetic": load_dataset("synthetic_bimodal", seed=P.seed, n=2000, strength=(3.0, 1.5), speed=(2.0, 1.0)),
        }
        self.setups: dict[str, JointSetup] = {
            k: JointSetup(d, self.arch, P.epochs_tab, P.batch_size_tab, device) for k, d in self.data.items()}
        self.regime: Regime | None = None
        self.uni_lr: dict[str, dict[str, float]] = {}
        self.uni_runs: dict[tuple[str, str], list[JointRun]] = {}
        self.strong: dict[str, str] = {}
        self.weak: dict[str, str] = {}
        self.gap: dict[str, float] = {}
        self.taus: dict[str, list[float]] = {}
        self.kept: dict[tuple[str, str, str], Repeated] = {}

    # ------------------------------------------------------------------ the stand-in (Figure 1's regime)

    def av_setup(self, regime: Regime) -> JointSetup:
        """AV digits in ``regime`` (:class:`Regime`) with the chapter's epochs, batch size and training rows."""
        P = self.P
        d = load_dataset("av_digits", seed=P.seed, audio_snr_db=regime.snr_db, pairing=regime.pairing)
        d = flattened(d) if regime.encoder == "mlp" else d
        return JointSetup(d, self.arch, P.epochs_av, P.batch_size, self.device, train_rows=P.av_train_rows or None,
                          data_seed=P.seed)

    def regime_search(self) -> pd.DataFrame:
        """The search for a stand-in in S-MNIST's regime (:data:`REGIME`), on validation rows: for each
        candidate of ``regimes``, in order, vanilla concatenation (fused loss only) and each modality alone at
        the fixed rate with ``lag_seeds`` seeds; each modality read as the paper reads it (inside vanilla by
        the fusion-layer split, alone by the model's own head). The search stops at the first candidate whose
        means meet every criterion, which carries the main comparison (:attr:`regime`); when none does, the
        nearest (:meth:`regime_shortfall`) carries it. Returns one row per (candidate, seed) with validation
        accuracies in %."""
        P, rows = self.P, []
        seeds = seeds_from(P.seed, P.lag_seeds)
        jobs = [({"lr": self.lr_mid}, sd) for sd in seeds]
        setups, missed = [], []
        for i, regime in enumerate(self.regimes):
            s = self.av_setup(regime)
            van = run_jobs(s.objective("vanilla", "concat"), jobs, P.executor)
            alone = {m: run_jobs(s.unimodal_objective(m), jobs, P.executor) for m in s.modalities}
            for k, sd in enumerate(seeds):
                rec = {"candidate": i, "regime": regime.describe(s.train.n), "seed": sd,
                       "fused": 100 * van[k].val_readout["fusion"]}
                for m in s.modalities:
                    rec[f"{m} alone"] = 100 * alone[m][k].val_readout["fusion"]
                    rec[f"{m} inside"] = 100 * van[k].val_readout[f"split:{m}"]
                rows.append(rec)
            frame = pd.DataFrame(rows)
            setups.append(s)
            missed.append(self.regime_shortfall(frame[frame.candidate == i]))
            if missed[-1] == 0:
                break
        self.search = search = pd.DataFrame(rows)
        best = min(range(len(missed)), key=lambda i: (missed[i], i))  # the first to meet every criterion, else the nearest
        chosen = (self.regimes[best], setups[best])
        self.regime = chosen[0]
        self.setups = {MAIN: chosen[1], **{k: v for k, v in self.setups.items() if k != MAIN}}
        self.data[MAIN] = chosen[1].data
        return search

    @staticmethod
    def regime_means(frame: pd.DataFrame) -> dict[str, float]:
        """One candidate's means over seeds: the strong and weak modality (by their accuracy alone), each
        alone and inside vanilla, the fused head, the lag and the strong gap (points)."""
        mods = [c[:-len(" alone")] for c in frame.columns if c.endswith(" alone")]
        mean = frame.mean(numeric_only=True)
        strong = max(mods, key=lambda m: mean[f"{m} alone"])
        weak = min(mods, key=lambda m: mean[f"{m} alone"])
        return {"strong": strong, "weak": weak, "strong alone": mean[f"{strong} alone"],
                "weak alone": mean[f"{weak} alone"], "fused": mean["fused"],
                "strong inside": mean[f"{strong} inside"], "weak inside": mean[f"{weak} inside"],
                "lag": mean[f"{weak} alone"] - mean[f"{weak} inside"],
                "strong gap": mean[f"{strong} alone"] - mean[f"{strong} inside"]}

    @classmethod
    def regime_checks(cls, frame: pd.DataFrame) -> dict[str, bool]:
        """Each criterion of :data:`REGIME` on one candidate's rows."""
        r = cls.regime_means(frame)
        return {"strong alone at least": r["strong alone"] >= REGIME["strong alone at least"],
                "fused within": abs(r["fused"] - r["strong alone"]) <= REGIME["fused within"],
                "weak below strong by at least": r["strong alone"] - r["weak alone"] >= REGIME["weak below strong by at least"],
                "lag at least": r["lag"] >= REGIME["lag at least"],
                "strong gap at most": r["strong gap"] <= REGIME["strong gap at most"]}

    @classmethod
    def regime_shortfall(cls, frame: pd.DataFrame) -> float:
        """By how many points, summed over :data:`REGIME`'s criteria, one candidate's means miss them (0: it
        meets every one)."""
        r, c = cls.regime_means(frame), REGIME
        return float(max(0.0, c["strong alone at least"] - r["strong alone"])
                     + max(0.0, abs(r["fused"] - r["strong alone"]) - c["fused within"])
                     + max(0.0, c["weak below strong by at least"] - (r["strong alone"] - r["weak alone"]))
                     + max(0.0, c["lag at least"] - r["lag"]) + max(0.0, r["strong gap"] - c["strong gap at most"]))

    @classmethod
    def meets_regime(cls, frame: pd.DataFrame) -> bool:
        return cls.regime_shortfall(frame) == 0

    # ------------------------------------------------------------------ Table I

    def unimodal_references(self) -> pd.DataFrame:
        """Table I: each modality alone, the same learning-rate search, then every seed; one row per
        (dataset, modality, seed) with the test accuracy (its own head) and the refitted probe in %. Sets
        :attr:`uni_lr` (MSLR-K's rates), :attr:`uni_runs`, :attr:`strong`, :attr:`weak` and :attr:`gap`."""
        rows = []
        for key, s in self.setups.items():
            self.uni_lr[key] = {}
            for m in s.modalities:
                rep = search_then_repeat(s.unimodal_objective(m), {"lr": self.lr}, self.trials[key], self.seeds[key],
                                         keep_runs=True, executor=self.P.executor)
                self.uni_lr[key][m] = rep.search.best_config["lr"]
                self.uni_runs[(key, m)] = rep.runs
                for r in rep.rows:
                    rows.append({"dataset": key, "modality": m, "seed": r["seed"], "test": 100 * r["fusion"],
                                 "refitted probe": 100 * r[m]})
        uni = self.uni = pd.DataFrame(rows)
        for key in self.setups:
            acc = uni[uni.dataset == key].groupby("modality", sort=False)["test"].mean()
            self.strong[key], self.weak[key] = acc.idxmax(), acc.idxmin()
            self.gap[key] = float(acc.max() - acc.min())
        return uni

    def alone_rows(self, key: str, modality: str) -> np.ndarray:
        """(seeds, test rows) 100 x correct of ``modality``'s unimodal model (its own head)."""
        return correct_rows(self.uni_runs[(key, modality)], "fusion")

    # ------------------------------------------------------------------ Tables II-III

    def main_comparison(self) -> pd.DataFrame:
        """Tables II-III: for each dataset and fusion, the eq. 3 control first (its δ sets τ's range,
        :meth:`set_taus`), then every balancing method: the random search and every seed (runs kept in
        :attr:`kept`); one row per run with accuracies in % by the paper's readout (``strong``, ``weak``),
        by the refitted probe and by the probe trained alongside, and Δ = strong - weak."""
        rows = []
        for key, s in self.setups.items():
            for fusion in FUSIONS:
                for meth in (CONTROL, *[m for m in METHODS if m != CONTROL]):
                    if meth == "miles" and key not in self.taus:
                        self.set_taus(key)
                    rep = search_then_repeat(s.objective(meth, fusion, self.uni_lr[key]),
                                             method_space(meth, self.lr, s.epochs, self.taus.get(key)),
                                             self.trials[key], self.seeds[key], keep_runs=True,
                                             executor=self.P.executor)
                    self.kept[(key, fusion, meth)] = rep
                    st, wk = self.strong[key], self.weak[key]
                    for r in rep.rows:
                        rows.append({"dataset": key, "fusion": fusion, "method": meth, "seed": r["seed"],
                                     "val": 100 * r["val_score"], "fused": 100 * r["fusion"],
                                     "strong": 100 * r[f"readout:{st}"], "weak": 100 * r[f"readout:{wk}"],
                                     "strong (refitted probe)": 100 * r[st], "weak (refitted probe)": 100 * r[wk],
                                     "weak (probe alongside)": 100 * r[f"probe:{wk}"], "best_epoch": r["best_epoch"],
                                     **{f"cfg:{k}": v for k, v in rep.search.best_config.items()}})
        main = self.main = pd.DataFrame(rows)
        main["delta"] = main["strong"] - main["weak"]
        main["delta (refitted probe)"] = main["strong (refitted probe)"] - main["weak (refitted probe)"]
        return main

    def set_taus(self, key: str) -> list[float]:
        """τ's search range on dataset ``key``: the 10th, 30th, 50th, 70th and 90th percentiles of the δ that
        the eq. 3 control (MILES with μ = 1, what MILES reads when it does not act) reaches after its first
        epoch, concatenation, every seed."""
        late = self.control_delta(key)
        qs = np.quantile(late, [0.1, 0.3, 0.5, 0.7, 0.9]) if len(late) else np.array([0.0, 0.05, 0.1, 0.2, 0.3])
        self.taus[key] = sorted({float(np.clip(round(q, 2), 0.0, 1.0)) for q in qs})
        return self.taus[key]

    def control_delta(self, key: str) -> np.ndarray:
        """δ after every epoch but the first in the eq. 3 control's runs (concatenation) on ``key``."""
        d = self.dynamics(key, "concat", CONTROL)
        return d[(d.epoch > 1) & d["δ"].notna()]["δ"].to_numpy(dtype=float)

    def rows(self, key: str, fusion: str, method: str, readout: str) -> np.ndarray:
        """(seeds, test rows) 100 x correct of ``readout`` (``"fusion"``, ``"strong"``, ``"weak"`` or a run key)
        for ``method``'s runs on ``key`` with ``fusion``."""
        name = {"strong": f"readout:{self.strong[key]}", "weak": f"readout:{self.weak[key]}"}.get(readout, readout)
        return correct_rows(self.kept[(key, fusion, method)].runs, name)

    def delta_rows(self, key: str, fusion: str, method: str) -> np.ndarray:
        """(seeds, test rows) of Δ's per-row terms: 100 x (strong correct - weak correct)."""
        return self.rows(key, fusion, method, "strong") - self.rows(key, fusion, method, "weak")

    # ------------------------------------------------------------------ Tables IV-V

    def ablations(self) -> Ablations:
        """Tables IV-V on the main dataset: the selected MILES configuration's rate kept, τ (the lowest, middle
        and highest of this dataset's range, 0 and the paper's 0.2) or μ (``mus``) varied, ``ablation_seeds`` seeds; and the eq. 3
        control at the same rate and seeds (what μ = 1 must equal)."""
        P, s_abl = self.P, self.setups[MAIN]
        seeds = seeds_from(P.seed, P.ablation_seeds)
        rng = self.taus[MAIN]
        taus = sorted({0.0, 0.2, rng[0], rng[len(rng) // 2], rng[-1]}, reverse=True)
        mus = [float(v) for v in numbers(P.mus)]
        if 1.0 not in mus or any(not 0 < v <= 1 for v in mus):
            raise ValueError(f"mus must lie in (0, 1] and include 1 (the mu = 1 check), got {mus}")
        strong, weak = self.strong[MAIN], self.weak[MAIN]
        rows, kept = [], {}
        for fusion in self.fusions_abl:
            best = dict(self.kept[(MAIN, fusion, "miles")].search.best_config)
            sweeps = [(which, v, {**best, which: v}) for which, values in (("tau", taus), ("mu", mus)) for v in values]
            jobs = [(cfg, sd) for _, _, cfg in sweeps for sd in seeds]
            runs = distinct_jobs(s_abl.objective("miles", fusion, self.uni_lr[MAIN]), jobs, P.executor)
            runs += run_jobs(s_abl.objective(CONTROL, fusion, self.uni_lr[MAIN]),
                             [({"lr": best["lr"]}, sd) for sd in seeds], P.executor)
            sweeps.append(("eq3", None, {"lr": best["lr"]}))
            for i, (which, v, cfg) in enumerate(sweeps):
                kept[(which, v, fusion)] = group = runs[i * len(seeds):(i + 1) * len(seeds)]
                for sd, r in zip(seeds, group):
                    t = r.evaluate_test()
                    rows.append({"study": which, "value": math.nan if v is None else v, "fusion": fusion, "seed": sd,
                                 "fused": 100 * t["fusion"], "strong": 100 * t[f"readout:{strong}"],
                                 "weak": 100 * t[f"readout:{weak}"], "lr": cfg["lr"],
                                 "epochs slowed": sum(d.get("slowed", "none") != "none" for d in r.decisions)})
        self.abl = Ablations(pd.DataFrame(rows), kept, taus, mus, seeds)
        return self.abl

    def ablation_rows(self, which: str, value: float | None, fusion: str, readout: str) -> np.ndarray:
        """(seeds, test rows) 100 x correct of ``readout`` ("fusion", "strong", "weak") in one ablation setting."""
        name = {"strong": f"readout:{self.strong[MAIN]}", "weak": f"readout:{self.weak[MAIN]}"}.get(readout, readout)
        return correct_rows(self.abl.runs[(which, value, fusion)], name)

    # ------------------------------------------------------------------ Table VI

    def u_from_training(self) -> dict[tuple[str, str], Repeated]:
        """Table VI on the main dataset: MILES with u from training metrics gets the same search as with u
        from validation metrics (the main comparison's runs)."""
        P, s_abl, out = self.P, self.setups[MAIN], {}
        for fusion in self.fusions_abl:
            for split in ("train", "val"):
                space = {**method_space("miles", self.lr, s_abl.epochs, self.taus[MAIN]), "u_split": split}
                out[(fusion, split)] = (
                    self.kept[(MAIN, fusion, "miles")] if split == "val" else
                    search_then_repeat(s_abl.objective("miles", fusion, self.uni_lr[MAIN]), space, P.n_trials,
                                       self.seeds[MAIN], keep_runs=True, executor=P.executor))
        self.t6 = out
        return out

    # ------------------------------------------------------------------ Figure 2

    def dynamics(self, key: str, fusion: str, meth: str = "miles") -> pd.DataFrame:
        """Per-epoch records of every seed's run of the selected configuration: the fused head's and each
        modality's validation accuracy (its unimodal head where the method trains one, else the probe
        trained alongside), u, δ and the encoders' rate multipliers (Figure 2)."""
        out = []
        for rr in self.kept[(key, fusion, meth)].runs:
            for _, row in rr.frame().iterrows():
                rec = {"seed": rr.seed, "epoch": int(row["epoch"]) + 1, "δ": row.get("delta", math.nan),
                       "fused (val)": 100 * row["val/fusion/accuracy"]}
                for m in self.data[key].modalities:
                    head = m if f"val/{m}/accuracy" in row else f"probe:{m}"
                    rec[f"{m} (val)"] = 100 * row[f"val/{head}/accuracy"]
                    rec[f"lr {m} / α"] = row[f"lr/{m}"] / row["lr/fusion"]
                    rec[f"u {m}"] = row.get(f"u:{m}", math.nan)
                out.append(rec)
        return pd.DataFrame(out)

    def delta_early_late(self, key: str, fusion: str, meth: str = "miles") -> tuple[pd.Series, pd.Series]:
        """``meth``'s mean δ per seed over the first third of the epochs (after epoch 1) and over the last third."""
        d = self.dynamics(key, fusion, meth)
        n_ep = int(d["epoch"].max())
        third = max(1, n_ep // 3)
        early = d[(d.epoch > 1) & (d.epoch <= 1 + third)].groupby("seed")["δ"].mean()
        late = d[d.epoch > n_ep - third].groupby("seed")["δ"].mean()
        return early.sort_index(), late.sort_index()

    # ------------------------------------------------------------------ Sec. VII

    def three_views(self) -> pd.DataFrame:
        """Beyond the paper: vanilla and MILES (the pairwise extension) on three Multiple Features views,
        the same search and seeds; one row per run."""
        P = self.P
        d3 = load_dataset("mfeat", seed=P.seed, views=self.views3)
        s3 = JointSetup(d3, self.arch, P.epochs_tab, P.batch_size_tab, self.device)
        rows = []
        for meth in ("vanilla", "miles"):
            rep = search_then_repeat(s3.objective(meth, "concat"), method_space(meth, self.lr, s3.epochs, self.taus["mfeat"]),
                                     P.n_trials_other, self.seeds["mfeat"], executor=P.executor)
            for r in rep.rows:
                rows.append({"method": meth, "seed": r["seed"], "fused": 100 * r["fusion"],
                             **{v: 100 * r[f"readout:{v}"] for v in self.views3}})
        return pd.DataFrame(rows)
