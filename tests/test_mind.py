"""MIND chapter code: problems, cached teachers, methods, search, evaluation and claims (small, CPU)."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import torch

from mmrepro.core.losses import Supervised
from mmrepro.core.metrics import score
from mmrepro.core.models import FUSION_HEAD, count_parameters
from mmrepro.core.stats import paired_bootstrap_evidence
from mmrepro.papers.mind import evidence as ev
from mmrepro.papers.mind import findings as FD
from mmrepro.papers.mind import report as C
from mmrepro.papers.mind import results as R
from mmrepro.papers.mind.objectives import MIND, MKE, TS
from mmrepro.papers.mind.problems import arch_name, encoder_from_spec, load_problem, pbc_problem
from mmrepro.papers.mind.students import (
    ABLATION_METHODS,
    STUDENT_METHODS,
    TS_GRID,
    UNIMODAL,
    Setup,
    Students,
    build,
    head_predictions,
    param_counts,
    sample_hps,
    train,
)
from mmrepro.papers.mind.teachers import ensemble, teacher_key, train_teacher, train_teachers
from mmrepro.publish.notebook import ChapterRun, Params


@pytest.fixture(scope="module")
def pbc():
    return load_problem("pbc_death", seed=0, teacher_hidden=8, student_hidden=4)


@pytest.fixture(scope="module")
def teachers(pbc, tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("MMREPRO_CACHE", str(tmp_path_factory.mktemp("cache")))
    out = train_teachers(pbc, [3e-3], epochs=3, seed=0)
    mp.undo()
    return out


def test_pbc_problem_rows(pbc):
    d = pbc.data
    assert pbc.modalities == ("labs", "static") and set(d.x) == {"labs", "static"}
    trial = d.meta["trial"]
    for s in ("train", "val", "test"):
        rows = pbc.paired[s]
        assert bool(d.present["labs"][rows].all() and d.present["static"][rows].all() and trial[rows].all())
        assert not bool(torch.isnan(d.y[pbc.task][rows]).any())
        for m in pbc.modalities:  # the paired set is inside each unimodal set
            assert set(rows.tolist()) <= set(pbc.unimodal[m][s].tolist())
    # MIND's premise: every modality's teachers train on strictly more rows than the student's pairs;
    # the lab teachers gain the broken-up pairs and the non-trial patients' one-visit enrolment labs
    for m in pbc.modalities:
        assert len(pbc.unimodal[m]["train"]) > len(pbc.paired["train"])
    labs_train = pbc.unimodal["labs"]["train"]
    assert (~trial[labs_train]).sum() > 0 and bool((d.lengths["labs"][labs_train[~trial[labs_train]]] == 1).all())
    assert not set(pbc.paired["train"].tolist()) & set(pbc.paired["test"].tolist())
    findings = load_problem("pbc_findings", seed=0, teacher_hidden=8, student_hidden=4)
    for m in findings.modalities:
        assert len(findings.unimodal[m]["train"]) > len(findings.paired["train"])


def test_av_digits_pairs_are_a_fraction_of_the_unimodal_rows():
    p = load_problem("av_digits", seed=0, paired_fraction=0.25, teacher_width=2, student_width=2)
    n_uni = len(p.unimodal["image"]["train"])
    assert len(p.paired["train"]) == round(0.25 * n_uni) and len(p.paired["test"]) == 17 * 60
    assert set(p.paired["train"].tolist()) <= set(p.unimodal["audio"]["train"].tolist())
    assert torch.equal(p.paired["test"], p.unimodal["image"]["test"])
    q = load_problem("av_digits", seed=0, paired_fraction=0.25, teacher_width=2, student_width=2)
    assert torch.equal(p.paired["train"], q.paired["train"]) and p.checksum() == q.checksum()
    assert [s["depth"] for s in p.teacher_specs["image"]] == [18, 10, 6] and p.student_specs["audio"]["depth"] == 3
    # at width 64 the student and the ResNet-10 teacher have the paper's sizes (App. C: ~151 k and ~4.9 M)
    full = load_problem("av_digits", seed=0)
    assert abs(count_parameters(full.student())["total"] - 151_000) < 2_000
    assert abs(count_parameters(full.teacher("image", full.teacher_specs["image"][1]))["total"] - 4.9e6) < 0.05e6


def test_av_digits_every_recording_and_image_in_one_split_only():
    """The test split grows to 17 of the 50 recordings of every speaker and digit (FSDD's 0-4 and 12 drawn from
    training): a row is one recording and one image, each used once, so no recording and no image is in two
    splits; every speaker and digit has the same number of test recordings."""
    from mmrepro.core.data.av_digits import parse_recording

    p = load_problem("av_digits", seed=3, teacher_width=2, student_width=2, test_recordings=17)
    d, meta = p.data, p.data.meta
    names = meta["recordings"]
    seen_rec, seen_img = {}, {}
    for split, rows in d.splits.items():
        for r in rows.tolist():
            rec, img = int(meta["recording_id"][r]), int(meta["image_id"][r])
            assert seen_rec.setdefault(rec, split) == split and seen_img.setdefault(img, split) == split
    assert len(seen_rec) == len(seen_img) == d.n == sum(len(v) for v in d.splits.values()) == 3000
    test = [parse_recording(names[int(meta["recording_id"][r])]) for r in d.splits["test"].tolist()]
    assert {i for _, _, i in test} >= set(range(5)) and len({i for _, _, i in test}) == 17
    per_cell = {}
    for digit, speaker, _ in test:
        per_cell[(digit, speaker)] = per_cell.get((digit, speaker), 0) + 1
    assert set(per_cell.values()) == {17} and len(per_cell) == 60
    assert not set(p.paired["train"].tolist()) & set(p.paired["test"].tolist())
    other = load_problem("av_digits", seed=4, teacher_width=2, student_width=2, test_recordings=17)
    assert not torch.equal(other.paired["test"], p.paired["test"])  # the extra test recordings are drawn by seed
    with pytest.raises(ValueError, match="test_recordings must be in"):
        load_problem("av_digits", seed=0, teacher_width=2, student_width=2, test_recordings=50)


def test_pbc_folds_hold_every_patient_out_once():
    """K folds of one partition: the paired test rows of the folds are disjoint and together every trial
    patient with a known outcome; no fold's teacher rows (training or validation) hold its test patients;
    the student's encoders are the smallest teachers' architectures (App. C)."""
    folds = [load_problem("pbc_findings", seed=1, teacher_hidden=8, fold=f, n_folds=3) for f in range(3)]
    tests = torch.cat([p.paired["test"] for p in folds])
    d = folds[0].data
    known = (~torch.isnan(d.y[folds[0].task]).any(dim=1)) & d.meta["trial"] & d.present["labs"]
    assert len(torch.unique(tests)) == len(tests) and set(tests.tolist()) == set(known.nonzero().flatten().tolist())
    for p in folds:
        held_out = set(p.paired["test"].tolist())
        for m in p.modalities:
            assert not held_out & set(p.unimodal[m]["train"].tolist()) and not held_out & set(p.unimodal[m]["val"].tolist())
            assert p.student_specs[m] == p.teacher_specs[m][0]
    assert folds[0].student().fusion_lstm.hidden_size == 16  # MedFuse: twice the time-series encoder's width
    with pytest.raises(ValueError, match="overlap"):
        R.run_problem([folds[0], folds[0]], n_boot=10, teacher_lrs=[3e-3], teacher_epochs=1, epochs=1, n_trials=1,
                      n_seeds=2, omega_epochs=1)


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="unknown MIND problem 'mimic'"):
        load_problem("mimic")
    with pytest.raises(ValueError, match="unknown PBC task"):
        pbc_problem(task="stage")
    with pytest.raises(ValueError, match="paired_fraction must be in"):
        load_problem("av_digits", paired_fraction=0.0)
    with pytest.raises(ValueError, match="unknown encoder type 'cnn'"):
        encoder_from_spec({"type": "cnn"})
    with pytest.raises(ValueError, match="at least one trial"):
        sample_hps("mind", 0, 0, (1e-4, 1e-2), (0.1, 10))


def test_sample_hps_ranges_and_reproducibility():
    hps = sample_hps("mind", 200, 3, (1e-4, 1e-2), (0.1, 10.0))
    lr = np.array([h["lr"] for h in hps])
    w = np.array([[h["omega_a"], h["omega_b"]] for h in hps])
    assert lr.min() >= 1e-4 and lr.max() <= 1e-2 and w.min() >= 0.1 and w.max() <= 10
    assert abs(np.log10(lr).mean() - (-3)) < 0.2  # log-uniform: mean of log10 near the middle
    assert hps == sample_hps("mind", 200, 3, (1e-4, 1e-2), (0.1, 10.0))
    ts = sample_hps("ts", 50, 0, (1e-4, 1e-2), (0.1, 10.0))
    assert all(h["alpha"] in TS_GRID and h["beta"] in TS_GRID for h in ts)
    assert set(sample_hps("base", 3, 0, (1e-3, 1e-3), (1, 1))[0]) == {"lr"}
    assert set(sample_hps("abl5", 1, 0, (1e-3, 1e-2), (1, 2))[0]) == {"lr", "omega_a", "omega_b"}
    assert sample_hps("abl3", 5, 0, (1e-3, 1e-2), (1, 2)) != sample_hps("abl4", 5, 0, (1e-3, 1e-2), (1, 2))


def test_teacher_cache_reuses_weights(pbc, tmp_path, monkeypatch):
    monkeypatch.setenv("MMREPRO_CACHE", str(tmp_path))
    spec = pbc.teacher_specs["labs"][0]
    first = train_teacher(pbc, "labs", spec, 3e-3, epochs=2, seed=1)
    second = train_teacher(pbc, "labs", spec, 3e-3, epochs=2, seed=1)
    assert not first.from_cache and second.from_cache and first.key == second.key
    assert second.val_score == pytest.approx(first.val_score)
    for a, b in zip(first.model.state_dict().values(), second.model.state_dict().values()):
        assert torch.equal(a.cpu(), b.cpu())
    assert list(tmp_path.glob("mind-teachers/pbc_death-labs-*.pt"))
    keys = {teacher_key(pbc, "labs", spec, lr, 2, 64, None, s) for lr, s in ((3e-3, 1), (1e-3, 1), (3e-3, 2))}
    assert len(keys) == 3


def test_teachers_are_ranked_and_ensembled(teachers):
    for m, ts in teachers.items():
        assert len(ts) == 3
        assert [t.val_score for t in ts] == sorted((t.val_score for t in ts), reverse=True)
    ens = ensemble(teachers, k=2)
    assert all(len(v) == 2 for v in ens.values())
    with pytest.raises(ValueError, match=r"k=0 is out of range: it must be an integer >= 1"):
        ensemble(teachers, k=0)


def test_k_beyond_the_candidate_teachers_is_an_error_not_a_truncation(pbc, teachers):
    with pytest.raises(ValueError, match=r"k=4 teachers per ensemble, but there are only \{'labs': 3, 'static': 3\} "
                       r"candidate teachers"):
        ensemble(teachers, k=4)
    with pytest.raises(ValueError, match="k=4 teachers per ensemble"):
        Setup(pbc, teachers, k=4)
    with pytest.raises(ValueError, match=r"k=4 teachers per ensemble.*\{'labs': 3, 'static': 3\}"):  # before any training
        R.run_problem(pbc, teacher_lrs=[3e-3], teacher_epochs=1, epochs=1, n_trials=1, n_seeds=2, omega_epochs=1,
                      n_boot=10, k=4)


def test_a_corrupt_or_mismatching_cached_teacher_is_retrained_from_a_clean_start(pbc, tmp_path, monkeypatch):
    from mmrepro.core.data.cache import load_verified, save_verified

    monkeypatch.setenv("MMREPRO_CACHE", str(tmp_path))
    spec, other = pbc.teacher_specs["labs"][0], pbc.teacher_specs["labs"][1]
    clean = train_teacher(pbc, "labs", spec, 3e-3, epochs=2, seed=1)
    (path,) = tmp_path.glob("mind-teachers/pbc_death-labs-*.pt")
    data = bytearray(path.read_bytes())
    data[-300] ^= 0x04  # one flipped bit
    path.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match="does not match its SHA-256.*retraining"):
        again = train_teacher(pbc, "labs", spec, 3e-3, epochs=2, seed=1)
    assert not again.from_cache
    # an entry with a valid digest but another architecture's weights: rejected before any weight is copied
    wrong = train_teacher(pbc, "labs", other, 3e-3, epochs=1, seed=3, cache=False)
    entry = load_verified(path)
    save_verified({**entry, "state": {k: v.cpu() for k, v in wrong.model.state_dict().items()}}, path)
    with pytest.warns(UserWarning, match="does not fit the model.*retraining"):
        third = train_teacher(pbc, "labs", spec, 3e-3, epochs=2, seed=1)
    assert not third.from_cache and third.val_score == pytest.approx(clean.val_score)
    for a, b in zip(clean.model.state_dict().values(), third.model.state_dict().values()):
        assert torch.equal(a.cpu(), b.cpu())  # trained from the seeded initialisation, not a half-loaded one


def test_build_methods(pbc, teachers):
    s = Setup(pbc, teachers, k=3)
    hp = {"lr": 1e-3, "omega_a": 2.0, "omega_b": 0.5, "alpha": 0.3, "beta": 0.1}
    model, obj = build(s, "base", hp)
    assert not model.multihead and isinstance(obj, Supervised) and obj.heads == [FUSION_HEAD]
    model, obj = build(s, "base_3h", hp)
    assert model.multihead and isinstance(obj, Supervised) and obj.heads is None
    _, obj = build(s, "mke_b", hp)
    assert isinstance(obj, MKE) and obj.modality == "static" and len(obj.teachers["static"]) == 1
    _, obj = build(s, "ts", hp)
    assert isinstance(obj, TS) and obj.weights == {"labs": 0.3, "static": 0.1}
    _, obj = build(s, "mind", hp)
    assert isinstance(obj, MIND) and obj.omega == {"labs": 2.0, "static": 0.5}
    assert all(len(v) == 3 for v in obj.teachers.values())
    _, obj = build(s, "abl3", hp)   # single teacher, unweighted
    assert obj.omega == {"labs": 1.0, "static": 1.0} and all(len(v) == 1 for v in obj.teachers.values())
    _, obj = build(s, "abl5", hp)   # single teacher, weighted
    assert obj.omega == {"labs": 2.0, "static": 0.5} and all(len(v) == 1 for v in obj.teachers.values())
    model, obj = build(s, "uni_a", hp)  # the student's labs encoder alone
    assert model.modalities == ["labs"] and isinstance(obj, Supervised)
    assert count_parameters(model)["encoder:labs"] == count_parameters(pbc.student())["encoder:labs"]
    with pytest.raises(ValueError, match="unknown method 'foo'"):
        build(s, "foo", hp)


def test_training_is_deterministic_and_single_head_unimodal_predictions(pbc, teachers):
    s = Setup(pbc, teachers, epochs=2)
    hp = {"lr": 3e-3, "omega_a": 1.0, "omega_b": 1.0}
    r1, r2 = train(s, "mind", hp, seed=5), train(s, "mind", hp, seed=5)
    assert [h["val/fusion/auroc"] for h in r1.history] == [h["val/fusion/auroc"] for h in r2.history]
    base = train(s, "base", {"lr": 3e-3}, seed=0).model
    rows = pbc.paired["test"]
    preds = head_predictions(base, pbc, rows)
    d = pbc.rows(rows)
    only_labs = {"labs": d.present["labs"], "static": torch.zeros_like(d.present["static"])}
    base.eval()
    with torch.no_grad():
        expect = torch.sigmoid(base(d.x, only_labs, d.lengths).logits[FUSION_HEAD][:, 0])
    assert torch.allclose(preds["labs"], expect)
    assert not torch.allclose(preds["labs"], preds[FUSION_HEAD])


def test_param_counts(pbc, teachers):
    """Table A1's comparison: the base architecture (MedFuse) with the largest teachers as encoders."""
    from mmrepro.core.models import MultimodalNet

    s = Setup(pbc, teachers, k=2)
    sizes = param_counts(s)
    assert sizes["student"] == count_parameters(pbc.student())["total"]
    big = MultimodalNet({"labs": encoder_from_spec(pbc.teacher_specs["labs"][2]),
                         "static": encoder_from_spec(pbc.teacher_specs["static"][2])}, "binary", 1, fusion="lstm",
                        multihead=False, **pbc.fusion_kw)
    assert sizes["base_largest"] == count_parameters(big)["total"]
    assert sizes["ratio_largest"] == pytest.approx(sizes["base_largest"] / sizes["student"]) and sizes["ratio_largest"] > 1


