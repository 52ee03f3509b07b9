"""The MILES chapter's tables and figures, built from :class:`~mmrepro.papers.miles.study.MilesStudy`'s frames:
the datasets and search spaces (Sec. IV-B), Table I, the imbalance search (Figure 1), τ's range, Tables II-VI
with the paper's values alongside, the learning dynamics (Figure 2), the run explorer and the extension."""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import pandas as pd
import seaborn as sns

from mmrepro.common import style
from mmrepro.core.stats import paired_evidence
from mmrepro.papers.miles.findings import PAPER, PAPER_T6
from mmrepro.papers.miles.setup import BALANCING_METHODS, LABELS, build_encoder
from mmrepro.papers.miles.study import FUSION_SYMBOL, FUSIONS, MAIN, NAMES, MilesStudy

HYPERPARAMETERS = pd.DataFrame([
    ("Vanilla", "fused", "learning rate α", "log-uniform [lr_low, lr_high]", "shared by all methods"),
    ("MSLR-K", "fused", "per-encoder rates", "best unimodal rates (Table I search)", "MSLR paper (keep)"),
    ("MSLR-S", "fused", "pull λ towards the mean rate", "uniform [0.25, 1]", "ours: the paper gives no range"),
    ("MSLR-D", "fused", "re-scaling interval", "5 epochs (capped at half the epochs)", "public reimplementation"),
    ("OGM", "fused", "α (modulation strength)", "uniform [0.1, 0.8]", "OGM-GE reference code"),
    ("OGM-GE", "fused", "α, plus Gaussian noise", "uniform [0.1, 0.8]", "OGM-GE reference code"),
    ("MSES", "fused", "patience (epochs)", "{2, 3, 5} ≤ half the epochs", "ours: the paper gives no range"),
    ("G-Blend", "weighted fused + unimodal", "re-estimation window (epochs), 20 % hold-out",
     "{2, 3, 5} ≤ half the epochs", "ours; weights by the paper's formula"),
    ("MILES", "fused + unimodal (eq. 3)", "τ, μ", "τ: quantiles of the reachable δ (below); μ ∈ {0.1, 0.25, 0.5, 0.75}",
     "μ: Table V's range; τ: this chapter"),
], columns=["method", "loss", "own settings", "range", "source of the range"])


def datasets_table(study: MilesStudy) -> pd.DataFrame:
    """One row per dataset: modalities, encoders, split sizes, epochs and trials × seeds."""
    rows = []
    for key, s in study.setups.items():
        d = study.data[key]
        rows.append({"dataset": NAMES[key], "modalities": ", ".join(d.modalities),
                     "encoders": ", ".join(type(build_encoder(d, m, study.arch)).__name__ for m in d.modalities),
                     "train": s.train.n, "val": s.val.n, "test": s.test.n, "epochs": s.epochs,
                     "trials × seeds": f"{study.trials[key]} × {len(study.seeds[key])}"})
    return pd.DataFrame(rows)


def table1(study: MilesStudy) -> pd.DataFrame:
    """Table I analogue: each modality alone, mean and sd over seeds, Bayes accuracy where known, the paper's
    S-MNIST values for the main dataset and the selected rate."""
    uni, rows = study.uni, []
    for key in study.setups:
        acc = uni[uni.dataset == key].groupby("modality", sort=False)["test"].mean()
        for m, v in acc.items():
            bayes = (study.data[key].meta.get("bayes_accuracy") or {}).get(m, math.nan)
            paper = {"image": 99.0, "audio": 88.9}.get(m, math.nan) if key == MAIN else math.nan
            rows.append({"dataset": NAMES[key], "modality": m, "role": "strong" if m == study.strong[key] else "weak",
                         "test accuracy": v, "sd over seeds": uni[(uni.dataset == key) & (uni.modality == m)]["test"].std(),
                         "Bayes accuracy": 100 * bayes, "paper (S-MNIST)": paper, "lr": f"{study.uni_lr[key][m]:.2e}"})
    return pd.DataFrame(rows).round(1)


