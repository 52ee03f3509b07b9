"""The MILES paper's numbers and its findings as claims of the chapter (recorded through the notebook's run;
:mod:`mmrepro.publish.claims` decides the outcomes from the intervals).

* The premise, Figure 1: the weak encoder inside vanilla lags the same encoder trained alone
  (``fig1-lag-*``, the premise of every claim about correcting the imbalance) while the dominant one does not
  (``fig1-strong-*``).
* Tables II-III: MILES against every baseline on the fused head and on Δ, the weak head's lift over vanilla,
  and the headline forms "beats every baseline" (``*-vs-all``: an intersection-union test, decided by its
  binding comparison); MILES against eq. 3 without the scheduler (``*-eq3-control``), which separates
  Algorithm 1 from the unimodal losses it comes with.
* Sec. V-B: MILES's encoders against the unimodal models, against the paper's mean gap.
* Figure 2: δ shrinking over training, alone and against the eq. 3 control.
* Tables IV-VI: the τ and μ trends, μ = 1 as eq. 3 training (a check), u from training metrics.

Test accuracies rest on seeds and on a finite test set: their intervals count both
(:func:`~mmrepro.core.stats.seed_row_evidence` on per-row correctness, paired by seed and row).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from mmrepro.core.stats import Evidence, paired_evidence, seed_row_evidence
from mmrepro.papers.miles.setup import BALANCING_METHODS, CONTROL, LABELS
from mmrepro.papers.miles.study import FUSION_SYMBOL, FUSIONS, MAIN, NAMES, PAPER_MUS, MilesStudy, per_seed

# S-MNIST rows of Tables II (concat) and III (sum): fused, image (strong), audio (weak)
PAPER = {
    "concat": {"vanilla": (98.4, 98.5, 53.9), "mslr-k": (99.0, 98.8, 58.9), "mslr-s": (99.1, 98.6, 66.1),
               "mslr-d": (99.0, 98.8, 76.9), "ogm": (98.9, 98.8, 64.5), "ogm-ge": (99.0, 97.3, 73.0),
               "mses": (98.4, 98.3, 77.8), "gblend": (98.8, 98.1, 75.9), "miles": (99.8, 98.8, 84.9)},
    "sum": {"vanilla": (98.3, 98.0, 55.8), "mslr-k": (98.7, 98.5, 68.2), "mslr-s": (98.8, 98.8, 58.1),
            "mslr-d": (99.1, 98.7, 73.5), "ogm": (98.6, 97.8, 61.8), "ogm-ge": (99.0, 96.9, 79.1),
            "mses": (98.9, 98.6, 81.4), "gblend": (99.2, 98.8, 80.1), "miles": (99.8, 98.8, 85.0)}}
PAPER_ALONE = {"image": 99.0, "audio": 88.9}  # S-MNIST, Table I
# LUMA, Tables IV (τ) and V (μ): fused, strong (audio), weak (image)
PAPER_TAU = {"concat": {0.5: (98.9, 97.4, 57.6), 0.3: (99.1, 95.4, 66.7), 0.2: (99.7, 95.1, 75.1),
                        0.1: (99.1, 93.1, 76.8), 0.0: (98.7, 91.7, 77.5)},
             "sum": {0.5: (99.1, 97.3, 66.6), 0.3: (99.2, 95.8, 73.2), 0.2: (99.8, 95.7, 76.6),
                     0.1: (99.3, 93.3, 77.4), 0.0: (98.9, 91.5, 78.1)}}
PAPER_MU = {"concat": dict(zip(PAPER_MUS, [(98.7, 97.5, 57.7), (99.4, 96.9, 65.5), (99.7, 95.1, 75.1),
                                           (99.1, 94.5, 75.4), (94.7, 92.2, 76.8), (90.3, 89.3, 77.7),
                                           (86.7, 84.4, 79.0)])),
            "sum": dict(zip(PAPER_MUS, [(99.0, 97.3, 66.7), (99.7, 96.7, 69.3), (99.8, 95.7, 76.6),
                                        (99.4, 94.9, 76.8), (97.6, 93.9, 78.2), (91.5, 88.8, 78.9),
                                        (89.6, 83.9, 79.4)]))}
# LUMA, Table VI: fused, strong, weak, selected epoch (of 60)
PAPER_T6 = {("concat", "train"): (99.8, 95.6, 73.6, 53), ("concat", "val"): (99.7, 95.1, 75.1, 47),
            ("sum", "train"): (99.8, 97.3, 76.4, 53), ("sum", "val"): (99.8, 95.7, 76.6, 45)}
PAPER_GAP = {"concat": (1.8, 1.6, 4.0), "sum": (2.0, 2.0, 5.8)}  # Sec. V-B: mean, sd and largest encoder gap
TABLE = {"concat": "Table II", "sum": "Table III"}
STRONG_MARGIN = 2.0  # points: "comparable" for the dominant encoder inside and outside vanilla (Figure 1)
U_MARGIN = 1.0  # points: "comparable outcomes" with u from training metrics (Table VI)
#: (label, id prefix, id part) of each kind of claim, for the counts by kind
FAMILIES = [("the weak encoder lags inside vanilla (Figure 1; the premise)", "fig1-lag-", ""),
            ("the strong encoder does not (Figure 1)", "fig1-strong-", ""),
            ("MILES beats every baseline (headline)", "miles-", "-vs-all"),
            ("MILES's fused head beats a baseline", "miles-", "-fused-vs-"),
            ("MILES's Δ is smaller than a baseline's", "miles-", "-delta-vs-"),
            ("MILES lifts the weak encoder", "miles-", "-weak-"),
            ("MILES's encoders near unimodal models (Sec. V-B)", "miles-", "-encoder-gap-"),
            ("δ shrinks during training (Figure 2)", "miles-", "-delta-shrinks"),
            ("τ trend (Table IV)", "tau-", ""), ("μ trend (Table V)", "mu-", ""), ("u from training (Table VI)", "u-", "")]
OUTCOMES = ("reproduces", "reproduces, smaller effect", "reproduces, larger effect", "contradicted",
            "not reproduced", "undecided", "not comparable")


def seeds_parameter(key: str) -> str:
    """The notebook parameter that sets the number of seeds on dataset ``key``."""
    return "n_seeds" if key == MAIN else "n_seeds_other"


def row_evidence(values: np.ndarray, bounds: tuple[float, float], parameter: str) -> Evidence:
    """The mean of a (seeds, test rows) matrix with both counted (:func:`seed_row_evidence`)."""
    return seed_row_evidence(values, bounds=bounds, parameter=parameter)


def control_id(meth: str) -> str:
    """How a compared method appears in claim ids (the eq. 3 control as ``eq3-control``)."""
    return "eq3-control" if meth == CONTROL else meth


def binding(evidence: Sequence[Evidence], direction: str) -> int:
    """The comparison that decides "better than every one" (an intersection-union test: it holds when every
    comparison holds, fails when one fails): the index of a comparison wholly on the wrong side of 0 if any
    (the one farthest there), else of the one whose interval reaches farthest towards the wrong side."""
    sign = 1.0 if direction == "above" else -1.0
    ends = [(sign * e.interval[1] if sign > 0 else sign * e.interval[0],
             sign * e.interval[0] if sign > 0 else sign * e.interval[1]) for e in evidence]
    failed = [i for i, (far, _) in enumerate(ends) if far <= 0]
    if failed:
        return min(failed, key=lambda i: ends[i][0])
    return min(range(len(evidence)), key=lambda i: ends[i][1])


# ----------------------------------------------------------------------------- Figure 1

def lag_evidence(study: MilesStudy, key: str, fusion: str, role: str = "weak") -> Evidence:
    """The ``role`` modality alone (its own head) minus the same modality inside vanilla (the fusion-layer
    split), paired by seed and test row."""
    m = study.weak[key] if role == "weak" else study.strong[key]
    diff = study.alone_rows(key, m) - study.rows(key, fusion, "vanilla", role)
    return row_evidence(diff, (-100.0, 100.0), seeds_parameter(key))


def lag_id(key: str, fusion: str) -> str:
    return f"fig1-lag-{key}-{fusion}"


def record_lag(run: Any, study: MilesStudy) -> dict[tuple[str, str], Evidence]:
    """Figure 1 on every dataset and fusion: the weak encoder's lag (the premise claims) and the strong
    encoder's gap; the main dataset's numbers as values. Returns the lags."""
    lags = {}
    for key in study.setups:
        for fusion in FUSIONS:
            pv, weak, strong = PAPER[fusion]["vanilla"], study.weak[key], study.strong[key]
            lags[(key, fusion)] = ev = lag_evidence(study, key, fusion)
            run.claim(id=lag_id(key, fusion), paper="MILES", where="Figure 1; Table I vs Tables II-III",
                      paper_value=f"S-MNIST audio: 88.9 alone vs {pv[2]} inside vanilla ({88.9 - pv[2]:+.1f} pts)",
                      criterion=f"{NAMES[key]}, {FUSION_SYMBOL[fusion]}: {weak} alone minus {weak} inside vanilla > 0 "
                                "(the imbalance exists)",
                      evidence=ev, threshold=0.0, direction="above", paper_effect=88.9 - pv[2], unit="points")
            run.claim(id=f"fig1-strong-{key}-{fusion}", paper="MILES", where="Figure 1; Table I vs Tables II-III",
                      paper_value=f"S-MNIST image: 99.0 alone vs {pv[1]} inside vanilla ({99.0 - pv[1]:+.1f} pts)",
                      criterion=f"{NAMES[key]}, {FUSION_SYMBOL[fusion]}: {strong} alone minus {strong} inside vanilla "
                                f"within ±{STRONG_MARGIN:g}",
                      evidence=lag_evidence(study, key, fusion, "strong"), threshold=(-STRONG_MARGIN, STRONG_MARGIN),
                      direction="within", paper_effect=99.0 - pv[1], unit="points")
    main, strong_gap = lags[(MAIN, "concat")], lag_evidence(study, MAIN, "concat", "strong")
    run.record("fig1_lag_points", main.estimate)
    run.record("fig1_lag_interval", list(main.interval))
    run.record("fig1_strong_gap_points", strong_gap.estimate)
    run.record("fig1_strong_gap_interval", list(strong_gap.interval))
    run.record("fig1_lag_readout", "both sides by the paper's readout: alone, the unimodal model's own head; inside "
                                   "vanilla, the fusion-layer split of OGM-GE's evaluation (W_m z_m + b/2)")
    run.record("fig1_lag_setting", f"{NAMES[MAIN]}: {study.regime.describe(study.setups[MAIN].train.n)}, "
                                   f"{study.P.epochs_av} epochs, concatenation, {main.n} seeds x "
                                   f"{study.setups[MAIN].test.n} test rows")
    return lags


# ----------------------------------------------------------------------------- Tables II-III

def _vs_all(run: Any, study: MilesStudy, key: str, fusion: str, what: str, evidence: dict[str, Evidence],
            paper: dict[str, float], direction: str, summary: str, headline: bool) -> None:
    """MILES better than every baseline of the paper on ``what``: the binding comparison (:func:`binding`)."""
    names = list(evidence)
    i = binding([evidence[n] for n in names], direction)
    meth = names[i]
    run.claim(id=f"miles-{key}-{fusion}-{what}-vs-all", paper="MILES", where=TABLE[fusion],
              paper_value=f"S-MNIST: MILES ahead of all eight baselines; of {LABELS[meth]} by {paper[meth]:+.1f} pts",
              criterion=f"{NAMES[key]}, {FUSION_SYMBOL[fusion]}: MILES's {'fused head' if what == 'fused' else 'Δ'} "
                        f"minus each baseline's {'>' if direction == 'above' else '<'} 0 (all eight; shown: the binding "
                        f"one, {LABELS[meth]})",
              evidence=evidence[meth], threshold=0.0, direction=direction, paper_effect=paper[meth], unit="points",
              headline=headline, summary=summary if headline else None, premise=lag_id(key, fusion))


def record_comparison(run: Any, study: MilesStudy) -> None:
    """Tables II-III on every dataset and fusion: MILES against each baseline and the eq. 3 control on the
    fused head and on Δ, the weak head against vanilla and the control, the encoders against the unimodal
    models (Sec. V-B); on the main dataset also the headline forms."""
    for key in study.setups:
        par = seeds_parameter(key)
        for fusion in FUSIONS:
            pv, premise, sym = PAPER[fusion], lag_id(key, fusion), FUSION_SYMBOL[fusion]
            miles_fused, miles_delta = study.rows(key, fusion, "miles", "fusion"), study.delta_rows(key, fusion, "miles")
            fused_ev, delta_ev, fused_paper, delta_paper = {}, {}, {}, {}
            for meth in (*BALANCING_METHODS[:-1], CONTROL):
                if meth == CONTROL:  # Table V: the same best LUMA configuration at mu = 0.5 against mu = 1
                    p5, p1 = PAPER_MU[fusion][0.5], PAPER_MU[fusion][1.0]
                    fp, dp = p5[0] - p1[0], (p5[1] - p5[2]) - (p1[1] - p1[2])
                    where, shown = "Table V (LUMA: μ = 0.5 vs μ = 1)", f"LUMA: {p5[0]} vs {p1[0]}"
                    shown_d = f"LUMA Δ: {p5[1] - p5[2]:+.1f} vs {p1[1] - p1[2]:+.1f}"
                else:
                    fp, dp = pv["miles"][0] - pv[meth][0], (pv["miles"][1] - pv["miles"][2]) - (pv[meth][1] - pv[meth][2])
                    where, shown = TABLE[fusion], f"S-MNIST: {pv['miles'][0]} vs {pv[meth][0]}"
                    shown_d = f"S-MNIST Δ: {pv['miles'][1] - pv['miles'][2]:+.1f} vs {pv[meth][1] - pv[meth][2]:+.1f}"
                fused_ev[meth] = ev = row_evidence(miles_fused - study.rows(key, fusion, meth, "fusion"),
                                                   (-100.0, 100.0), par)
                run.claim(id=f"miles-{key}-{fusion}-fused-vs-{control_id(meth)}", paper="MILES", where=where,
                          paper_value=f"{shown} ({fp:+.1f} pts)",
                          criterion=f"{NAMES[key]}, {sym}: MILES's fused head minus {LABELS[meth]}'s > 0",
                          evidence=ev, threshold=0.0, direction="above", paper_effect=fp if fp > 0 else None,
                          unit="points", premise=premise)
                delta_ev[meth] = ev = row_evidence(miles_delta - study.delta_rows(key, fusion, meth), (-200.0, 200.0), par)
                run.claim(id=f"miles-{key}-{fusion}-delta-vs-{control_id(meth)}", paper="MILES", where=where,
                          paper_value=f"{shown_d} ({dp:+.1f} pts)",
                          criterion=f"{NAMES[key]}, {sym}: MILES's Δ minus {LABELS[meth]}'s < 0",
                          evidence=ev, threshold=0.0, direction="below", paper_effect=dp if dp < 0 else None,
                          unit="points", premise=premise)
                fused_paper[meth], delta_paper[meth] = fp, dp
            miles_weak = study.rows(key, fusion, "miles", "weak")
            for meth, what, where, eff in (("vanilla", "weak-lift", TABLE[fusion], pv["miles"][2] - pv["vanilla"][2]),
                                           (CONTROL, "weak-vs-eq3-control", "Table V (LUMA: μ = 0.5 vs μ = 1)",
                                            PAPER_MU[fusion][0.5][2] - PAPER_MU[fusion][1.0][2])):
                headline = key == MAIN and fusion == "concat" and meth == "vanilla"
                run.claim(id=f"miles-{key}-{fusion}-{what}", paper="MILES", where=where,
                          paper_value=f"weak head {eff:+.1f} pts" + (" (S-MNIST audio 53.9 → 84.9)" if meth == "vanilla"
                                                                      and fusion == "concat" else ""),
                          criterion=f"{NAMES[key]}, {sym}: MILES's weak encoder minus {LABELS[meth]}'s > 0",
                          evidence=row_evidence(miles_weak - study.rows(key, fusion, meth, "weak"), (-100.0, 100.0), par),
                          threshold=0.0, direction="above", paper_effect=eff, unit="points", premise=premise,
                          headline=headline,
                          summary="MILES lifts the weak modality's encoder above vanilla's" if headline else None)
            if key == MAIN:
                baselines = [m for m in BALANCING_METHODS[:-1]]
                _vs_all(run, study, key, fusion, "fused", {m: fused_ev[m] for m in baselines}, fused_paper, "above",
                        f"MILES's fused head beats every baseline ({'concatenation' if fusion == 'concat' else 'summation'})",
                        True)
                _vs_all(run, study, key, fusion, "delta", {m: delta_ev[m] for m in baselines}, delta_paper, "below",
                        "MILES leaves the smallest gap Δ between the two encoders", fusion == "concat")
            record_encoder_gaps(run, study, key, fusion)


def record_encoder_gaps(run: Any, study: MilesStudy, key: str, fusion: str) -> None:
    """Sec. V-B: each modality alone minus MILES's encoder of it (its own head), against the paper's mean gap."""
    mean, sd, largest = PAPER_GAP[fusion]
    for role in ("strong", "weak"):
        m = study.strong[key] if role == "strong" else study.weak[key]
        headline = key == MAIN and fusion == "concat" and role == "weak"
        diff = study.alone_rows(key, m) - study.rows(key, fusion, "miles", role)
        run.claim(id=f"miles-{key}-{fusion}-encoder-gap-{role}", paper="MILES", where="Sec. V-B",
                  paper_value=f"≈{mean} ± {sd} pts on average over eight encoders, at most {largest} "
                              f"({FUSION_SYMBOL[fusion]})",
                  criterion=f"{NAMES[key]}, {FUSION_SYMBOL[fusion]}: {m} alone minus MILES's {m} head < {mean} "
                            "(the paper's mean gap)",
                  evidence=row_evidence(diff, (-100.0, 100.0), seeds_parameter(key)), threshold=mean,
                  direction="below", unit="points", headline=headline,
                  summary="MILES's weak encoder comes close to the same encoder trained alone" if headline else None)


# ----------------------------------------------------------------------------- Figure 2

def record_delta_shrinks(run: Any, study: MilesStudy) -> pd.DataFrame:
    """Figure 2: MILES's δ over the last third of the epochs minus over the first third, alone and against the
    eq. 3 control's, per dataset and fusion (paired by seed); returns the table of δ early and late."""
    rows = []
    for key in study.setups:
        for fusion in FUSIONS:
            early, late = study.delta_early_late(key, fusion)
            c_early, c_late = study.delta_early_late(key, fusion, CONTROL)
            rows.append({"dataset": NAMES[key], "fusion": FUSION_SYMBOL[fusion],
                         "τ": study.kept[(key, fusion, "miles")].search.best_config["tau"],
                         "MILES δ early": early.mean(), "MILES δ late": late.mean(),
                         "Eq. 3 only δ early": c_early.mean(), "Eq. 3 only δ late": c_late.mean()})
            change, c_change = (late - early).to_numpy(), (c_late - c_early).to_numpy()
            for suffix, ev, what in (("", paired_evidence(late.to_numpy(), early.to_numpy(), parameter=seeds_parameter(key)),
                                      "MILES's δ over the last third of the epochs minus over the first < 0"),
                                     ("-vs-eq3-control", paired_evidence(change, c_change, parameter=seeds_parameter(key)),
                                      "that change of δ under MILES minus under Eq. 3 only < 0")):
                run.claim(id=f"miles-{key}-{fusion}-delta-shrinks{suffix}", paper="MILES", where="Figure 2 / Sec. VI",
                          paper_value="CREMA-D example run: δ falls to ≈ 0 by the end of training",
                          criterion=f"{NAMES[key]}, {FUSION_SYMBOL[fusion]}: {what}",
                          evidence=ev, threshold=0.0, direction="below")
    return pd.DataFrame(rows).round(3)


