"""The MIND chapter's tables and figures, made from :class:`~mmrepro.papers.mind.results.ProblemResults`
(Tables 1-5 and B1-B6, Figures 2-3 of the paper, and the checks of the design: data, sizes, the
student's learning, the teachers' advantage, the selected epochs)."""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import pandas as pd

from mmrepro.core.models import FUSION_HEAD
from mmrepro.core.stats import Evidence
from mmrepro.papers.mind import evidence as ev
from mmrepro.papers.mind.results import ALONE_ALL, ENSEMBLE, OMEGA_LABELS, TEACHER, ProblemResults
from mmrepro.papers.mind.students import (
    ABLATION,
    ABLATION_METHODS,
    OMEGA_SETTINGS,
    STUDENT_METHODS,
    UNIMODAL,
    method_name,
    utilisation,
)


def _cell(e: Evidence) -> str:
    return f"{e.estimate:.3f} [{e.interval[0]:.3f}, {e.interval[1]:.3f}]"


def _points(d: Evidence) -> str:
    return f"{d.estimate:+.1f} [{d.interval[0]:+.1f}, {d.interval[1]:+.1f}]"


def _selected(r: ProblemResults, method: str) -> str:
    """The selected configuration (one split), or the range of the selected learning rate over the folds."""
    if method not in r.searches:
        return "-"
    hps = [s.best_hp for s in r.searches[method]]
    if len(hps) == 1:
        return ", ".join(f"{k}={v:.2g}" for k, v in hps[0].items())
    lo, hi = min(h["lr"] for h in hps), max(h["lr"] for h in hps)
    return f"lr={lo:.2g}" if lo == hi else f"lr {lo:.2g}–{hi:.2g}"


def _heads(r: ProblemResults) -> tuple[str, str, str]:
    return (FUSION_HEAD, *r.problem.modalities)


def baseline_table(r: ProblemResults) -> pd.DataFrame:
    """Table 1 / Table 5: fused metrics (mean over seeds [95 % interval]), each modality alone, the
    validation score of the selected configuration and the configuration."""
    p, (a, b) = r.problem, r.problem.modalities
    prim = p.report_metrics[0]
    rows = []
    for m in STUDENT_METHODS:
        row: dict[str, Any] = {"model": method_name(m, p)}
        for x in p.report_metrics:
            row[f"fused {x}"] = _cell(r.metric(m, FUSION_HEAD, x))
        for mod in (a, b):
            row[f"{mod} alone {prim}"] = _cell(r.metric(m, mod))
        row[f"val {p.select_metric}"] = round(float(np.mean([s.best_score for s in r.searches[m]])) if m in r.searches
                                              else r.ume_val[FUSION_HEAD][p.select_metric], 3)
        row["selected" if r.n_folds == 1 else f"selected lr ({r.n_folds} folds)"] = _selected(r, m)
        rows.append(row)
    return pd.DataFrame(rows)


def unimodal_table(r: ProblemResults) -> pd.DataFrame:
    """Tables 2-3, one row per modality and model: the unimodal heads of -3H and MIND (paired training
    rows), a unimodal model of the student's size on the same rows, and every teacher (all rows of its
    modality; * = in the ensemble, with K folds: in how many folds). Trained students: mean over seeds; a
    teacher is one model per fold. Training rows: mean over the folds."""
    p = r.problem
    pairs = round(float(np.mean([len(f.problem.paired["train"]) for f in r.folds])))
    rows = []
    for mod, uni in zip(p.modalities, UNIMODAL):
        for m in ("base_3h", "mind", uni):
            row = {"modality": mod, "model": method_name(m, p), "training rows": pairs}
            rows.append({**row, **{x: _cell(r.metric(m, mod, x)) for x in p.report_metrics}})
        for t in (t for t in r.teachers if t["modality"] == mod):
            n = t["in_ensemble"]
            mark = "" if n == 0 else " *" if n == r.n_folds else f" * ({n} of {r.n_folds} folds)"
            row = {"modality": mod, "model": f"teacher {t['model']}, lr {t['lr']:.0e}{mark}", "training rows": t["n_train"]}
            for x in p.report_metrics:
                row[x] = _cell(ev.evidence(ev.scored(x, r.y_test, [t["test"]], p.kind, r.draws), len(r.y_test)))
            rows.append(row)
    return pd.DataFrame(rows)


