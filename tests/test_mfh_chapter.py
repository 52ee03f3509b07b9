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
    assert list(table.columns) == ["gamma", "teacher", "no-KD student", "KD student", "KD student s.d.", "gain"]
    assert np.allclose(table["gain"], (table["KD student"] - table["no-KD student"]), atol=0.011)
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
    assert list(table.columns.get_level_values(0).unique()) == ["reproduced", "paper"]
    assert table.shape == (3, 10)
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
