"""The MFH chapter's tables and figures, made from the results of :mod:`~mmrepro.papers.mfh.studies`,
:mod:`~mmrepro.papers.mfh.theorem`, :mod:`~mmrepro.papers.mfh.realdata` and :mod:`~mmrepro.papers.mfh.case_study`:
Figures 2-3 and Table 2 (Sections 4.2, 5.2), Lemma 1-2 and Theorem 1 (Section 4.2, Appendix A), Algorithm 1
(Appendix B.4, Figures 5-6, Table 8), the real-data Tables 3 and 7 and the case study (Section 3, Tables 1 and 5).
One colour per model name in every figure (:data:`MODEL_COLOURS`)."""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import seaborn as sns

from mmrepro.common import style
from mmrepro.papers.mfh.case_study import summarise_case_study
from mmrepro.papers.mfh.studies import Correlated, Lemma1Check, Ranking, Sweep
from mmrepro.papers.mfh.theory import lemma1_max

_pal = sns.color_palette("colorblind")
MODEL_COLOURS = {"teacher": _pal[7], "no-KD student": _pal[1], "KD student": _pal[0], "regular": _pal[9],
                 "modality-general": _pal[2], "modality-specific": _pal[3], "random": _pal[4],
                 "shared weights": _pal[8], "plain": _pal[5]}
RUN_NAMES = {"teacher_regular": "teacher", "no_kd": "no-KD student", "kd_regular": "KD student"}
TEACHER_NAMES = {"general": "modality-general", "specific": "modality-specific", "random": "random"}


def for_people(table: pd.DataFrame, fmt: Callable[[float], str]) -> pd.DataFrame:
    """``table`` with every float cell written by ``fmt`` (e.g. :func:`mmrepro.publish.claims.number`: three
    significant digits, thousands separated), NaN as a dash; other cells as they are."""
    def cell(v: Any) -> Any:
        if isinstance(v, (float, np.floating)):
            return "—" if np.isnan(v) else fmt(float(v))
        return v

    return table.map(cell)


def long_runs(sweep: Sweep, x: str, names: dict[str, str] = RUN_NAMES) -> pd.DataFrame:
    """Per-seed accuracies as a long table (setting value ``x``, seed, model, accuracy) for seaborn."""
    batch = sweep.batch
    xs = [row[x] for row in batch.settings]
    seeds_ = batch.seed.reshape(batch.n_settings, -1)[0].tolist()
    return pd.DataFrame([dict(x=xs[i], seed=s_, model=label, accuracy=sweep.acc[key][i, j])
                         for key, label in names.items() for i in range(len(xs)) for j, s_ in enumerate(seeds_)])


def accuracy_figure(sweep: Sweep, x: str, xlabel: str, title: str):
    """Figures 2-3 of the paper. Left: accuracies with bands of one standard deviation over seeds. Right:
    the KD gain of each seed (KD minus no-KD student, paired), mean and 95 % interval."""
    fig, axes = style.subplots(1, 2, height=3.4)
    data = long_runs(sweep, x)
    ax = axes[0]
    sns.lineplot(data=data, x="x", y="accuracy", hue="model", style="model", markers=True, dashes=False,
                 errorbar="sd", palette=MODEL_COLOURS, ax=ax)
    ax.set(xlabel=xlabel, ylabel="test accuracy (%)", title=title)
    ax.legend(title=None)
    wide = data.pivot_table(index=["x", "seed"], columns="model", values="accuracy").reset_index()
    wide["gain"] = wide["KD student"] - wide["no-KD student"]
    ax = axes[1]
    sns.lineplot(data=wide, x="x", y="gain", marker="o", errorbar=("ci", 95), color=MODEL_COLOURS["KD student"], ax=ax)
    ax.axhline(0, color="0.3", lw=1)
    ax.set(xlabel=xlabel, ylabel="KD − no-KD (points)", title="KD gain per seed (95 % interval)")
    return fig


def figure2_table(sweep: Sweep) -> pd.DataFrame:
    """Figure 2 in numbers: per gamma the teacher, the students and the KD gain (means over seeds, %)."""
    s = sweep.summary
    t = s[["gamma", "teacher_regular_mean", "no_kd_mean", "kd_regular_mean", "kd_regular_std"]].copy()
    t["gain"] = s["kd_regular_mean"] - s["no_kd_mean"]
    return t.round(2).set_axis(["γ", "teacher", "no-KD student", "KD student", "KD student s.d.", "KD gain"], axis=1)