def lag_search_table(lag_search: pd.DataFrame) -> pd.DataFrame:
    """The imbalance search in numbers: per noise level, means over seeds and the lag paired by seed."""
    out = []
    for snr, g in lag_search.groupby("audio SNR (dB)", sort=False):
        ev = paired_evidence(g["audio alone"], g["audio probe in vanilla"], bounds=(0, 100))
        out.append({"audio SNR (dB)": snr, "audio alone": g["audio alone"].mean(),
                    "audio probe in vanilla": g["audio probe in vanilla"].mean(), "lag (points)": ev.estimate,
                    "95 % interval": f"[{ev.interval[0]:.1f}, {ev.interval[1]:.1f}]", "seeds": ev.n,
                    "fused": g["fused"].mean()})
    return pd.DataFrame(out).round(1)


def lag_search_figure(lag_search: pd.DataFrame):
    """Audio alone against the audio encoder inside vanilla, per seed and mean with 95 % interval, per noise level."""
    fig, ax = style.subplots(1, 1, height=3.2)
    long = lag_search.melt(id_vars=["audio SNR (dB)", "seed"], value_vars=["audio alone", "audio probe in vanilla"],
                           var_name="measured", value_name="test accuracy (%)")
    sns.stripplot(data=long, x="audio SNR (dB)", y="test accuracy (%)", hue="measured", dodge=True, alpha=0.5, ax=ax,
                  legend=False)
    sns.pointplot(data=long, x="audio SNR (dB)", y="test accuracy (%)", hue="measured", dodge=0.4, linestyle="none",
                  errorbar=("ci", 95), markers="D", ax=ax)
    ax.set_title("weak modality alone vs inside vanilla (concatenation)")
    sns.move_legend(ax, "upper left", bbox_to_anchor=(1.01, 1), title=None, frameon=False)
    return fig


def tau_range_table(study: MilesStudy) -> pd.DataFrame:
    """The pilots' δ and the τ range drawn from it, per dataset."""
    rows = []
    for key in study.setups:
        late = study.late_delta(key)
        rows.append({"dataset": NAMES[key], "δ median (pilot)": float(np.median(late)) if len(late) else math.nan,
                     "δ 10–90 % (pilot)": f"{np.quantile(late, 0.1):.2f}–{np.quantile(late, 0.9):.2f}" if len(late) else "—",
                     "floor (Table I gap / 100)": study.floor(key),
                     "τ search range": ", ".join(f"{t:g}" for t in study.taus[key]),
                     "epochs with δ > 0.2 (paper's τ acts)": f"{100 * float((late > 0.2).mean()):.0f} %" if len(late) else "—"})
    return pd.DataFrame(rows).round(3)


def comparison_table(study: MilesStudy, fusion: str) -> pd.DataFrame:
    """Table II/III layout: one row per method, (fused, strong, weak, Δ) per dataset, then S-MNIST."""
    sym, summary = FUSION_SYMBOL[fusion], study.summary
    cols = {}
    for key in study.setups:
        t = summary[(summary.dataset == key) & (summary.fusion == fusion)].set_index("method").loc[list(BALANCING_METHODS)]
        strong, weak = study.strong[key], study.weak[key]
        cols[(NAMES[key], f"{strong}{sym}{weak}")] = t["fused"].values
        cols[(NAMES[key], strong)] = t["strong"].values
        cols[(NAMES[key], weak)] = t["weak"].values
        cols[(NAMES[key], "Δ")] = t["delta"].values
    for j, name in enumerate((f"I{sym}A", "I", "A")):
        cols[("paper S-MNIST", name)] = [PAPER[fusion][m][j] for m in BALANCING_METHODS]
    cols[("paper S-MNIST", "Δ")] = [PAPER[fusion][m][1] - PAPER[fusion][m][2] for m in BALANCING_METHODS]
    out = pd.DataFrame(cols, index=[LABELS[m] for m in BALANCING_METHODS])
    out.columns = pd.MultiIndex.from_tuples(out.columns)
    return out.round(1)


