"""The MILES chapter's plan: what ``mmrepro plan miles`` counts. ``sections(params, device)`` turns the chapter's resolved
parameters into :class:`~mmrepro.runs.cost.Section` s, one per part of the notebook that trains, counted from
the constants the chapter iterates over and from its parameters; each section's cost probe trains the
section's real model on a slice of its real data for a few epochs. A chapter that changes what it trains
changes this count too (``mmrepro plan`` is only as good as it)."""
from __future__ import annotations

from functools import lru_cache
from typing import Any, Callable

import torch

from mmrepro.runs.cost import PROBE_ROWS, Cost, Section, epoch_seconds, row_scale, stacked_units, stacks_of

Params = dict[str, Any]


MILES_FUSIONS = ("concat", "sum")
MILES_TAUS = 7  # at most: the five tau quantiles of the pilot, 0 and the paper's 0.2 (Table IV)


def _joint_cost(name: str, setup_of: Callable[[], Any], unimodal: bool = False) -> Cost:
    """One epoch of one MILES run (vanilla: the balancing methods add little) of a JointSetup."""
    def probe() -> float:
        from mmrepro.papers.miles.setup import JointSetup

        full = setup_of()
        n = min(PROBE_ROWS, full.train.n)

        def train(epochs: int) -> None:
            s = JointSetup(full.data, full.arch, epochs, full.batch_size, full.device, train_rows=n)
            obj = s.unimodal_objective(s.modalities[0]) if unimodal else s.objective("vanilla", "concat")
            obj({"lr": 1e-3}, 0)

        return epoch_seconds(train, row_scale(full.train.n, n, full.val.n))

    return Cost(name, probe)


def sections(P: Params, device: torch.device) -> list[Section]:
    from mmrepro.core.data import load_dataset
    from mmrepro.papers.miles.setup import BALANCING_METHODS, Arch, JointSetup, flattened

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
    # every run_jobs call trains its runs as stacked models (MilesObjective.many): a search is one stack of its
    # trials, its repeats another; stacking is credited by encoder kind (runs.cost.BATCHING)
    kind = {k: "mlp" for k in names}
    kind["av_digits"] = "resnet" if P["av_encoder"] == "resnet" else "mlp"
    trials = {k: P["n_trials"] if k == "av_digits" else P["n_trials_other"] for k in names}
    seeds = {k: P["n_seeds"] if k == "av_digits" else P["n_seeds_other"] for k in names}
    selection = {k: stacked_units([trials[k], seeds[k] - 1], kind[k]) for k in names}
    lag = stacked_units([P["lag_seeds"]], kind["av_digits"])
    out = [Section(f"Table I: unimodal, {names[k]}", 2 * per_selection[k], epochs[k], uni[k], units=2 * selection[k])
           for k in ("av_digits", "mfeat", "synthetic")]
    out.append(Section("Figure 1: imbalance search, vanilla (AV digits)", n_snrs * P["lag_seeds"], epochs["av_digits"],
                       joint["av_digits"], units=n_snrs * lag))
    out.append(Section("Figure 1: imbalance search, unimodal (AV digits)", n_snrs * P["lag_seeds"],
                       epochs["av_digits"], uni["av_digits"], units=n_snrs * lag))
    out += [Section(f"tau pilots: {names[k]}", P["lag_seeds"], epochs[k], joint[k],
                    units=stacked_units([P["lag_seeds"]], kind[k])) for k in ("av_digits", "mfeat", "synthetic")]
    out += [Section(f"Tables II-III: {names[k]}", len(MILES_FUSIONS) * len(BALANCING_METHODS) * per_selection[k], epochs[k],
                    joint[k], units=len(MILES_FUSIONS) * len(BALANCING_METHODS) * selection[k])
            for k in ("av_digits", "mfeat", "synthetic")]
    n_settings = MILES_TAUS + len(P["mus"].split(","))  # per fusion: every tau and mu setting in one call, then eq. 3
    out.append(Section("Tables IV-V: tau, mu (AV digits)", n_abl * (n_settings + 1) * P["ablation_seeds"],
                       epochs["av_digits"], joint["av_digits"],
                       units=n_abl * (stacked_units(stacks_of(n_settings * P["ablation_seeds"]), kind["av_digits"])
                                      + stacked_units([P["ablation_seeds"]], kind["av_digits"]))))
    out.append(Section("Table VI: u from training (AV digits)", n_abl * per_selection["av_digits"], epochs["av_digits"],
                       joint["av_digits"], units=n_abl * selection["av_digits"]))
    out.append(Section("Extension: three views", 2 * per_selection["mfeat3"], epochs["mfeat3"], joint["mfeat3"],
                       units=2 * selection["mfeat3"]))
    return out
