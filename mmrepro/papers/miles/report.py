"""The MILES chapter's tables and figures, built from :class:`~mmrepro.papers.miles.study.MilesStudy`: the search
for a stand-in in S-MNIST's regime (Figure 1), the datasets and search spaces (Sec. IV-B), Table I, the lag,
τ's range, Tables II-VI with the paper's values alongside, the learning dynamics (Figure 2), the run
explorer and the extension. Every method has one name (:data:`~mmrepro.papers.miles.setup.LABELS`) in every
table and figure; tables are compact HTML that fits the text column (:func:`glue_table`)."""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import pandas as pd
import seaborn as sns

from mmrepro.common import style
from mmrepro.core.stats import seed_row_evidence
from mmrepro.papers.miles.findings import PAPER, PAPER_ALONE, PAPER_T6
from mmrepro.papers.miles.setup import CONTROL, LABELS, METHODS, build_encoder
from mmrepro.papers.miles.study import FUSION_SYMBOL, FUSIONS, MAIN, NAMES, REGIME, MilesStudy, per_seed

HYPERPARAMETERS = pd.DataFrame([
    ("Vanilla", "fused", "learning rate α: log-uniform [lr_low, lr_high] (every method draws it)", "shared"),
    ("MSLR-K", "fused", "per-encoder rates: the best unimodal rates (Table I search)", "MSLR paper"),
    ("MSLR-S", "fused", "pull λ towards the mean rate: uniform [0.25, 1]", "ours (no range given)"),
    ("MSLR-D", "fused", "re-scaling interval: 5 epochs (at most half the epochs)", "public reimplementation"),
    ("OGM", "fused", "modulation strength α: uniform [0.1, 0.8]", "OGM-GE code"),
    ("OGM-GE", "fused", "α: uniform [0.1, 0.8], plus Gaussian noise", "OGM-GE code"),
    ("MSES", "fused", "patience: {2, 3, 5} epochs, at most half the epochs", "ours (none given)"),
    ("G-Blend", "weighted fused + unimodal", "re-estimation window: {2, 3, 5} epochs; 20 % hold-out",
     "ours; weights by its formula"),
    ("MILES", "fused + unimodal (eq. 3)", "τ: quantiles of the δ eq. 3 reaches; μ ∈ {0.1, 0.25, 0.5, 0.75}",
     "μ: Table V; τ: ours"),
    (LABELS[CONTROL], "fused + unimodal (eq. 3)", "none (MILES with μ = 1)", "this chapter's control"),
], columns=["method", "loss", "what the search draws", "range from"])
SHORT = {"mfeat": "MF", "synthetic": "Syn."}


def glue_table(run: Any, key: str, table: pd.DataFrame, display: bool = False, index: bool = False,
               caption: str | None = None) -> pd.DataFrame:
    """Record ``table`` in the results file and glue it as compact HTML (small type, cell padding; numbers
    right-aligned with one decimal, two for δ and τ columns and the floor; text left-aligned and wrapped; a
    wide table scrolls instead of running past the column)."""
    from IPython.display import HTML
    from myst_nb import glue

    run.record(key, table.reset_index() if index else table)
    styler = table.style.format(precision=1, na_rep="—").set_uuid(key).set_table_styles([
        {"selector": "", "props": "border-collapse: collapse; display: block; max-width: 100%; overflow-x: auto;"},
        {"selector": "td, th", "props": "font-size: 0.8em; padding: 0.2em 0.5em; text-align: right; "
                                        "vertical-align: top; border-bottom: 1px solid #e4e4e4; white-space: nowrap;"},
        {"selector": "th.col_heading", "props": "text-align: center; white-space: normal;"},
        {"selector": "caption", "props": "caption-side: bottom; font-size: 0.78em; text-align: left;"}])
    fine = [c for c in table.columns if pd.api.types.is_float_dtype(table[c]) and
            (any(t in str(c) for t in ("δ", "τ")) or c == "floor")]
    if fine:
        styler = styler.format(precision=2, na_rep="—", subset=fine)
    text = [c for c in table.columns if not pd.api.types.is_numeric_dtype(table[c]) and not
            table[c].astype(str).str.match(r"^-?[0-9.,]+( ±[0-9.]+)?( %)?$").all()]
    if text:  # column-keyed styles (#id .colN) outrank the table-wide "td" rule above; cell properties would not
        styler = styler.set_table_styles({c: [{"selector": "td", "props": "text-align: left; white-space: normal;"}]
                                          for c in text}, overwrite=False)
    if not index:
        styler = styler.hide(axis="index")
    if caption:
        styler = styler.set_caption(caption)
    glue(key, HTML(styler.to_html()), display=display)
    return table