def ablation_table(r: ProblemResults) -> pd.DataFrame:
    """Table 4 / B4: the six loss settings, the fused test metrics and each unimodal head's primary metric
    (mean over seeds [interval])."""
    p = r.problem
    rows = []
    for label, m in zip(ABLATION, ABLATION_METHODS):
        row = {"setting": label, **{f"fused {x}": _cell(r.metric(m, FUSION_HEAD, x)) for x in p.report_metrics}}
        for h in p.modalities:
            row[f"{h} {p.report_metrics[0]}"] = "-" if m == "base" else _cell(r.metric(m, h))
        rows.append(row)
    return pd.DataFrame(rows)


def validation_table(r: ProblemResults, methods: Sequence[str], labels: Sequence[str] | None = None) -> pd.DataFrame:
    """Tables B1-B6: every head's validation metrics at the selected epoch, mean over the seeds (UME and
    the teachers: their one model)."""
    p = r.problem
    rows = []
    for i, m in enumerate(methods):
        row = {"model": labels[i] if labels else method_name(m, p)}
        for h in _heads(r):
            for x in p.report_metrics:
                name = f"{'fused' if h == FUSION_HEAD else h} {x}"
                if m == "ume":
                    row[name] = round(r.ume_val[h][x], 3)
                elif m == TEACHER:
                    row[name] = round(r.best_teacher_val(h)[x], 3) if h in p.modalities else "-"
                else:
                    v = np.mean([s.val(h, x) for s in r.runs[m]])
                    row[name] = round(float(v), 3) if np.isfinite(v) else "-"
        rows.append(row)
    return pd.DataFrame(rows)


def student_check(results: Sequence[ProblemResults], margin: float) -> pd.DataFrame:
    """Does the student learn? Each unimodal head of -3H and MIND against a unimodal model of the
    student's encoder trained alone on the same paired rows (points, paired by seed and test row)."""
    rows = []
    for r in results:
        p = r.problem
        for mod, uni in zip(p.modalities, UNIMODAL):
            for m in ("base_3h", "mind"):
                d = r.difference((m, mod), (uni, mod))
                rows.append({"problem": p.name, "head (metric)": f"{method_name(m, p)}: {mod} ({p.report_metrics[0]})",
                             "head's value": _cell(r.metric(m, mod)), "alone, same size": _cell(r.metric(uni, mod)),
                             "difference (points)": _points(d),
                             f"no more than {margin:g} points below": "yes" if d.interval[0] > -margin else
                             ("no" if d.interval[1] < -margin else "undecided")})
    return pd.DataFrame(rows)


def teacher_advantage(results: Sequence[ProblemResults]) -> pd.DataFrame:
    """What the teachers know beyond the paired rows (MIND's premise): per problem and modality, the
    teachers' ensemble (eq. 4, what MIND distils) against the student's encoder trained alone on the
    student's pairs, and how the best teacher's own advantage splits into more rows (the student's encoder
    trained as the teachers are, on their rows) and more size (the best teacher on the same rows)."""
    rows = []
    for r in results:
        p = r.problem
        for mod, uni in zip(p.modalities, UNIMODAL):
            rows.append({"modality (metric)": f"{p.name} {mod} ({p.report_metrics[0]})",
                         "teachers' ensemble": _cell(r.metric(ENSEMBLE, mod)),
                         "student's encoder, its pairs": _cell(r.metric(uni, mod)),
                         "ensemble's advantage (points)": _points(r.difference((ENSEMBLE, mod), (uni, mod))),
                         "best teacher: more rows": _points(r.difference((ALONE_ALL, mod), (uni, mod))),
                         "best teacher: more size": _points(r.difference((TEACHER, mod), (ALONE_ALL, mod)))})
    return pd.DataFrame(rows)


