"""The MILES paper's numbers and its findings as claims of the chapter (recorded through the notebook's run,
:mod:`mmrepro.publish.claims` decides the outcomes from the intervals): the imbalance of Figure 1, MILES
against every baseline on the fused head and on Δ (Tables II-III), the weak head's lift, the encoders near
their unimodal models (Sec. V-B), δ shrinking (Figure 2), the τ and μ trends (Tables IV-V), the μ = 1
identity (Sec. V-C) and u from training metrics (Table VI)."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mmrepro.core.stats import Evidence, paired_evidence
from mmrepro.papers.miles.setup import BALANCING_METHODS, LABELS
from mmrepro.papers.miles.study import FUSION_SYMBOL, FUSIONS, MAIN, NAMES, PAPER_MUS, MilesStudy, per_seed

# S-MNIST rows of Tables II (concat) and III (sum): fused, image (strong), audio (weak)
PAPER = {
    "concat": {"vanilla": (98.4, 98.5, 53.9), "mslr-k": (99.0, 98.8, 58.9), "mslr-s": (99.1, 98.6, 66.1),
               "mslr-d": (99.0, 98.8, 76.9), "ogm": (98.9, 98.8, 64.5), "ogm-ge": (99.0, 97.3, 73.0),
               "mses": (98.4, 98.3, 77.8), "gblend": (98.8, 98.1, 75.9), "miles": (99.8, 98.8, 84.9)},
    "sum": {"vanilla": (98.3, 98.0, 55.8), "mslr-k": (98.7, 98.5, 68.2), "mslr-s": (98.8, 98.8, 58.1),
            "mslr-d": (99.1, 98.7, 73.5), "ogm": (98.6, 97.8, 61.8), "ogm-ge": (99.0, 96.9, 79.1),
            "mses": (98.9, 98.6, 81.4), "gblend": (99.2, 98.8, 80.1), "miles": (99.8, 98.8, 85.0)}}
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
TABLE = {"concat": "Table II", "sum": "Table III"}
FAMILIES = [("fig1-lag-", "", "the imbalance exists (Figure 1 lag > 10 points)"),
            ("miles-", "-fused-vs-", "MILES's fused head beats a baseline"),
            ("miles-", "-delta-vs-", "MILES's Δ is smaller than a baseline's"),
            ("miles-", "-weak-lift", "MILES lifts the weak encoder over vanilla"),
            ("miles-", "-encoder-gap-", "MILES's encoders near unimodal models (Sec. V-B)"),
            ("miles-", "-delta-shrinks", "δ shrinks during training (Figure 2)"),
            ("tau-", "", "τ trend (Table IV)"), ("mu-", "", "μ trend (Table V)"), ("u-", "", "u from training (Table VI)")]
VERDICTS = ("holds", "does not hold", "inconclusive", "not comparable at this scale")


def lags(study: MilesStudy) -> dict[tuple[str, str], Evidence]:
    """Figure 1's lag per dataset and fusion: the weak modality alone (Table I, per seed) minus its probe
    inside vanilla (per seed), paired by seed."""
    out = {}
    for key in study.setups:
        alone = per_seed(study.uni, "test", dataset=key, modality=study.weak[key])
        for fusion in FUSIONS:
            inside = per_seed(study.main, "weak", dataset=key, fusion=fusion, method="vanilla")
            out[(key, fusion)] = paired_evidence(alone, inside, bounds=(0, 100))
    return out


def lag_ok(ev: Evidence) -> bool:
    """Whether a lag is large enough to score the claims that presuppose the imbalance."""
    return ev.estimate >= 10 and ev.interval[0] > 0


def record_lag(run: Any, study: MilesStudy, lag: dict[tuple[str, str], Evidence]) -> None:
    """Figure 1's lag as values and as one claim per dataset and fusion."""
    P, lag_main = study.P, lag[(MAIN, "concat")]
    run.record("fig1_lag_points", lag_main.estimate)
    run.record("fig1_lag_interval", list(lag_main.interval))
    run.record("fig1_lag_setting", f"AV digits, {P.av_encoder} encoders, audio SNR {P.audio_snr_db:g} dB, "
                                   f"{P.epochs_av} epochs, concatenation, {lag_main.n} seeds")
    for (key, fusion), ev in lag.items():
        run.claim(id=f"fig1-lag-{key}-{fusion}", paper="MILES", where="Figure 1; Table I vs Table II/III",
                  paper_value=f"S-MNIST audio: 88.9 alone vs {PAPER[fusion]['vanilla'][2]} in vanilla "
                              f"({88.9 - PAPER[fusion]['vanilla'][2]:+.1f} pts)",
                  criterion=f"{NAMES[key]}, {FUSION_SYMBOL[fusion]}: the weak modality alone minus its probe inside the "
                            "vanilla model (test accuracy at each one's selected checkpoint, paired by seed) exceeds "
                            "10 points — the imbalance MILES corrects exists here",
                  evidence=ev, threshold=10.0, direction="above", unit="points")


