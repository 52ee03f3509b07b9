"""The four chapters' plans: ``plan(params, device) -> list[Section]``, one section per part of the
notebook that trains, counted from the package constants the chapter iterates over (methods,
fusions, ω settings, benchmarks and tasks) and from its parameters. A chapter that changes what it
trains changes its plan here too (``mmrepro plan`` is only as good as this count).

Each section's :class:`~mmrepro.runs.plan.Cost` probe trains the section's real model on a slice
of its real data for a few epochs; probes shared by several sections run once.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any, Callable

import torch

from mmrepro.runs.plan import PROBE_ROWS, Cost, Section, epoch_seconds, row_scale, timed

Params = dict[str, Any]


# ----------------------------------------------------------------------------- MILES

MILES_FUSIONS = ("concat", "sum")
MILES_TAUS = 7  # at most: the five tau quantiles of the pilot, 0 and the paper's 0.2 (Table IV)


def _joint_cost(name: str, setup_of: Callable[[], Any], unimodal: bool = False) -> Cost:
    """One epoch of one MILES run (vanilla: the balancing methods add little) of a JointSetup."""
    def probe() -> float:
        from mmrepro.experiments import JointSetup

        full = setup_of()
        n = min(PROBE_ROWS, full.train.n)

        def train(epochs: int) -> None:
            s = JointSetup(full.data, full.arch, epochs, full.batch_size, full.device, train_rows=n)
            obj = s.unimodal_objective(s.modalities[0]) if unimodal else s.objective("vanilla", "concat")
            obj({"lr": 1e-3}, 0)

        return epoch_seconds(train, row_scale(full.train.n, n, full.val.n))

    return Cost(name, probe)


def miles(P: Params, device: torch.device) -> list[Section]:
    from mmrepro.data import load_dataset
    from mmrepro.experiments import METHODS, Arch, JointSetup, flattened

    arch = Arch(resnet_depth=10, resnet_width=P["resnet_width"], resnet_stem="imagenet", mlp_hidden=(128, 64))
    views2 = [v.strip() for v in P["mf_views"].split(",")]
    views3 = [v.strip() for v in P["mf_views3"].split(",")]

    @lru_cache(maxsize=None)
    def setup(key: str) -> JointSetup:
        if key == "av_digits":
            d = load_dataset("av_digits", seed=P["seed"], audio_snr_db=P["audio_snr_db"])
            d = flattened(d) if P["av_encoder"] == "mlp" else d
            return JointSetup(d, arch, P["epochs_av"], P["batch_size"], device, train_rows=P["av_train_rows"] or None,
                              data_seed=P["seed"])
        if key == "mfeat3":
            return JointSetup(load_dataset("mfeat", seed=P["seed"], views=views3), arch, P["epochs_tab"],
                              P["batch_size_tab"], device)
        d = (load_dataset("mfeat", seed=P["seed"], views=views2) if key == "mfeat" else
             load_dataset("synthetic_bimodal", seed=P["seed"], n=2000, strength=(3.0, 1.5), speed=(2.0, 1.0)))
        return JointSetup(d, arch, P["epochs_tab"], P["batch_size_tab"], device)

    names = {"av_digits": "AV digits", "mfeat": "Multiple Features", "synthetic": "Synthetic", "mfeat3": "3 views"}
    epochs = {"av_digits": P["epochs_av"], "mfeat": P["epochs_tab"], "synthetic": P["epochs_tab"],
              "mfeat3": P["epochs_tab"]}
    joint = {k: _joint_cost(f"joint {k}", lambda k=k: setup(k)) for k in names}
    uni = {k: _joint_cost(f"unimodal {k}", lambda k=k: setup(k), unimodal=True) for k in names}
    # a search with the first seed, then the other seeds
    per_selection = {"av_digits": P["n_trials"] + P["n_seeds"] - 1}
    per_selection["mfeat"] = per_selection["synthetic"] = per_selection["mfeat3"] = P["n_trials_other"] + P["n_seeds_other"] - 1
    n_abl = len(P["ablation_fusions"].split(","))
    n_snrs = len(P["lag_snrs"].split(","))
    out = [Section(f"Table I: unimodal, {names[k]}", 2 * per_selection[k], epochs[k], uni[k])
           for k in ("av_digits", "mfeat", "synthetic")]
    out.append(Section("Figure 1: imbalance search, vanilla (AV digits)", n_snrs * P["lag_seeds"], epochs["av_digits"],
                       joint["av_digits"]))
    out.append(Section("Figure 1: imbalance search, unimodal (AV digits)", n_snrs * P["lag_seeds"],
                       epochs["av_digits"], uni["av_digits"]))
    out += [Section(f"tau pilots: {names[k]}", P["lag_seeds"], epochs[k], joint[k]) for k in ("av_digits", "mfeat", "synthetic")]
    out += [Section(f"Tables II-III: {names[k]}", len(MILES_FUSIONS) * len(METHODS) * per_selection[k], epochs[k],
                    joint[k]) for k in ("av_digits", "mfeat", "synthetic")]
    out.append(Section("Tables IV-V: tau, mu (AV digits)",
                       n_abl * (MILES_TAUS + len(P["mus"].split(",")) + 1) * P["ablation_seeds"], epochs["av_digits"],
                       joint["av_digits"]))
    out.append(Section("Table VI: u from training (AV digits)", n_abl * per_selection["av_digits"], epochs["av_digits"],
                       joint["av_digits"]))
    out.append(Section("Extension: three views", 2 * per_selection["mfeat3"], epochs["mfeat3"], joint["mfeat3"]))
    return out


# ----------------------------------------------------------------------------- MIND

def mind(P: Params, device: torch.device) -> list[Section]:
    from mmrepro.mind.experiments import ABLATION_METHODS, METHODS, OMEGA_SETTINGS, UNIMODAL
    from mmrepro.mind.problems import arch_name, load_problem
    from mmrepro.trainer import fit

    problems = {
        "av_digits": dict(paired_fraction=P["paired_fraction"], audio_snr_db=P["audio_snr_db"],
                          teacher_width=P["teacher_width"], student_width=P["width"]),
        "pbc_death": dict(paired_fraction=P["pbc_paired_fraction"]),
        "pbc_findings": dict(paired_fraction=P["pbc_paired_fraction"])}
    out = []
    for name, options in problems.items():
        prob = load_problem(name, seed=P["seed"], **options)
        av = name == "av_digits"
        t_epochs, s_epochs = (P["teacher_epochs"], P["epochs"]) if av else (P["pbc_teacher_epochs"], P["pbc_epochs"])
        lrs = P["teacher_lrs"] if av else P["pbc_teacher_lrs"]
        batch = 64 if av else 16

        def fit_cost(label: str, build: Callable[[], Any], rows: Any, val: Any, prob=prob, batch=batch) -> Cost:
            def probe() -> float:
                sub = rows[:PROBE_ROWS]

                def train(epochs: int) -> None:
                    fit(build(), prob.rows(sub), prob.rows(val), task=prob.task, epochs=epochs, lr=1e-3,
                        batch_size=batch, select_metric=prob.select_metric, metrics=prob.report_metrics, seed=0,
                        device=device, progress=False)

                return epoch_seconds(train, row_scale(len(rows), len(sub), len(val)))

            return Cost(label, probe)

        for m in prob.modalities:
            for spec in prob.teacher_specs[m]:
                out.append(Section(f"{name}: teacher {m} {arch_name(spec)}", len(lrs), t_epochs,
                                   fit_cost(f"{name} teacher {m} {spec}", lambda m=m, spec=spec, prob=prob:
                                            prob.teacher(m, spec), prob.unimodal[m]["train"],
                                            prob.unimodal[m]["val"])))
        student = fit_cost(f"{name} student", lambda prob=prob: prob.student(), prob.paired["train"],
                           prob.paired["val"])
        per_selection = P["n_trials"] + P["seeds"]  # the search, then the selection repeated over the seeds
        searched = [m for m in METHODS if m != "ume"]
        out.append(Section(f"{name}: baselines ({len(searched)} methods)", len(searched) * per_selection, s_epochs,
                           student))
        out.append(Section(f"{name}: same-size unimodal models", len(UNIMODAL) * per_selection, s_epochs,
                           fit_cost(f"{name} unimodal", lambda prob=prob: prob.teacher(
                               prob.modalities[0], prob.student_specs[prob.modalities[0]]),
                               prob.paired["train"], prob.paired["val"])))
        if name in P["ablations"]:
            rows = [m for m in ABLATION_METHODS if m not in METHODS]
            out.append(Section(f"{name}: ablation I (rows 3-5)", len(rows) * per_selection, s_epochs, student))
            out.append(Section(f"{name}: ablation II (omega)", len(OMEGA_SETTINGS) * P["seeds"], s_epochs, student))
    return out


# ----------------------------------------------------------------------------- MultiModN

def multimodn(P: Params, device: torch.device) -> list[Section]:
    import dataclasses

    from mmrepro.multimodn import experiments as X

    reps = len(X.runs(P["n_folds"], P["n_inits"], P["seed"]))
    bench = dict(X.BENCHMARKS)
    bench["nyc_weather"] = dataclasses.replace(bench["nyc_weather"], time_every=P["weather_every"])
    epochs = {"MultiModN": P["epochs"], "P-Fusion": P["epochs"], "Transformer": P["transformer_epochs"]}

    def cost(b: X.Benchmark, kind: str) -> Cost:
        """One epoch of a single-task model (a multi-task model costs about as much: its extra
        decoders are small next to the encoders)."""
        def probe() -> float:
            obj = X.Repetitions(b, {"d": X.load_benchmark(b, X.runs(P["n_folds"], 1, P["seed"])[0])}, device)

            def train(n_epochs: int) -> None:
                obj({"model": kind, "tasks": [b.tasks[0]], "select": None, "data": "d", "epochs": n_epochs,
                     "setting": {}}, 0)

            return epoch_seconds(train)

        return Cost(f"{b.name} {kind}", probe)

    out = []
    for b in bench.values():
        multi = 1 if len(b.tasks) > 1 else 0
        variants = 1 if b.name == "titanic" else 0  # the notebook's run without the state-change penalty
        for kind in X.KINDS:
            n = len(b.tasks) + (multi if kind != "P-Fusion" else 0) + (variants if kind == "MultiModN" else 0)
            out.append(Section(f"Experiments 1-2, E.4: {b.name}, {kind}", reps * n, epochs[kind], cost(b, kind)))
    settings = 1 + 2 * (len(P["mnar_rates"]) - 1)  # rate 0 once; MNAR and MAR for every other rate
    for kind in ("MultiModN", "P-Fusion"):
        out.append(Section(f"Experiment 4: pbc missingness, {kind}", reps * settings, P["epochs"],
                           cost(bench["pbc"], kind)))
    centre = bench["pbcseq"]
    sweep = 1 + sum(v != getattr(centre, p) for p, values in P["sensitivity_grid"].items() for v in values)
    out.append(Section("Figure 9: pbcseq sensitivity, MultiModN",
                       len(X.runs(P["n_folds"], P["sensitivity_inits"], P["seed"])) * sweep, P["epochs"],
                       cost(centre, "MultiModN")))
    return out


# ----------------------------------------------------------------------------- MFH

def mfh(P: Params, device: torch.device) -> list[Section]:
    from mmrepro.data import load_dataset, mvd
    from mmrepro.mfh import case_study as cs
    from mmrepro.mfh.experiments import distill
    from mmrepro.mfh.ranking import align_unimodal
    from mmrepro.mfh import realdata
    from mmrepro.mfh.theorem import theorem1_trials

    seeds = list(range(P["seed"], P["seed"] + P["n_seeds"]))
    probe_epochs = 20

    def distilled(label: str, batch_of: Callable[[], Any], teachers: int) -> Section:
        batch = batch_of()
        masks = (None if teachers == 1 else
                 {f"t{i}": torch.ones(batch.n_runs, batch.train.xa.shape[2], dtype=torch.bool) for i in range(teachers)})
        split = "train" if batch.student is None else "student"
        probe = Cost(label, lambda: timed(lambda: distill(batch, masks, epochs=probe_epochs, student_split=split))
                     / probe_epochs)
        return Section(label, batch.n_runs * (2 * teachers + 1), P["epochs"], probe, units=1)

    t2 = lambda: mvd.modify_gamma(seeds, specific=(15, 10, 10), shared=(5, 10, 30))  # noqa: E731
    out = [distilled("Figure 2: increasing gamma", lambda: mvd.increase_gamma(seeds), 1),
           distilled("Figure 3: increasing alpha", lambda: mvd.increase_alpha(seeds), 1),
           distilled("Table 2: regular and modality-general teachers", t2, 2),
           distilled("Table 2: the other gamma = 0.25 split", lambda: mvd.modify_gamma(seeds, specific=(30,),
                                                                                          shared=(10,)), 2)]
    th_steps = 50
    out.append(Section("Theorem 1: gradient descent on the distillation risk", 6 * len(seeds), P["theorem_steps"],
                       Cost("theorem", lambda: timed(lambda: theorem1_trials(seeds, n=200, steps=th_steps)) / th_steps),
                       units=1))

    def align_probe() -> float:
        b = t2()
        keys = torch.stack([b.seed, b.setting], 1).numpy()
        return timed(lambda: align_unimodal(b.train.xa, b.train.xb, b.train.y, keys, epochs=probe_epochs,
                                            dtype=torch.float64)) / probe_epochs

    n_t2 = t2().n_runs
    out.append(Section("Algorithm 1: joint unimodal training (Eq. 28)", 2 * n_t2, P["align_epochs"],
                       Cost("align", align_probe), units=1))
    out.append(distilled("Algorithm 1: top-, random-, bottom-k teachers", t2, 3))
    cb = lambda: mvd.with_copies(mvd.modify_gamma(seeds, specific=(15,), shared=(5,)))[0]  # noqa: E731
    out.append(Section("Algorithm 1: correlated copies (joint training)", cb().n_runs, P["align_epochs"],
                       Cost("align", align_probe), units=1))
    r_seeds = list(range(P["seed"], P["seed"] + P["real_seeds"]))

    @lru_cache(maxsize=None)
    def views():
        return realdata.av_speaker(r_seeds, n_components=P["real_components"])

    def real_probe() -> float:
        v = views()
        soft = torch.full((1, len(r_seeds), v.x["train"]["b"].shape[1], v.n_classes), 1.0 / v.n_classes)
        return timed(lambda: realdata.distil(v.x["train"]["b"], v.y["train"], soft, r_seeds, 0, rho=0.0,
                                             epochs=probe_epochs)) / probe_epochs

    def real_align_probe() -> float:
        v = views()
        return timed(lambda: align_unimodal(v.x["train"]["a"], v.x["train"]["b"], v.y["train"],
                                            [[s, 0] for s in r_seeds], v.n_classes, epochs=probe_epochs)) / probe_epochs

    real = Cost("real students", real_probe)
    # students per seed: candidates 2 x 5 probes, known parts 7, ranking sweep 1 + 3 x 3 + 4 + 2,
    # permutation sweep len(M grid), Tables 3 and 7: 3 + 4 teachers and students
    students = 10 + 7 + 16 + 5 + 7
    out += [Section("Real data: Algorithm 1 joint training (two sweeps)", 2, P["align_epochs"],
                    Cost("real align", real_align_probe), units=2),
            Section("Real data: teachers and students (AV digits, 20 classes)", students * len(r_seeds),
                    P["real_epochs"], real,
                    units=students)]

    def case_cost(label: str, build: Callable[[], torch.nn.Module], inputs: tuple[str, ...]) -> Cost:
        def probe() -> float:
            av = load_dataset("av_digits", seed=P["seed"], image_pca_removal=0.75, audio_snr_db=0.0)
            pool = P["av_downsample"]
            x = {m: (torch.nn.functional.avg_pool2d(av.x[m], pool) if pool > 1 else av.x[m]).to(device)
                 for m in ("image", "audio")}
            tr = av.splits["train"][:P["av_train_rows"] or None]
            sub = tr[:PROBE_ROWS]
            y = av.y["digit"].to(device)

            def train(epochs: int) -> None:
                cs.train_classifier(build().to(device), tuple(x[m][sub] for m in inputs), y[sub], epochs=epochs,
                                 gen=torch.Generator().manual_seed(0))

            return epoch_seconds(train, len(tr) / len(sub))

        return Cost(label, probe)

    audio_t = case_cost("case audio teacher", cs.audio_teacher, ("audio",))
    mm_t = case_cost("case image+audio teacher", cs.fusion_teacher, ("image", "audio"))
    student = case_cost("case student", cs.student, ("audio",))
    out += [Section("Case study: audio teachers", P["av_seeds"], P["av_teacher_epochs"], audio_t),
            Section("Case study: image+audio teachers", P["av_seeds"], P["av_teacher_epochs"], mm_t),
            Section("Case study: students (No-KD; UM-KD, CM-KD at rho 0 and 0.5)", 5 * P["av_seeds"], P["av_epochs"],
                    student)]
    return out


PLANS: dict[str, Callable[[Params, torch.device], list[Section]]] = {
    "mfh": mfh, "mind": mind, "miles": miles, "multimodn": multimodn}