def epoch_table(results: Sequence[ProblemResults]) -> pd.DataFrame:
    """Whether the epochs suffice: per problem and trained method, the validation-selected epoch of the
    repeats (mean over seeds) and the share of seeds whose selected epoch is the last one trained (a
    model that may still improve)."""
    rows = []
    for r in results:
        for m, students in r.runs.items():
            last = [s.best_epoch == len(s.history) - 1 for s in students]  # best_epoch counts from 0
            rows.append({"problem": r.problem.name, "model": method_name(m, r.problem),
                         "epochs": max(len(s.history) for s in students),
                         "selected epoch (mean)": round(float(np.mean([s.best_epoch + 1 for s in students])), 1),
                         "selected at the last epoch": f"{sum(last)} of {len(last)}"})
    return pd.DataFrame(rows)


def seed_table(results: Sequence[ProblemResults]) -> pd.DataFrame:
    """The fused primary metric of every trained method's selected configuration over the seeds (with K
    folds, each seed's out-of-fold metric): mean, standard deviation, lowest and highest."""
    rows = []
    for r in results:
        for m in STUDENT_METHODS:
            if m == "ume":
                continue
            v = np.array(r.per_seed(m))
            rows.append({"problem": r.problem.name, "model": method_name(m, r.problem),
                         "metric": r.problem.report_metrics[0], "seeds": len(v), "mean": round(float(v.mean()), 3),
                         "sd": round(float(v.std(ddof=1)), 3), "lowest": round(float(v.min()), 3),
                         "highest": round(float(v.max()), 3)})
    return pd.DataFrame(rows)


PAPER_SIZES = {"av_digits": "S-MNIST: 151 k student, 4.9 M ResNet-10 teachers",
               "pbc_death": "MIMIC: 7.5 M student, 23.9 M MedFuse (3.2x)",
               "pbc_findings": "MIMIC: 7.5 M student, 23.9 M MedFuse (3.2x)"}


def size_table(results: Sequence[ProblemResults]) -> pd.DataFrame:
    """Table A1 / App. C: trainable parameters of the student, of the base architecture with the largest
    teachers as encoders (Table A1's comparison) and of the ensembles."""
    return pd.DataFrame([{"problem": r.problem.name, "MIND student": f"{r.sizes['student']:,}",
                          "base with the largest teachers": f"{r.sizes['base_largest']:,}",
                          "top-k ensembles (sum)": f"{r.sizes['ensembles']:,}",
                          "compression": f"{r.sizes['ratio_largest']:.1f}x", "paper": PAPER_SIZES[r.problem.name]}
                         for r in results])


def _span(values: Sequence[int]) -> str:
    lo, hi = min(values), max(values)
    return f"{lo}" if lo == hi else f"{lo}–{hi}"


def data_table(results: Sequence[ProblemResults]) -> pd.DataFrame:
    """The student's paired rows against each modality's teacher rows (MIND's premise: teachers see more);
    with K folds, the range over the folds and the pooled test rows."""
    rows = []
    for r in results:
        p = r.problem
        a, b = p.modalities
        n = {s: [len(f.problem.paired[s]) for f in r.folds] for s in ("train", "val")}
        uni = {m: [len(f.problem.unimodal[m]["train"]) for f in r.folds] for m in (a, b)}
        rows.append({"problem": p.title, "modalities (A, B)": f"{a}, {b}",
                     "split": "hold-out" if r.n_folds == 1 else f"{r.n_folds} folds",
                     "student: train / val / test pairs": f"{_span(n['train'])} / {_span(n['val'])} / {len(r.y_test)}",
                     "teachers: A / B rows": f"{_span(uni[a])} / {_span(uni[b])}",
                     "teachers / student rows": " / ".join(
                         f"{np.mean(uni[m]) / np.mean(n['train']):.1f}x" for m in (a, b))})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- ω study

def omega_frame(r: ProblemResults) -> pd.DataFrame:
    """Ablation II in long form: one row per (ω setting, seed, epoch) with u_A, u_B, d_util, the
    unimodal gap (head A minus head B on validation) and whether the epoch is the run's selected one."""
    a, b = r.problem.modalities
    metric = r.problem.select_metric
    rows = []
    for run in r.omega:
        ua, ub = utilisation(run, (a, b))
        for e, (x, y) in enumerate(zip(ua, ub)):
            h = run.history[e]
            rows.append({"problem": r.problem.name, "setting": run.label, "fold": run.fold, "seed": run.seed, "epoch": e,
                         f"u_{a}": x, f"u_{b}": y, "d_util": x - y,
                         "unimodal gap": h.get(f"val/{a}/{metric}", np.nan) - h.get(f"val/{b}/{metric}", np.nan),
                         "fused": h.get(f"val/{FUSION_HEAD}/{metric}", np.nan), "best": e == run.best_epoch})
    return pd.DataFrame(rows)