# ----------------------------------------------------------------------------- Tables IV-VI

def record_ablations(run: Any, study: MilesStudy) -> tuple[bool, float]:
    """Tables IV-V: the weak and strong heads from the largest to the smallest τ (μ), and the μ = 1 check;
    returns whether μ = 1 kept every encoder at the global rate on every run, and the % of test rows (every
    head, seed and fusion) on which its predictions agree with the eq. 3 control's."""
    for which, values, table, paper in (("tau", study.abl.taus, "Table IV", PAPER_TAU),
                                        ("mu", study.abl.mus, "Table V", PAPER_MU)):
        lo, hi = min(values), max(values)
        sym = "τ" if which == "tau" else "μ"
        for fusion in study.fusions_abl:
            p_lo, p_hi = paper[fusion][min(paper[fusion])], paper[fusion][max(paper[fusion])]
            for head, j, direction in (("weak", 2, "above"), ("strong", 1, "below")):
                diff = study.ablation_rows(which, lo, fusion, head) - study.ablation_rows(which, hi, fusion, head)
                run.claim(id=f"{which}-trend-{fusion}-{head}", paper="MILES", where=table,
                          paper_value=f"LUMA, {FUSION_SYMBOL[fusion]}: {head} head {p_hi[j]} at {sym}={max(paper[fusion]):g} "
                                      f"→ {p_lo[j]} at {sym}={min(paper[fusion]):g} ({p_lo[j] - p_hi[j]:+.1f} pts)",
                          criterion=f"{NAMES[MAIN]}, {FUSION_SYMBOL[fusion]}: the {head} encoder at {sym} = {lo:g} minus "
                                    f"at {sym} = {hi:g} {'>' if direction == 'above' else '<'} 0",
                          evidence=row_evidence(diff, (-100.0, 100.0), "ablation_seeds"),
                          threshold=0.0, direction=direction, paper_effect=p_lo[j] - p_hi[j], unit="points")
    mu1 = [r for f in study.fusions_abl for r in study.abl.runs[("mu", 1.0, f)]]
    kept = all((fr[f"lr/{m}"] == fr["lr/fusion"]).all() for r in mu1 for fr in [r.frame()]
               for m in study.data[MAIN].modalities)
    agree = float(np.mean([study.ablation_rows("mu", 1.0, f, h) == study.ablation_rows("eq3", None, f, h)
                           for f in study.fusions_abl for h in ("fusion", "strong", "weak")]))
    run.check(id="mu1-is-eq3", paper="MILES", where="Table V / Sec. V-C",
              paper_value="μ = 1 disables MILES (equivalent to large τ)",
              criterion="with μ = 1, Algorithm 1 keeps every encoder at the global rate α in every epoch of every seed "
                        "and fusion (so the network trains on eq. 3 alone, as the eq. 3 control)",
              passed=kept, observed=f"{'every rate kept' if kept else 'a rate changed'} on {len(mu1)} runs; test "
                                    f"predictions equal to the eq. 3 control's on {100 * agree:.1f} % of rows")
    return kept, 100 * agree