def test_run_problem_claims_are_consistent(pbc, tmp_path, monkeypatch):
    monkeypatch.setenv("MMREPRO_CACHE", str(tmp_path))
    r = R.run_problem(pbc, teacher_lrs=[3e-3], teacher_epochs=2, epochs=2, n_trials=1, n_seeds=2, omega_epochs=2,
                      n_boot=30)
    assert set(r.runs) == set(STUDENT_METHODS + ABLATION_METHODS + UNIMODAL) - {"ume"} and r.n_folds == 1
    assert all([s.seed for s in runs] == [s.seed for s in r.runs["mind"]] for runs in r.runs.values())  # paired
    y = pbc.data.y[pbc.task][pbc.paired["test"]].numpy()
    # a reported value is the seed mean of the selected configuration's test metric
    assert r.metric("mind", FUSION_HEAD).estimate == pytest.approx(
        np.mean([score("auroc", y, t[FUSION_HEAD], "binary") for t in r.folds[0].tests["mind"]]))
    with pytest.raises(RuntimeError, match="test is used once"):
        r.runs["mind"][0].evaluate_test()
    again = Students(r.setup)(r.runs["mind"][0].config, r.runs["mind"][0].seed).evaluate_test()  # same seed, same run
    assert np.allclose(again[FUSION_HEAD], r.folds[0].tests["mind"][0][FUSION_HEAD])
    # the ensemble is the mean of the top-k teachers' probabilities (eq. 4); the best teacher its first
    top = [t for t in r.teachers if t["modality"] == "labs"]
    assert [t["ranks"] for t in top] == [[1], [2], [3]]
    assert np.allclose(r.preds(R.ENSEMBLE, "labs")[0], np.mean([t["test"] for t in top], axis=0))
    assert np.allclose(r.preds(R.TEACHER, "labs")[0], top[0]["test"])
    run = ChapterRun(name="mind", params=Params({}), device="cpu", seed=0, profile="book")
    FD.record_claims(run, r)
    cl = {c["id"]: c for c in run.claims}
    # the premise (per modality and averaged), one claim per baseline and the best distillation baseline, per
    # modality head (vs -3H and vs the teacher), per ablation component, ω, compression
    assert [i for i in cl if i.startswith("premise-")] == ["premise-pbc_death-labs", "premise-pbc_death-static",
                                                          "premise-pbc_death"]
    assert len([i for i in cl if i.startswith("fused-")]) == len(STUDENT_METHODS)
    assert len([i for i in cl if i.startswith("head-")]) == 4 and len([i for i in cl if i.startswith("ablation-")]) == 5
    assert cl["compression-pbc_death"]["passed"] == (r.sizes["ratio_largest"] >= 3)
    assert cl["fused-pbc_death-vs-ts"]["estimate"] == pytest.approx(
        100 * (r.metric("mind", FUSION_HEAD).estimate - r.metric("ts", FUSION_HEAD).estimate))
    assert cl["fused-pbc_death-vs-ts"]["paper_effect"] == pytest.approx(1.6)  # Table 1: 0.844 - 0.828
    assert cl["fused-pbc_death-vs-best-kd"]["paper_effect"] == pytest.approx(1.6)  # Sec. 5.1: "1.6 % AUROC"
    assert cl["fused-pbc_death-vs-ts"]["n"] == 2
    assert "Student t over 2 seeds plus a bootstrap over 33 test rows" in cl["fused-pbc_death-vs-ts"]["interval_method"]
    # the premise rule: distillation claims name the averaged or their modality's premise, the 3H ablation and ω none
    assert cl["fused-pbc_death-vs-base"]["premise"] == "premise-pbc_death"
    assert cl["head-pbc_death-static-vs-3h"]["premise"] == "premise-pbc_death-static"
    assert "premise" not in cl["ablation-pbc_death-3h"] and "premise" not in cl["omega-pbc_death-balance"]
    for c in run.claims:
        if c.get("premise") and cl[c["premise"]]["outcome"] not in FD.REPRODUCING:
            assert c["outcome"] == "not comparable" and c["reason"].startswith(f"premise absent: {c['premise']}")
    assert len(C.baseline_table(r)) == len(STUDENT_METHODS) and len(C.ablation_table(r)) == 6
    assert len(C.omega_summary(r)) == 6 and C.under_utilised(r) in pbc.modalities
    assert len(C.omega_per_seed(r)) == 12 and cl["omega-pbc_death-balance"]["n"] == 2
    assert len(C.student_check([r], R.LEARNS_MARGIN)) == 4 and len(C.seed_table([r])) == len(STUDENT_METHODS) - 1
    assert len(C.epoch_table([r])) == len(r.runs) and set(C.epoch_table([r])["epochs"]) == {2}
    assert len(C.unimodal_table(r)) == 2 * 3 + len(r.teachers) and len(C.teacher_advantage([r])) == 2
    # the student's encoder on the teachers' rows (its size, their rows): its rows and its share of the advantage
    for mod, uni in zip(pbc.modalities, UNIMODAL):
        whole, rows, size = (r.difference(a, b).estimate for a, b in (((R.TEACHER, mod), (uni, mod)),
                             ((R.ALONE_ALL, mod), (uni, mod)), ((R.TEACHER, mod), (R.ALONE_ALL, mod))))
        assert whole == pytest.approx(rows + size)
    summary = FD.outcome_summary(run.claims)
    counted = summary[["contradicted", "not reproduced", "undecided", "not comparable"]].to_numpy().sum()
    assert counted + summary["reproduce"].str.split(" ").str[0].astype(int).sum() == len(
        [c for c in run.claims if c["kind"] == "empirical"])


