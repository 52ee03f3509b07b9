"""The MFH chapter's modules: studies (what each experiment trains), report (its tables and figures) and
findings (its claims through the claim contract), on tiny runs."""
from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
import pytest

from mmrepro.papers.mfh import findings, report, studies
from mmrepro.publish import claims as contract
from mmrepro.publish.notebook import ChapterRun, Params

matplotlib.use("Agg")


class Recorder(ChapterRun):
    """The notebook's run handle without myst-nb: glued values are recorded, nothing is displayed."""

    def glue(self, key, value, fmt="{:.3f}"):
        self.record(key, value)
        self.values[key + "__text"] = value if isinstance(value, str) else fmt.format(value)
        return value

    def glue_claims(self, key, *prefixes, display=False):
        self.record(key, [c["id"] for c in self.claims if c["id"].startswith(prefixes or "")])


def recorder(profile: str = "book") -> Recorder:
    return Recorder(name="mfh", params=Params({"profile": profile}), device="cpu", seed=0, profile=profile)


@pytest.fixture(scope="module")
def fig2() -> studies.Sweep:
    return studies.increasing_gamma([0, 1, 2], epochs=20)


def test_slopes_are_per_seed_least_squares():
    x = np.array([0.0, 1.0, 2.0])
    values = np.stack([2 * x + 1, -x], 1)                       # (settings, seeds)
    assert np.allclose(findings.slopes(x, values), [2.0, -1.0])


def test_scale_reasons_only_at_the_papers_scale():
    book = dict(epochs=1000, n_seeds=10, real_epochs=300, align_epochs=300, av_epochs=5, av_teacher_epochs=10)
    assert findings.scale_reasons(book) == findings.Reasons(None, None, None)
    small = findings.scale_reasons({**book, "n_seeds": 9, "align_epochs": 100, "av_epochs": 1})
    assert small.synthetic and small.real and small.case_study


def test_rows_match_strings_exactly_and_floats_closely():
    df = pd.DataFrame({"teacher": ["a", "a", "b"], "rho": [0.5 + 1e-12, 0.5, 0.5], "seed": [1, 0, 0],
                       "acc": [1.0, 2.0, 3.0]})
    assert findings._rows(df, "acc", teacher="a", rho=0.5).tolist() == [2.0, 1.0]   # sorted by seed
    assert findings._rows(df, "acc", teacher="c").size == 0


def test_figure2_study_table_and_claims(fig2):
    assert fig2.acc["kd_regular"].shape == (6, 3)
    table = report.figure2_table(fig2)
    assert list(table.columns) == ["γ", "teacher", "no-KD student", "KD student", "KD student s.d.", "KD gain"]
    assert np.allclose(table["KD gain"], (table["KD student"] - table["no-KD student"]), atol=0.011)
    run = recorder()
    findings.figure2(run, fig2, reason=None)
    ids = [c["id"] for c in run.claims]
    assert ids == ["mfh-fig2-gain-trend", "mfh-fig2-gain-gamma1", "mfh-fig2-no-gain-gamma0"]
    for c in run.claims:
        contract.validate(c)
    gain1 = fig2.acc["kd_regular"][-1] - fig2.acc["no_kd"][-1]
    assert run.claims[1]["estimate"] == pytest.approx(gain1.mean())
    fig = report.accuracy_figure(fig2, "gamma", "gamma", "Figure 2")
    assert len(fig.axes) == 2


def test_a_reason_makes_claims_not_comparable(fig2):
    run = recorder()
    findings.figure2(run, fig2, reason="too small")
    assert {c["verdict"] for c in run.claims} == {contract.NOT_COMPARABLE}


def test_table2_sweep_and_table():
    t2 = studies.table2_sweep([0, 1], epochs=10)
    assert set(t2.results) == {"teacher_regular", "teacher_general", "kd_regular", "kd_general", "no_kd"}
    table = report.table2_table(t2, findings.PAPER_T2)
    assert table.shape == (3, 5) and table.index.tolist() == ["0.25", "0.50", "0.75"]
    ours = report.table2_means(t2).loc[0, "No-KD"]
    assert table.loc["0.25", "No-KD"] == f"{ours:.2f} (59.29)"   # ours (paper)
    alt = studies.table2_sweep([0, 1], epochs=10, specific=(30,), shared=(10,))
    assert len(report.table2_row(alt)) == 5 and float(alt.batch.gamma[0]) == pytest.approx(0.25)