def main_figure(study: MilesStudy):
    """Every seed's test accuracy and the mean with a 95 % interval per method and fusion: the fused head
    and the weak modality's probe, one row of panels per dataset."""
    main = study.main
    fig, axes = style.subplots(len(study.setups), 2, height=3.0, sharey=True)
    order = [LABELS[m] for m in BALANCING_METHODS]
    plot = main.assign(method=main["method"].map(LABELS), fusion=main["fusion"].map(FUSION_SYMBOL))
    for i, key in enumerate(study.setups):
        for j, (col, title) in enumerate((("fused", "fused head"), ("weak", f"weak probe ({study.weak[key]})"))):
            ax = axes[i, j]
            sub = plot[plot.dataset == key]
            sns.stripplot(data=sub, y="method", x=col, hue="fusion", order=order, dodge=True, alpha=0.6, size=4,
                          ax=ax, legend=False, palette="pastel", zorder=3, jitter=False)
            sns.pointplot(data=sub, y="method", x=col, hue="fusion", order=order, dodge=0.4, linestyle="none",
                          errorbar=("ci", 95), markers="D", markersize=4, ax=ax, palette="dark",
                          legend=(i == 0 and j == 1))
            ax.set_title(f"{NAMES[key]}: {title}")
            ax.set_xlabel("test accuracy (%)" if i == len(study.setups) - 1 else "")
            ax.set_ylabel("")
    axes[0, 1].legend(title="fusion", loc="lower left", fontsize=8)
    fig.tight_layout()
    return fig


def vanilla_deltas(study: MilesStudy) -> pd.DataFrame:
    """δ after every epoch but the first in the vanilla runs of the main comparison, from the probes trained
    alongside."""
    rows = []
    for key in study.setups:
        for rr in study.kept[(key, "concat", "vanilla")].runs:
            h = rr.frame()
            a, b = study.strong[key], study.weak[key]
            m_f, m_a, m_b = h["val/fusion/accuracy"], h[f"val/probe:{a}/accuracy"], h[f"val/probe:{b}/accuracy"]
            for e, d in enumerate(((m_a - m_b) / m_f).abs()):
                if e >= 1 and np.isfinite(d):
                    rows.append({"dataset": NAMES[key], "seed": rr.seed, "epoch": e + 1, "δ": float(d),
                                 "heads": "vanilla (probes trained alongside)"})
    return pd.DataFrame(rows)


def delta_figure(study: MilesStudy):
    """δ in the μ = 1 pilots and in the vanilla runs, against τ's range, the paper's τ and the floor."""
    pilot = study.pilot
    deltas = pd.concat([pilot[pilot.epoch > 1], vanilla_deltas(study)], ignore_index=True)
    fig, axes = style.subplots(1, len(study.setups), height=3.0, sharey=True)
    for ax, key in zip(axes, study.setups):
        sub = deltas[deltas.dataset == NAMES[key]]
        sns.stripplot(data=sub, x="heads", y="δ", hue="heads", alpha=0.5, size=3, ax=ax, legend=False)
        for t in study.taus[key]:
            ax.axhline(t, color="0.6", lw=0.8, ls=":")
        ax.axhline(0.2, color="C3", lw=1.2, ls="--", label="paper's τ = 0.2")
        ax.axhline(study.floor(key), color="k", lw=1.0, label="floor (Table I gap)")
        ax.set_title(NAMES[key])
        ax.set_xlabel("")
        ax.set_xticks([0, 1], ["eq. 3\n(μ = 1)", "vanilla\n(probes)"])
    axes[0].legend(loc="upper right", fontsize=7)
    fig.tight_layout()
    return fig


def sensitivity_table(study: MilesStudy, which: str, values: Sequence[float], paper: dict) -> pd.DataFrame:
    """Table IV (``which="tau"``) or V (``"mu"``) analogue with the paper's LUMA values alongside."""
    summary, out = study.abl.summary, []
    for fusion in study.fusions_abl:
        t = summary[(summary.study == which) & (summary.fusion == fusion)].set_index("value")
        for v in values:
            p = paper[fusion].get(v, (math.nan,) * 3)
            out.append({which: f"{v:g}", "fusion": FUSION_SYMBOL[fusion], "fused": t.loc[v, "fused"],
                        f"strong ({study.strong[MAIN]})": t.loc[v, "strong"],
                        f"weak ({study.weak[MAIN]})": t.loc[v, "weak"], "epochs slowed": t.loc[v, "epochs slowed"],
                        "paper LUMA fused": p[0], "paper strong (audio)": p[1], "paper weak (image)": p[2]})
    return pd.DataFrame(out).round(1)