def omega_per_seed(r: ProblemResults) -> pd.DataFrame:
    """Per ω setting and seed: means over the epochs (and folds) of u_A, u_B, |d_util| and the unimodal gap,
    the selected epoch and its validation score (mean over the folds)."""
    a, b = r.problem.modalities
    f = omega_frame(r).assign(abs_d=lambda d: d["d_util"].abs())
    g = f.groupby(["setting", "seed"], sort=False)
    out = g[[f"u_{a}", f"u_{b}", "abs_d", "unimodal gap"]].mean().rename(columns={"abs_d": "mean |d_util|"})
    best = pd.DataFrame([{"setting": o.label, "seed": o.seed, "best epoch": o.best_epoch,
                          f"val {r.problem.select_metric}": o.val_score} for o in r.omega])
    return out.join(best.groupby(["setting", "seed"]).mean()).reset_index()


def omega_summary(r: ProblemResults) -> pd.DataFrame:
    """Ablation II: per ω setting (with its ω_A / ω_B), the per-seed summaries averaged over the seeds."""
    a, b = r.problem.modalities
    omegas = {run.label: run.omega for run in r.omega}
    out = omega_per_seed(r).drop(columns=["seed", "best epoch"]).groupby("setting", sort=False).mean().round(3)
    out.insert(0, f"ω_{a} / ω_{b}", [f"{omegas[s][0]:g} / {omegas[s][1]:g}" for s in out.index])
    return out.reset_index()


def under_utilised(r: ProblemResults) -> str:
    """The modality with the smaller mean conditional utilisation when ω = 0 (Sec. 5.4), over seeds and epochs."""
    a, b = r.problem.modalities
    f = omega_frame(r)
    zero = f[f["setting"] == OMEGA_LABELS[0]]
    return a if np.nanmean(zero[f"u_{a}"]) < np.nanmean(zero[f"u_{b}"]) else b


# ----------------------------------------------------------------------------- figures

def figure_names(results: Sequence[ProblemResults]) -> dict[str, str]:
    """Each method's name in a figure that shows several problems: the tables' names of the problems shown,
    joined where they differ (e.g. "MKE-IMAGE / MKE-LABS"), so a method has one name across tables and figures."""
    return {m: " / ".join(dict.fromkeys(method_name(m, r.problem) for r in results)) for m in STUDENT_METHODS}


def method_colours() -> dict[str, Any]:
    """One colour per method (keyed by its id, e.g. "mke_a"), the same in every figure of the chapter."""
    from mmrepro.common import style

    return dict(zip(STUDENT_METHODS, style.colours(list(STUDENT_METHODS)).values()))


def fused_figure(results: Sequence[ProblemResults]):
    """Table 1 / 5 as a figure: every method's fused test metric per seed (dots) with the mean and its
    two-stage bootstrap interval (bar), one panel per problem."""
    import seaborn as sns

    from mmrepro.common import style

    fig, axes = style.subplots(1, len(results), height=3.4, squeeze=False)
    colour = method_colours()
    for ax, r in zip(axes[0], results):
        names = {m: method_name(m, r.problem) for m in STUDENT_METHODS}  # the tables' names, panel by panel
        f = pd.DataFrame([{"method": names[m], "value": v} for m in STUDENT_METHODS for v in r.per_seed(m)])
        sns.stripplot(f, y="method", x="value", hue="method", palette={names[m]: colour[m] for m in names},
                      order=list(names.values()), ax=ax, size=4, alpha=0.6, legend=False, jitter=0.15)
        for i, m in enumerate(STUDENT_METHODS):
            e = r.metric(m, FUSION_HEAD)
            ax.errorbar(e.estimate, i, xerr=[[e.estimate - e.interval[0]], [e.interval[1] - e.estimate]], fmt="o",
                        color=colour[m], ms=6, capsize=3, lw=1.5)
        ax.set_title(r.problem.name, fontsize=10)
        ax.set_xlabel(f"fused test {r.problem.report_metrics[0]}")
        ax.set_ylabel("")
    fig.tight_layout()
    return fig