def no_lag_reason(lag: dict[tuple[str, str], Evidence], key: str, fusion: str) -> str | None:
    """The reason a claim about correcting the imbalance is not scored, or None when the imbalance exists."""
    ev = lag[(key, fusion)]
    if lag_ok(ev):
        return None
    return (f"no imbalance to correct: the weak encoder inside vanilla lags the same encoder alone by "
            f"{ev.estimate:.1f} [{ev.interval[0]:.1f}, {ev.interval[1]:.1f}] points (paper: 35; needed: ≥ 10)")


def record_comparison(run: Any, study: MilesStudy, lag: dict[tuple[str, str], Evidence]) -> None:
    """Tables II-III: MILES against each baseline on the fused head and on Δ, the weak probe's lift over
    vanilla and the encoder gaps of Sec. V-B, per dataset and fusion."""
    for key in study.setups:
        for fusion in FUSIONS:
            pv = PAPER[fusion]
            rows = study.main[(study.main.dataset == key) & (study.main.fusion == fusion)]
            miles = {c: per_seed(rows, c, method="miles") for c in ("fused", "weak", "strong", "delta")}
            reason = no_lag_reason(lag, key, fusion)
            for meth in BALANCING_METHODS[:-1]:
                other = {c: per_seed(rows, c, method=meth) for c in ("fused", "delta")}
                run.claim(id=f"miles-{key}-{fusion}-fused-vs-{meth}", paper="MILES", where=TABLE[fusion],
                          paper_value=f"S-MNIST: {pv['miles'][0]} vs {pv[meth][0]} ({pv['miles'][0] - pv[meth][0]:+.1f} pts)",
                          criterion=f"{NAMES[key]}, {FUSION_SYMBOL[fusion]}: MILES's fused test accuracy minus "
                                    f"{LABELS[meth]}'s, paired by seed, is above 0",
                          evidence=paired_evidence(miles["fused"], other["fused"], bounds=(0, 100)),
                          threshold=0.0, direction="above", unit="points", reason=reason)
                pd_m, pd_o = pv["miles"][1] - pv["miles"][2], pv[meth][1] - pv[meth][2]
                run.claim(id=f"miles-{key}-{fusion}-delta-vs-{meth}", paper="MILES", where=TABLE[fusion],
                          paper_value=f"S-MNIST Δ: {pd_m:+.1f} vs {pd_o:+.1f} ({pd_m - pd_o:+.1f} pts)",
                          criterion=f"{NAMES[key]}, {FUSION_SYMBOL[fusion]}: MILES's Δ (strong − weak probe) minus "
                                    f"{LABELS[meth]}'s, paired by seed, is below 0",
                          evidence=paired_evidence(miles["delta"], other["delta"], bounds=(-100, 100)),
                          threshold=0.0, direction="below", unit="points", reason=reason)
            run.claim(id=f"miles-{key}-{fusion}-weak-lift", paper="MILES", where=TABLE[fusion],
                      paper_value=f"S-MNIST audio head {pv['vanilla'][2]} → {pv['miles'][2]} "
                                  f"({pv['miles'][2] - pv['vanilla'][2]:+.1f} pts)",
                      criterion=f"{NAMES[key]}, {FUSION_SYMBOL[fusion]}: MILES's weak-probe test accuracy minus "
                                "vanilla's, paired by seed, is above 0",
                      evidence=paired_evidence(miles["weak"], per_seed(rows, "weak", method="vanilla"), bounds=(0, 100)),
                      threshold=0.0, direction="above", unit="points", reason=reason)
            largest = 4.0 if fusion == "concat" else 5.8  # the paper's largest encoder gap (Sec. V-B)
            for role in ("strong", "weak"):
                m = study.strong[key] if role == "strong" else study.weak[key]
                run.claim(id=f"miles-{key}-{fusion}-encoder-gap-{role}", paper="MILES", where="Sec. V-B",
                          paper_value=("≈1.8 ± 1.6 % on average, at most 4.0 % (⊕)" if fusion == "concat"
                                       else "≈2.0 ± 2.0 % on average, at most 5.8 % (+)"),
                          criterion=f"{NAMES[key]}, {FUSION_SYMBOL[fusion]}: {m} alone (Table I) minus MILES's {m} probe, "
                                    f"paired by seed, lies below the paper's largest gap ({largest} points)",
                          evidence=paired_evidence(per_seed(study.uni, "test", dataset=key, modality=m), miles[role],
                                                   bounds=(0, 100)),
                          threshold=largest, direction="below", unit="points")