def sensitivity_figure(study: MilesStudy):
    """Test accuracy of the fused head and the two probes as τ (left) and μ (right) vary."""
    abl = study.abl.rows
    fig, axes = style.subplots(1, 2, height=3.3, sharey=True)
    heads = abl[abl.study != "eq3"].melt(id_vars=["study", "value", "fusion", "seed"],
                                         value_vars=["fused", "strong", "weak"], var_name="head",
                                         value_name="test accuracy (%)")
    first = study.fusions_abl[0]
    for ax, which, sym in ((axes[0], "tau", "τ"), (axes[1], "mu", "μ")):
        sub = heads[(heads.study == which) & (heads.fusion == first)]
        sns.lineplot(data=sub, x="value", y="test accuracy (%)", hue="head", errorbar=("ci", 95), marker="o", ax=ax,
                     legend=which == "mu")
        ax.set_xlabel(sym)
        if which == "mu":
            ax.set_xscale("log")
            ax.legend(title=None, fontsize=8)
        ax.set_title(f"{sym} varied ({FUSION_SYMBOL[first]})")
    fig.tight_layout()
    return fig


def table6(study: MilesStudy) -> pd.DataFrame:
    """Table VI analogue: u from training against validation metrics, with the paper's LUMA values."""
    rows = []
    for fusion in study.fusions_abl:
        for split in ("train", "val"):
            f, p = study.t6[(fusion, split)], PAPER_T6[(fusion, split)]
            rows.append({"fusion": FUSION_SYMBOL[fusion], "u from": "training" if split == "train" else "validation",
                         "fused": 100 * f["fusion"].mean(), f"strong ({study.strong[MAIN]})": 100 * f[study.strong[MAIN]].mean(),
                         f"weak ({study.weak[MAIN]})": 100 * f[study.weak[MAIN]].mean(), "epoch": f["best_epoch"].mean() + 1,
                         "of": study.setups[MAIN].epochs, "paper fused": p[0], "paper strong": p[1], "paper weak": p[2],
                         "paper epoch (of 60)": p[3]})
    return pd.DataFrame(rows).round(1)


def dynamics_figure(study: MilesStudy):
    """Figure 2 analogue: the selected MILES configuration on AV digits (concatenation), every seed: u and δ
    against τ, each encoder's rate relative to α, the heads' validation accuracy."""
    dyn = study.dynamics(MAIN, "concat")
    best = study.kept[(MAIN, "concat", "miles")].search.best_config
    mods = study.data[MAIN].modalities
    fig, axes = style.subplots(1, 3, height=3.1)
    u_long = dyn.melt(id_vars=["seed", "epoch"], value_vars=[f"u {m}" for m in mods] + ["δ"], var_name="",
                      value_name="value")
    sns.lineplot(data=u_long, x="epoch", y="value", hue="", errorbar=("ci", 95), ax=axes[0])
    axes[0].axhline(best["tau"], color="0.4", lw=1, ls="--", label=f"τ = {best['tau']:g}")
    axes[0].set_title("utilisation (validation)")
    axes[0].legend(fontsize=7)
    lr_long = dyn.melt(id_vars=["seed", "epoch"], value_vars=[f"lr {m} / α" for m in mods], var_name="",
                       value_name="rate / α")
    sns.lineplot(data=lr_long, x="epoch", y="rate / α", hue="", errorbar=("ci", 95), ax=axes[1])
    axes[1].set_title(f"encoder rates (μ = {best['mu']:g})")
    axes[1].legend(fontsize=7)
    acc_long = dyn.melt(id_vars=["seed", "epoch"], value_vars=["fused (val)"] + [f"{m} probe (val)" for m in mods],
                        var_name="", value_name="accuracy (%)")
    sns.lineplot(data=acc_long, x="epoch", y="accuracy (%)", hue="", errorbar=("ci", 95), ax=axes[2])
    axes[2].set_title("validation accuracy")
    axes[2].legend(fontsize=7)
    fig.tight_layout()
    return fig