def with_interval(rows: np.ndarray) -> str:
    """The mean of a (seeds, test rows) matrix of 100 x correct with ± half its 95 % interval (both counted)."""
    ev = seed_row_evidence(rows, bounds=(-200.0, 200.0))
    return f"{ev.estimate:.1f} ±{(ev.interval[1] - ev.interval[0]) / 2:.1f}"


# ----------------------------------------------------------------------------- the stand-in

def regime_table(study: MilesStudy) -> pd.DataFrame:
    """The regime search: per candidate (numbered as tried; the chosen one marked), means over seeds on
    validation rows, by how many points it misses the criteria (0: meets them all), and S-MNIST."""
    out = []
    for i, g in study.search.groupby("candidate", sort=True):
        r, regime = study.regime_means(g), study.regimes[i]
        out.append({"candidate": f"{i + 1}: {regime.label()}" + (" (chosen)" if regime == study.regime else ""),
                    "strong alone": r["strong alone"], "weak alone": r["weak alone"], "fused": r["fused"],
                    "strong inside": r["strong inside"], "weak inside": r["weak inside"], "lag": r["lag"],
                    "strong gap": r["strong gap"], "missed by": study.regime_shortfall(g)})
    pv = PAPER["concat"]["vanilla"]
    out.append({"candidate": "S-MNIST (paper, test rows)", "strong alone": PAPER_ALONE["image"],
                "weak alone": PAPER_ALONE["audio"], "fused": pv[0], "strong inside": pv[1], "weak inside": pv[2],
                "lag": PAPER_ALONE["audio"] - pv[2], "strong gap": PAPER_ALONE["image"] - pv[1], "missed by": 0.0})
    return pd.DataFrame(out).round(1)


def regime_criteria() -> str:
    """The regime's criteria in words."""
    c = REGIME
    return (f"the strong modality alone reaches at least {c['strong alone at least']:g} %, the fused head lies within "
            f"{c['fused within']:g} point of it, the weak modality alone is at least {c['weak below strong by at least']:g} "
            f"points below it, and inside vanilla the weak encoder lags its unimodal model by at least "
            f"{c['lag at least']:g} points while the strong one stays within {c['strong gap at most']:g}")


def regime_figure(study: MilesStudy):
    """Each candidate's weak and strong modality alone and inside vanilla (validation, per seed and mean)."""
    s = study.search
    short = {i: f"{i + 1}: {r.label()}" for i, r in enumerate(study.regimes)}
    fig, axes = style.subplots(1, 2, height=3.2, sharey=True)
    for ax, role in zip(axes, ("weak", "strong")):
        long = []
        for i, g in s.groupby("candidate", sort=True):
            m = study.regime_means(g)[role]
            for _, row in g.iterrows():
                long += [{"candidate": short[i], "measured": "alone", "accuracy (%)": row[f"{m} alone"]},
                         {"candidate": short[i], "measured": "inside vanilla", "accuracy (%)": row[f"{m} inside"]}]
        long = pd.DataFrame(long)
        sns.stripplot(data=long, x="candidate", y="accuracy (%)", hue="measured", dodge=True, alpha=0.5, ax=ax,
                      legend=False, jitter=False)
        sns.pointplot(data=long, x="candidate", y="accuracy (%)", hue="measured", dodge=0.4, linestyle="none",
                      errorbar=None, markers="D", ax=ax, legend=role == "strong")
        ax.set_title(f"{role} modality")
        ax.set_xlabel("")
        ax.set_xticks(ax.get_xticks(), style.wrap_labels([t.get_text() for t in ax.get_xticklabels()], 16))
    sns.move_legend(axes[1], "lower right", title=None, frameon=True, fontsize=8)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- data and Table I

