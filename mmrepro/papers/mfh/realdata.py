"""MFH on real paired data with a known modality-specific label part (Sections 5.3-5.4, Appendix B).

**The data.** AV digits pairs each Free Spoken Digit recording with an MNIST image of the same
digit, drawn at random within the class. The label is the digit *and* the speaker group (speakers
0-2 vs 3-5 of FSDD's six; 20 classes, ``2 * digit + group``). The digit is modality-general
decisive information (both the recording and the image show it); the speaker group is decisive
information that only the audio carries -- the image was drawn independently of the speaker, so
no image model can beat chance on it. An audio teacher therefore has a large modality-specific part
(alpha) that an image student cannot use: the MVD of the paper's Fig. 1, on real recordings.
:func:`candidate_table` measures this against other open paired data before it is used.

**Models.** Each modality is average-pooled to 14x14, projected on its leading principal
components (fitted on the training rows) and standardised; teachers and students are softmax
regressions trained by full-batch gradient descent (:mod:`mmrepro.papers.mfh.kd`), every seed, teacher
and ratio batched. Students minimise Eq. (1) as the paper writes it -- ``rho`` CE + ``(1 - rho)``
per-sample KL (``kl_reduction="batchmean"``). Principal components are uncorrelated on the training
rows, so Algorithm 1's single-channel permutation is applied exactly as written.

**Experiments.** :func:`ranking_sweep` is Section 5.4 / Table 8 / Figure 5 (Algorithm 1's teacher
with the r % least / most / randomly chosen salient channels nullified -- replaced by the training
mean, as the reference code does -- and students distilled with rho = 0); :func:`permutation_sweep`
is Figure 6 (the number of permutations M); :func:`shared_weight` is Table 3 (a teacher trained on
both modalities with one set of weights, Girdhar et al. 2022) and :func:`specific_teacher` is the
pattern of Table 7 (a multimodal teacher trained on the pseudo-labels of the audio teacher, Xue et
al. 2021). Each returns one row per (teacher, seed) so that claims are paired over seeds.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from mmrepro.core.data import load_dataset
from mmrepro.papers.mfh.kd import LinearBatch, fit_linear, init_linear, objective
from mmrepro.papers.mfh.ranking import align_unimodal, nullify, permutation_salience, select_channels

__all__ = ["PairedViews", "av_speaker", "pca_features", "candidate_table", "distil", "known_part_teachers", "ranking_sweep",
           "permutation_sweep", "shared_weight", "specific_teacher", "SPEAKER_GROUPS"]

SPEAKER_GROUPS = (0, 0, 0, 1, 1, 1)   # FSDD speakers george, jackson, lucas | nicolas, theo, yweweler
SPLITS = ("train", "val", "test")
LR = 0.5                               # full-batch GD on standardised components (converges, see distil)


@dataclass
class PairedViews:
    """Teacher (``a``) and student (``b``) features per split, stacked over seeds: ``x[split][m]``
    (S, n, d); labels ``y[split]`` (S, n); ``digit`` and ``group`` (S, n) for diagnostics; ``joint``
    holds both modalities projected on one shared basis (for a shared-weight teacher)."""

    x: dict[str, dict[str, Tensor]]
    y: dict[str, Tensor]
    digit: dict[str, Tensor]
    group: dict[str, Tensor]
    joint: dict[str, dict[str, Tensor]]
    seeds: list[int]
    n_classes: int


def pca_features(x: Tensor, train: Tensor, k: int) -> Tensor:
    """Scores of x (n, d) on the k leading principal axes of ``x[train]``, standardised on ``train``."""
    if not 1 <= k <= min(len(train), x.shape[1]):
        raise ValueError(f"n_components must be in [1, {min(len(train), x.shape[1])}], got {k}")
    xd = x.double()
    mean = xd[train].mean(0)
    _, _, vt = torch.linalg.svd(xd[train] - mean, full_matrices=False)
    z = (xd - mean) @ vt[:k].T
    return ((z - z[train].mean(0)) / z[train].std(0)).float()


def av_speaker(seeds, n_components: int = 40, downsample: int = 2) -> PairedViews:
    """AV digits with the digit x speaker-group label (module docstring): ``a`` = audio (teacher),
    ``b`` = image (student); one pairing of images to recordings per seed (FSDD's fixed test
    recordings, a seeded validation pool, seeded image draws)."""
    seeds = [int(s) for s in seeds]
    if not seeds or int(downsample) != downsample or downsample < 1:
        raise ValueError(f"need at least one seed and a positive integer downsample, got {seeds}, {downsample}")
    groups = torch.tensor(SPEAKER_GROUPS)
    acc: dict = {k: {s: [] for s in SPLITS} for k in ("a", "b", "ja", "jb", "y", "digit", "group")}
    for s in seeds:
        av = load_dataset("av_digits", seed=s)
        pool = lambda t: torch.nn.functional.avg_pool2d(t, int(downsample)).flatten(1)  # noqa: E731
        img, aud = pool(av.x["image"]), pool(av.x["audio"])
        tr = av.splits["train"]
        a, b = pca_features(aud, tr, n_components), pca_features(img, tr, n_components)
        # one basis for both modalities (a shared-weight teacher reads both through it)
        both = torch.cat([(aud - aud[tr].mean(0)) / aud[tr].std(0).clamp_min(1e-6),
                          (img - img[tr].mean(0)) / img[tr].std(0).clamp_min(1e-6)])
        n = len(aud)
        jz = pca_features(both, torch.cat([tr, tr + n]), n_components)
        group = groups[av.meta["speaker"]]
        digit = av.y["digit"]
        for split in SPLITS:
            rows = av.splits[split]
            for key, v in (("a", a), ("b", b), ("ja", jz[:n]), ("jb", jz[n:]), ("digit", digit), ("group", group)):
                acc[key][split].append(v[rows])
            acc["y"][split].append(2 * digit[rows] + group[rows])
    st = lambda k: {sp: torch.stack(acc[k][sp]) for sp in SPLITS}  # noqa: E731
    xa, xb, ja, jb = st("a"), st("b"), st("ja"), st("jb")
    return PairedViews(x={sp: {"a": xa[sp], "b": xb[sp]} for sp in SPLITS}, y=st("y"), digit=st("digit"),
                       group=st("group"), joint={sp: {"a": ja[sp], "b": jb[sp]} for sp in SPLITS},
                       seeds=seeds, n_classes=20)


def _keys(seeds, role: int) -> np.ndarray:
    return np.array([[s, role] for s in seeds], dtype=np.int64)


def _accuracy(model: LinearBatch, x: Tensor, y: Tensor) -> np.ndarray:
    return model.accuracy(x, y).numpy() * 100


def _train(x: Tensor, y: Tensor, keys, n_classes: int, epochs: int, **kw) -> LinearBatch:
    return fit_linear(x, y, init_linear(keys, x.shape[2], n_classes), epochs=epochs, lr=LR, kl_reduction="batchmean", **kw)


def candidate_table(seeds, epochs: int = 300, views: PairedViews | None = None) -> pd.DataFrame:
    """Is there label information in the teacher's modality that the student's lacks? For each open
    paired dataset here, the test accuracy (%) of a softmax regression on the teacher's modality and
    on the student's, per seed (no KD: what each modality alone reaches with the same model class), with the
    per-row ``hits`` (1 where right) behind each accuracy. ``views``: the AV-digits features of these seeds
    when already built (:func:`av_speaker`), else built here."""
    from mmrepro.core.data import load_mfeat, load_pbc

    seeds = [int(s) for s in seeds]
    rows = []

    def probe(name, label, teacher, student, xs, ys, n_classes):
        for mod, key in ((teacher, "a"), (student, "b")):
            m = _train(xs["train"][key], ys["train"], _keys(seeds, 900), n_classes, epochs)
            hits = (m.logits(xs["test"][key]).argmax(-1) == ys["test"]).double().numpy()
            for s, h in zip(seeds, hits):
                rows.append(dict(dataset=name, label=label, role="teacher" if key == "a" else "student",
                                 modality=mod, seed=s, accuracy=float(h.mean() * 100), hits=h))

    if views is not None and views.seeds != seeds:
        raise ValueError(f"views were built for seeds {views.seeds}, not {seeds}")
    v = av_speaker(seeds) if views is None else views
    probe("AV digits", "digit x speaker group (20)", "audio", "image", v.x, v.y, 20)
    probe("AV digits", "digit (10)", "audio", "image", v.x, v.digit, 10)
    probe("AV digits", "speaker group (2)", "audio", "image", v.x, v.group, 2)
    mf: dict = {sp: {"a": [], "b": []} for sp in SPLITS}
    mfy: dict = {sp: [] for sp in SPLITS}
    for s in seeds:
        d = load_mfeat(s, views=("pix", "fou"))
        for sp in SPLITS:
            mf[sp]["a"].append(d.x["pix"][d.splits[sp]])
            mf[sp]["b"].append(d.x["fou"][d.splits[sp]])
            mfy[sp].append(d.y["digit"][d.splits[sp]])
    cut = lambda sp: min(len(t) for t in mfy[sp])  # noqa: E731  (equal rows per seed for batching)
    mfx = {sp: {k: torch.stack([t[:cut(sp)] for t in mf[sp][k]]) for k in "ab"} for sp in SPLITS}
    probe("Multiple Features", "digit (10)", "pixels", "Fourier", mfx,
          {sp: torch.stack([t[:cut(sp)] for t in mfy[sp]]) for sp in SPLITS}, 10)
    px: dict = {sp: {"a": [], "b": []} for sp in SPLITS}
    py: dict = {sp: [] for sp in SPLITS}
    for s in seeds:
        d = load_pbc(s)
        known = ~torch.isnan(d.y["death_5y"]) & d.present["labs"] & d.present["signs"]
        for sp in SPLITS:
            rows_ = d.splits[sp][known[d.splits[sp]]]
            px[sp]["a"].append(torch.cat([d.x["labs"][rows_], d.x["signs"][rows_]], 1))
            px[sp]["b"].append(d.x["static"][rows_])
            py[sp].append(d.y["death_5y"][rows_].long())
    cut = lambda sp: min(len(t) for t in py[sp])  # noqa: E731
    probe("PBC", "death within 5 years (2)", "labs + signs", "age, sex, arm",
          {sp: {k: torch.stack([t[:cut(sp)] for t in px[sp][k]]) for k in "ab"} for sp in SPLITS},
          {sp: torch.stack([t[:cut(sp)] for t in py[sp]]) for sp in SPLITS}, 2)
    return pd.DataFrame(rows)


def distil(xb: Tensor, y: Tensor, soft: Tensor, seeds, role: int, *, rho, epochs: int,
           trace_every: int = 0, evaluate: dict[str, tuple[Tensor, Tensor]] | None = None):
    """Students on modality b for T teachers at once: ``soft`` (T, S, n, K) soft labels, ``rho``
    scalar or (T,) (rho = 1: labels only), Eq. (1) with the per-sample KL. Inputs are shared across
    teachers (one product per seed). Returns (accuracies {split: (T, S) %}, trace) where ``trace``
    has one row per (checkpoint, teacher, seed) with the objective and the training accuracy when
    ``trace_every`` > 0 -- the evidence that the students converge. Each ``evaluate`` split also gives
    ``<split>_hits`` (T, S, n): 1 where a student is right on a row, so that intervals can count the test rows."""
    T, S, n, K = soft.shape
    rho = torch.as_tensor(rho, dtype=torch.float32).expand(T)
    keys = np.concatenate([np.c_[_keys(seeds, role + t)] for t in range(T)])
    ce_w, kd_w = rho.repeat_interleave(S), (1 - rho).repeat_interleave(S)
    model = init_linear(keys, xb.shape[2], K)
    index = torch.arange(S).repeat(T)
    yy, tp = y.repeat(T, 1), soft.reshape(T * S, n, K)
    step = trace_every if trace_every > 0 else epochs
    trace, done = [], 0
    while done < epochs:
        e = min(step, epochs - done)
        model = fit_linear(xb, yy, model, epochs=e, lr=LR, ce_weight=ce_w, kd_weight=kd_w, teacher_probs=tp, index=index,
                    kl_reduction="batchmean")
        done += e
        if trace_every > 0:
            loss = objective(model, xb[index], yy, ce_weight=ce_w, kd_weight=kd_w, teacher_probs=tp,
                             kl_reduction="batchmean").reshape(T, S)
            tr_acc = model.accuracy(xb[index], yy).reshape(T, S) * 100
            trace += [dict(epoch=done, teacher=t, seed=seeds[s_], objective=float(loss[t, s_]),
                           train_acc=float(tr_acc[t, s_])) for t in range(T) for s_ in range(S)]
    out = {}
    for name, (xs, ys) in (evaluate or {}).items():
        logits = model.logits(xs[index])
        hits = (logits.argmax(-1) == ys.repeat(T, 1)).double().numpy().reshape(T, S, -1)
        out[name], out[f"{name}_hits"] = hits.mean(-1) * 100, hits
        if K == 20:   # the digit x group label: also score the digit, the part an image can show
            digit = _probs_digit_group(torch.softmax(logits, -1))[0].argmax(-1)
            hits = (digit == ys.repeat(T, 1) // 2).double().numpy().reshape(T, S, -1)
            out[f"{name}_digit"], out[f"{name}_digit_hits"] = hits.mean(-1) * 100, hits
    return out, pd.DataFrame(trace)


def _probs_digit_group(p: Tensor) -> tuple[Tensor, Tensor]:
    """Marginal digit (.., 10) and group (.., 2) probabilities of 20-class probabilities (class 2 d + g)."""
    q = p.reshape(*p.shape[:-1], 10, 2)
    return q.sum(-1), q.sum(-2)


def known_part_teachers(v: PairedViews, rhos=(0.0, 0.5), *, epochs: int = 200) -> pd.DataFrame:
    """The Table 2 comparison on real data, with the teachers' parts known by construction. One audio
    teacher (softmax regression on the 20 classes) gives the *regular* soft labels p(d, g); the
    *modality-general* teacher keeps only their digit part, p(d) / 2 for both groups (gamma = 1: the
    speaker part, which the image student cannot see, is averaged out); the *modality-specific*
    teacher keeps only the group part, p(g) / 10. Students on the image distil from each at every
    rho; one row per (teacher, rho, seed) with the student's val and test accuracy, plus the no-KD
    student (labels only)."""
    seeds, K = v.seeds, v.n_classes
    xa, y = v.x["train"]["a"], v.y["train"]
    audio = _train(xa, y, _keys(seeds, 800), K, epochs)
    p = audio.probs(xa)
    pd_, pg = _probs_digit_group(p)
    general = (pd_[..., None] / 2).expand(*pd_.shape, 2).reshape(p.shape)
    specific = (pg[..., None, :] / 10).expand(*pg.shape[:-1], 10, 2).reshape(p.shape)
    kinds = ["regular", "general", "specific"]
    soft = torch.stack([p, general, specific] * len(rhos) + [torch.full_like(p, 1.0 / K)])
    rho = torch.tensor([float(r) for r in rhos for _ in kinds] + [1.0])
    accs, _ = distil(v.x["train"]["b"], y, soft, seeds, 810, rho=rho, epochs=epochs,
                     evaluate={sp: (v.x[sp]["b"], v.y[sp]) for sp in ("val", "test")})
    names = kinds * len(rhos) + ["no_kd"]
    t_acc = _accuracy(audio, v.x["test"]["a"], v.y["test"])
    return _long({k: accs[k] for k in ("val", "test", "val_digit", "test_digit", "test_digit_hits")}, names, seeds,
                 rho=[float(r) for r in rhos for _ in kinds] + [1.0], teacher_acc=[float(t_acc.mean())] * len(names))


def _teacher_hits(p: Tensor, v: PairedViews, split: str = "test") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row (..., n), 1 where 20-class probabilities p (..., n, 20) are right on the label, the digit and the
    speaker group (their means are the accuracies)."""
    pd_, pg = _probs_digit_group(p)
    hit = lambda q, y: (q.argmax(-1) == y).double().numpy()  # noqa: E731
    return hit(p, v.y[split]), hit(pd_, v.digit[split]), hit(pg, v.group[split])


