"""The MultiModN chapter's tables and figures (Swamy et al., NeurIPS 2023): the datasets, the Table 1 and
Figure 2 analogues, the paired differences of Exp. 1, 2 and E.4, the state-change penalty, Figure 4's
importance and cumulative probabilities (Exp. 3), Figure 5's missingness panels (Exp. 4), Figure 15's
inference subsets (E.5), Figure 9's sensitivity and Appendix B's modularity.

Every function returns a pandas table or a matplotlib figure; the notebook glues them.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch

from mmrepro.common import style
from mmrepro.core import metrics
from mmrepro.core.data import MultimodalDataset, mnar_flip
from mmrepro.papers.multimodn.benchmarks import Benchmark
from mmrepro.papers.multimodn.findings import (
    MARGINS,
    METRIC_NAMES,
    PRIMARY,
    TASK_LABEL,
    TASK_NAMES,
    Design,
    interval_text,
)
from mmrepro.papers.multimodn.studies import clusters, paired_differences

MODELS = ["MultiModN", "P-Fusion", "Transformer", "MultiModN multi-task", "Transformer multi-task"]
COLOURS = style.colours(MODELS + ["MultiModN without penalty"])


def datasets_table(datasets: Mapping[str, MultimodalDataset], benches: Mapping[str, Benchmark]) -> pd.DataFrame:
    """Rows, fold-0 split sizes, modalities with their shapes, absent rows and tasks of every benchmark."""
    rows = []
    for name, ds in datasets.items():
        rows.append({"benchmark": name, "rows": ds.n,
                     "train / val / test (fold 0)": " / ".join(str(len(ds.splits[s])) for s in ("train", "val", "test")),
                     "modalities": ", ".join(f"{m} {tuple(ds.x[m].shape[1:])}" for m in ds.modalities),
                     "absent rows": ", ".join(f"{m} {int((~ds.present[m]).sum())}" for m in ds.modalities
                                              if int((~ds.present[m]).sum())) or "none",
                     "tasks": ", ".join(f"{t} ({ds.tasks[t].kind})" for t in benches[name].tasks)})
    return pd.DataFrame(rows)


def metric_table(allin: pd.DataFrame, kinds: Mapping[tuple[str, str], str], design: Design,
                 metric: str | None = None) -> pd.DataFrame:
    """Per task: each single-task model's mean over folds [95 % interval] of ``metric`` (default: the task's
    primary metric, Table 1; "auroc": Figure 2). Four columns, so that the table fits the page."""
    rows = []
    for (b, t), kind in kinds.items():
        m = metric or PRIMARY[kind]
        row = {"task": TASK_NAMES[(b, t)] + ("" if metric else f", {METRIC_NAMES[m]}")}
        for model in ("MultiModN", "P-Fusion", "Transformer"):
            v = allin[(allin.benchmark == b) & (allin.task == t) & (allin.model == model) & (allin.metric == m)]
            row[model] = design.cell(v["value"], clusters(v), None if m == "mse" else (0, 1))
        rows.append(row)
    return pd.DataFrame(rows)


def last_epoch_table(allin: pd.DataFrame, names: Sequence[str]) -> pd.DataFrame:
    """Share of runs (%) per model (rows) and benchmark (columns) whose validation-selected epoch was the
    last one."""
    fits = allin.drop_duplicates(["benchmark", "model", "repeat", "fold", "init", "task"])
    last = (fits.best_epoch == fits.epochs).groupby([fits.model, fits.benchmark]).mean().unstack()
    last = (100 * last.reindex(columns=list(names))).round(0).reindex([m for m in COLOURS if m in last.index])
    last.index.name = "model"
    return last.reset_index()


def parity_figure(comp: pd.DataFrame, records: Mapping[str, Mapping[str, Any]]) -> plt.Figure:
    """Every comparison of Exp. 1, 2 and E.4: per-fold paired differences (dots) and the claim's estimate
    and interval (diamonds), BAC left, relative MSE right, the equivalence margin shaded."""
    groups = list(dict.fromkeys(comp["group"]))
    palette = dict(zip(groups, sns.color_palette("colorblind", len(groups))))
    fig, axes = style.subplots(1, 2, height=4.6)
    for ax, (metric, label, margin) in zip(axes, (("bac", "paired difference in BAC", MARGINS["bac"]),
                                                   ("mse", "paired relative difference in MSE (%)", MARGINS["mse"]))):
        sub = comp[comp.metric == metric]
        order = list(dict.fromkeys(sub["task"]))
        ax.axvspan(-margin, margin, color="0.88", zorder=0)
        ax.axvline(0, color="0.4", lw=0.8)
        sns.stripplot(data=sub, x="diff", y="task", hue="group", order=order, hue_order=groups, palette=palette,
                      dodge=True, size=3.5, alpha=0.55, jitter=0.15, ax=ax, legend=False)
        width = 0.8 / len(groups)
        for k, g in enumerate(groups):
            for i, task in enumerate(order):
                ids = sub[(sub.group == g) & (sub.task == task)]["claim"].unique()
                if len(ids) == 0 or records[ids[0]]["estimate"] is None:
                    continue
                rec = records[ids[0]]
                y = i - 0.4 + width * (k + 0.5)
                lo, hi = rec["interval"]
                ax.errorbar(rec["estimate"], y, xerr=[[rec["estimate"] - lo], [hi - rec["estimate"]]], fmt="D",
                            color=palette[g], ms=5, capsize=3, lw=1.6)
        ax.set(xlabel=label, ylabel="", title="classification" if metric == "bac" else "regression (weather)")
    handles = [plt.Line2D([], [], marker="D", color=palette[g], ls="", label=g) for g in groups]
    fig.legend(handles=handles, loc="lower center", ncol=2, frameon=False, bbox_to_anchor=(0.5, -0.08))
    fig.tight_layout()
    return fig


def penalty_table(titanic: pd.DataFrame, design: Design) -> pd.DataFrame:
    """Titanic: single-task MultiModN with and without the reference code's state-change penalty, and
    their paired difference (BAC and AUROC)."""
    rows = []
    for metric in ("bac", "auroc"):
        pairs = paired_differences(titanic, "MultiModN", "MultiModN without penalty", metric)
        ev, _ = design.evidence(pairs["diff"], pairs["cluster"], bounds=(-1, 1))
        with_p = titanic[(titanic.model == "MultiModN") & (titanic.metric == metric)]
        without = titanic[(titanic.model == "MultiModN without penalty") & (titanic.metric == metric)]
        rows.append({"metric": metric.upper(),
                     "with penalty (0.7 / 0.003)": design.cell(with_p["value"], clusters(with_p), (0, 1)),
                     "without": design.cell(without["value"], clusters(without), (0, 1)),
                     "paired difference": interval_text(ev)})
    return pd.DataFrame(rows)


def interpretability_figure(imp: pd.DataFrame, dist: pd.DataFrame, modalities: Sequence[str]) -> plt.Figure:
    """Figure 4 analogue: the importance score of each modality (test mean) and the distance between the
    label and the cumulative prediction after each encoder step."""
    fig, axes = style.subplots(1, 2, height=3.2, gridspec_kw={"width_ratios": [1, 1.25]})
    heat = imp[imp.split == "test"].groupby(["task", "modality"])["importance"].mean().unstack()[list(modalities)]
    heat.index = [TASK_LABEL[t] for t in heat.index]
    lim = float(np.nanmax(np.abs(heat.to_numpy()))) or 1.0
    sns.heatmap(heat, annot=True, fmt="+.2f", cmap="RdBu_r", vmin=-lim, vmax=lim, ax=axes[0],
                cbar_kws={"label": "change in probability"})
    axes[0].set(title="importance score (test mean)", xlabel="modality encoded alone", ylabel="")
    fold_dist = dist.groupby(["cluster", "task", "step", "label"], as_index=False)["distance"].mean()
    fold_dist["task"] = fold_dist["task"].map(TASK_LABEL)
    sns.pointplot(data=fold_dist, x="label", y="distance", hue="task", errorbar=("ci", 95), dodge=0.2,
                  palette="colorblind", ax=axes[1], markersize=5)
    axes[1].set(title="distance to the true label", xlabel="after encoding", ylabel="mean |y - p| (test)")
    axes[1].legend(title="", fontsize=8)
    fig.tight_layout()
    return fig


def cp_matrix(frame: pd.DataFrame, patient: int, modalities: Sequence[str]) -> pd.DataFrame:
    """One patient's cumulative probabilities: tasks by steps (prior, then each modality)."""
    m = frame[frame.patient == patient].pivot(index="task", columns="step", values="probability")
    m.columns = ["prior", *modalities]
    m.index = [TASK_LABEL[t] for t in m.index]
    return m