def datasets_table(study: MilesStudy) -> pd.DataFrame:
    """One row per dataset: modalities, encoders, split sizes, epochs and trials × seeds."""
    rows = []
    for key, s in study.setups.items():
        d = study.data[key]
        rows.append({"dataset": NAMES[key], "modalities": ", ".join(d.modalities),
                     "encoders": ", ".join(type(build_encoder(d, m, study.arch)).__name__.replace("Encoder", "")
                                           for m in d.modalities),
                     "train": s.train.n, "val": s.val.n, "test": s.test.n, "epochs": s.epochs,
                     "trials × seeds": f"{study.trials[key]} × {len(study.seeds[key])}"})
    return pd.DataFrame(rows)


def table1(study: MilesStudy) -> pd.DataFrame:
    """Table I analogue: each modality alone (its own head, ± half the 95 % interval over seeds and test
    rows), the refitted probe, the Bayes accuracy where known, S-MNIST's value and the selected rate."""
    uni, rows = study.uni, []
    for key in study.setups:
        for m in study.setups[key].modalities:
            bayes = (study.data[key].meta.get("bayes_accuracy") or {}).get(m, math.nan)
            rows.append({"dataset": NAMES[key], "modality": m, "role": "strong" if m == study.strong[key] else "weak",
                         "test accuracy": with_interval(study.alone_rows(key, m)),
                         "refitted probe": per_seed(uni, "refitted probe", dataset=key, modality=m).mean(),
                         "Bayes": 100 * bayes, "S-MNIST": PAPER_ALONE.get(m, math.nan) if key == MAIN else math.nan,
                         "lr": f"{study.uni_lr[key][m]:.1e}"})
    return pd.DataFrame(rows)


def lag_table(study: MilesStudy) -> pd.DataFrame:
    """Figure 1 on the test rows: per dataset and fusion, the weak and the strong modality alone and inside
    vanilla by the paper's readout, and the weak one's lag by the refitted probe (a robustness column)."""
    rows = []
    for key in study.setups:
        for fusion in FUSIONS:
            w, s = study.weak[key], study.strong[key]
            van = study.main[(study.main.dataset == key) & (study.main.fusion == fusion) & (study.main.method == "vanilla")]
            alone = study.uni[study.uni.dataset == key]
            rows.append({"dataset": NAMES[key], "fusion": FUSION_SYMBOL[fusion],
                         "weak alone": study.alone_rows(key, w).mean(), "weak inside": van["weak"].mean(),
                         "lag": study.alone_rows(key, w).mean() - van["weak"].mean(),
                         "strong alone": study.alone_rows(key, s).mean(), "strong inside": van["strong"].mean(),
                         "strong gap": study.alone_rows(key, s).mean() - van["strong"].mean(),
                         "lag, refitted probes": alone[alone.modality == w]["refitted probe"].mean()
                         - van["weak (refitted probe)"].mean()})
    return pd.DataFrame(rows).round(1)


# ----------------------------------------------------------------------------- τ's range

def tau_range_table(study: MilesStudy) -> pd.DataFrame:
    """The δ that the eq. 3 control reaches and the τ range drawn from it, per dataset."""
    rows = []
    for key in study.setups:
        late = study.control_delta(key)
        rows.append({"dataset": NAMES[key], "δ median": float(np.median(late)) if len(late) else math.nan,
                     "δ 10–90 %": f"{np.quantile(late, 0.1):.2f}–{np.quantile(late, 0.9):.2f}" if len(late) else "—",
                     "floor": study.gap[key] / 100, "τ search range": ", ".join(f"{t:g}" for t in study.taus[key]),
                     "epochs with δ > 0.2": f"{100 * float((late > 0.2).mean()):.0f} %" if len(late) else "—"})
    return pd.DataFrame(rows).round(3)


