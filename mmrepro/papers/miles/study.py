"""The MILES chapter's experiments, in the order of the paper (MILES Sec. IV-V): the unimodal references
(Table I), the search for the imbalance that Figure 1 shows, the pilots that set τ's range, the main
comparison of every balancing method (Tables II-III), the τ and μ sensitivity (Tables IV-V), u from
training metrics (Table VI), the learning dynamics (Figure 2) and the three-view extension (Sec. VII).

:class:`MilesStudy` holds the chapter's datasets and setups (:mod:`mmrepro.papers.miles.setup`) and trains
through :mod:`mmrepro.runs` (the run cache first); each method returns plain pandas frames that
:mod:`~mmrepro.papers.miles.report` turns into tables and figures and
:mod:`~mmrepro.papers.miles.findings` into claims.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Mapping

import numpy as np
import pandas as pd

from mmrepro.core.data import load_dataset
from mmrepro.papers.miles.setup import BALANCING_METHODS, Arch, JointSetup, flattened, method_space
from mmrepro.runs.jobs import run_jobs
from mmrepro.runs.repeat import Repeated, search_then_repeat, seeds_from, summarise
from mmrepro.runs.space import LogUniform

FUSIONS = ("concat", "sum")
FUSION_SYMBOL = {"concat": "⊕", "sum": "+"}
MAIN = "av_digits"
NAMES = {"av_digits": "AV digits", "mfeat": "Multiple Features", "synthetic": "Synthetic"}
PAPER_MUS = (1.0, 0.75, 0.5, 0.25, 0.1, 0.05, 0.01)  # Table V's μ values


def numbers(text: Any) -> list[str]:
    """The numbers in a comma-separated parameter ("5,0,-5"; a command line may hand over "(5, 0, -5)")."""
    return re.findall(r"[-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?", str(text))


def per_seed(frame: pd.DataFrame, col: str, **where: Any) -> np.ndarray:
    """``col`` of the rows matching ``where``, ordered by seed (methods share seeds: pairs line up)."""
    sel = frame
    for k, v in where.items():
        sel = sel[sel[k] == v]
    return sel.sort_values("seed")[col].to_numpy(dtype=float)


@dataclass
class Ablations:
    """The τ and μ sweeps (Tables IV-V) and eq. 3 training without the scheduler: one row per run
    (``study`` is "tau", "mu" or "eq3"), and each study's means over seeds."""

    rows: pd.DataFrame
    summary: pd.DataFrame
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
        self.fusions_abl = [f.strip() for f in P.ablation_fusions.split(",")]
        self.lr = LogUniform(P.lr_low, P.lr_high)
        self.lr_mid = math.sqrt(P.lr_low * P.lr_high)  # the fixed rate of the pilots and of the imbalance search
        self.arch = Arch(resnet_depth=10, resnet_width=P.resnet_width, resnet_stem="imagenet", mlp_hidden=(128, 64))
        self.seeds = {"av_digits": seeds_from(P.seed, P.n_seeds), "mfeat": seeds_from(P.seed, P.n_seeds_other),
                      "synthetic": seeds_from(P.seed, P.n_seeds_other)}
        self.trials = {"av_digits": P.n_trials, "mfeat": P.n_trials_other, "synthetic": P.n_trials_other}
        self.data = {
            "av_digits": self.av_data(P.audio_snr_db),
            "mfeat": load_dataset("mfeat", seed=P.seed, views=self.views2),
            "synthetic": load_dataset("synthetic_bimodal", seed=P.seed, n=2000, strength=(3.0, 1.5), speed=(2.0, 1.0)),
        }
        self.setups = {
            "av_digits": self.av_setup(self.data["av_digits"]),
            "mfeat": JointSetup(self.data["mfeat"], self.arch, P.epochs_tab, P.batch_size_tab, device),
            "synthetic": JointSetup(self.data["synthetic"], self.arch, P.epochs_tab, P.batch_size_tab, device),
        }
        self.uni_lr: dict[str, dict[str, float]] = {}
        self.strong: dict[str, str] = {}
        self.weak: dict[str, str] = {}
        self.gap: dict[str, float] = {}
        self.taus: dict[str, list[float]] = {}
        self.kept: dict[tuple[str, str, str], Repeated] = {}

    # ------------------------------------------------------------------ data

    def av_data(self, snr: float):
        """AV digits with white noise at ``snr`` dB on the recordings, flattened for MLP encoders."""
        d = load_dataset("av_digits", seed=self.P.seed, audio_snr_db=snr)
        return flattened(d) if self.P.av_encoder == "mlp" else d

    def av_setup(self, d) -> JointSetup:
        P = self.P
        return JointSetup(d, self.arch, P.epochs_av, P.batch_size, self.device, train_rows=P.av_train_rows or None,
                          data_seed=P.seed)

    # ------------------------------------------------------------------ Table I

    def unimodal_references(self) -> pd.DataFrame:
        """Table I: each modality alone, the same learning-rate search, then every seed; one row per
        (dataset, modality, seed) with the test accuracy in %. Sets :attr:`uni_lr` (MSLR-K's rates),
        :attr:`strong`, :attr:`weak` and :attr:`gap` (points)."""
        rows = []
        for key, s in self.setups.items():
            self.uni_lr[key] = {}
            for m in s.modalities:
                rep = search_then_repeat(s.unimodal_objective(m), {"lr": self.lr}, self.trials[key], self.seeds[key],
                                         executor=self.P.executor)
                self.uni_lr[key][m] = rep.search.best_config["lr"]
                for r in rep.rows:
                    rows.append({"dataset": key, "modality": m, "seed": r["seed"], "test": 100 * r["fusion"]})
        uni = self.uni = pd.DataFrame(rows)
        for key in self.setups:
            acc = uni[uni.dataset == key].groupby("modality", sort=False)["test"].mean()
            self.strong[key], self.weak[key] = acc.idxmax(), acc.idxmin()
            self.gap[key] = float(acc.max() - acc.min())
        return uni

    # ------------------------------------------------------------------ Figure 1

    def lag_search(self) -> pd.DataFrame:
        """The search for Figure 1's imbalance on AV digits: for each noise level of ``lag_snrs``, vanilla
        concatenation and audio alone at the fixed rate, ``lag_seeds`` seeds; accuracies in %."""
        P, rows = self.P, []
        lag_seeds = seeds_from(P.seed, P.lag_seeds)
        for snr in [float(v) for v in numbers(P.lag_snrs)]:
            d = self.data[MAIN] if snr == P.audio_snr_db else self.av_data(snr)
            s = self.setups[MAIN] if snr == P.audio_snr_db else self.av_setup(d)
            weak = "audio"
            vans = run_jobs(s.objective("vanilla", "concat"), [({"lr": self.lr_mid}, sd) for sd in lag_seeds], P.executor)
            alones = run_jobs(s.unimodal_objective(weak), [({"lr": self.lr_mid}, sd) for sd in lag_seeds], P.executor)
            for sd, v_run, a_run in zip(lag_seeds, vans, alones):
                van, alone = v_run.evaluate_test(), a_run.evaluate_test()
                rows.append({"audio SNR (dB)": snr, "seed": sd, "audio alone": 100 * alone["fusion"],
                             "audio probe in vanilla": 100 * van[weak], "image probe in vanilla": 100 * van["image"],
                             "fused": 100 * van["fusion"]})
        return pd.DataFrame(rows)

    # ------------------------------------------------------------------ τ's range

    def tau_pilots(self) -> pd.DataFrame:
        """δ after every epoch of eq. 3 training without the scheduler (MILES with μ = 1) at the fixed rate,
        ``lag_seeds`` seeds, concatenation, per dataset; sets :attr:`taus`, τ's search range: the 10th,
        30th, 50th, 70th and 90th percentiles of δ after the first epoch."""
        P, rows = self.P, []
        for key, s in self.setups.items():
            pilot_seeds = seeds_from(P.seed, P.lag_seeds)
            runs = run_jobs(s.objective("miles", "concat", self.uni_lr[key]),
                            [({"lr": self.lr_mid, "tau": 1.0, "mu": 1.0}, sd) for sd in pilot_seeds], P.executor)
            for sd, r in zip(pilot_seeds, runs):
                for _, row in r.frame().iterrows():
                    if "delta" in row and np.isfinite(row["delta"]):
                        rows.append({"dataset": NAMES[key], "seed": sd, "epoch": int(row["epoch"]) + 1,
                                     "δ": float(row["delta"]), "heads": "eq. 3 (MILES's own heads, μ = 1)"})
        pilot = self.pilot = pd.DataFrame(rows)
        for key in self.setups:
            late = self.late_delta(key)
            qs = np.quantile(late, [0.1, 0.3, 0.5, 0.7, 0.9]) if len(late) else np.array([0.0, 0.05, 0.1, 0.2, 0.3])
            self.taus[key] = sorted({float(np.clip(round(q, 2), 0.0, 1.0)) for q in qs})
        return pilot

    def late_delta(self, key: str) -> pd.Series:
        """The pilots' δ after the first epoch on dataset ``key``."""
        return self.pilot[(self.pilot.dataset == NAMES[key]) & (self.pilot.epoch > 1)]["δ"]

    def floor(self, key: str) -> float:
        """Table I's gap over a fused accuracy of 1 (an upper bound of the δ both heads at their unimodal
        accuracies would give: the floor)."""
        return self.gap[key] / 100

    # ------------------------------------------------------------------ Tables II-III

    def main_comparison(self) -> pd.DataFrame:
        """Tables II-III: for each dataset, fusion and method, the random search and every seed (runs kept
        in :attr:`kept`); one row per run with accuracies in % and Δ = strong - weak."""
        rows = []
        for key, s in self.setups.items():
            for fusion in FUSIONS:
                for meth in BALANCING_METHODS:
                    rep = search_then_repeat(s.objective(meth, fusion, self.uni_lr[key]),
                                             method_space(meth, self.lr, s.epochs, self.taus[key]), self.trials[key],
                                             self.seeds[key], keep_runs=True, executor=self.P.executor)
                    self.kept[(key, fusion, meth)] = rep
                    for r in rep.rows:
                        rows.append({"dataset": key, "fusion": fusion, "method": meth, "seed": r["seed"],
                                     "val": 100 * r["val_score"], "fused": 100 * r["fusion"],
                                     "strong": 100 * r[self.strong[key]], "weak": 100 * r[self.weak[key]],
                                     "weak (probe alongside)": 100 * r[f"probe:{self.weak[key]}"],
                                     "best_epoch": r["best_epoch"],
                                     **{f"cfg:{k}": v for k, v in rep.search.best_config.items()}})
        main = self.main = pd.DataFrame(rows)
        main["delta"] = main["strong"] - main["weak"]
        self.summary = summarise(main, ["dataset", "fusion", "method"], ["fused", "strong", "weak", "delta"])
        return main

    def means(self, key: str, fusion: str, col: str) -> pd.Series:
        """Mean over seeds of ``col`` per method on dataset ``key`` with ``fusion``."""
        s = self.summary
        return s[(s.dataset == key) & (s.fusion == fusion)].set_index("method")[col]

    # ------------------------------------------------------------------ Tables IV-V

    def ablations(self) -> Ablations:
        """Tables IV-V on AV digits: the selected MILES configuration's rate kept, τ (this dataset's range
        plus 0 and the paper's 0.2) or μ (``mus``) varied, ``ablation_seeds`` seeds; and eq. 3 training
        without the scheduler at the same rate and seeds (what μ = 1 must equal)."""
        P, s_abl = self.P, self.setups[MAIN]
        seeds = seeds_from(P.seed, P.ablation_seeds)
        taus = sorted({0.0, 0.2, *self.taus[MAIN]}, reverse=True)
        mus = [float(v) for v in numbers(P.mus)]
        if 1.0 not in mus or any(not 0 < v <= 1 for v in mus):
            raise ValueError(f"mus must lie in (0, 1] and include 1 (the mu = 1 check), got {mus}")
        strong, weak = self.strong[MAIN], self.weak[MAIN]
        rows = []
        for fusion in self.fusions_abl:
            best = dict(self.kept[(MAIN, fusion, "miles")].search.best_config)
            obj = s_abl.objective("miles", fusion, self.uni_lr[MAIN])
            jobs = [(which, v, {**best, which: v}, sd) for which, values in (("tau", taus), ("mu", mus))
                    for v in values for sd in seeds]
            for (which, v, cfg, sd), r in zip(jobs, run_jobs(obj, [(cfg, sd) for _, _, cfg, sd in jobs], P.executor)):
                acted = sum(d.get("slowed", "none") != "none" for d in r.decisions)
                t = r.evaluate_test()
                rows.append({"study": which, "value": v, "fusion": fusion, "seed": sd, "fused": 100 * t["fusion"],
                             "strong": 100 * t[strong], "weak": 100 * t[weak], "epochs slowed": acted, "lr": cfg["lr"]})
            eq3 = s_abl.objective("vanilla", fusion, unimodal_losses=True)
            for sd, r in zip(seeds, run_jobs(eq3, [({"lr": best["lr"]}, sd) for sd in seeds], P.executor)):
                t = r.evaluate_test()
                rows.append({"study": "eq3", "value": math.nan, "fusion": fusion, "seed": sd,
                             "fused": 100 * t["fusion"], "strong": 100 * t[strong], "weak": 100 * t[weak],
                             "epochs slowed": 0, "lr": best["lr"]})
        abl = pd.DataFrame(rows)
        summary = summarise(abl[abl.study != "eq3"], ["study", "fusion", "value"],
                            ["fused", "strong", "weak", "epochs slowed"])
        self.abl = Ablations(abl, summary, taus, mus, seeds)
        return self.abl

    # ------------------------------------------------------------------ Table VI

    def u_from_training(self) -> dict[tuple[str, str], pd.DataFrame]:
        """Table VI on AV digits: MILES with u from training metrics gets the same search as with u from
        validation metrics (the main comparison's runs); each variant's per-seed test rows."""
        P, s_abl, out = self.P, self.setups[MAIN], {}
        for fusion in self.fusions_abl:
            for split in ("train", "val"):
                space = {**method_space("miles", self.lr, s_abl.epochs, self.taus[MAIN]), "u_split": split}
                rep = (self.kept[(MAIN, fusion, "miles")] if split == "val" else
                       search_then_repeat(s_abl.objective("miles", fusion, self.uni_lr[MAIN]), space, P.n_trials,
                                          self.seeds[MAIN], executor=P.executor))
                out[(fusion, split)] = rep.frame().sort_values("seed")
        self.t6 = out
        return out

    # ------------------------------------------------------------------ Figure 2

    def dynamics(self, key: str, fusion: str, meth: str = "miles") -> pd.DataFrame:
        """Per-epoch records of every seed's run of the selected configuration: the heads' validation
        accuracy, u, δ and the encoders' rate multipliers (Figure 2)."""
        out = []
        for rr in self.kept[(key, fusion, meth)].runs:
            for _, row in rr.frame().iterrows():
                rec = {"seed": rr.seed, "epoch": int(row["epoch"]) + 1, "δ": row.get("delta", math.nan),
                       "fused (val)": 100 * row["val/fusion/accuracy"]}
                for m in self.data[key].modalities:
                    rec[f"{m} probe (val)"] = 100 * row[f"val/probe:{m}/accuracy"]
                    rec[f"lr {m} / α"] = row[f"lr/{m}"] / row["lr/fusion"]
                    rec[f"u {m}"] = row.get(f"u:{m}", math.nan)
                out.append(rec)
        return pd.DataFrame(out)

    def delta_early_late(self, key: str, fusion: str) -> tuple[pd.Series, pd.Series]:
        """MILES's mean δ per seed over the first third of the epochs (after epoch 1) and over the last third."""
        d = self.dynamics(key, fusion)
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
                             **{v: 100 * r[v] for v in self.views3}})
        return pd.DataFrame(rows)