def test_lemma_checks_pass_and_record():
    lemma1 = studies.lemma1_numeric(np.array([0.1, 1.0, 5.0]))
    assert lemma1.relative_error < 1e-8 and lemma1.dense_below
    lemma2 = studies.lemma2_random(0, shapes=((3, 3, 10, 1.0),), trials=20)
    assert lemma2.loc[0, "holds"] == 20
    run = recorder()
    findings.lemmas(run, lemma1, lemma2)
    assert [c["verdict"] for c in run.claims] == [contract.PASSES, contract.PASSES]


def test_venn_setting_refuses_a_modality_without_decisive_features():
    assert studies.venn_setting([0, 1], gamma=0.0, alpha=0.0, epochs=5) is None   # the teacher's a would hold nothing
    assert studies.venn_setting([0, 1], gamma=0.0, alpha=1.0, epochs=5) is None   # the student's b would hold nothing
    assert studies.venn_setting([0, 1], gamma=0.0, alpha=0.5, epochs=5)[1] == (0, 10, 10)
    row, counts = studies.venn_setting([0, 1], gamma=0.5, alpha=0.25, epochs=5)
    assert counts == (10, 5, 5) and "kd_regular_mean" in row


def test_permutation_grid_includes_the_chapters_m():
    assert studies.permutation_grid(50) == [1, 3, 10, 30, 50]
    assert studies.permutation_grid(3) == [1, 3, 10, 30]


# ------------------------------------------------------------------------------------ evidence and premises

def test_share_evidence_all_on_the_bound_is_an_exact_binomial_bound():
    from mmrepro.papers.mfh.evidence import share_evidence

    ev = share_evidence(np.ones(10))
    assert ev.estimate == 1.0 and ev.interval[1] == 1.0
    assert ev.interval[0] == pytest.approx(0.025 ** (1 / 10))           # Clopper-Pearson with 10 of 10
    assert share_evidence(np.ones(40)).interval[0] > 0.9                 # 40 perfect seeds decide "> 0.9"
    assert share_evidence(np.zeros(10)).interval == pytest.approx((0.0, 1 - 0.025 ** (1 / 10)))
    mixed = share_evidence(np.r_[np.ones(9), 0.8])                      # Student t on the logit scale
    assert 0 < mixed.interval[0] < mixed.estimate < mixed.interval[1] < 1
    record = contract.empirical(id="x", chapter="mfh", paper="MFH", where="w", paper_value=None, criterion="c",
                                evidence=share_evidence(np.ones(10)), threshold=0.9, direction="above")
    assert record["outcome"] == contract.UNDECIDED and record["runs_to_decide"]["units"]["seeds"] > 10


def test_rows_evidence_counts_seeds_and_test_rows():
    from mmrepro.core.stats import paired_evidence
    from mmrepro.papers.mfh.evidence import rows_evidence

    rng = np.random.default_rng(0)
    a, b = rng.random((5, 300)) < 0.8, rng.random((5, 300)) < 0.7
    ev = rows_evidence(a, b)
    assert ev.estimate == pytest.approx(100 * (a.mean() - b.mean()))
    seeds_only = paired_evidence(100 * a.mean(1), 100 * b.mean(1))
    assert np.diff(ev.interval)[0] > np.diff(seeds_only.interval)[0]      # the rows add their variance
    assert [p["unit"] for p in ev.design()["parts"]] == ["seeds", "test rows"]
    assert rows_evidence(a).estimate == pytest.approx(100 * a.mean())
    with pytest.raises(ValueError, match="same seeds and test rows"):
        rows_evidence(a, b[:, :10])


def test_kept_share_evidence():
    from mmrepro.papers.mfh.evidence import kept_share, kept_share_evidence

    rng = np.random.default_rng(1)
    reg_d, reg_g = rng.random((4, 200)) < 0.9, rng.random((4, 200)) < 0.9
    gen_d, gen_g = rng.random((4, 200)) < 0.85, rng.random((4, 200)) < 0.6
    ev = kept_share_evidence((gen_d, reg_d), (gen_g, reg_g), n_boot=200)
    expected = (kept_share(gen_d, reg_d, 10.0) - kept_share(gen_g, reg_g, 50.0)).mean()
    assert ev.estimate == pytest.approx(expected) and ev.interval[0] < expected < ev.interval[1]
    assert ev.estimate > 0.3                                             # keeps the digit, loses the group