def patient_title(patient: int, labels: pd.DataFrame) -> str:
    """"patient P: died / survived, stage 3-4 / stage 1-2" ("?" where unknown)."""
    def text(v: float, yes: str, no: str) -> str:
        return "?" if np.isnan(v) else (yes if v == 1 else no)

    death, stage = labels.loc[patient, "death_5y"], labels.loc[patient, "stage"]
    return f"patient {patient}: {text(death, 'died', 'survived')}, {text(stage, 'stage 3-4', 'stage 1-2')}"


def patients_figure(first: pd.DataFrame, modalities: Sequence[str]) -> tuple[plt.Figure, list[int]]:
    """Cumulative probabilities of one test patient of ``first`` (one run's trajectories) for each
    combination of the two outcomes that occurs; the figure and the patients shown."""
    labels_of = first[first.step == 0].pivot(index="patient", columns="task", values="target")
    picks = []
    for death in (0.0, 1.0):
        for stage in (0.0, 1.0):
            hit = labels_of[(labels_of["death_5y"] == death) & (labels_of["stage"] == stage)].index
            if len(hit):
                picks.append(int(hit[0]))
    fig, axes = style.subplots(2, 2, height=2.1, sharex=True)
    for ax, patient in zip(axes.flat, picks):
        sns.heatmap(cp_matrix(first, patient, modalities), annot=True, fmt=".2f", cmap="RdBu_r", vmin=0, vmax=1,
                    cbar=False, ax=ax)
        ax.set(title=patient_title(patient, labels_of), xlabel="", ylabel="")
        ax.title.set_fontsize(9)
    for ax in list(axes.flat)[len(picks):]:
        ax.axis("off")
    fig.tight_layout()
    return fig, picks