def delta_figure(study: MilesStudy):
    """δ after every epoch but the first under the eq. 3 control, against τ's range, the paper's τ = 0.2 and
    the floor (Table I's gap)."""
    fig, axes = style.subplots(1, len(study.setups), height=2.8, sharey=True)
    for ax, key in zip(axes, study.setups):
        late = study.control_delta(key)
        sns.stripplot(y=late, ax=ax, alpha=0.5, size=3, color="C0")
        for t in study.taus[key]:
            ax.axhline(t, color="0.6", lw=0.8, ls=":")
        ax.axhline(0.2, color="C3", lw=1.2, ls="--", label="paper's τ = 0.2")
        ax.axhline(study.gap[key] / 100, color="k", lw=1.0, label="floor (Table I gap)")
        ax.set(title=NAMES[key], ylabel="δ (eq. 3, μ = 1)", xticks=[])
    axes[0].legend(loc="upper right", fontsize=7)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- Tables II-III

def comparison_table(study: MilesStudy, fusion: str) -> pd.DataFrame:
    """Table II/III on the main dataset: per method the fused head, the strong and weak encoder by the paper's
    readout and Δ (± half the 95 % interval over seeds and test rows), the refitted probe of the weak
    encoder (robustness), then S-MNIST's row."""
    rows, sym = [], FUSION_SYMBOL[fusion]
    for meth in METHODS:
        p = PAPER[fusion].get(meth)
        weak_probe = per_seed(study.main, "weak (refitted probe)", dataset=MAIN, fusion=fusion, method=meth).mean()
        rows.append({"method": LABELS[meth], f"fused {sym}": with_interval(study.rows(MAIN, fusion, meth, "fusion")),
                     study.strong[MAIN]: with_interval(study.rows(MAIN, fusion, meth, "strong")),
                     study.weak[MAIN]: with_interval(study.rows(MAIN, fusion, meth, "weak")),
                     "Δ": with_interval(study.delta_rows(MAIN, fusion, meth)),
                     f"{study.weak[MAIN]} (probe)": round(weak_probe, 1),
                     f"paper {sym}": p[0] if p else math.nan, "I": p[1] if p else math.nan,
                     "A": p[2] if p else math.nan, "paper Δ": round(p[1] - p[2], 1) if p else math.nan})
    return pd.DataFrame(rows)


def other_datasets_table(study: MilesStudy) -> pd.DataFrame:
    """Tables II-III on the other datasets: the fused head, the weak encoder and Δ per method (means over seeds)."""
    s = study.main
    rows = []
    for meth in METHODS:
        rec = {"method": LABELS[meth]}
        for key in [k for k in study.setups if k != MAIN]:
            for fusion in FUSIONS:
                g = s[(s.dataset == key) & (s.fusion == fusion) & (s.method == meth)]
                tag = f"{SHORT[key]} {FUSION_SYMBOL[fusion]}"
                rec[f"{tag} fused"], rec[f"{tag} weak"], rec[f"{tag} Δ"] = g["fused"].mean(), g["weak"].mean(), g["delta"].mean()
        rows.append(rec)
    return pd.DataFrame(rows).round(1)


def main_figure(study: MilesStudy):
    """Every seed's test accuracy and the mean per method and fusion on the main dataset: the fused head and
    the weak encoder (the paper's readout)."""
    main = study.main[study.main.dataset == MAIN]
    order = [LABELS[m] for m in METHODS]
    plot = main.assign(method=main["method"].map(LABELS), fusion=main["fusion"].map(FUSION_SYMBOL))
    fig, axes = style.subplots(1, 2, height=3.6, sharey=True)
    for ax, (col, title) in zip(axes, (("fused", "fused head"), ("weak", f"weak encoder ({study.weak[MAIN]})"))):
        sns.stripplot(data=plot, y="method", x=col, hue="fusion", order=order, dodge=True, alpha=0.6, size=4,
                      ax=ax, legend=False, palette="pastel", zorder=3, jitter=False)
        sns.pointplot(data=plot, y="method", x=col, hue="fusion", order=order, dodge=0.4, linestyle="none",
                      errorbar=None, markers="D", markersize=4, ax=ax, palette="dark", legend=col == "weak")
        ax.set(title=f"{NAMES[MAIN]}: {title}", xlabel="test accuracy (%)", ylabel="")
    axes[1].legend(title="fusion", loc="lower left", fontsize=8)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- Tables IV-VI