def at_edge(results: Sequence[ProblemResults], ranges: dict[str, Sequence[float]],
            share: float = 0.1) -> pd.DataFrame:
    """The selected learning rates that lie in the outer ``share`` of their search range on the log
    scale (problem, method, lr): where a selection sits at an edge, a better setting may lie beyond it."""
    rows = []
    for r in results:
        lo, hi = (math.log(v) for v in ranges[r.problem.name])
        for m, found in r.searches.items():
            for fold, s in enumerate(found):
                lr = float(s.best_hp["lr"])
                x = (math.log(lr) - lo) / (hi - lo) if hi > lo else 0.5
                if x < share or x > 1 - share:
                    rows.append({"problem": r.problem.name + (f" fold {fold + 1}" if r.n_folds > 1 else ""),
                                 "method": method_name(m, r.problem), "lr": lr})
    return pd.DataFrame(rows, columns=["problem", "method", "lr"])


def search_figure(results: Sequence[ProblemResults]):
    """Every search trial's validation score against its learning rate (log scale), per method: the range
    in which training is stable; one panel per problem, one legend below."""
    import seaborn as sns
    from matplotlib.ticker import NullFormatter

    from mmrepro.common import style

    fig, axes = style.subplots(1, len(results), height=3.0, squeeze=False)
    names = figure_names(results)
    pal = {names[m]: c for m, c in method_colours().items()}
    for ax, r in zip(axes[0], results):
        p = r.problem
        f = pd.DataFrame([{"method": names[m], "lr": t["lr"], "val": t["val"]}
                          for m in STUDENT_METHODS if m in r.searches for s in r.searches[m] for t in s.trials])
        sns.scatterplot(f, x="lr", y="val", hue="method", palette=pal, ax=ax, s=22, alpha=0.8, legend=False)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(p.name, fontsize=10)
        ax.set_xlabel("learning rate")
        ax.set_ylabel(f"validation {p.select_metric}")
    _legend_below(fig, pal, [names[m] for m in STUDENT_METHODS if m != "ume"], "o")
    return fig