def _scores(hits: tuple[np.ndarray, ...], prefix: str = "teacher") -> dict[str, np.ndarray]:
    """Accuracies (%) and per-row hits of :func:`_teacher_hits` under the names the tables use."""
    out = {}
    for name, h in zip((f"{prefix}_acc", f"{prefix}_digit_acc", f"{prefix}_group_acc"), hits):
        out[name], out[name.replace("_acc", "_hits")] = h.mean(-1) * 100, h
    return out


def _long(table: dict[str, np.ndarray], names: list[str], seeds, **extra) -> pd.DataFrame:
    """One row per (teacher, seed): a number per (T, S) array of ``table``, a per-row array per (T, S, n) one."""
    rows = []
    for t, name in enumerate(names):
        for j, s in enumerate(seeds):
            rows.append(dict(teacher=name, seed=s,
                             **{k: (v[t, j] if np.ndim(v) == 3 else float(v[t, j])) for k, v in table.items()},
                             **{k: (v[t] if isinstance(v, list) else v) for k, v in extra.items()}))
    return pd.DataFrame(rows)


def ranking_sweep(v: PairedViews, ratios=(0.25, 0.5, 0.75), sweep=(0.125, 0.375, 0.625, 0.875), *,
                  epochs: int = 300, align_epochs: int = 500, n_permutations: int = 50, rho: float = 0.0,
                  trace_every: int = 0) -> tuple[pd.DataFrame, Tensor, pd.DataFrame]:
    """Algorithm 1 on the teacher's channels, then students of the regular, modality-general
    (r % lowest salience nullified), modality-specific (r % highest) and random teachers at each
    ``ratios`` value, of the modality-general teacher alone at the extra ``sweep`` ratios (Figure 5),
    a plainly trained teacher (CE only) and the no-KD student. Returns (one row per (teacher, r,
    seed): teacher accuracy on the 20 classes, on the digit and on the speaker group, student val and
    test accuracy; salience (S, d_a); the students' training trace)."""
    seeds, K = v.seeds, v.n_classes
    S = len(seeds)
    tr, xa, xb = v.y["train"], v.x["train"]["a"], v.x["train"]["b"]
    keys = _keys(seeds, 0)
    teacher, fb = align_unimodal(xa, xb, tr, keys, K, epochs=align_epochs)
    sal = permutation_salience(teacher, xa, fb.logits(xb), keys, n_permutations=n_permutations)
    plain = _train(xa, tr, _keys(seeds, 1), K, epochs)
    d_a = xa.shape[2]
    fill = xa.mean(1)
    names, rs, keeps = ["regular"], [0.0], [torch.ones(S, d_a, dtype=torch.bool)]
    for r in sorted(set(ratios) | set(sweep)):
        k = d_a - int(round(r * d_a))
        for name, mode in (("general", "top"), ("specific", "bottom"), ("random", "random")):
            if name == "general" or r in ratios:
                names.append(name)
                rs.append(float(r))
                keeps.append(select_channels(sal, k, mode, keys=np.c_[keys, np.full(S, int(r * 1000))]))
    T = len(names)
    keep = torch.stack(keeps)                                                   # (T, S, d_a)
    tea = teacher[torch.arange(S).repeat(T)]

    def teacher_out(split):
        x = nullify(v.x[split]["a"].repeat(T, 1, 1), keep.reshape(T * S, d_a), fill.repeat(T, 1))
        return tea.probs(x).reshape(T, S, -1, K)

    hits = [np.concatenate([a, b[None], np.full((1, *b.shape), np.nan)])   # ranked teachers, plain, none (no-KD)
            for a, b in zip(_teacher_hits(teacher_out("test"), v), _teacher_hits(plain.probs(v.x["test"]["a"]), v))]
    soft = torch.cat([teacher_out("train"), plain.probs(xa)[None], torch.full((1, S, xa.shape[1], K), 1.0 / K)])
    rho_all = torch.tensor([rho] * (T + 1) + [1.0])
    accs, trace = distil(xb, tr, soft, seeds, 100, rho=rho_all, epochs=epochs, trace_every=trace_every,
                         evaluate={sp: (v.x[sp]["b"], v.y[sp]) for sp in ("val", "test")})
    table = {**_scores(tuple(hits)),
             **{k: accs[k] for k in ("val", "test", "val_digit", "test_digit", "test_digit_hits")}}
    df = _long(table, names + ["plain", "no_kd"], seeds, r=rs + [0.0, 0.0])
    if len(trace):
        trace["r"] = [(rs + [0.0, 0.0])[t] for t in trace["teacher"]]
        trace["teacher"] = [(names + ["plain", "no_kd"])[t] for t in trace["teacher"]]
    return df, sal, trace


