"""The MIND paper's findings as claims of the chapter (recorded through :mod:`mmrepro.publish.claims`
by the notebook's run; the outcomes are decided there from the intervals): MIND's fused head against each
baseline, its unimodal heads against -3H and the teachers, the ablation components, the label-wise
comparison with TS, the ω balance, the averages of Sec. 5.1 and the compression check."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from mmrepro.core.models import FUSION_HEAD
from mmrepro.core.stats import Evidence, paired_evidence
from mmrepro.papers.mind import evidence as ev
from mmrepro.papers.mind.report import LabelView, omega_per_seed, under_utilised
from mmrepro.papers.mind.results import ENSEMBLE, OMEGA_LABELS, TEACHER, ProblemResults
from mmrepro.papers.mind.students import ABLATION_METHODS, STUDENT_METHODS, UNIMODAL, method_name

MARGIN = 0.02  # "comparable" / "on par with": no more than 2 points of accuracy or AUROC below (stated per claim)

# The paper's numbers on each problem's analogue (primary metric: S-MNIST accuracy, else AUROC). PBC's labs
# series plays MIMIC's EHR time series, its static data the chest X-ray (the weaker modality in the paper).
PAPER: dict[str, dict[str, Any]] = {
    "av_digits": {
        "fused_where": "Table 5 (S-MNIST, accuracy)",
        "fused": {"mind": 0.982, "base": 0.970, "base_3h": 0.966, "mke_a": 0.966, "mke_b": 0.664, "ume": 0.898,
                  "ts": 0.970},
        "heads_where": "Table 5 (S-MNIST, accuracy)", "teacher_label": "UME's unimodal models",
        "heads": {"image": (0.981, 0.981, 0.998), "audio": (0.772, 0.604, 0.699)},  # MIND, -3H, teacher
        "ablation_where": "Table 4 (clinical conditions; the paper has no S-MNIST ablation)",
        "ablation": (0.743, 0.748, 0.761, 0.766, 0.778, 0.782),
    },
    "pbc_death": {
        "fused_where": "Table 1 (in-hospital mortality, AUROC)",
        "fused": {"mind": 0.844, "base": 0.816, "base_3h": 0.820, "mke_a": 0.827, "mke_b": 0.707, "ume": 0.818,
                  "ts": 0.828},
        "heads_where": "Table 3 (in-hospital mortality; labs ~ EHR, static ~ CXR)", "teacher_label": "best teacher",
        "heads": {"labs": (0.830, 0.827, 0.830), "static": (0.690, 0.572, 0.682)},
        "ablation_where": "Table B4 (in-hospital mortality)",
        "ablation": (0.816, 0.820, 0.823, 0.832, 0.835, 0.844),
    },
    "pbc_findings": {
        "fused_where": "Table 1 (clinical conditions, AUROC)",
        "fused": {"mind": 0.782, "base": 0.748, "base_3h": 0.750, "mke_a": 0.744, "mke_b": 0.711, "ume": 0.767,
                  "ts": 0.768},
        "heads_where": "Table 2 (clinical conditions; labs ~ EHR, static ~ CXR)", "teacher_label": "best teacher",
        "heads": {"labs": (0.746, 0.715, 0.744), "static": (0.709, 0.663, 0.710)},
        "ablation_where": "Table 4 (clinical conditions)",
        "ablation": (0.743, 0.748, 0.761, 0.766, 0.778, 0.782),
    },
}
# Figure 2 (label-wise AUROC, MIND vs TS): the paper reports MIND ahead on every label; its groups' gains are
# 1.4 (acute), 1.6 (mixed) and 1.4 (chronic) points, 1.5 on average (the paper's effect of each label claim).
LABELWISE_PAPER = "MIND above TS on every label (groups: +1.4, +1.6, +1.4 points)"
LABELWISE_EFFECT = 1.5

# Ablation I as one claim per component (Sec. 5.3): (id, with, without, what the component is), rows of ABLATION.
COMPONENTS = (("3h", 1, 0, "the unimodal supervised terms L_SA/B"),
              ("kd", 2, 1, "single-teacher distillation (ω = 1)"),
              ("ensemble-unweighted", 3, 2, "an ensemble instead of one teacher (ω = 1)"),
              ("ensemble-weighted", 5, 4, "an ensemble instead of one teacher (weighted ω)"),
              ("weighting", 5, 3, "weighted ω instead of ω = 1 (ensemble)"))


KD_BASELINES = ("mke_a", "mke_b", "ume", "ts")  # the knowledge-distillation baselines of Tables 1 and 5

# The 3-6 claims of the paper's abstract and contributions, with a plain summary for the In-brief box.
HEADLINES = {
    "fused-av_digits-vs-base": "MIND's fused prediction beats the plain fusion model (Vanilla), S-MNIST analogue",
    "head-av_digits-audio-vs-3h": "MIND's head of the weaker modality (audio) beats the same head trained without "
                                  "distillation (Vanilla-3H)",
    "fused-av_digits-vs-best-kd": "MIND's fused prediction beats the best knowledge-distillation baseline "
                                  "(TS, MKE, UME)",
    "fused-pbc_findings-vs-base": "On the clinical-conditions analogue, MIND's fused prediction beats the plain "
                                  "fusion model (MedFuse)",
    "omega-pbc_findings-balance": "A large distillation weight ω on the under-used modality balances how much the "
                                  "fusion relies on each modality",
}


def _points(v: float) -> float:
    return round(100 * v, 2)


def premise_id(name: str, modality: str | None = None) -> str:
    """The claim that measures the teachers' advantage on a problem (and modality): MIND's distillation claims
    name it as their premise."""
    return f"premise-{name}" + (f"-{modality}" if modality else "")


def record_premises(run: Any, r: ProblemResults) -> None:
    """MIND's premise on one problem, measured (the premise rule): each modality's teachers' ensemble (eq. 4,
    what MIND distils) against the student's own encoder trained alone on the pairs, and the two averaged
    (the premise of the claims that distil both modalities). The paper's effect is its nearest measure of
    the same thing: its best teacher of the modality minus the -3H head of that modality (Tables 2, 3, 5)."""
    p, name = r.problem, r.problem.name
    prim = p.report_metrics[0]
    paper = PAPER[name]
    where = paper["heads_where"] + "; Sec. 6"
    scored, effect = {}, {}
    for mod, uni in zip(p.modalities, UNIMODAL):
        _, v_3h, v_teacher = paper["heads"][mod]
        scored[mod], effect[mod] = r.score(ENSEMBLE, mod, prim) - r.score(uni, mod, prim), _points(v_teacher - v_3h)
        run.claim(id=premise_id(name, mod), paper="MIND", where=where,
                  paper_value=f"{mod}: {paper['teacher_label']} {v_teacher:.3f} vs {method_name('base_3h', p)}'s head "
                              f"{v_3h:.3f} (the paper's nearest measure)",
                  criterion=f"the {mod} teachers' ensemble minus the student's {mod} encoder trained alone on the "
                            f"pairs, test {prim}: above 0 points",
                  evidence=r.evidence(scored[mod], difference=True), threshold=0.0, direction="above", unit="points",
                  paper_effect=effect[mod])
    run.claim(id=premise_id(name), paper="MIND", where=where,
              paper_value="the teachers minus the -3H heads, mean of the two modalities (the paper's nearest measure)",
              criterion=f"the teachers' ensembles minus the student's encoders trained alone on the pairs, averaged "
                        f"over the two modalities, test {prim}: above 0 points",
              evidence=r.evidence(ev.mean_of(list(scored.values())), difference=True), threshold=0.0,
              direction="above", unit="points", paper_effect=round(float(np.mean(list(effect.values()))), 2))


def record_claims(run: Any, r: ProblemResults) -> None:
    """Record the paper's claims on one problem through the claim contract (one claim per comparison): the
    premise (the teachers' advantage), MIND's fused head against each baseline and the best distillation
    baseline, MIND's unimodal heads against -3H and against the best teacher, each ablation component, the
    label-wise comparison with TS (multilabel), the ω balance, and the compression as a check. Outcomes
    come from the intervals and the paper's effects; the distillation claims name their premise."""
    p, (a, b) = r.problem, r.problem.modalities
    prim = p.report_metrics[0]
    paper, name = PAPER[p.name], p.name
    record_premises(run, r)
    task_premise = premise_id(name)
    claim = lambda cid, **kw: run.claim(id=cid, paper="MIND", unit="points", headline=cid in HEADLINES,  # noqa: E731
                                        summary=HEADLINES.get(cid), **kw)
    for m in STUDENT_METHODS:
        if m == "mind":
            continue
        claim(f"fused-{name}-vs-{m}", where=paper["fused_where"],
              paper_value=f"MIND {paper['fused']['mind']:.3f} vs {method_name(m, p)} {paper['fused'][m]:.3f}",
              criterion=f"MIND minus {method_name(m, p)}, fused test {prim}: above 0 points",
              evidence=r.difference(("mind", FUSION_HEAD), (m, FUSION_HEAD)), threshold=0.0, direction="above",
              paper_effect=_points(paper["fused"]["mind"] - paper["fused"][m]), premise=task_premise)
    kd = {m: r.score(m, FUSION_HEAD, prim) for m in KD_BASELINES}
    versus, best = ev.versus_best(r.score("mind", FUSION_HEAD, prim), kd)
    paper_best = max(KD_BASELINES, key=lambda m: paper["fused"][m])
    claim(f"fused-{name}-vs-best-kd", where=paper["fused_where"] + "; Sec. 5.1",
          paper_value=f"MIND {paper['fused']['mind']:.3f} vs the best of them, {method_name(paper_best, p)} "
                      f"{paper['fused'][paper_best]:.3f}",
          criterion=f"MIND minus the best distillation baseline (TS, MKE, UME; here {method_name(best, p)}), "
                    f"fused test {prim}: above 0 points",
          evidence=r.evidence(versus, difference=True), threshold=0.0, direction="above",
          paper_effect=_points(paper["fused"]["mind"] - paper["fused"][paper_best]), premise=task_premise)
    for mod in (a, b):
        v_mind, v_3h, v_teacher = paper["heads"][mod]
        superior = v_mind - v_3h >= MARGIN
        claim(f"head-{name}-{mod}-vs-3h", where=paper["heads_where"],
              paper_value=f"{mod} head: MIND {v_mind:.3f} vs {method_name('base_3h', p)} {v_3h:.3f}",
              criterion=(f"MIND minus {method_name('base_3h', p)}, {mod} head, test {prim}: "
                         + ("above 0 points (the paper reports a clear gain)" if superior else
                            f"above -{100 * MARGIN:g} points (the paper reports them comparable)")),
              evidence=r.difference(("mind", mod), ("base_3h", mod)), threshold=0.0 if superior else -100 * MARGIN,
              direction="above", paper_effect=_points(v_mind - v_3h), premise=premise_id(name, mod))
        claim(f"head-{name}-{mod}-vs-teacher", where=paper["heads_where"],
              paper_value=f"{mod} head: MIND {v_mind:.3f} vs {paper['teacher_label']} {v_teacher:.3f}",
              criterion=(f"MIND's {mod} head on par with the best {mod} teacher (trained on more rows): "
                         f"difference in test {prim} above -{100 * MARGIN:g} points"),
              evidence=r.difference(("mind", mod), (TEACHER, mod)), threshold=-100 * MARGIN, direction="above",
              paper_effect=_points(v_mind - v_teacher), premise=premise_id(name, mod))
    for cid, hi, lo, what in COMPONENTS if r.has_ablations else ():
        claim(f"ablation-{name}-{cid}", where=paper["ablation_where"],
              paper_value=f"{paper['ablation'][hi]:.3f} with vs {paper['ablation'][lo]:.3f} without",
              criterion=f"adding {what} raises the fused test {prim}: row {hi + 1} minus row {lo + 1} above 0 points",
              evidence=r.difference((ABLATION_METHODS[hi], FUSION_HEAD), (ABLATION_METHODS[lo], FUSION_HEAD)),
              threshold=0.0, direction="above", paper_effect=_points(paper["ablation"][hi] - paper["ablation"][lo]),
              premise=None if cid == "3h" else task_premise)
    if p.kind == "multilabel":
        for j, label in enumerate(p.data.tasks[p.task].class_names):
            claim(f"labelwise-{name}-{label}", where="Figure 2 (label-wise AUROC)", paper_value=LABELWISE_PAPER,
                  criterion=f"MIND minus TS, test AUROC of label '{label}': above 0 points",
                  evidence=LabelView(r, j).difference(("mind", FUSION_HEAD), ("ts", FUSION_HEAD), "auroc"),
                  threshold=0.0, direction="above", paper_effect=LABELWISE_EFFECT, premise=task_premise)
    if r.omega:
        _record_omega(run, r)
    ratio = r.sizes["ratio_largest"]
    run.check(id=f"compression-{name}", paper="MIND", where="Table A1, App. C",
              paper_value="3.2x (MedFuse with ResNet-34 vs MIND with ResNet-10); S-MNIST: 4.9 M teachers, 151 k student",
              criterion="the base architecture with the largest teacher of each modality as encoders has at least 3x "
                        "the MIND student's parameters",
              passed=bool(ratio >= 3),
              observed=f"{ratio:.1f}x ({r.sizes['base_largest']:,} vs {r.sizes['student']:,} parameters)")


def _record_omega(run: Any, r: ProblemResults) -> None:
    """Sec. 5.4: the ω balance, per seed the mean |d_util| over the epochs (and folds) of the setting that
    emphasises the under-used modality minus that of ω = 0, Student t over the seeds. Not gated by the
    teachers' advantage: the claim is about the weight on a modality's distillation term, whatever the
    teacher knows."""
    a, name = r.problem.modalities[0], r.problem.name
    under = under_utilised(r)
    emph = OMEGA_LABELS[5] if under == a else OMEGA_LABELS[1]
    per = omega_per_seed(r).pivot(index="seed", columns="setting", values="mean |d_util|")
    cid = f"omega-{name}-balance"
    run.claim(id=cid, paper="MIND", where="Sec. 5.4, Figure 3", headline=cid in HEADLINES, summary=HEADLINES.get(cid),
              paper_value="|d_util| up to 0.10 at ω = 0, about 0.05 with ω_CXR ≫ ω_EHR (CXR under-utilised)",
              criterion=f"a much larger ω on the under-utilised modality ({under}: {emph}) lowers the mean |d_util| "
                        "over the epochs: difference from ω = 0 below 0",
              evidence=paired_evidence(per[emph].to_numpy(), per[OMEGA_LABELS[0]].to_numpy(), unit="seeds",
                                       parameter=r.parameter),
              threshold=0.0, direction="below", paper_effect=-0.05)


def weaker_modality(r: ProblemResults) -> str:
    """The modality whose best teacher has the lower validation score (mean over the folds)."""
    best = {m: r.best_teacher_val(m)[r.problem.select_metric] for m in r.problem.modalities}
    return min(best, key=best.get)


def average_improvements(results: Sequence[ProblemResults]) -> dict[str, Evidence]:
    """Sec. 5.5: MIND's improvement over the best baseline, averaged over the problems, for the fused
    prediction and for the weaker modality alone (the best baseline taken, as in the paper, by test
    metric); points, seeds and rows counted. Per seed, MIND's run minus the best baseline's run of that
    seed; per row resample, MIND minus the best baseline on that resample."""
    out = {}
    n_seeds = min(r.n_seeds for r in results)
    for what in ("fused", "weaker"):
        per_problem = []
        for r in results:
            head = FUSION_HEAD if what == "fused" else weaker_modality(r)
            scored = {m: r.score(m, head, r.problem.report_metrics[0]) for m in STUDENT_METHODS}
            best = max((m for m in STUDENT_METHODS if m != "mind"), key=lambda m: scored[m].point)
            others = np.stack([scored[m].reps for m in STUDENT_METHODS if m != "mind"])
            mind = scored["mind"]
            best_runs = np.resize(scored[best].per_run, len(mind.per_run))  # UME, trained once, pairs with every seed
            per_problem.append(ev.Scored(mind.point - scored[best].point, (mind.per_run - best_runs)[:n_seeds],
                                         mind.reps - others.max(axis=0)))
        mean = ev.Scored(float(np.mean([s.point for s in per_problem])),
                         np.mean([s.per_run for s in per_problem], axis=0), np.mean([s.reps for s in per_problem], axis=0))
        e = ev.evidence(mean, sum(len(r.y_test) for r in results), difference=True)
        out[what] = Evidence(e.estimate, e.interval, e.n, f"{e.method}, averaged over {len(results)} problems",
                             e.parts, e.floor).scaled(100)
    return out


def record_average_claims(run: Any, results: Sequence[ProblemResults]) -> dict[str, Evidence]:
    """Sec. 5.5's two average improvements as claims (threshold 0: MIND improves on the best baseline)."""
    avg = average_improvements(results)
    texts = {"fused": ("multimodal prediction", "1.5"), "weaker": ("the weaker modality alone", "5.2")}
    multiclass = [r.problem.name for r in results if r.problem.kind == "multiclass"]
    reason = None if len(multiclass) >= 3 else (
        f"the paper averages accuracy over three multiclass benchmarks; here {len(multiclass)} of the "
        f"{len(results)} problems are multiclass and the others score AUROC on tasks that share patients")
    for what, e in avg.items():
        run.claim(id=f"average-{what}", paper="MIND", where="Sec. 5.5 (over CREMA-D, S-MNIST, LUMA)",
                  paper_value=f"+{texts[what][1]} points on average",
                  criterion=f"MIND's improvement over the best baseline in {texts[what][0]}, averaged over the "
                            f"{len(results)} problems, is above 0 points",
                  evidence=e, threshold=0.0, direction="above", unit="points", reason=reason)
    return avg


FAMILIES = {"premise": "premise: the teachers' advantage", "fused": "MIND's fused head vs the baselines",
            "head": "MIND's unimodal heads vs -3H and the teachers", "labelwise": "label-wise AUROC vs TS",
            "average": "average improvements (Sec. 5.5)", "ablation": "ablation I: each loss component",
            "omega": "ω balances utilisation"}


# the outcomes of the claim contract (mmrepro.publish.claims, a layer above this one)
REPRODUCING = ("reproduces", "reproduces, smaller effect", "reproduces, larger effect")
OTHER_OUTCOMES = ("contradicted", "not reproduced", "undecided", "not comparable")


def outcome_summary(claims: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Per family of claims and problem: how many reproduce (of which with a smaller or larger effect than
    the paper's), are contradicted, not reproduced, undecided or not comparable."""
    rows = []
    for c in claims:
        if c["kind"] != "empirical":
            continue
        family, rest = c["id"].split("-", 1)
        problem = next((n for n in PAPER if rest.startswith(n)), "all")
        rows.append({"claims": FAMILIES[family], "problem": problem, "outcome": c["outcome"]})
    f = pd.DataFrame(rows, columns=["claims", "problem", "outcome"])
    out = []
    for (family, problem), g in f.groupby(["claims", "problem"], sort=False):
        n = g["outcome"].value_counts()
        good = sum(int(n.get(o, 0)) for o in REPRODUCING)
        detail = ", ".join(f"{int(n[o])} {o.split(', ')[1]}" for o in REPRODUCING[1:] if o in n)
        out.append({"claims": family, "problem": problem, "reproduce": f"{good} ({detail})" if detail else str(good),
                    **{o: int(n.get(o, 0)) for o in OTHER_OUTCOMES}})
    return pd.DataFrame(out)