def mnar_bias_table(ds: MultimodalDataset, rates: Sequence[float], seed: int) -> pd.DataFrame:
    """AUROC of the indicator "labs missing" for death within five years under MNAR at each rate, in the
    training rows and in the label-flipped test rows: the bias a model could learn, and how it reverses."""
    rows = []
    for rate in [float(r) for r in rates if r > 0]:
        flipped = mnar_flip(ds, "labs", rate, "death_5y", 1, seed=seed, test="flip")
        row = {"MNAR rate": f"{100 * rate:.0f} %"}
        for part, name in (("train", "training rows"), ("test", "label-flipped test rows")):
            d = flipped.split(part)
            known = ~torch.isnan(d.y["death_5y"])
            row[name] = metrics.score("auroc", d.y["death_5y"][known].numpy(),
                                      (~d.present["labs"][known]).double().numpy(), "binary")
        rows.append(row)
    return pd.DataFrame(rows).round(3)


def missingness_figure(miss: pd.DataFrame) -> plt.Figure:
    """Figure 5 / 12 analogue: AUROC for death against the rate of missing labs, MNAR (label-flipped and
    clean test) and MAR (clean and MAR test)."""
    panels = [("MNAR", "flip", "MNAR train, label-flipped test"), ("MNAR", "none", "MNAR train, clean test"),
              ("MAR", "none", "MAR train, clean test"), ("MAR", "MAR", "MAR train, MAR test")]
    au = miss[miss.metric == "auroc"].assign(cluster=clusters).groupby(
        ["pattern", "test", "rate", "model", "cluster"], as_index=False)["value"].mean()
    au["missing (%)"] = 100 * au["rate"]
    fig, axes = style.subplots(1, 4, height=3.0, sharey=True)
    for k, (ax, (pattern, test, title)) in enumerate(zip(axes, panels)):
        sub = au[(au.pattern == pattern) & (au.test == test)]
        sns.lineplot(data=sub, x="missing (%)", y="value", hue="model", palette=COLOURS, errorbar=("ci", 95),
                     marker="o", ax=ax, legend=k == 0)
        ax.axhline(0.5, color="0.5", lw=0.8, ls=":")
        ax.set(title=title.replace(", ", ",\n"), ylabel="test AUROC, death within 5 y", xlabel="")
        ax.title.set_fontsize(9)
    axes[0].legend(title="", fontsize=8, loc="lower left")
    fig.supxlabel("labs missing in training (% of the rows concerned)", fontsize=10)
    fig.tight_layout()
    return fig


def subsets_table(death: pd.DataFrame, subsets: Sequence[str], design: Design) -> pd.DataFrame:
    """Test AUROC (mean over folds [interval]) of the single-task death models given only some modalities."""
    rows = []
    for inputs in subsets:
        row = {"inputs": inputs}
        for model in ("MultiModN", "P-Fusion"):
            v = death[(death.inputs == inputs) & (death.model == model) & (death.metric == "auroc")]
            row[f"{model} AUROC"] = design.cell(v["value"], clusters(v), (0, 1))
        rows.append(row)
    return pd.DataFrame(rows)


