"""The MFH chapter's plan: what ``mmrepro plan mfh`` counts. ``sections(params, device)`` turns the chapter's resolved
parameters into :class:`~mmrepro.runs.cost.Section` s, one per part of the notebook that trains, counted from
the constants the chapter iterates over and from its parameters; each section's cost probe trains the
section's real model on a slice of its real data for a few epochs. A chapter that changes what it trains
changes this count too (``mmrepro plan`` is only as good as it)."""
from __future__ import annotations

from functools import lru_cache
from typing import Any, Callable

import torch

from mmrepro.runs.cost import PROBE_ROWS, Cost, Section, epoch_seconds, timed

Params = dict[str, Any]


def sections(P: Params, device: torch.device) -> list[Section]:
    from mmrepro.core.data import load_dataset
    from mmrepro.papers.mfh import case_study as cs
    from mmrepro.papers.mfh import generator as mvd
    from mmrepro.papers.mfh import realdata
    from mmrepro.papers.mfh.distillation import distill
    from mmrepro.papers.mfh.ranking import align_unimodal
    from mmrepro.papers.mfh.theorem import theorem1_trials

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
