"""MFH on real paired data (AV digits with a speaker-group label part) and the Section 3 case study."""
import numpy as np
import pytest
import torch

from mmrepro.papers.mfh import realdata
from mmrepro.papers.mfh.case_study import LateFusion, case_study, cnn, summarise_case_study


@pytest.fixture(scope="module")
def views():
    return realdata.av_speaker([0, 1], n_components=8)


def test_av_speaker_label_parts_and_features(views):
    tr = views.x["train"]
    assert tr["a"].shape == tr["b"].shape == (2, 2400, 8) and views.n_classes == 20
    assert torch.equal(views.y["train"], 2 * views.digit["train"] + views.group["train"])
    assert set(views.group["test"].unique().tolist()) == {0, 1}
    assert torch.allclose(tr["a"].mean(1), torch.zeros(2, 8), atol=1e-4)
    assert torch.allclose(tr["b"].std(1), torch.ones(2, 8), atol=1e-3)
    assert views.joint["train"]["a"].shape == (2, 2400, 8)
    with pytest.raises(ValueError, match="n_components"):
        realdata.pca_features(torch.rand(10, 4), torch.arange(5), 6)


def test_known_part_teachers_and_distil_trace(views):
    df = realdata.known_part_teachers(views, rhos=(0.0,), epochs=150)
    assert list(df["teacher"].unique()) == ["regular", "general", "specific", "no_kd"]
    assert df[["test", "test_digit"]].stack().between(0, 100).all()
    # a teacher that keeps only the speaker part teaches no digits (rho = 0): chance-level digit accuracy
    spec = df[df.teacher == "specific"]["test_digit"].mean()
    assert spec < 25 < df[df.teacher == "regular"]["test_digit"].mean()
    again = realdata.known_part_teachers(views, rhos=(0.0,), epochs=150)
    assert df.equals(again)
    soft = torch.full((1, 2, 2400, 20), 1.0 / 20)
    _, trace = realdata.distil(views.x["train"]["b"], views.y["train"], soft, [0, 1], 5, rho=0.5, epochs=40,
                               trace_every=10)
    obj = trace.groupby("epoch")["objective"].mean().to_numpy()
    assert len(obj) == 4 and (np.diff(obj) < 0).all()


def test_ranking_and_permutation_sweeps(views):
    df, sal, trace = realdata.ranking_sweep(views, ratios=(0.5,), sweep=(0.25,), epochs=10, align_epochs=10,
                                            n_permutations=2, trace_every=5)
    names = df.drop_duplicates(["teacher", "r"])[["teacher", "r"]].values.tolist()
    assert names == [["regular", 0.0], ["general", 0.25], ["general", 0.5], ["specific", 0.5], ["random", 0.5],
                     ["plain", 0.0], ["no_kd", 0.0]]
    assert sal.shape == (2, 8) and set(trace["epoch"]) == {5, 10}
    pm = realdata.permutation_sweep(views, ms=(1, 2), epochs=10, align_epochs=10)
    assert len(pm) == 4 and pm[pm.m == 2]["overlap_with_largest_m"].eq(1.0).all()


def test_shared_weight_and_specific_teacher(views):
    t3 = realdata.shared_weight(views, epochs=10)
    assert list(t3["teacher"].unique()) == ["regular", "shared", "no_kd"]
    t7 = realdata.specific_teacher(views, epochs=10)
    assert list(t7["teacher"].unique()) == ["regular", "specific"] and t7["teacher_acc"].between(0, 100).all()


class _Toy:
    def __init__(self, n=60):
        g = torch.Generator().manual_seed(0)
        self.y = {"digit": torch.arange(n) % 10}
        self.x = {"image": torch.rand(n, 1, 12, 12, generator=g), "audio": torch.rand(n, 1, 12, 12, generator=g)}
        self.splits = {"train": torch.arange(40), "val": torch.arange(40, 50), "test": torch.arange(50, n)}


def test_case_study_rows_and_models():
    df = case_study(_Toy(), [0], epochs=1, downsample=2, max_train=30, rhos=(0.0, 0.5))
    assert list(df["method"]) == ["No-KD", "UM-KD", "CM-KD", "UM-KD", "CM-KD"]
    assert df["rho"].tolist() == [1.0, 0.0, 0.0, 0.5, 0.5]
    s = summarise_case_study(df)
    assert list(s.columns) == ["method", "rho", "teacher_modality", "teacher_acc", "student_acc", "student_std"]
    assert np.isnan(s.loc[0, "teacher_acc"]) and s["student_acc"].between(0, 100).all() and len(s) == 5
    net = LateFusion(cnn((4,)), cnn((4, 8), pool_every=2))
    assert net(torch.rand(2, 1, 12, 12), torch.rand(2, 1, 12, 12)).shape == (2, 10)


def test_case_study_errors():
    toy = _Toy()
    with pytest.raises(ValueError, match="downsample must be a positive integer"):
        case_study(toy, [0], downsample=0)
    toy.x.pop("image")
    with pytest.raises(ValueError, match="needs modalities 'image' and 'audio'"):
        case_study(toy, [0])


def test_candidate_table_measures_each_dataset_on_both_modalities():
    df = realdata.candidate_table([0], epochs=5)
    assert set(df["dataset"]) == {"AV digits", "Multiple Features", "PBC"}
    assert (df.groupby(["dataset", "label"])["role"].apply(lambda r: sorted(r)) .map(tuple)
            == ("student", "teacher")).all()
    assert df["accuracy"].between(0, 100).all()