def eq3_lag(study: MilesStudy) -> Evidence:
    """The weak encoder's lag when eq. 3's unimodal losses train it (the μ = 1 runs of the ablation, first
    ablation fusion): the weak modality alone minus eq. 3's weak probe, paired by seed."""
    abl, seeds = study.abl.rows, study.abl.seeds
    eq3_first = abl[(abl.study == "eq3") & (abl.fusion == study.fusions_abl[0])]
    uni = study.uni
    alone_weak = uni[(uni.dataset == MAIN) & (uni.modality == study.weak[MAIN]) & uni.seed.isin(seeds)]
    return paired_evidence(per_seed(alone_weak, "test"), per_seed(eq3_first, "weak"), bounds=(0, 100))


def record_ablations(run: Any, study: MilesStudy) -> bool:
    """Tables IV-V: the trends of the weak and strong probes from the largest to the smallest τ (μ), and the
    μ = 1 check; returns whether μ = 1 equalled eq. 3 training on every run."""
    abl = study.abl.rows
    for which, values, table, paper in (("tau", study.abl.taus, "Table IV", PAPER_TAU),
                                        ("mu", study.abl.mus, "Table V", PAPER_MU)):
        lo, hi = min(values), max(values)
        sym = "τ" if which == "tau" else "μ"
        for fusion in study.fusions_abl:
            rows = abl[(abl.study == which) & (abl.fusion == fusion)]
            p_lo, p_hi = paper[fusion][min(paper[fusion])], paper[fusion][max(paper[fusion])]
            for head, j, direction, word in (("weak", 2, "above", "raises"), ("strong", 1, "below", "lowers")):
                run.claim(id=f"{which}-trend-{fusion}-{head}", paper="MILES", where=table,
                          paper_value=f"LUMA, {FUSION_SYMBOL[fusion]}: {head} head {p_hi[j]} at {sym}={max(paper[fusion]):g} → "
                                      f"{p_lo[j]} at {sym}={min(paper[fusion]):g} ({p_lo[j] - p_hi[j]:+.1f} pts)",
                          criterion=f"{NAMES[MAIN]}, {FUSION_SYMBOL[fusion]}: going from {sym}={hi:g} to {sym}={lo:g} "
                                    f"{word} the {head} probe's test accuracy (paired by seed; 0 is no change)",
                          evidence=paired_evidence(per_seed(rows, head, value=lo), per_seed(rows, head, value=hi),
                                                   bounds=(0, 100)),
                          threshold=0.0, direction=direction, unit="points")
    same = True
    for fusion in study.fusions_abl:
        mu1 = abl[(abl.study == "mu") & (abl.value == 1.0) & (abl.fusion == fusion)].sort_values("seed")
        eq3r = abl[(abl.study == "eq3") & (abl.fusion == fusion)].sort_values("seed")
        same &= bool(np.array_equal(mu1[["fused", "strong", "weak"]].to_numpy(), eq3r[["fused", "strong", "weak"]].to_numpy()))
    n_mu1 = len(study.fusions_abl) * len(study.abl.seeds)
    run.check(id="mu1-is-vanilla", paper="MILES", where="Table V / Sec. V-C",
              paper_value="μ = 1 disables MILES (equivalent to large τ)",
              criterion="with μ = 1, every head's test accuracy equals that of the same network trained on eq. 3 without "
                        "the scheduler (vanilla plus the unimodal losses) at the same learning rate and seed, for every "
                        "seed and fusion",
              passed=same, observed=f"{'identical' if same else 'different'} on {n_mu1} runs")
    return same