def record_table6(run: Any, study: MilesStudy) -> None:
    """Table VI: the fused head and the selected epoch with u from training against validation metrics."""
    epochs = study.setups[MAIN].epochs
    for fusion in study.fusions_abl:
        p_tr, p_va = PAPER_T6[(fusion, "train")], PAPER_T6[(fusion, "val")]
        tr, va = study.t6[(fusion, "train")], study.t6[(fusion, "val")]
        diff = (100 * np.stack([r.test_rows("fusion").numpy() for r in sorted(tr.runs, key=lambda r: r.seed)])
                - 100 * np.stack([r.test_rows("fusion").numpy() for r in sorted(va.runs, key=lambda r: r.seed)]))
        run.claim(id=f"u-train-vs-val-{fusion}", paper="MILES", where="Table VI",
                  paper_value=f"LUMA, {FUSION_SYMBOL[fusion]}: {p_tr[0]} vs {p_va[0]} ({p_tr[0] - p_va[0]:+.1f} pts)",
                  criterion=f"{NAMES[MAIN]}, {FUSION_SYMBOL[fusion]}: the fused head with u from training minus from "
                            f"validation metrics within ±{U_MARGIN:g}",
                  evidence=row_evidence(diff.astype(float), (-100.0, 100.0), "n_seeds"),
                  threshold=(-U_MARGIN, U_MARGIN), direction="within", unit="points")
        ep_tr = per_seed(tr.frame(), "best_epoch") + 1
        ep_va = per_seed(va.frame(), "best_epoch") + 1
        run.claim(id=f"u-train-vs-val-{fusion}-epoch", paper="MILES", where="Table VI",
                  paper_value=f"LUMA, {FUSION_SYMBOL[fusion]}: selected epoch {p_tr[3]} (training u) vs {p_va[3]} "
                              f"(validation u) of 60 ({100 * (p_tr[3] - p_va[3]) / 60:+.1f} % of the epochs)",
                  criterion=f"{NAMES[MAIN]}, {FUSION_SYMBOL[fusion]}: the selected epoch with u from training minus from "
                            "validation metrics > 0 (in % of the epochs)",
                  evidence=paired_evidence(100 * ep_tr / epochs, 100 * ep_va / epochs, parameter="n_seeds"),
                  threshold=0.0, direction="above", paper_effect=100 * (p_tr[3] - p_va[3]) / 60,
                  unit="% of the epochs")