def figure3_table(sweep: Sweep) -> pd.DataFrame:
    """Figure 3 in numbers: per alpha the teacher and the students (means over seeds, %)."""
    return sweep.summary[["alpha", "gamma", "teacher_regular_mean", "no_kd_mean", "kd_regular_mean",
                          "kd_regular_std"]].round(2).set_axis(
        ["α", "γ", "teacher", "no-KD student", "KD student", "KD student s.d."], axis=1)


TABLE2_COLUMNS = {"regular teacher": "teacher_regular", "general teacher": "teacher_general", "No-KD": "no_kd",
                  "Regular-KD": "kd_regular", "Modality-general-KD": "kd_general"}


def table2_means(sweep: Sweep) -> pd.DataFrame:
    """Table 2 reproduced: per gamma the five accuracies of the paper's table (means over seeds, %)."""
    s = sweep.summary
    return pd.DataFrame({"gamma": s["gamma"], **{col: s[f"{key}_mean"] for col, key in TABLE2_COLUMNS.items()}})


def table2_table(sweep: Sweep, paper: pd.DataFrame) -> pd.DataFrame:
    """Table 2 reproduced, each cell "ours (paper)" in %, one row per gamma (five columns, to fit the page)."""
    ours = table2_means(sweep)
    cells = {col: [f"{o:.2f} ({p:.2f})" for o, p in zip(ours[col], paper[col])] for col in TABLE2_COLUMNS}
    return pd.DataFrame(cells, index=pd.Index([f"{g:.2f}" for g in ours["gamma"]], name="γ"))


def table2_row(sweep: Sweep) -> list[float]:
    """The five accuracies of a one-setting Table 2 sweep, in the paper's column order."""
    return [float(sweep.summary.loc[0, f"{key}_mean"]) for key in TABLE2_COLUMNS.values()]


def lemma1_figure(check: Lemma1Check):
    """Lemma 1's closed form (Eq. (8)) against scipy's maximisation and the small-eps limit eps^2 / 8."""
    fig, ax = style.subplots(height=3.4)
    ee = np.linspace(0, 20, 400)
    ax.plot(ee, lemma1_max(ee), label="closed form, Eq. (8)")
    ax.plot(check.eps, check.numeric, "o", label="numerical maximum (scipy)")
    ax.plot(ee, ee ** 2 / 8, ":", label=r"$\epsilon^2/8$ (small-$\epsilon$ limit)")
    ax.set(ylim=(0, 20), xlabel=r"$\epsilon$", ylabel=r"$\max_{|a-b|\leq\epsilon} l(b,a)$", title="Lemma 1")
    ax.legend()
    return fig


def theorem_summary(trials: pd.DataFrame) -> pd.DataFrame:
    """Theorem 1 per gamma, means over trials: lambda, eps*, the bound, the risk after gradient descent and
    the risk of the trivial student."""
    return trials.groupby("gamma").agg(lam=("lam", "mean"), eps_star=("eps_star", "mean"), bound=("bound", "mean"),
                                       risk_gd=("risk_gd", "mean"), risk_trivial=("risk_zero", "mean")).reset_index()


THEOREM_COLUMNS = {"gamma": "γ", "lam": "λ", "eps_star": "ε*", "bound": "bound n f(ε*)",
                   "risk_gd": "risk after gradient descent", "risk_trivial": "risk of θ_s = 0"}


def theorem_table(summary: pd.DataFrame) -> pd.DataFrame:
    """:func:`theorem_summary` with the paper's symbols as column names, one row per gamma."""
    table = summary.rename(columns=THEOREM_COLUMNS)
    return table.set_index("γ").set_axis([f"{g:.2f}" for g in summary["gamma"]]).rename_axis("γ")


def lemma2_table(lemma2: pd.DataFrame) -> pd.DataFrame:
    """Lemma 2 on random matrix pairs, with readable column names."""
    return lemma2.rename(columns={"shape": "Z^a vs Z^b", "scale": "entry scale", "trials": "pairs",
                                  "holds": "inequality holds", "median_ratio": "median right / left side"})