def permutation_sweep(v: PairedViews, ms=(1, 3, 10, 30, 100), r: float = 0.5, *, epochs: int = 300,
                      align_epochs: int = 500, rho: float = 0.0) -> pd.DataFrame:
    """Figure 6: the modality-general teacher (r % least salient channels nullified) when the
    salience is estimated with M permutations, for each M; one row per (M, seed) with the student's
    test accuracy and the overlap of the kept channels with those kept at the largest M."""
    seeds, K = v.seeds, v.n_classes
    S = len(seeds)
    xa, xb, tr = v.x["train"]["a"], v.x["train"]["b"], v.y["train"]
    keys = _keys(seeds, 0)
    teacher, fb = align_unimodal(xa, xb, tr, keys, K, epochs=align_epochs)
    lb = fb.logits(xb)
    d_a = xa.shape[2]
    k = d_a - int(round(r * d_a))
    keeps = torch.stack([select_channels(permutation_salience(teacher, xa, lb, np.c_[keys, np.full(S, m)],
                                                              n_permutations=int(m)), k, "top") for m in ms])
    T = len(ms)
    fill = xa.mean(1).repeat(T, 1)
    soft = teacher[torch.arange(S).repeat(T)].probs(nullify(xa.repeat(T, 1, 1), keeps.reshape(T * S, d_a), fill))
    soft = soft.reshape(T, S, -1, K)
    accs, _ = distil(xb, tr, soft, seeds, 300, rho=rho, epochs=epochs,
                     evaluate={"test": (v.x["test"]["b"], v.y["test"])})
    overlap = (keeps & keeps[-1]).sum(-1).double().numpy() / k
    return _long({"test": accs["test"], "test_digit": accs["test_digit"], "test_digit_hits": accs["test_digit_hits"],
                  "overlap_with_largest_m": overlap}, [f"M={m}" for m in ms], seeds, m=list(ms))