def _case(cm_teacher: float, seeds=(0, 1, 2, 3), n=200) -> pd.DataFrame:
    rng = np.random.default_rng(2)
    rows = []
    for s in seeds:
        teachers = {"UM-KD": rng.random(n) < 0.8, "CM-KD": rng.random(n) < cm_teacher}
        for method, rho in (("No-KD", 1.0), ("UM-KD", 0.0), ("CM-KD", 0.0), ("UM-KD", 0.5), ("CM-KD", 0.5)):
            t = teachers.get(method)
            hits = rng.random(n) < 0.7
            rows.append(dict(seed=s, method=method, rho=rho, teacher_modality="-",
                             teacher_acc=np.nan if t is None else 100 * t.mean(), student_acc=100 * hits.mean(),
                             teacher_hits=t, student_hits=hits))
    return pd.DataFrame(rows)


def test_case_study_premise_gates_the_teacher_comparison():
    run = recorder()
    findings.case_study(run, _case(cm_teacher=0.95), reason=None)
    by = {c["id"]: c for c in run.claims}
    assert by["mfh-table1-teacher"]["outcome"].startswith("reproduces")
    assert "reason" not in by["mfh-table5-cm-no-better-rho0.5"] and by["mfh-table5-cm-no-better-rho0.5"]["headline"]
    run = recorder()
    findings.case_study(run, _case(cm_teacher=0.8), reason=None)        # no better teacher: no premise
    by = {c["id"]: c for c in run.claims}
    assert not by["mfh-table1-teacher"]["outcome"].startswith("reproduces")
    for rho in ("0", "0.5"):
        claim = by[f"mfh-table5-cm-no-better-rho{rho}"]
        assert claim["outcome"] == contract.OUT_OF_SCOPE and claim["reason"].startswith("premise absent")
    for c in run.claims:
        contract.validate(c)


def test_speaker_part_premise_and_fig6_ceiling():
    rng = np.random.default_rng(3)
    rows = []
    for s in range(4):
        for role, p in (("teacher", 0.95), ("student", 0.5)):
            h = (rng.random(300) < p).astype(float)
            rows.append(dict(dataset="AV digits", label="speaker group (2)", role=role, modality=role, seed=s,
                             accuracy=100 * h.mean(), hits=h))
    run = recorder()
    assert findings.speaker_part(run, pd.DataFrame(rows), reason=None)
    assert run.claims[0]["id"] == findings.SPEAKER_PART and run.values["grp_img"] == pytest.approx(50, abs=6)
    # Figure 6 on Gaussian data: a ranking already perfect with one permutation leaves nothing to improve
    prec_m = pd.DataFrame([dict(M=m, gamma=g, seed=s, precision=1.0) for m in (1, 50) for g in (0.25, 0.5)
                           for s in range(10)])
    findings.permutations_gaussian(run, prec_m, [1, 50], reason=None)
    by = {c["id"]: c for c in run.claims}
    assert by["mfh-fig6-gauss-room"]["outcome"] == contract.UNDECIDED
    assert by["mfh-fig6-gauss-precision"]["reason"].startswith("premise absent")


def test_report_tables_for_people():
    table = pd.DataFrame({"name": ["a", "b"], "x": [154281.0, np.nan], "n": [3, 4]})
    shown = report.for_people(table, contract.number)
    assert shown["x"].tolist() == ["154,281", "—"] and shown["name"].tolist() == ["a", "b"]
    summary = pd.DataFrame({"gamma": [0.0, 1.0], "lam": [1.5, 1.5], "eps_star": [2.0, 0.0], "bound": [631.2, 0.0],
                            "risk_gd": [0.1, 0.0], "risk_trivial": [0.2, 0.2]})
    theorem = report.theorem_table(summary)
    assert list(theorem.columns) == ["λ", "ε*", "bound n f(ε*)", "risk after gradient descent", "risk of θ_s = 0"]
    assert theorem.index.tolist() == ["0.00", "1.00"]
    cs = report.case_table(_case(0.95), findings.PAPER_T5)
    assert list(cs.columns) == ["method", "ρ", "teacher", "teacher acc. (%)", "student acc. (%)"]
    assert cs.loc[0, "teacher acc. (%)"] == "—" and cs.loc[0, "student acc. (%)"].endswith("(68.4)")
