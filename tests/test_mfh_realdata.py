"""Algorithm 1 on UCI Multiple Features and the Section 3 case study: shapes, determinism, errors."""
import numpy as np
import pytest
import torch

from mmrepro.mfh.case_study import LateFusion, case_study, cnn, summarise_case_study
from mmrepro.mfh.realdata import mfeat_ranking, mfeat_views



def test_mfeat_ranking_table():
    df, sal = mfeat_ranking([0], "mor", "zer", ratios=(0.5,), epochs=20, align_epochs=20, n_permutations=3)
    assert list(df["teacher"]) == ["regular", "general", "random", "specific", "no_kd"]
    assert sal.shape == (1, 6) and float(sal.max()) == 1.0
    assert df["student_acc"].between(0, 100).all()
    # nullifying half the channels changes the teacher
    assert df.loc[df.teacher == "regular", "teacher_acc"].iloc[0] != df.loc[df.teacher == "specific", "teacher_acc"].iloc[0]
    again, _ = mfeat_ranking([0], "mor", "zer", ratios=(0.5,), epochs=20, align_epochs=20, n_permutations=3)
    assert df.equals(again)


def test_mfeat_errors():
    with pytest.raises(ValueError, match="must differ"):
        mfeat_views([0], "fou", "fou")
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        mfeat_ranking([0], "mor", "zer", ratios=(1.0,))


class _Toy:
    def __init__(self, n=60):
        g = torch.Generator().manual_seed(0)
        self.y = {"digit": torch.arange(n) % 10}
        self.x = {"image": torch.rand(n, 1, 12, 12, generator=g), "audio": torch.rand(n, 1, 12, 12, generator=g)}
        self.splits = {"train": torch.arange(40), "val": torch.arange(40, 50), "test": torch.arange(50, n)}


def test_case_study_rows_and_models():
    df = case_study(_Toy(), [0], epochs=1, downsample=2, max_train=30)
    assert list(df["method"]) == ["No-KD", "UM-KD", "CM-KD"]
    s = summarise_case_study(df)
    assert list(s.columns) == ["method", "rho", "teacher_modality", "teacher_acc", "student_acc", "student_std"]
    assert np.isnan(s.loc[0, "teacher_acc"]) and s["student_acc"].between(0, 100).all()
    net = LateFusion(cnn((4,)), cnn((4, 8), pool_every=2))
    assert net(torch.rand(2, 1, 12, 12), torch.rand(2, 1, 12, 12)).shape == (2, 10)


def test_case_study_errors():
    toy = _Toy()
    with pytest.raises(ValueError, match="downsample must be a positive integer"):
        case_study(toy, [0], downsample=0)
    toy.x.pop("image")
    with pytest.raises(ValueError, match="needs modalities 'image' and 'audio'"):
        case_study(toy, [0])