def shared_weight(v: PairedViews, *, epochs: int = 300, rho: float = 0.5) -> pd.DataFrame:
    """Table 3: a regular audio teacher and a modality-general teacher with shared weights, trained
    on audio *and* image rows (both read through one principal basis, ``v.joint``); both distil into
    the image student on the audio inputs. One row per (teacher, seed): teacher test accuracy on the
    audio (20 classes, digit, group) and the student's test accuracy; plus the no-KD student."""
    seeds, K = v.seeds, v.n_classes
    ja, jb, y = v.joint["train"]["a"], v.joint["train"]["b"], v.y["train"]
    regular = _train(ja, y, _keys(seeds, 400), K, epochs)
    shared = _train(torch.cat([ja, jb], 1), torch.cat([y, y], 1), _keys(seeds, 401), K, epochs)
    names = ["regular", "shared"]
    hits = [np.concatenate([np.stack(h), np.full((1, *h[0].shape), np.nan)])    # regular, shared, none (no-KD)
            for h in zip(*(_teacher_hits(m.probs(v.joint["test"]["a"]), v) for m in (regular, shared)))]
    soft = torch.stack([regular.probs(ja), shared.probs(ja), torch.full_like(regular.probs(ja), 1.0 / K)])
    accs, _ = distil(v.x["train"]["b"], y, soft, seeds, 500, rho=torch.tensor([rho, rho, 1.0]), epochs=epochs,
                     evaluate={"test": (v.x["test"]["b"], v.y["test"])})
    return _long({**_scores(tuple(hits)), "test": accs["test"], "test_digit": accs["test_digit"],
                  "test_digit_hits": accs["test_digit_hits"]}, names + ["no_kd"], seeds)