def sensitivity_figure(sens: pd.DataFrame, params: Sequence[str], centre: Mapping[str, float]) -> plt.Figure:
    """Figure 9 analogue: test BAC with one hyper-parameter changed at a time."""
    bac = sens[sens.metric == "bac"].assign(cluster=clusters).groupby(["parameter", "setting", "cluster"],
                                                                       as_index=False)["value"].mean()
    bac["value of the parameter"] = bac["setting"].map("{:g}".format)
    fig, axes = style.subplots(1, len(params), height=2.8, sharey=True, squeeze=False)
    for ax, p in zip(axes[0], params):
        sub = bac[bac.parameter == p]
        sns.pointplot(data=sub, x="value of the parameter", y="value", errorbar=("ci", 95),
                      color=COLOURS["MultiModN"], ax=ax, markersize=5,
                      order=[f"{v:g}" for v in sorted(sub["setting"].unique())])
        ax.set(title=p.replace("_", " "), xlabel=f"value (centre {centre[p]:g})", ylabel="test BAC, death within 5 y")
    fig.tight_layout()
    return fig


def modularity_figure(mod: pd.DataFrame) -> plt.Figure:
    """Newman's Q of the module graph (networkx) and the paper's printed expression against |M| and |T|."""
    long = mod.melt(id_vars=["M", "T"], value_vars=["networkx", "paper"], var_name="source", value_name="Q")
    long["source"] = long["source"].map({"networkx": "Newman (networkx)", "paper": "paper's printed formula"})
    fig, axes = style.subplots(1, 2, height=3.0, sharey=True)
    sns.lineplot(data=long[long["T"].isin([1, 2, 5, 10])], x="M", y="Q", hue="T", style="source",
                 palette="colorblind", ax=axes[0], legend="full")
    sns.lineplot(data=long[long["M"].isin([2, 4, 10, 30])], x="T", y="Q", hue="M", style="source",
                 palette="colorblind", ax=axes[1], legend="full")
    axes[0].set(xlabel="|M| (modalities)", ylabel="modularity Q")
    axes[1].set(xlabel="|T| (tasks)")
    for ax in axes:
        ax.axhline(1, color="0.6", lw=0.8)
        ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


SECTIONS = {"skill": "Premises (skill above chance)", "exp1": "Exp. 1 (single tasks)", "exp2": "Exp. 2 (multi-task)",
            "e4": "E.4 (transformer)", "exp3": "Exp. 3 (interpretability)", "exp4": "Exp. 4 (missingness)",
            "e5": "E.5 (subsets)", "fig9": "Figure 9 (sensitivity)", "modularity": "Appendix B (modularity)"}


def claim_counts(claims: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Outcomes per section of the chapter (checks: passes / fails)."""
    counts = (pd.DataFrame([{"section": c["id"].split("-")[0], "outcome": c.get("outcome", c["verdict"])}
                            for c in claims]).value_counts().unstack(fill_value=0))
    counts.index = [SECTIONS.get(i, i) for i in counts.index]
    counts = counts.reindex([v for v in SECTIONS.values() if v in counts.index])
    order = ["reproduces", "reproduces, smaller effect", "reproduces, larger effect", "contradicted",
             "not reproduced", "undecided", "not comparable", "passes", "fails"]
    counts = counts[[o for o in order if o in counts.columns]]
    counts.index.name = "section"
    return counts


def claims_view(rows: pd.DataFrame, design: Design) -> tuple[pd.DataFrame, str]:
    """A claims table (:meth:`ChapterRun.claims_table`) without what every row shares -- ``n`` and how the
    intervals were computed -- and the caption that says it once: the design, and the rows whose n or
    interval method differ from the rest."""
    folds = str(design.n_repeats * design.n_folds)
    odd = [f"{c}: n = {n}" for c, n in zip(rows["claim"], rows["n"]) if n and n != folds]
    logit = [c for c, m in zip(rows["claim"], rows["interval"]) if "logit" in m]
    caption = design.describe() + "."
    if odd:
        caption += " Other n: " + "; ".join(odd) + "."
    if logit:
        caption += " On the logit scale: " + ", ".join(logit) + "."
    return rows.assign(n="", interval=""), caption
