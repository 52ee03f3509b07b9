"""The comparisons the exercises' checks make: wrong, unfinished and borrowed answers fail with a reason."""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from mmrepro.papers.mfh.theory import lemma1_max
from mmrepro.publish.exercises import agree, own, same


def closed_form(eps):
    eps = np.asarray(eps, dtype=float)
    safe = np.where(eps > 0, eps, 1.0)
    u = safe / -np.expm1(-safe)
    f = np.where(eps > 0, (u - 1) - np.log(u), 0.0)
    return float(f) if f.ndim == 0 else f


def test_a_right_answer_agrees(capsys):
    agree(closed_form, lemma1_max, [(0.0,), (2.0,), (np.array([0.0, 1e-6, 5.0]),)], atol=1e-12)
    assert "closed_form agrees with mmrepro.papers.mfh.theory.lemma1_max on 3 input(s)" in capsys.readouterr().out


def test_a_reference_defined_in_the_notebook_is_named_without_its_module(capsys):
    def notebook_reference(eps):
        return lemma1_max(eps)

    notebook_reference.__module__ = "__main__"  # as a function defined in a notebook cell
    agree(closed_form, notebook_reference, [(2.0,)], atol=1e-12)
    assert "closed_form agrees with notebook_reference on 1 input(s)" in capsys.readouterr().out


@pytest.mark.parametrize("answer, message", [
    (lambda eps: None, "got None. Is the exercise done"),
    (lambda eps: eps / (1 - np.exp(-eps)) - 1 - np.log(eps / (1 - np.exp(-eps))), "expected 0.0, got nan"),
    (lambda eps: np.atleast_1d(closed_form(eps)), "expected shape (), got shape (1,)"),
    (lambda eps: "0.0", "expected a number or an array"),
])
@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the naive closed form divides 0 by 0
def test_wrong_or_unfinished_answers_fail_with_the_input_named(answer, message):
    with pytest.raises(AssertionError, match=re.escape(message)) as err:
        agree(answer, lemma1_max, [(2.0,), (0.0,)], atol=1e-12)
    assert "(0.0)" in str(err.value) or "(2.0)" in str(err.value)


def test_an_answer_must_raise_where_the_package_does():
    def no_check(eps):
        return closed_form(abs(eps))

    def wrong_error(eps):
        raise TypeError("negative")

    with pytest.raises(AssertionError, match="returned a value; the package raises ValueError"):
        agree(no_check, lemma1_max, [(-1.0,)])
    with pytest.raises(AssertionError, match="raised TypeError: negative; the package raises ValueError"):
        agree(wrong_error, lemma1_max, [(-1.0,)])

    def checked(eps):
        if eps < 0:
            raise ValueError("eps must be >= 0")
        return closed_form(eps)

    agree(checked, lemma1_max, [(-1.0,), (1.0,)], atol=1e-12)


def test_borrowed_answers_fail():
    def borrowed(eps):
        return lemma1_max(eps)

    with pytest.raises(AssertionError, match=r"uses \['lemma1_max'\]"):
        agree(borrowed, lemma1_max, [(1.0,)])
    with pytest.raises(AssertionError, match="is the package's own function"):
        agree(lemma1_max, lemma1_max, [(1.0,)])
    with pytest.raises(AssertionError, match=r"uses \['permutation_salience'\]"):
        own(lambda *a: __import__("mmrepro").mfh.ranking.permutation_salience(*a), ["permutation_salience"])


def test_same_compares_structures_and_tensors():
    same({"a": torch.tensor([1.0, 2.0]), "b": (1, 0.5)}, {"a": np.array([1.0, 2.0]), "b": (1, 0.5)}, "x")
    same(torch.tensor(float("nan")), float("nan"), "nan equals nan")
    with pytest.raises(AssertionError, match=re.escape("x['b']: 1 of 2 values differ; the first, at flat index 1: "
                                                       "expected 0.5, got 0.6")):
        same({"a": 1.0, "b": (1, 0.6)}, {"a": 1.0, "b": (1, 0.5)}, "x")
    with pytest.raises(AssertionError, match="expected a dict with keys"):
        same({"a": 1.0}, {"a": 1.0, "b": 2.0}, "x")
    with pytest.raises(AssertionError, match="2 of 3 values differ; the first, at flat index 1: expected 2.5, got 2.0"):
        same(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.5, 3.5]), "x")