def specific_teacher(v: PairedViews, *, epochs: int = 300, rho: float = 0.0) -> pd.DataFrame:
    """Table 7 pattern: two audio+image teachers of one architecture (softmax regression on both
    modalities' components) -- a regular one trained on the labels and a modality-specific one
    trained only on the soft pseudo-labels of an audio teacher (so it leans on the audio, Xue et al.
    2021) -- distil into the image student (rho = 0, as for MM-IMDB). One row per (teacher, seed)."""
    seeds, K = v.seeds, v.n_classes
    cat = lambda sp: torch.cat([v.x[sp]["a"], v.x[sp]["b"]], 2)  # noqa: E731
    y = v.y["train"]
    audio = _train(v.x["train"]["a"], y, _keys(seeds, 600), K, epochs)
    regular = _train(cat("train"), y, _keys(seeds, 601), K, epochs)
    specific = _train(cat("train"), y, _keys(seeds, 602), K, epochs, ce_weight=0.0, kd_weight=1.0,
                      teacher_probs=audio.probs(v.x["train"]["a"]))
    names = ["regular", "specific"]
    t_hits = np.stack([(m.logits(cat("test")).argmax(-1) == v.y["test"]).double().numpy() for m in (regular, specific)])
    soft = torch.stack([regular.probs(cat("train")), specific.probs(cat("train"))])
    accs, _ = distil(v.x["train"]["b"], y, soft, seeds, 700, rho=rho, epochs=epochs,
                     evaluate={"test": (v.x["test"]["b"], v.y["test"])})
    return _long({"teacher_acc": t_hits.mean(-1) * 100, "teacher_hits": t_hits, "test": accs["test"],
                  "test_digit": accs["test_digit"], "test_digit_hits": accs["test_digit_hits"]}, names, seeds)