def sensitivity_table(study: MilesStudy, which: str, values: Sequence[float], paper: dict) -> pd.DataFrame:
    """Table IV (``which="tau"``) or V (``"mu"``) analogue with the paper's LUMA values alongside."""
    rows = study.abl.rows
    out = []
    for fusion in study.fusions_abl:
        for v in values:
            g = rows[(rows.study == which) & (rows.fusion == fusion) & (rows.value == v)]
            p = paper[fusion].get(v, (math.nan,) * 3)
            out.append({"τ" if which == "tau" else "μ": f"{v:g}", "fusion": FUSION_SYMBOL[fusion],
                        "fused": g["fused"].mean(), f"strong ({study.strong[MAIN]})": g["strong"].mean(),
                        f"weak ({study.weak[MAIN]})": g["weak"].mean(), "epochs slowed": g["epochs slowed"].mean(),
                        "LUMA fused": p[0], "LUMA strong": p[1], "LUMA weak": p[2]})
    return pd.DataFrame(out).round(1)


def sensitivity_figure(study: MilesStudy):
    """Test accuracy of the fused head and the two encoders as τ (left) and μ (right) vary."""
    abl = study.abl.rows
    heads = abl[abl.study != "eq3"].melt(id_vars=["study", "value", "fusion", "seed"],
                                         value_vars=["fused", "strong", "weak"], var_name="head",
                                         value_name="test accuracy (%)")
    first = study.fusions_abl[0]
    fig, axes = style.subplots(1, 2, height=3.2, sharey=True)
    for ax, which, sym in ((axes[0], "tau", "τ"), (axes[1], "mu", "μ")):
        sub = heads[(heads.study == which) & (heads.fusion == first)]
        sns.lineplot(data=sub, x="value", y="test accuracy (%)", hue="head", errorbar=None, marker="o", ax=ax,
                     legend=which == "mu")
        ax.set(xlabel=sym, title=f"{sym} varied ({FUSION_SYMBOL[first]})")
        if which == "mu":
            ax.set_xscale("log")
            ax.legend(title=None, fontsize=8)
    fig.tight_layout()
    return fig


def table6(study: MilesStudy) -> pd.DataFrame:
    """Table VI analogue: u from training against validation metrics, with the paper's LUMA values."""
    rows = []
    for fusion in study.fusions_abl:
        for split in ("train", "val"):
            f, p = study.t6[(fusion, split)].frame(), PAPER_T6[(fusion, split)]
            rows.append({"fusion": FUSION_SYMBOL[fusion], "u from": "training" if split == "train" else "validation",
                         "fused": 100 * f["fusion"].mean(),
                         f"strong ({study.strong[MAIN]})": 100 * f[f"readout:{study.strong[MAIN]}"].mean(),
                         f"weak ({study.weak[MAIN]})": 100 * f[f"readout:{study.weak[MAIN]}"].mean(),
                         "epoch": f"{f['best_epoch'].mean() + 1:.1f} of {study.setups[MAIN].epochs}",
                         "LUMA fused": p[0], "LUMA strong": p[1], "LUMA weak": p[2], "LUMA epoch": f"{p[3]} of 60"})
    return pd.DataFrame(rows).round(1)


# ----------------------------------------------------------------------------- Figure 2 and the explorer