# ----------------------------------------------------------------------------- summaries

def claim_families(claims: list[dict[str, Any]]) -> pd.DataFrame:
    """Outcomes per kind of claim (all datasets and fusions together)."""
    empirical = [c for c in claims if c["kind"] == "empirical"]
    rows = []
    for label, prefix, part in FAMILIES:
        sub = [c["outcome"] for c in empirical if c["id"].startswith(prefix) and part in c["id"]
               and (part == "-vs-all" or "-vs-all" not in c["id"]) and (part != "-weak-" or "-encoder-gap-" not in c["id"])]
        rows.append({"claim": label, **{o: sub.count(o) for o in OUTCOMES}})
    return pd.DataFrame(rows)


def outcome_counts(claims: list[dict[str, Any]]) -> dict[str, int]:
    """How many empirical claims have each outcome."""
    found = [c["outcome"] for c in claims if c["kind"] == "empirical"]
    return {o: found.count(o) for o in OUTCOMES}


def extension_difference(ext: pd.DataFrame) -> Evidence:
    """Beyond the paper (three views): MILES's fused accuracy minus vanilla's, paired by seed (no claim: the
    paper makes none for three modalities)."""
    return paired_evidence(per_seed(ext, "fused", method="miles"), per_seed(ext, "fused", method="vanilla"))