def theorem_figure(summary: pd.DataFrame, curve: pd.DataFrame, trivial: float):
    """Left: the mean bound and the mean risk reached per gamma (per-trial constants). Right: the bound with one
    (lambda, eps) for all trials against the largest risk of the trivial student."""
    fig, axes = style.subplots(1, 2, height=4.4)
    ax = axes[0]
    ax.semilogy(summary["gamma"], summary["bound"].clip(lower=1e-12), "o-", label="bound (per-trial constants)")
    ax.semilogy(summary["gamma"], summary["risk_gd"].clip(lower=1e-12), "s-", label="risk after gradient descent")
    ax.semilogy(summary["gamma"], summary["risk_trivial"], "k:", label=r"risk of $\theta_s = 0$")
    ax.set(xlabel=r"$\gamma$", ylabel=r"$R_n^{dis}$ (log scale; 0 drawn at $10^{-12}$)", title="Theorem 1, per trial")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=1, frameon=False)
    ax = axes[1]
    ax.semilogy(curve["gamma"], curve["bound"].clip(lower=1e-6), label=r"bound, one $(\lambda, \epsilon)$ for all trials")
    ax.axhline(trivial, color="k", ls=":", label=r"largest risk of $\theta_s = 0$")
    ax.set(xlabel=r"$\gamma$", ylabel="bound (log scale)", title=r"Theorem 1 read as stated")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=1, frameon=False)
    fig.tight_layout()
    return fig


def algorithm1_table(ranking: Ranking) -> pd.DataFrame:
    """Algorithm 1 on the Table 2 data: precision@k, and the teachers kept to the top-, random and bottom-k
    channels with their students (means over seeds, %)."""
    rk = ranking.teachers.summary
    return pd.DataFrame({"γ": rk["gamma"], "precision@k": ranking.precision.mean(1).numpy(),
                         "top-k teacher": rk["teacher_top_mean"], "random-k teacher": rk["teacher_random_mean"],
                         "bottom-k teacher": rk["teacher_bottom_mean"], "top-k student": rk["kd_top_mean"],
                         "random-k student": rk["kd_random_mean"], "bottom-k student": rk["kd_bottom_mean"],
                         "No-KD": rk["no_kd_mean"]}).round(3)


def salience_figure(ranking: Ranking, setting: int = 1):
    """Algorithm 1's salience of every teacher channel for the first seed of one setting (gamma = 0.5)."""
    batch = ranking.teachers.batch
    fig, ax = style.subplots(height=3.0)
    r0 = int(np.flatnonzero(batch.setting.numpy() == setting)[0])
    kind = np.where(batch.shared_a[r0], "shared (modality-general)",
                    np.where(batch.decisive_a[r0], "teacher-specific", "noise"))
    sns.barplot(x=np.arange(batch.shared_a.shape[1]), y=ranking.salience[r0].numpy(), hue=kind, dodge=False, ax=ax,
                palette={"shared (modality-general)": MODEL_COLOURS["modality-general"],
                         "teacher-specific": MODEL_COLOURS["modality-specific"], "noise": "0.7"})
    ax.set_xticks(range(0, 50, 5), range(0, 50, 5))
    ax.set(xlabel="channel of modality a", ylabel="salience p (Alg. 1)",
           title=rf"Algorithm 1 salience, $\gamma$ = {float(batch.gamma[r0]):.1f}, one seed")
    ax.legend(title=None)
    return fig


def permutations_table(prec_m: pd.DataFrame) -> pd.DataFrame:
    """Mean precision@k over seeds by gamma (rows) and permutations M (columns)."""
    table = prec_m.pivot_table(index="gamma", columns="M", values="precision").round(3)
    table.columns = [f"M = {m}" for m in table.columns]
    return table.rename_axis("γ")


def candidates_summary(cand: pd.DataFrame) -> pd.DataFrame:
    """Candidates for a real-data test: accuracy of each modality alone per dataset and label, and the gap."""
    table = (cand.groupby(["dataset", "label", "role", "modality"], sort=False)["accuracy"].mean().reset_index()
             .pivot_table(index=["dataset", "label"], columns="role", values="accuracy", sort=False))
    mods = cand.groupby(["dataset", "label", "role"], sort=False)["modality"].first().unstack()
    table.insert(0, "teacher modality", mods["teacher"])
    table.insert(2, "student modality", mods["student"])
    table = table.rename(columns={"teacher": "teacher modality acc. (%)", "student": "student modality acc. (%)"})
    table["gap (points)"] = table["teacher modality acc. (%)"] - table["student modality acc. (%)"]
    return table.round(1)


def known_part_table(kp: pd.DataFrame) -> pd.DataFrame:
    """Image students' digit accuracy per teacher (regular, modality-general, modality-specific) and rho."""
    tab = (kp[kp.teacher != "no_kd"].pivot_table(index="rho", columns="teacher", values="test_digit")
           [["regular", "general", "specific"]])
    tab.insert(0, "no_kd", float(kp.loc[kp.teacher == "no_kd", "test_digit"].mean()))
    tab = tab.round(2)
    tab.index = [f"ρ = {r:g}" for r in tab.index]
    tab.columns = ["No-KD (labels only)", "Regular-KD", "Modality-general-KD", "Modality-specific-KD"]
    return tab


