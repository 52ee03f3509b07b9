"""The MILES chapter's plan: what ``mmrepro plan miles`` counts. ``sections(params, device)`` turns the
chapter's resolved parameters into :class:`~mmrepro.runs.cost.Section` s, one per part of the notebook that
trains (:class:`~mmrepro.papers.miles.study.MilesStudy`), counted from the constants the chapter iterates over
and from its parameters; each section's cost probe trains the section's real model on a slice of its real
data for a few epochs. The main dataset is counted as the first candidate of ``regimes`` (the one the
regime search is expected to choose; a later choice costs what its own encoders cost). A chapter that
changes what it trains changes this count too (``mmrepro plan`` is only as good as it)."""
from __future__ import annotations

from functools import lru_cache
from typing import Any, Callable

import torch

from mmrepro.runs.cost import PROBE_ROWS, Cost, Section, epoch_and_run_seconds, row_scale, stacked_units, stacks_of

Params = dict[str, Any]

MILES_FUSIONS = ("concat", "sum")
MILES_TAUS = 5  # at most: the lowest, middle and highest of the tau range, 0 and the paper's 0.2 (Table IV)


def _joint_cost(name: str, setup_of: Callable[[], Any], unimodal: bool = False) -> Cost:
    """One epoch of one MILES run (vanilla: the balancing methods add little) of a JointSetup, and what the run
    pays once (:func:`~mmrepro.runs.cost.epoch_and_run_seconds`: its evaluation on the whole validation and test
    splits and its refitted read-outs, which scaling the probe's rows would otherwise multiply)."""
    def probe() -> tuple[float, float]:
        from mmrepro.papers.miles.setup import JointSetup

        full = setup_of()
        n = min(PROBE_ROWS, full.train.n)

        def train(epochs: int) -> None:
            s = JointSetup(full.data, full.arch, epochs, full.batch_size, full.device, train_rows=n)
            obj = s.unimodal_objective(s.modalities[0]) if unimodal else s.objective("vanilla", "concat")
            obj({"lr": 1e-3}, 0)

        return epoch_and_run_seconds(train, row_scale(full.train.n, n, full.val.n))

    return Cost(name, probe)


def sections(P: Params, device: torch.device) -> list[Section]:
    from mmrepro.papers.miles.setup import METHODS
    from mmrepro.papers.miles.study import MilesStudy

    study = MilesStudy(P, device)
    regimes = study.regimes

    @lru_cache(maxsize=None)
    def setup(key: str):
        if key.startswith("regime"):
            return study.av_setup(regimes[int(key[len("regime"):])])
        if key == "mfeat3":
            from mmrepro.core.data import load_dataset
            from mmrepro.papers.miles.setup import JointSetup

            return JointSetup(load_dataset("mfeat", seed=P["seed"], views=study.views3), study.arch, P["epochs_tab"],
                              P["batch_size_tab"], device)
        return study.setups[key]

    main = "regime0"
    names = {main: "AV digits", "mfeat": "Multiple Features", "synthetic": "Synthetic", "mfeat3": "3 views"}
    epochs = {main: P["epochs_av"], "mfeat": P["epochs_tab"], "synthetic": P["epochs_tab"], "mfeat3": P["epochs_tab"]}
    joint = {k: _joint_cost(f"joint {k}", lambda k=k: setup(k)) for k in names}
    uni = {k: _joint_cost(f"unimodal {k}", lambda k=k: setup(k), unimodal=True) for k in names}
    # a search with the first seed, then the other seeds
    other = P["n_trials_other"] + P["n_seeds_other"] - 1
    per_selection = {main: P["n_trials"] + P["n_seeds"] - 1, "mfeat": other, "synthetic": other, "mfeat3": other}
    n_abl = len(P["ablation_fusions"].split(","))
    # every run_jobs call trains its runs as stacked models (MilesObjective.many): a search is one stack of its
    # trials, its repeats another; stacking is credited by encoder kind (runs.cost.BATCHING)
    kind = {k: "mlp" for k in names}
    kind[main] = "resnet" if regimes[0].encoder == "resnet" else "mlp"
    trials = {k: P["n_trials"] if k == main else P["n_trials_other"] for k in names}
    seeds = {k: P["n_seeds"] if k == main else P["n_seeds_other"] for k in names}
    selection = {k: stacked_units([trials[k], seeds[k] - 1], kind[k]) for k in names}
    out = []
    for i, r in enumerate(regimes):
        k = f"regime{i}"
        costs = (joint[k], uni[k]) if k == main else (
            _joint_cost(f"joint {k}", lambda k=k: setup(k)), _joint_cost(f"unimodal {k}", lambda k=k: setup(k), True))
        lag = stacked_units([P["lag_seeds"]], "resnet" if r.encoder == "resnet" else "mlp")
        out.append(Section(f"Regime search {i + 1} ({r.encoder}), vanilla", P["lag_seeds"], P["epochs_av"], costs[0],
                           units=lag))
        out.append(Section(f"Regime search {i + 1} ({r.encoder}), alone", 2 * P["lag_seeds"], P["epochs_av"], costs[1],
                           units=2 * lag))
    out += [Section(f"Table I: unimodal, {names[k]}", 2 * per_selection[k], epochs[k], uni[k], units=2 * selection[k])
            for k in (main, "mfeat", "synthetic")]
    out += [Section(f"Tables II-III: {names[k]}", len(MILES_FUSIONS) * len(METHODS) * per_selection[k], epochs[k],
                    joint[k], units=len(MILES_FUSIONS) * len(METHODS) * selection[k]) for k in (main, "mfeat", "synthetic")]
    n_mus = len(str(P["mus"]).split(","))
    n_settings = MILES_TAUS + n_mus  # per fusion: every tau and mu setting in one call, then eq. 3
    out.append(Section("Tables IV-V: tau, mu and eq. 3 (AV digits)", n_abl * (n_settings + 1) * P["ablation_seeds"],
                       epochs[main], joint[main],
                       units=n_abl * (stacked_units(stacks_of(n_settings * P["ablation_seeds"]), kind[main])
                                      + stacked_units([P["ablation_seeds"]], kind[main]))))
    out.append(Section("Table VI: u from training (AV digits)", n_abl * per_selection[main], epochs[main], joint[main],
                       units=n_abl * selection[main]))
    out.append(Section("Extension: three views", 2 * per_selection["mfeat3"], epochs["mfeat3"], joint["mfeat3"],
                       units=2 * selection["mfeat3"]))
    return out