# ----------------------------------------------------------------------------- in words

def _claim(claims: list[dict[str, Any]], cid: str) -> dict[str, Any] | None:
    return next((c for c in claims if c["id"] == cid), None)


def _shown(c: dict[str, Any]) -> str:
    """A claim's estimate and interval, in points."""
    if c.get("estimate") is None:
        return "not measured"
    lo, hi = c["interval"]
    return f"{c['estimate']:+.1f} points [{lo:+.1f}, {hi:+.1f}]"


def comparison_in_words(claims: list[dict[str, Any]]) -> str:
    """On the main dataset, per fusion: against how many of the eight baselines MILES's fused head and its Δ
    are established better, worse, or undecided."""
    parts = []
    for fusion in FUSIONS:
        found = {what: [_claim(claims, f"miles-{MAIN}-{fusion}-{what}-vs-{m}") for m in BALANCING_METHODS[:-1]]
                 for what in ("fused", "delta")}
        better = {w: sum(c["verdict"] == "holds" for c in cs) for w, cs in found.items()}
        worse = {w: sum(c["verdict"] == "does not hold" for c in cs) for w, cs in found.items()}
        if any(c["outcome"] == "not comparable" for c in found["fused"]):
            parts.append(f"With {'concatenation' if fusion == 'concat' else 'summation'} the comparisons are not "
                         "comparable: the weak encoder does not measurably lag inside vanilla.")
            continue
        parts.append(f"With {'concatenation' if fusion == 'concat' else 'summation'}, MILES's fused head is "
                     f"established ahead of {better['fused']} of the 8 baselines and behind {worse['fused']}; its Δ "
                     f"is established smaller than {better['delta']} baselines' and larger than {worse['delta']}.")
    return " ".join(parts)