def test_folds_pool_out_of_fold_predictions(tmp_path, monkeypatch):
    """With K folds each seed's predictions are pooled out of fold (every patient once); the teachers of a fold
    never train on its test patients; the patients' share of the variance is a floor; where the student's
    encoder is a teacher architecture, the student-size model on the teachers' rows is that teacher."""
    from mmrepro.papers.mind import teachers as T

    monkeypatch.setenv("MMREPRO_CACHE", str(tmp_path))
    seen = []
    real = T.fit_many

    def spy(models, train, val=None, **kw):
        seen.append(set(train.meta["patient_id"].tolist()) | set(val.meta["patient_id"].tolist()))
        return real(models, train, val, **kw)

    monkeypatch.setattr(T, "fit_many", spy)
    folds = [load_problem("pbc_death", seed=0, teacher_hidden=4, fold=f, n_folds=2) for f in range(2)]
    r = R.run_problem(folds, teacher_lrs=[3e-3], teacher_epochs=1, epochs=1, n_trials=1, n_seeds=2, omega_epochs=1,
                      n_boot=30, ablations=False, parameter="pbc_seeds")
    assert len(seen) == 2 * 2 * 3  # folds x modalities x architectures (the student's are the smallest teachers')
    ids = folds[0].data.meta["patient_id"]
    for k, p in enumerate(folds):
        test_ids = set(ids[p.paired["test"]].tolist())
        assert all(not rows & test_ids for rows in seen[6 * k:6 * (k + 1)])
    assert len(r.y_test) == len(r.test_rows) == len(np.unique(r.test_rows)) == sum(len(p.paired["test"]) for p in folds)
    per_seed = [score("auroc", r.y_test, np.concatenate([f.tests["mind"][j][FUSION_HEAD] for f in r.folds]), "binary")
                for j in range(2)]
    assert r.per_seed("mind") == pytest.approx(per_seed)
    e = r.difference(("mind", FUSION_HEAD), ("base", FUSION_HEAD))
    assert e.floor > 0 and [p.unit for p in e.parts] == ["seeds"] and e.parts[0].parameter == "pbc_seeds"
    assert "every patient is a test row" in e.method
    smallest = [t for t in r.teachers if t["modality"] == "labs" and t["model"] == arch_name(folds[0].student_specs["labs"])]
    assert np.allclose(r.preds(R.ALONE_ALL, "labs")[0], smallest[0]["test"])
    assert len(C.data_table([r])) == 1 and "2 folds" in C.data_table([r])["split"].iloc[0]


