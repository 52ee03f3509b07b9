"""Argument checks shared by the entry points: named, with what was wrong and what is accepted."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mmrepro.common.checks import MAX_SEED, available_cores, check_int, check_number, check_seed, check_threads
from mmrepro.common.device import seed_everything, set_threads


@pytest.mark.parametrize("call, error, match", [
    (lambda: check_int("k", True), TypeError, r"k must be an integer, got True \(bool\)"),
    (lambda: check_int("k", "3", 1), TypeError, r"k must be an integer >= 1, got '3' \(str\)"),
    (lambda: check_int("k", 0, 1, 5), ValueError, r"k=0 is out of range: it must be an integer in \[1, 5\]"),
    (lambda: check_number("lr", float("inf"), 0, low_open=True), ValueError, r"lr=inf is out of range: .* > 0"),
    (lambda: check_number("p", 1.0, 0, 1, high_open=True), ValueError, r"p=1.0 is out of range: .* in \[0, 1\)"),
    (lambda: check_number("p", None), TypeError, r"p must be a number"),
    (lambda: check_seed(2**64), ValueError, rf"seed=18446744073709551616 is out of range: it must be an integer in "
                                            rf"\[0, {MAX_SEED}\]"),
    (lambda: seed_everything(-3), ValueError, r"seed=-3 is out of range"),
    (lambda: seed_everything(1.5), TypeError, r"seed must be an integer"),
])
def test_checks_name_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_numpy_integers_are_integers_and_large_seeds_within_bounds_work():
    assert check_int("n", np.int64(3), 1) == 3 and check_number("x", np.float32(0.5), 0, 1) == 0.5
    seed_everything(MAX_SEED)
    from mmrepro.core.data import load_dataset

    with pytest.raises(ValueError, match=r"seed=4294967296 is out of range"):
        load_dataset("synthetic_bimodal", seed=MAX_SEED + 1)


def test_threads_are_capped_by_the_cores_here():
    cores = available_cores()
    with pytest.raises(ValueError, match=rf"threads={cores + 1} is out of range: this machine gives the process "
                                         rf"{cores} CPU core\(s\); use an integer in \[1, {cores}\]"):
        set_threads(cores + 1)
    with pytest.raises(ValueError, match="threads=0 is out of range"):
        check_threads(0)
    before = torch.get_num_threads()
    try:
        assert set_threads(1) == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