def record_table6(run: Any, study: MilesStudy) -> None:
    """Table VI: the fused head and the selected epoch with u from training against validation metrics."""
    for fusion in study.fusions_abl:
        p_tr, p_va = PAPER_T6[(fusion, "train")], PAPER_T6[(fusion, "val")]
        tr, va = study.t6[(fusion, "train")], study.t6[(fusion, "val")]
        run.claim(id=f"u-train-vs-val-{fusion}", paper="MILES", where="Table VI",
                  paper_value=f"LUMA, {FUSION_SYMBOL[fusion]}: {p_tr[0]} vs {p_va[0]} ({p_tr[0] - p_va[0]:+.1f} pts)",
                  criterion=f"{NAMES[MAIN]}, {FUSION_SYMBOL[fusion]}: fused test accuracy with u from training metrics "
                            "minus with u from validation metrics, paired by seed, lies within ±1 point (margin)",
                  evidence=paired_evidence(100 * tr["fusion"], 100 * va["fusion"], bounds=(0, 100)),
                  threshold=(-1.0, 1.0), direction="within", unit="points")
        run.claim(id=f"u-train-vs-val-{fusion}-epoch", paper="MILES", where="Table VI",
                  paper_value=f"LUMA, {FUSION_SYMBOL[fusion]}: selected epoch {p_tr[3]} (training u) vs {p_va[3]} "
                              f"(validation u) of 60",
                  criterion=f"{NAMES[MAIN]}, {FUSION_SYMBOL[fusion]}: the selected epoch with u from training metrics "
                            "minus with u from validation metrics, paired by seed, is above 0 (validation u selects "
                            "its best model earlier)",
                  evidence=paired_evidence(tr["best_epoch"], va["best_epoch"]),
                  threshold=0.0, direction="above", unit="epochs")


def record_delta_shrinks(run: Any, study: MilesStudy) -> pd.DataFrame:
    """Figure 2: MILES's δ over the last third of the epochs against the first third, per dataset and fusion;
    returns the table of δ early and late."""
    rows = []
    for key in study.setups:
        for fusion in FUSIONS:
            early, late = study.delta_early_late(key, fusion)
            rows.append({"dataset": NAMES[key], "fusion": FUSION_SYMBOL[fusion],
                         "τ": study.kept[(key, fusion, "miles")].search.best_config["tau"],
                         "δ early": early.mean(), "δ late": late.mean()})
            run.claim(id=f"miles-{key}-{fusion}-delta-shrinks", paper="MILES", where="Figure 2 / Sec. VI",
                      paper_value="CREMA-D example run: δ falls to ≈ 0 by the end of training",
                      criterion=f"{NAMES[key]}, {FUSION_SYMBOL[fusion]}: MILES's mean δ over the last third of the epochs "
                                "minus over the first third (after epoch 1), paired by seed, is below 0",
                      evidence=paired_evidence(late.to_numpy(), early.to_numpy()),
                      threshold=0.0, direction="below", unit="")
    return pd.DataFrame(rows).round(3)


def claim_families(claims: list[dict[str, Any]]) -> pd.DataFrame:
    """Verdicts per kind of claim (all datasets and fusions together)."""
    empirical = pd.DataFrame([c for c in claims if c["kind"] == "empirical"])
    rows = []
    for prefix, part, label in FAMILIES:
        sub = empirical[empirical["id"].str.startswith(prefix) & empirical["id"].str.contains(part, regex=False)]
        rows.append({"claim": label, **{v: int((sub["verdict"] == v).sum()) for v in VERDICTS}})
    return pd.DataFrame(rows)


def verdict_counts(claims: list[dict[str, Any]]) -> dict[str, int]:
    """How many empirical claims have each verdict."""
    counts = pd.Series([c["verdict"] for c in claims if c["kind"] == "empirical"]).value_counts()
    return {v: int(counts.get(v, 0)) for v in VERDICTS}


def extension_difference(ext: pd.DataFrame) -> Evidence:
    """Beyond the paper (three views): MILES's fused accuracy minus vanilla's, paired by seed (no claim: the
    paper makes none for three modalities)."""
    return paired_evidence(per_seed(ext, "fused", method="miles"), per_seed(ext, "fused", method="vanilla"))