def dynamics_figure(study: MilesStudy):
    """Figure 2 analogue on the main dataset (concatenation), every seed of the selected configurations: δ under
    MILES and under the eq. 3 control against τ, each encoder's rate relative to α under MILES, and MILES's
    heads' validation accuracy."""
    dyn = study.dynamics(MAIN, "concat")
    ctl = study.dynamics(MAIN, "concat", CONTROL)
    best = study.kept[(MAIN, "concat", "miles")].search.best_config
    mods = study.data[MAIN].modalities
    fig, axes = style.subplots(1, 3, height=3.1)
    both = pd.concat([dyn.assign(run=LABELS["miles"]), ctl.assign(run=LABELS[CONTROL])], ignore_index=True)
    sns.lineplot(data=both, x="epoch", y="δ", hue="run", errorbar=None, ax=axes[0])
    axes[0].axhline(best["tau"], color="0.4", lw=1, ls="--", label=f"τ = {best['tau']:g}")
    axes[0].set_title("δ (validation)")
    axes[0].legend(fontsize=7)
    lr_long = dyn.melt(id_vars=["seed", "epoch"], value_vars=[f"lr {m} / α" for m in mods], var_name="",
                       value_name="rate / α")
    sns.lineplot(data=lr_long, x="epoch", y="rate / α", hue="", errorbar=None, ax=axes[1])
    axes[1].set_title(f"MILES's encoder rates (μ = {best['mu']:g})")
    axes[1].legend(fontsize=7)
    acc_long = dyn.melt(id_vars=["seed", "epoch"], value_vars=["fused (val)"] + [f"{m} (val)" for m in mods],
                        var_name="", value_name="accuracy (%)")
    sns.lineplot(data=acc_long, x="epoch", y="accuracy (%)", hue="", errorbar=None, ax=axes[2])
    axes[2].set_title("MILES's heads (validation)")
    axes[2].legend(fontsize=7)
    fig.tight_layout()
    return fig


def decisions_table(study: MilesStudy) -> pd.DataFrame:
    """Epochs after which MILES slowed each encoder, over all seeds of the selected configuration (main, ⊕)."""
    slowed = pd.Series([d.get("slowed", "none") for rr in study.kept[(MAIN, "concat", "miles")].runs
                        for d in rr.decisions])
    return slowed.value_counts().rename_axis("encoder slowed").reset_index(name="epochs (all seeds)")


def draw_run(study: MilesStudy, key: str, fusion: str, meth: str, seed: int, axes: Any) -> None:
    """One kept run on two axes: the heads' validation accuracy with the selected epoch, and each encoder's
    rate relative to α with δ (and MILES's τ)."""
    rr = next(r for r in study.kept[(key, fusion, meth)].runs if r.seed == seed)
    h = rr.frame()
    ep = h["epoch"] + 1
    axes[0].plot(ep, 100 * h["val/fusion/accuracy"], color="k", label="fused")
    for m in study.data[key].modalities:
        head, name = (m, f"{m} head") if f"val/{m}/accuracy" in h else (f"probe:{m}", f"{m} probe")
        axes[0].plot(ep, 100 * h[f"val/{head}/accuracy"], label=name)
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
    """The selected vanilla (top) and MILES (bottom) runs on the main dataset, first seed."""
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
                     method=widgets.Dropdown(options=[(LABELS[m], m) for m in METHODS], value="miles"),
                     seed_index=widgets.IntSlider(value=0, min=0, max=max(len(v) for v in study.seeds.values()) - 1))


def extension_table(ext: pd.DataFrame, views: Sequence[str]) -> pd.DataFrame:
    """The three-view extension: the fused head and each view's encoder (the paper's readout), means over seeds."""
    out = ext.groupby("method", sort=False)[["fused", *views]].mean().reset_index()
    return out.assign(method=out["method"].map(LABELS), seeds=ext.groupby("method", sort=False).size().values).round(1)


def delta_spread(study: MilesStudy, key: str) -> tuple[float, float, float]:
    """The 10th and 90th percentiles of the eq. 3 control's δ on ``key`` and the share (%) of its epochs with
    δ above the paper's τ = 0.2."""
    late = study.control_delta(key)
    if not len(late):
        return math.nan, math.nan, math.nan
    return float(np.quantile(late, 0.1)), float(np.quantile(late, 0.9)), 100 * float((late > 0.2).mean())


def regime_verdict(study: MilesStudy) -> str:
    """How the chosen candidate fared against the regime's criteria, in words."""
    i = study.regimes.index(study.regime)
    checks = study.regime_checks(study.search[study.search.candidate == i])
    missed = [k for k, ok in checks.items() if not ok]
    return ("it meets every criterion" if not missed else
            f"it meets {len(checks) - len(missed)} of the {len(checks)} criteria; missed: " + ", ".join(missed))