def control_in_words(claims: list[dict[str, Any]]) -> str:
    """MILES against the eq. 3 control on the main dataset, per fusion, in numbers."""
    parts = []
    for fusion in FUSIONS:
        got = {w: _claim(claims, f"miles-{MAIN}-{fusion}-{w}-eq3-control")
               for w in ("fused-vs", "weak-vs", "delta-vs")}
        if any(c is None for c in got.values()):
            continue
        parts.append(f"With {'concatenation' if fusion == 'concat' else 'summation'}, MILES minus eq. 3 only is "
                     f"{_shown(got['fused-vs'])} on the fused head ({got['fused-vs']['outcome']}), "
                     f"{_shown(got['weak-vs'])} on the weak encoder ({got['weak-vs']['outcome']}) and "
                     f"{_shown(got['delta-vs'])} on Δ ({got['delta-vs']['outcome']}).")
    return " ".join(parts)


def plain_words(claims: list[dict[str, Any]], study: MilesStudy) -> str:
    """What reproduces on the main dataset, in a few plain sentences built from the claims' outcomes."""
    lag = _claim(claims, lag_id(MAIN, "concat"))
    strong = _claim(claims, f"fig1-strong-{MAIN}-concat")
    exists = lag["outcome"] in ("reproduces", "reproduces, smaller effect", "reproduces, larger effect")
    text = [f"On AV digits, the stand-in for S-MNIST, the imbalance MILES corrects {'exists' if exists else 'is not established'}: "
            f"inside vanilla the weak encoder trails the same encoder trained alone by {_shown(lag)} (S-MNIST: 35), "
            f"the strong one by {_shown(strong)} (S-MNIST: 0.5)."]
    chosen = study.search[study.search.candidate == study.regimes.index(study.regime)]
    missed = study.regime_shortfall(chosen)
    if missed > 0:
        text.append(f"No candidate of the regime search reached S-MNIST's regime (the chosen one misses its criteria "
                    f"by {missed:.1f} points in all, on validation rows; see the search below): its imbalance is "
                    f"not the paper's.")
    heads = [c["outcome"] for c in claims if c.get("headline")]
    if heads:
        good = sum(o in ("reproduces", "reproduces, smaller effect", "reproduces, larger effect") for o in heads)
        rest = ", ".join(f"{heads.count(o)} {o}" for o in OUTCOMES[3:] if heads.count(o))
        text.append(f"Of the paper's {len(heads)} headline claims (above), {good} reproduce" + (f"; {rest}." if rest else "."))
    ctl = [_claim(claims, f"miles-{MAIN}-concat-{w}-eq3-control") for w in ("fused-vs", "weak-vs")]
    if all(c is not None for c in ctl):
        text.append(f"Against the same network and losses without its scheduler (Eq. 3 only), MILES's fused head "
                    f"differs by {_shown(ctl[0])} ({ctl[0]['outcome']}) and its weak encoder by {_shown(ctl[1])} "
                    f"({ctl[1]['outcome']}): that is what the scheduler itself adds.")
    return " ".join(text)


def caveat(study: MilesStudy) -> str:
    """The one caveat that matters most for the headline claims."""
    return (f"AV digits stands in for S-MNIST ({study.setups[MAIN].train.n:,} training pairs, ResNet-10 of width "
            f"{study.arch.resnet_width}, {study.setups[MAIN].epochs} epochs, {len(study.seeds[MAIN])} seeds, "
            f"{study.setups[MAIN].test.n} test rows); CREMA-D, LUMA and MM-IMDb are not reproduced.")