def decisions_table(study: MilesStudy) -> pd.DataFrame:
    """Epochs after which MILES slowed each encoder, over all seeds of the selected configuration (AV digits, ⊕)."""
    slowed = pd.Series([d.get("slowed", "none") for rr in study.kept[(MAIN, "concat", "miles")].runs
                        for d in rr.decisions])
    return slowed.value_counts().rename_axis("encoder slowed").reset_index(name="epochs (all seeds)")


def draw_run(study: MilesStudy, key: str, fusion: str, meth: str, seed: int, axes: Any) -> None:
    """One kept run on two axes: every head's validation accuracy with the selected epoch, and each
    encoder's rate relative to α with δ (and MILES's τ)."""
    rr = next(r for r in study.kept[(key, fusion, meth)].runs if r.seed == seed)
    h = rr.frame()
    ep = h["epoch"] + 1
    axes[0].plot(ep, 100 * h["val/fusion/accuracy"], color="k", label="fused")
    for m in study.data[key].modalities:
        axes[0].plot(ep, 100 * h[f"val/probe:{m}/accuracy"], label=f"{m} probe")
    axes[0].axvline(rr.best_epoch + 1, color="0.6", ls=":", lw=1)
    axes[0].set(title=f"{LABELS[meth]}, {FUSION_SYMBOL[fusion]}, seed {seed}", xlabel="epoch",
                ylabel="validation accuracy (%)")
    axes[0].legend(fontsize=7)
    for m in study.data[key].modalities:
        axes[1].step(ep, h[f"lr/{m}"] / h["lr/fusion"], where="post", label=f"lr {m} / α")
    if "delta" in h:
        axes[1].plot(ep, h["delta"], "k--", label="δ (unimodal heads)")
    if meth == "miles":
        axes[1].axhline(rr.config["tau"], color="C3", lw=1, label=f"τ = {rr.config['tau']:g}")
    axes[1].set(title="rates and δ", xlabel="epoch")
    axes[1].legend(fontsize=7)


def explorer_static(study: MilesStudy):
    """The selected vanilla (top) and MILES (bottom) runs on AV digits, first seed."""
    fig, axes = style.subplots(2, 2, height=2.9)
    for row, meth in enumerate(("vanilla", "miles")):
        draw_run(study, MAIN, "concat", meth, study.seeds[MAIN][0], axes[row])
    fig.tight_layout()
    return fig


def explore_widget(study: MilesStudy) -> None:
    """ipywidgets controls that redraw :func:`draw_run` for any dataset, fusion, method and seed (nothing retrained)."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    def explore(dataset=MAIN, fusion="concat", method="miles", seed_index=0):
        fig, axes = style.subplots(1, 2, height=3.0)
        seeds = study.seeds[dataset]
        draw_run(study, dataset, fusion, method, seeds[min(seed_index, len(seeds) - 1)], axes)
        fig.tight_layout()
        plt.show()

    widgets.interact(explore, dataset=widgets.Dropdown(options=[(NAMES[k], k) for k in study.setups], value=MAIN),
                     fusion=widgets.Dropdown(options=list(FUSIONS)),
                     method=widgets.Dropdown(options=[(LABELS[m], m) for m in BALANCING_METHODS], value="miles"),
                     seed_index=widgets.IntSlider(value=0, min=0, max=max(len(v) for v in study.seeds.values()) - 1))


def extension_table(ext: pd.DataFrame, views: Sequence[str]) -> pd.DataFrame:
    """The three-view extension: mean and interval of the fused head, the views' refitted probes."""
    from mmrepro.runs.repeat import summarise

    shown = ext.assign(method=ext["method"].map(LABELS))
    s = summarise(shown, ["method"], ["fused", *views])
    return s[["method", "fused", "fused_lo", "fused_hi", *views, "n"]].round(2)