def test_seed_and_row_evidence_of_a_difference():
    """MIND's differences count the seeds (Student t on the per-seed differences) and the test rows (the
    bootstrap variance of the seed-averaged difference), added: checked against that computation by hand."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 60).astype(float)
    a = [np.clip(y * 0.3 + rng.random(60) * 0.7, 0, 1) for _ in range(3)]
    b = [rng.random(60) for _ in range(3)]
    draws = ev.Draws.make(60, 400, seed=1)
    d = ev.difference("auroc", y, a, b, "binary", draws)
    per_seed = np.array([score("auroc", y, pa, "binary") - score("auroc", y, pb, "binary") for pa, pb in zip(a, b)])
    reps = np.mean([[score("auroc", y[i], pa[i], "binary") for i in draws.rows] for pa in a], axis=0) - np.mean(
        [[score("auroc", y[i], pb[i], "binary") for i in draws.rows] for pb in b], axis=0)
    v_s, v_r = per_seed.var(ddof=1) / 3, reps.var(ddof=1)
    df = (v_s + v_r) ** 2 / (v_s**2 / 2 + v_r**2 / 59)
    half = scipy.stats.t.ppf(0.975, df) * np.sqrt(v_s + v_r)
    assert d.n == 3 and d.estimate == pytest.approx(per_seed.mean())
    assert d.interval == pytest.approx((per_seed.mean() - half, per_seed.mean() + half))
    same = ev.difference("auroc", y, a, a, "binary", draws)
    assert same.estimate == 0 and same.interval == (0.0, 0.0)  # zero width: the contract reads it as undecided
    # one run per side: the rows alone, the paired bootstrap over test rows of mmrepro.core.stats
    one = ev.difference("auroc", y, a[:1], b[:1], "binary", draws)
    ref = paired_bootstrap_evidence("auroc", y, a[0], b[0], "binary", n_boot=400, seed=1)
    assert one.estimate == pytest.approx(ref.estimate) and one.interval == pytest.approx(ref.interval)
    # seed variation widens the interval: differences that flip sign between seeds are not decided
    noisy = [np.clip(y * (0.6 if k % 2 else -0.6) + rng.random(60) * 0.4, 0, 1) for k in range(3)]
    wide = ev.difference("auroc", y, noisy, b, "binary", draws)
    assert wide.interval[1] - wide.interval[0] > d.interval[1] - d.interval[0]
    with pytest.raises(ValueError, match="cannot pair 2 runs with 3 runs"):
        ev.scored("auroc", y, a[:2], "binary", draws) - ev.scored("auroc", y, b, "binary", draws)


def test_students_many_is_one_call_per_job(pbc, teachers):
    """Students of one group trained together (fit_many) are the students one call each trains, the
    fusion dropout included (each student draws its masks from its own stream)."""
    setup = Setup(pbc, teachers, epochs=2)
    obj = Students(setup)
    jobs = [({"method": "mind", "lr": 3e-3, "omega_a": 1.0, "omega_b": 2.0}, 1),
            ({"method": "mind", "lr": 1e-3, "omega_a": 0.5, "omega_b": 0.1}, 2)]
    assert obj.group(jobs[0][0]) == obj.group(jobs[1][0]) != obj.group({"method": "ts"})
    for a, b in zip([obj(dict(c), s) for c, s in jobs], obj.many(jobs)):
        assert (a.best_epoch, a.score) == (b.best_epoch, pytest.approx(b.score, abs=1e-4))
        for x, y in zip(a.history, b.history):
            assert x.keys() == y.keys() and all(x[k] == pytest.approx(y[k], abs=1e-4, nan_ok=True) for k in x)
        test_b = b.evaluate_test()
        for h, p in a.evaluate_test().items():
            np.testing.assert_allclose(p, test_b[h], atol=1e-4, rtol=0)


def test_versus_best_and_mean_of_paired_quantities():
    """MIND minus the best of several baselines: the best by its mean on all rows, per seed its run, on every
    row resample the best of them there (the interval carries the choice); a mean of paired quantities."""
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 80).astype(float)
    draws = ev.Draws.make(80, 200, seed=3)
    runs = lambda strength, k: [np.clip(y * strength + rng.random(80) * (1 - strength), 0, 1) for _ in range(k)]  # noqa: E731
    mind, good, bad, once = (ev.scored("auroc", y, p, "binary", draws) for p in
                             (runs(0.4, 3), runs(0.3, 3), runs(0.05, 3), runs(0.35, 1)))
    d, best = ev.versus_best(mind, {"good": good, "bad": bad, "once": once})
    assert best == max({"good": good, "bad": bad, "once": once}.items(), key=lambda kv: kv[1].point)[0]
    chosen = {"good": good, "bad": bad, "once": once}[best]
    assert d.point == pytest.approx(mind.point - chosen.point)
    assert np.allclose(d.per_run, mind.per_run - np.resize(chosen.per_run, 3))
    assert np.allclose(d.reps, mind.reps - np.maximum.reduce([good.reps, bad.reps, once.reps]))
    m = ev.mean_of([mind - good, mind - once])
    assert m.point == pytest.approx(mind.point - (good.point + once.point) / 2)
    assert np.allclose(m.per_run, mind.per_run - (good.per_run + once.per_run[0]) / 2)
    floor = ev.evidence(mind - good, 80, difference=True, parameter="pbc_seeds", rows_floor=True)
    plain = ev.evidence(mind - good, 80, difference=True, parameter="pbc_seeds")
    assert floor.interval == plain.interval and floor.floor == pytest.approx(plain.parts[1].variance)
    assert [p.unit for p in floor.parts] == ["seeds"] and plain.parts[0].parameter == "pbc_seeds"


def test_teachers_of_one_architecture_train_stacked_as_alone(pbc, tmp_path, monkeypatch):
    """Candidates of one architecture with several learning rates train as one stacked model: each is the
    teacher that one call trains (within float32 rounding), cached under its own key."""
    from mmrepro.papers.mind.teachers import train_candidates

    monkeypatch.setenv("MMREPRO_CACHE", str(tmp_path))
    spec = pbc.teacher_specs["static"][1]
    together = train_candidates(pbc, "static", spec, [3e-3, 1e-2], [5, 6], epochs=2, cache=False)
    alone = [train_teacher(pbc, "static", spec, lr, epochs=2, seed=s, cache=False) for lr, s in ((3e-3, 5), (1e-2, 6))]
    for a, b in zip(together, alone):
        assert a.lr == b.lr and a.key == b.key and a.best_epoch == b.best_epoch
        assert a.val_score == pytest.approx(b.val_score, abs=1e-4)
        for x, z in zip(a.model.state_dict().values(), b.model.state_dict().values()):
            assert torch.allclose(x.float(), z.float(), atol=1e-4)


def test_plan_counts_the_runs_the_chapter_trains(tmp_path, monkeypatch):
    """`mmrepro plan mind` counts, per problem, the student runs the chapter trains (folds x methods x
    (trials + seeds), the ω settings x seeds) and the teachers (folds x architectures x learning rates)."""
    from mmrepro.papers.mind.plan import sections
    from mmrepro.runs.executors import LocalExecutor

    class Counting(LocalExecutor):
        jobs = 0

        def run(self, objective, chunks):
            Counting.jobs += sum(len(c) for c in chunks)
            return super().run(objective, chunks)

    monkeypatch.setenv("MMREPRO_CACHE", str(tmp_path / "c"))
    monkeypatch.setenv("MMREPRO_RUN_CACHE", str(tmp_path / "r"))
    P = {"seed": 0, "paired_fraction": 0.25, "audio_snr_db": 0.0, "teacher_width": 2, "width": 2, "test_recordings": 17,
         "pbc_paired_fraction": 0.3, "n_folds": 2, "n_trials": 1, "pbc_trials": 2, "seeds": 2, "pbc_seeds": 2,
         "epochs": 1, "pbc_epochs": 1, "teacher_epochs": 1, "pbc_teacher_epochs": 1, "teacher_lrs": [1e-2],
         "pbc_teacher_lrs": [3e-3, 1e-2], "ablations": ["pbc_findings"]}
    planned = {s.name: s.runs for s in sections(P, torch.device("cpu"))}
    folds = [load_problem("pbc_findings", seed=0, paired_fraction=0.3, teacher_hidden=4, fold=f, n_folds=2)
             for f in range(2)]
    r = R.run_problem(folds, teacher_lrs=P["pbc_teacher_lrs"], teacher_epochs=1, epochs=1, n_trials=2, n_seeds=2,
                      omega_epochs=1, n_boot=10, batch_size=16, executor=Counting())
    students = sum(n for name, n in planned.items() if name.startswith("pbc_findings") and "teacher" not in name)
    teachers = sum(n for name, n in planned.items() if name.startswith("pbc_findings") and "teacher" in name)
    assert Counting.jobs == students == 2 * (11 * (2 + 2) + 6 * 2)
    assert teachers == 2 * 2 * 3 * 2 == sum(len(f.candidates) for f in r.folds)
    assert planned["av_digits: baselines (6 methods)"] == 6 * (1 + 2)
    assert "av_digits: teacher image ResNet-3 (w2)" in planned  # the student's encoder trained as a teacher