def separation_table(rk_real: pd.DataFrame) -> pd.DataFrame:
    """What the nullified audio teachers still know: digit, speaker-group and 20-class accuracy (means)."""
    reg_rows = rk_real[rk_real.teacher == "regular"]
    cols = ["teacher_digit_acc", "teacher_group_acc", "teacher_acc"]
    sep = (rk_real[rk_real.teacher.isin(["general", "specific", "random"]) & rk_real.r.isin([0.25, 0.5, 0.75])]
           .groupby(["r", "teacher"])[cols].mean().round(1))
    sep = pd.concat([reg_rows[cols].mean().round(1).to_frame().T
                     .set_index(pd.MultiIndex.from_tuples([(0.0, "regular")], names=["r", "teacher"])), sep])
    sep.columns = ["teacher digit acc. (%)", "teacher speaker-group acc. (%)", "teacher acc., 20 classes (%)"]
    return sep


def table8_table(rk_real: pd.DataFrame) -> pd.DataFrame:
    """The Table 8 pattern: image students' digit accuracy for teachers with r % of their channels nullified."""
    t8 = rk_real[rk_real.r.isin([0.25, 0.5, 0.75]) | (rk_real.teacher == "regular")]
    tab = t8[t8.teacher != "regular"].pivot_table(index="r", columns="teacher", values="test_digit")[
        ["specific", "random", "general"]]
    tab.insert(0, "regular", float(rk_real.loc[rk_real.teacher == "regular", "test_digit"].mean()))
    tab.index = [f"{int(r_ * 100)} %" for r_ in tab.index]
    return tab.round(2)


def figure5(rk_real: pd.DataFrame, no_kd: float):
    """Figure 5 on AV digits. Left: students of the modality-general, -specific and random teachers as r grows
    (r = 0 is the regular teacher). Right: what those teachers still know about the speaker group and the digit."""
    reg_rows = rk_real[rk_real.teacher == "regular"]
    curve = pd.concat([rk_real[rk_real.teacher.isin(list(TEACHER_NAMES))],
                       *[reg_rows.assign(teacher=t_) for t_ in TEACHER_NAMES]])
    curve["teacher"] = curve["teacher"].map(TEACHER_NAMES)
    fig, axes = style.subplots(1, 2, height=3.4)
    sns.lineplot(data=curve, x="r", y="test_digit", hue="teacher", style="teacher", markers=True, dashes=False,
                 errorbar=("ci", 95), palette=MODEL_COLOURS, ax=axes[0])
    axes[0].axhline(no_kd, color=MODEL_COLOURS["no-KD student"], ls="--", lw=1, label="no KD")
    axes[0].set(xlabel="share r of teacher channels nullified", ylabel="student digit accuracy (%)",
                title="Figure 5: students")
    axes[0].legend(title=None)
    sns.lineplot(data=curve, x="r", y="teacher_group_acc", hue="teacher", style="teacher", markers=True, dashes=False,
                 errorbar=("ci", 95), palette=MODEL_COLOURS, legend=False, ax=axes[1])
    sns.lineplot(data=curve, x="r", y="teacher_digit_acc", hue="teacher", errorbar=None, palette=MODEL_COLOURS,
                 legend=False, linestyle=":", ax=axes[1])
    axes[1].set(xlabel="share r of teacher channels nullified", ylabel="teacher accuracy (%)",
                title="Teachers: group (solid), digit (dotted)")
    return fig


def figure6(prec_m: pd.DataFrame, pm: pd.DataFrame):
    """Figure 6: more permutations M. Left: precision@k on the Gaussian Table 2 data. Right: the AV-digits
    student of the modality-general teacher (r = 50 %)."""
    fig, axes = style.subplots(1, 2, height=3.2)
    sns.lineplot(data=prec_m, x="M", y="precision", hue="gamma", marker="o", errorbar=("ci", 95), palette="crest",
                 ax=axes[0])
    axes[0].set(xscale="log", xlabel="permutations M", ylabel="precision@k", title="Gaussian (Table 2 data)")
    axes[0].legend(title=r"$\gamma$")
    sns.lineplot(data=pm, x="m", y="test_digit", marker="o", errorbar=("ci", 95),
                 color=MODEL_COLOURS["modality-general"], ax=axes[1])
    axes[1].set(xscale="log", xlabel="permutations M", ylabel="student digit accuracy (%)",
                title="AV digits, general teacher, r = 50 %")
    return fig


