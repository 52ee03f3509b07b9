"""What the chapters' exercise checks call: compare a student's function with the package's own.

An exercise asks for a function the package already implements (Lemma 1's closed form, MIND's eq. 7,
MILES's Algorithm 1 ...). Its checks run the student's function and the package's on the same
inputs, edge cases included, and compare the results (:func:`agree`), or compare a result with
values the package computed another way (:func:`same`). A check fails with an ``AssertionError``
that names the input and the difference, which is what the grader (otter-grader) records; :func:`own`
fails an answer that merely calls the package's implementation.
"""
from __future__ import annotations

import copy
import types
from typing import Any, Callable, Iterable, Sequence

import numpy as np

__all__ = ["agree", "same", "own", "used_names"]


def _numbers(value: Any) -> np.ndarray | None:
    """A number, array or tensor as a float/bool numpy array; None for anything else."""
    if hasattr(value, "detach"):  # torch tensor
        value = value.detach().cpu().numpy()
    if isinstance(value, (bool, int, float, np.number, np.bool_, np.ndarray)):
        return np.asarray(value)
    if isinstance(value, (list, tuple)) and value and all(
            isinstance(v, (bool, int, float, np.number, np.bool_)) for v in value):
        return np.asarray(value)
    return None


def _short(value: Any, limit: int = 160) -> str:
    """A compact description of an input or a result for an error message: arrays by their shape."""
    if hasattr(value, "shape") and getattr(value, "ndim", 0) == 1 and len(value) <= 8:
        items = value.tolist()
        text = f"{type(value).__name__}({[float(f'{v:.6g}') if isinstance(v, float) else v for v in items]})"
    elif hasattr(value, "shape") and getattr(value, "ndim", 0) > 0:
        text = f"{type(value).__name__}({'x'.join(map(str, value.shape))})"
    elif isinstance(value, dict):
        text = "{" + ", ".join(f"{k!r}: {_short(v, 40)}" for k, v in value.items()) + "}"
    elif isinstance(value, (list, tuple)) and value and any(hasattr(v, "shape") for v in value):
        text = f"[{len(value)} x {_short(value[0], 40)}]"
    elif "\n" in repr(value):  # a model or another object that prints on many lines
        text = f"<{type(value).__name__}>"
    else:
        text = " ".join(repr(value).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def same(got: Any, expected: Any, what: str, rtol: float = 1e-6, atol: float = 1e-9) -> None:
    """Assert that ``got`` equals ``expected``: numbers, arrays and tensors to ``rtol``/``atol`` (NaN
    equals NaN, shapes must match), dicts key by key, tuples and lists item by item, anything else
    with ``==``. ``what`` names the compared value in the error message."""
    if got is None and expected is not None:
        raise AssertionError(f"{what}: got None. Is the exercise done (does the function return its result)?")
    expected_numbers = _numbers(expected)
    if expected_numbers is not None:
        got_numbers = _numbers(got)
        if got_numbers is None:
            raise AssertionError(f"{what}: expected a number or an array like {_short(expected)}, "
                                 f"got {type(got).__name__} {_short(got)}")
        if got_numbers.shape != expected_numbers.shape:
            raise AssertionError(f"{what}: expected shape {expected_numbers.shape}, got shape {got_numbers.shape}")
        exp = expected_numbers.astype(float)
        obs = got_numbers.astype(float)
        close = np.isclose(obs, exp, rtol=rtol, atol=atol, equal_nan=True)
        if not close.all():
            where = np.flatnonzero(~close.reshape(-1))
            i = int(where[0])
            differ = f"expected {float(exp.reshape(-1)[i])!r}, got {float(obs.reshape(-1)[i])!r}"
            if close.size > 1:
                differ = f"{len(where)} of {close.size} values differ; the first, at flat index {i}: {differ}"
            raise AssertionError(f"{what}: {differ} (tolerance rtol={rtol}, atol={atol})")
        return
    if isinstance(expected, dict):
        if not isinstance(got, dict) or set(got) != set(expected):
            raise AssertionError(f"{what}: expected a dict with keys {sorted(expected)}, got {_short(got)}")
        for key in expected:
            same(got[key], expected[key], f"{what}[{key!r}]", rtol, atol)
        return
    if isinstance(expected, (tuple, list)):
        if not isinstance(got, (tuple, list)) or len(got) != len(expected):
            raise AssertionError(f"{what}: expected {len(expected)} items like {_short(expected)}, got {_short(got)}")
        for i, (g, e) in enumerate(zip(got, expected)):
            same(g, e, f"{what}[{i}]", rtol, atol)
        return
    if got != expected:
        raise AssertionError(f"{what}: expected {_short(expected)}, got {_short(got)}")


def _names(code: types.CodeType) -> set[str]:
    """Global and attribute names a function's code (and the functions defined inside it) uses."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names(const)
    return names


def used_names(function: Any) -> set[str]:
    """The global and attribute names ``function``'s code uses (empty for a callable without code); a
    student's function graded in its own process (:class:`mmrepro.publish.grading.RemoteFunction`)
    brings them along as ``used_names``."""
    if isinstance(getattr(function, "used_names", None), frozenset):
        return set(function.used_names)
    code = getattr(function, "__code__", None)
    return _names(code) if isinstance(code, types.CodeType) else set()


def own(student: Any, forbid: Iterable[str] = ()) -> None:
    """Assert that ``student`` is a function of the student's own: not one of the package's, and not using
    the names in ``forbid`` (the package's implementation of the exercise)."""
    if not callable(student):
        raise AssertionError(f"expected a function, got {type(student).__name__} {_short(student)}")
    if str(getattr(student, "__module__", "")).startswith("mmrepro"):
        raise AssertionError(f"{student.__name__} is the package's own function: write your own")
    used = sorted(set(forbid) & used_names(student))
    if used:
        raise AssertionError(f"{student.__name__} uses {used}, the package's implementation of this exercise: "
                             "write it yourself")


def agree(student: Callable, reference: Callable, cases: Sequence[tuple], rtol: float = 1e-6,
          atol: float = 1e-9, forbid: Iterable[str] = ()) -> None:
    """Assert that ``student(*case)`` equals ``reference(*case)`` (see :func:`same`) for every case.

    Where the reference raises an exception the student's function must raise one of the same type.
    Each call gets its own copy of the inputs. The student's function may not use the names in
    ``forbid``, nor the reference's own name when the reference comes from this package."""
    reference_name = [reference.__name__] if str(getattr(reference, "__module__", "")).startswith("mmrepro") else []
    own(student, [*reference_name, *forbid])
    name = getattr(student, "__name__", "the function")
    for case in cases:
        shown = ", ".join(_short(a, 60) for a in case)
        try:
            expected = reference(*copy.deepcopy(case))
        except Exception as err:  # the package rejects this input: so must the student
            try:
                student(*copy.deepcopy(case))
            except type(err):
                continue
            except Exception as other:
                raise AssertionError(f"{name}({shown}) raised {type(other).__name__}: {other}; the package raises "
                                     f"{type(err).__name__} ({err})") from None
            raise AssertionError(f"{name}({shown}) returned a value; the package raises {type(err).__name__} "
                                 f"({err})") from None
        same(student(*copy.deepcopy(case)), expected, f"{name}({shown})", rtol, atol)
    module, ref_name = getattr(reference, "__module__", None), getattr(reference, "__name__", "the reference")
    where = ref_name if module in (None, "__main__") else f"{module}.{ref_name}"  # defined in the notebook itself
    print(f"{name} agrees with {where} on {len(cases)} input(s)")