def _legend_below(fig, colours: dict[str, Any], names: Sequence[str], marker: str | None) -> None:
    """One legend for every panel, in a row under them."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=colours[n], marker=marker, linestyle="none" if marker else "-", label=n)
               for n in names]
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    fig.legend(handles=handles, loc="lower center", ncol=min(len(names), 6), fontsize=8, frameon=False)


def omega_figure(results: Sequence[ProblemResults]):
    """Figure 3 analogue: per-epoch u_A, u_B and d_util for each ω setting, mean over seeds with a 95 %
    band (seaborn); one row of panels per problem, one legend below."""
    import seaborn as sns

    from mmrepro.common import style

    fig, axes = style.subplots(len(results), 3, height=2.4, squeeze=False)
    pal = dict(zip(OMEGA_LABELS, sns.color_palette("viridis", len(OMEGA_LABELS))))
    for row, r in zip(axes, results):
        a, b = r.problem.modalities
        f = omega_frame(r)
        for ax, col in zip(row, (f"u_{a}", f"u_{b}", "d_util")):
            sns.lineplot(f, x="epoch", y=col, hue="setting", hue_order=OMEGA_LABELS, palette=pal, errorbar=("ci", 95),
                         ax=ax, legend=False, lw=1.2)
            ax.axhline(0, color="grey", lw=0.6)
            ax.set_title(col if col != "d_util" else f"d_util = u_{a} − u_{b}", fontsize=9)
            ax.set_ylabel(r.problem.name if ax is row[0] else "")
    _legend_below(fig, pal, list(OMEGA_LABELS), None)
    return fig


def omega_scatter(results: Sequence[ProblemResults], y: str = "mean |d_util|"):
    """Per problem: a per-seed summary of the ω study (``y``: mean |d_util|, unimodal gap, ...) against the
    ω setting, dots per seed with the mean and a 95 % interval (the explorer's static view)."""
    import seaborn as sns

    from mmrepro.common import style

    fig, axes = style.subplots(1, len(results), height=3.0, squeeze=False)
    for ax, r in zip(axes[0], results):
        a, b = r.problem.modalities
        f = omega_per_seed(r)
        sns.stripplot(f, x="setting", y=y, order=OMEGA_LABELS, ax=ax, color="0.55", size=4, jitter=0.1)
        sns.pointplot(f, x="setting", y=y, order=OMEGA_LABELS, ax=ax, errorbar=("ci", 95), color="C0",
                      linestyle="none", markersize=5, capsize=0.2)
        ax.set_xticks(range(len(OMEGA_LABELS)), [f"{wa:g} / {wb:g}" for wa, wb in OMEGA_SETTINGS.values()],
                      fontsize=8)
        ax.set_title(r.problem.name, fontsize=10)
        ax.set_xlabel(f"ω_{a} / ω_{b}")
        ax.axhline(0, color="grey", lw=0.6)
    fig.tight_layout()
    return fig


def labelwise(r: ProblemResults, a: str = "mind", b: str = "ts") -> pd.DataFrame:
    """Figure 2 / B1: per label, AUROC and AUPRC of ``a`` and ``b`` (mean over seeds [interval]) and their
    difference in points (multilabel problems only)."""
    p = r.problem
    rows = []
    for j, label in enumerate(p.data.tasks[p.task].class_names or range(p.n_outputs)):
        sub = LabelView(r, j)
        for x in ("auroc", "auprc"):
            d = sub.difference((a, FUSION_HEAD), (b, FUSION_HEAD), x)
            rows.append({"label": label, "metric": x, method_name(a, p): _cell(sub.metric(a, FUSION_HEAD, x)),
                         method_name(b, p): _cell(sub.metric(b, FUSION_HEAD, x)),
                         "difference (points)": _points(d)})
    return pd.DataFrame(rows)


class LabelView:
    """One label of a multilabel problem seen as a binary problem (same seeds, rows and draws)."""

    def __init__(self, r: ProblemResults, j: int) -> None:
        self.r, self.j = r, j
        self.y_test = r.y_test[:, j]

    def preds(self, method: str, head: str) -> list[np.ndarray]:
        return [p[:, self.j] for p in self.r.preds(method, head)]

    def metric(self, method: str, head: str, metric: str) -> Evidence:
        return self.r.evidence(ev.scored(metric, self.y_test, self.preds(method, head), "binary", self.r.draws))

    def difference(self, a: tuple[str, str], b: tuple[str, str], metric: str) -> Evidence:
        return self.r.evidence(ev.scored(metric, self.y_test, self.preds(*a), "binary", self.r.draws)
                               - ev.scored(metric, self.y_test, self.preds(*b), "binary", self.r.draws), difference=True)


def labelwise_figure(r: ProblemResults, a: str = "mind", b: str = "ts"):
    """Figure 2 / B1 analogue: per label, the seed-mean AUROC and AUPRC of ``a`` and ``b`` with intervals."""
    from mmrepro.common import style

    p = r.problem
    labels = list(p.data.tasks[p.task].class_names or range(p.n_outputs))
    colour = method_colours()
    pal = {method_name(m, p): colour[m] for m in (a, b)}
    fig, axes = style.subplots(1, 2, height=3.0)
    for ax, x in zip(axes, ("auroc", "auprc")):
        for k, m in enumerate((a, b)):
            es = [LabelView(r, j).metric(m, FUSION_HEAD, x) for j in range(len(labels))]
            pos = np.arange(len(labels)) + (k - 0.5) * 0.25
            ax.errorbar([e.estimate for e in es], pos, fmt="o", color=colour[m], capsize=3,
                        xerr=[[e.estimate - e.interval[0] for e in es], [e.interval[1] - e.estimate for e in es]])
        ax.set_yticks(range(len(labels)), labels)
        ax.set_xlabel(f"test {x.upper()}")
        ax.invert_yaxis()
    axes[1].tick_params(labelleft=False)
    _legend_below(fig, pal, list(pal), "o")
    return fig