def convergence_figure(trace: pd.DataFrame):
    """The Eq. (1) objective of the distilled students along training (nullifying teachers at r = 50 %)."""
    names = {"regular": "regular", **TEACHER_NAMES}
    plot = trace[trace.teacher.isin(list(names)) & trace.r.isin([0.0, 0.5])].copy()
    plot["teacher"] = plot["teacher"].map(names)
    fig, ax = style.subplots(height=3.0)
    sns.lineplot(data=plot, x="epoch", y="objective", hue="teacher", errorbar=("ci", 95), palette=MODEL_COLOURS, ax=ax)
    ax.set(xlabel="epoch (full batch)", ylabel="Eq. (1) objective, rho = 0",
           title="Distilled students converge (nullifying teachers: r = 50 %)")
    ax.legend(title=None)
    return fig


def table3_table(t3: pd.DataFrame) -> pd.DataFrame:
    """Table 3 pattern: the regular and shared-weight teachers on the audio and their image students."""
    tab = t3.groupby("teacher", sort=False)[["teacher_acc", "teacher_digit_acc", "teacher_group_acc", "test_digit"]].mean()
    tab.columns = ["teacher acc. (%)", "teacher digit acc. (%)", "teacher speaker-group acc. (%)",
                   "student digit acc. (%)"]
    return tab.round(2).reset_index()


def table7_table(t7: pd.DataFrame) -> pd.DataFrame:
    """Table 7 pattern: two audio+image teachers and their image students."""
    tab = t7.groupby("teacher", sort=False)[["teacher_acc", "test_digit"]].mean()
    tab.columns = ["teacher acc. (%)", "student digit acc. (%)"]
    return tab.round(2).reset_index()


def case_table(cs: pd.DataFrame, paper: dict[tuple[str, float], tuple[float, float]]) -> pd.DataFrame:
    """Table 1 / Table 5 pattern: per method and rho the teacher's accuracy and the student's (mean ± s.d. over
    runs), each followed by the paper's AV-MNIST value in parentheses (five columns, to fit the page)."""
    t = summarise_case_study(cs)
    ref = [paper[(m, r)] for m, r in zip(t["method"], t["rho"])]
    teacher = ["—" if np.isnan(a) else f"{a:.1f} ({p[0]:.1f})" for a, p in zip(t["teacher_acc"], ref)]
    student = [f"{a:.1f} ± {sd:.1f} ({p[1]:.1f})" for a, sd, p in zip(t["student_acc"], t["student_std"], ref)]
    return pd.DataFrame({"method": t["method"], "ρ": ["—" if r == 1.0 else f"{r:g}" for r in t["rho"]],
                         "teacher": t["teacher_modality"].replace("-", "—"), "teacher acc. (%)": teacher, "student acc. (%)": student})


def venn_heatmap(vs: pd.DataFrame, n_seeds: int):
    """The KD gain over the no-KD student for every (gamma, alpha) of the MVD grid."""
    heat = vs.assign(gamma=vs["gamma"].round(2), alpha=vs["alpha"].round(2)).pivot(index="alpha", columns="gamma",
                                                                                   values="gain")
    fig, ax = style.subplots(height=3.8, width=6.0)
    lim = float(np.nanmax(np.abs(heat.to_numpy())))
    sns.heatmap(heat.iloc[::-1], annot=True, fmt="+.1f", cmap="RdBu", center=0, vmin=-lim, vmax=lim, linewidths=0.5,
                cbar_kws={"label": "KD gain over no-KD (points)"}, ax=ax)
    ax.grid(False)
    ax.set(xlabel=r"$\gamma$ (shared)", ylabel=r"$\alpha$ (teacher-specific)",
           title=f"KD gain across the MVD (mean of {n_seeds} seeds)")
    return fig


def explore_bars(summary_row: Any, title: str):
    """One MVD setting of the explorer: teacher, no-KD and KD student (mean and s.d. over seeds)."""
    fig, ax = style.subplots(height=3.0, width=5.5)
    names = ["teacher", "no-KD student", "KD student"]
    keys_: Sequence[str] = ["teacher_regular", "no_kd", "kd_regular"]
    ax.bar(names, [summary_row[f"{k_}_mean"] for k_ in keys_], yerr=[summary_row[f"{k_}_std"] for k_ in keys_],
           color=[MODEL_COLOURS[n_] for n_ in names])
    ax.set(ylim=(45, 100), ylabel="test accuracy (%)", title=title)
    return fig


def correlated_numbers(c: Correlated) -> dict[str, float]:
    """Mean precision@k of the single-channel and grouped permutations, and % of runs whose groups were found."""
    return {"single": float(c.single.mean()), "grouped": float(c.grouped.mean()), "found": c.groups_found * 100}
