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
    assert len(p.paired["train"]) == round(0.25 * n_uni)
    assert set(p.paired["train"].tolist()) <= set(p.unimodal["audio"]["train"].tolist())
    assert torch.equal(p.paired["test"], p.unimodal["image"]["test"])
    q = load_problem("av_digits", seed=0, paired_fraction=0.25, teacher_width=2, student_width=2)
    assert torch.equal(p.paired["train"], q.paired["train"]) and p.checksum() == q.checksum()
    assert [s["depth"] for s in p.teacher_specs["image"]] == [18, 10, 6] and p.student_specs["audio"]["depth"] == 3
    # at width 64 the student and the ResNet-10 teacher have the paper's sizes (App. C: ~151 k and ~4.9 M)
    full = load_problem("av_digits", seed=0)
    assert abs(count_parameters(full.student())["total"] - 151_000) < 2_000
    assert abs(count_parameters(full.teacher("image", full.teacher_specs["image"][1]))["total"] - 4.9e6) < 0.05e6


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
    s = Setup(pbc, teachers, k=2)
    sizes = param_counts(s)
    assert sizes["student"] == count_parameters(pbc.student())["total"]
    largest = sum(max(t.n_params for t in ts) for ts in teachers.values())
    assert sizes["largest_teachers"] == largest and sizes["ratio_largest"] == pytest.approx(largest / sizes["student"])


def test_run_problem_claims_are_consistent(pbc, tmp_path, monkeypatch):
    monkeypatch.setenv("MMREPRO_CACHE", str(tmp_path))
    r = R.run_problem(pbc, teacher_lrs=[3e-3], teacher_epochs=2, epochs=2, n_trials=1, n_seeds=2, omega_epochs=2,
                      n_boot=30)
    assert set(r.runs) == set(STUDENT_METHODS + ABLATION_METHODS + UNIMODAL) - {"ume"}
    assert all([s.seed for s in runs] == [s.seed for s in r.runs["mind"]] for runs in r.runs.values())  # paired
    y = pbc.data.y[pbc.task][pbc.paired["test"]].numpy()
    # a reported value is the seed mean of the selected configuration's test metric
    assert r.metric("mind", FUSION_HEAD).estimate == pytest.approx(
        np.mean([score("auroc", y, t[FUSION_HEAD], "binary") for t in r.tests["mind"]]))
    with pytest.raises(RuntimeError, match="test is used once"):
        r.runs["mind"][0].evaluate_test()
    again = Students(r.setup)(r.runs["mind"][0].config, r.runs["mind"][0].seed).evaluate_test()  # same seed, same run
    assert np.allclose(again[FUSION_HEAD], r.tests["mind"][0][FUSION_HEAD])
    run = ChapterRun(name="mind", params=Params({}), device="cpu", seed=0, profile="book")
    FD.record_claims(run, r)
    cl = {c["id"]: c for c in run.claims}
    # one claim per baseline, per modality head (vs -3H and vs the teacher), per ablation component, ω, compression
    assert len([i for i in cl if i.startswith("fused-")]) == len(STUDENT_METHODS) - 1
    assert len([i for i in cl if i.startswith("head-")]) == 4 and len([i for i in cl if i.startswith("ablation-")]) == 5
    assert cl["compression-pbc_death"]["passed"] == (r.sizes["ratio_largest"] >= 3)
    assert cl["fused-pbc_death-vs-ts"]["estimate"] == pytest.approx(
        100 * (r.metric("mind", FUSION_HEAD).estimate - r.metric("ts", FUSION_HEAD).estimate))
    assert cl["fused-pbc_death-vs-ts"]["n"] == 2
    assert "Student t over 2 seeds plus a bootstrap over 33 test rows" in cl["fused-pbc_death-vs-ts"]["interval_method"]
    assert len(C.baseline_table(r)) == len(STUDENT_METHODS) and len(C.ablation_table(r)) == 6
    assert len(C.omega_summary(r)) == 6 and C.under_utilised(r) in pbc.modalities
    assert len(C.omega_per_seed(r)) == 12 and cl["omega-pbc_death-balance"]["n"] == 2
    assert len(C.student_check([r], R.LEARNS_MARGIN)) == 4 and len(C.seed_table([r])) == len(STUDENT_METHODS) - 1
    assert len(C.epoch_table([r])) == len(r.runs) and set(C.epoch_table([r])["epochs"]) == {2}
    assert len(C.unimodal_table(r)) == 2 * 3 + len(r.teachers) and len(C.teacher_advantage([r])) == 2
    # the student's encoder on the teachers' rows: its size, their rows; the advantage splits exactly in two
    for mod, uni in zip(pbc.modalities, UNIMODAL):
        alone = [t for t in r.alone_all if t["modality"] == mod]
        teachers = [t for t in r.teachers if t["modality"] == mod]
        assert [t["model"] for t in alone] == [arch_name(pbc.student_specs[mod])]
        assert alone[0]["n_train"] == teachers[0]["n_train"] > len(pbc.paired["train"])
        whole, rows, size = (r.difference(a, b).estimate for a, b in (((R.TEACHER, mod), (uni, mod)),
                             ((R.ALONE_ALL, mod), (uni, mod)), ((R.TEACHER, mod), (R.ALONE_ALL, mod))))
        assert whole == pytest.approx(rows + size)
    assert C.premise_in_words([r]).count("having more rows") == 2
    assert FD.verdict_summary(run.claims)[["holds", "inconclusive", "does not hold"]].to_numpy().sum() == len(
        [c for c in run.claims if c["kind"] == "empirical"])


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
