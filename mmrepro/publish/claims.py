"""The claim contract: how a chapter states a paper's claim and how the book decides it.

A claim is one comparison. There are two kinds:

* ``empirical`` -- an effect measured over runs or test rows. Its record carries the estimate, a
  95 % ``interval``, ``n`` (independent units behind the interval), ``interval_method``, a
  ``threshold`` and a ``direction``: ``"above"`` / ``"below"`` when the paper says the true value
  lies above / below the threshold, ``"within"`` (with ``threshold = [low, high]``) when the paper
  says two things are equal up to a stated margin. The verdict is computed here, never passed in:

  ============  ===========================  ============================  ===================
  direction     holds                        does not hold                 otherwise
  ============  ===========================  ============================  ===================
  above t       low > t                      high <= t                     inconclusive
  below t       high < t                     low >= t                      inconclusive
  within [a,b]  a <= low and high <= b       high < a or low > b           inconclusive
  ============  ===========================  ============================  ===================

  A setting too far from the paper's for the comparison to mean anything is recorded with a
  ``reason``; its verdict is then "not comparable at this scale" (whatever the interval says).

* ``check`` -- an exact identity or proof-style check (a closed form against a numerical maximum,
  a bound in every trial, an equivalence of two code paths, parameter counts): passes or fails.

:func:`validate` re-derives every verdict from its fields; the scorecard refuses a results file
whose verdict and interval disagree, or a record with a field missing.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

HOLDS, FAILS, INCONCLUSIVE, NOT_COMPARABLE = "holds", "does not hold", "inconclusive", "not comparable at this scale"
EMPIRICAL_VERDICTS = (HOLDS, FAILS, INCONCLUSIVE, NOT_COMPARABLE)
PASSES, FAILS_CHECK = "passes", "fails"
CHECK_VERDICTS = (PASSES, FAILS_CHECK)
DIRECTIONS = ("above", "below", "within")
CLAIM_KINDS = ("empirical", "check")

COMMON = ("id", "chapter", "paper", "where", "paper_value", "criterion", "kind", "verdict")
EMPIRICAL_FIELDS = (*COMMON, "estimate", "interval", "n", "interval_method", "threshold", "direction")
CHECK_FIELDS = (*COMMON, "observed")


class ClaimError(ValueError):
    """A claim record breaks the contract (a field missing or malformed, or a verdict given by hand)."""


def _fail(claim_id: Any, message: str) -> ClaimError:
    return ClaimError(f"claim {claim_id!r}: {message}")


def _number(claim_id: Any, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _fail(claim_id, f"field {name!r} must be a finite number, got {value!r}")
    return float(value)


def _pair(claim_id: Any, name: str, value: Any) -> tuple[float, float]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise _fail(claim_id, f"field {name!r} must be [low, high], got {value!r}")
    lo, hi = (_number(claim_id, name, v) for v in value)
    if lo > hi:
        raise _fail(claim_id, f"field {name!r} has low {lo} above high {hi}")
    return lo, hi


def decide(interval: tuple[float, float], threshold: float | tuple[float, float], direction: str) -> str:
    """The verdict of an empirical claim from its interval (the table in the module docstring)."""
    lo, hi = interval
    if direction == "above":
        return HOLDS if lo > threshold else FAILS if hi <= threshold else INCONCLUSIVE
    if direction == "below":
        return HOLDS if hi < threshold else FAILS if lo >= threshold else INCONCLUSIVE
    if direction == "within":
        a, b = threshold
        return HOLDS if a <= lo and hi <= b else FAILS if hi < a or lo > b else INCONCLUSIVE
    raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")


def _check_common(record: Mapping[str, Any], fields: tuple[str, ...]) -> None:
    cid = record.get("id")
    if not isinstance(cid, str) or not cid or any(c.isspace() for c in cid):
        raise ClaimError(f"claim id must be a non-empty string without spaces, got {cid!r}")
    missing = [f for f in fields if f not in record]
    if missing:
        raise _fail(cid, f"field(s) {missing} missing; a {record.get('kind', '?')} claim needs {list(fields)}")
    for name in ("paper", "where", "criterion"):
        if not isinstance(record[name], str) or not record[name].strip():
            raise _fail(cid, f"field {name!r} must be a non-empty string")


def validate(record: Mapping[str, Any]) -> str:
    """Check one claim record against the contract and return its verdict, re-derived from its fields.

    Raises :class:`ClaimError` naming the claim and the field when a field is missing or malformed,
    or when the recorded verdict is not the one its fields give."""
    cid = record.get("id")
    kind = record.get("kind")
    if kind not in CLAIM_KINDS:
        raise _fail(cid, f"field 'kind' must be one of {CLAIM_KINDS}, got {kind!r}")
    if kind == "check":
        _check_common(record, CHECK_FIELDS)
        if not isinstance(record.get("passed"), bool):
            raise _fail(cid, f"field 'passed' must be true or false, got {record.get('passed')!r}")
        expected = PASSES if record["passed"] else FAILS_CHECK
    else:
        _check_common(record, EMPIRICAL_FIELDS)
        direction = record["direction"]
        if direction not in DIRECTIONS:
            raise _fail(cid, f"field 'direction' must be one of {DIRECTIONS}, got {direction!r}")
        threshold = (_pair(cid, "threshold", record["threshold"]) if direction == "within"
                     else _number(cid, "threshold", record["threshold"]))
        reason = record.get("reason")
        if reason is not None and (not isinstance(reason, str) or not reason.strip()):
            raise _fail(cid, "field 'reason' must be a sentence saying why the setting is not comparable")
        if reason is None or record.get("estimate") is not None:
            _number(cid, "estimate", record["estimate"])
            interval = _pair(cid, "interval", record["interval"])
            n = record["n"]
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise _fail(cid, f"field 'n' must be a positive int (independent units), got {n!r}")
            if not isinstance(record["interval_method"], str) or not record["interval_method"].strip():
                raise _fail(cid, "field 'interval_method' must say how the interval was computed")
        expected = NOT_COMPARABLE if reason is not None else decide(interval, threshold, direction)
    if record["verdict"] != expected:
        raise _fail(cid, f"recorded verdict {record['verdict']!r} contradicts its fields, which give {expected!r}")
    return expected


def empirical(*, id: str, chapter: str, paper: str, where: str, paper_value: Any, criterion: str, evidence: Any,
              threshold: float | tuple[float, float], direction: str, unit: str = "", reason: str | None = None
              ) -> dict[str, Any]:
    """An empirical claim record with its verdict decided from ``evidence`` (a :class:`mmrepro.core.stats.Evidence`;
    None only together with a ``reason``)."""
    record: dict[str, Any] = {"id": id, "chapter": chapter, "paper": paper, "where": where,
                              "paper_value": paper_value, "criterion": criterion, "kind": "empirical",
                              "threshold": list(threshold) if isinstance(threshold, (tuple, list)) else threshold,
                              "direction": direction, "unit": unit}
    if evidence is None:
        if reason is None:
            raise _fail(id, "an empirical claim needs evidence (estimate, interval, n); without it, give a reason "
                            "why the setting is not comparable")
        record.update(estimate=None, interval=None, n=None, interval_method=None)
    else:
        record.update(estimate=float(evidence.estimate), interval=[float(v) for v in evidence.interval],
                      n=int(evidence.n), interval_method=evidence.method)
    if reason is not None:
        record["reason"] = reason
        record["verdict"] = NOT_COMPARABLE
    else:
        limits = tuple(threshold) if direction == "within" else threshold
        try:
            record["verdict"] = decide(tuple(record["interval"]), limits, direction)
        except (TypeError, ValueError) as err:
            raise _fail(id, str(err)) from None
    validate(record)
    return record


def check(*, id: str, chapter: str, paper: str, where: str, paper_value: Any, criterion: str, passed: bool,
          observed: str) -> dict[str, Any]:
    """A check record: an exact identity or proof-style check that passes or fails."""
    if not isinstance(passed, bool):
        raise _fail(id, f"field 'passed' must be a bool, got {passed!r} ({type(passed).__name__})")
    record = {"id": id, "chapter": chapter, "paper": paper, "where": where, "paper_value": paper_value,
              "criterion": criterion, "kind": "check", "observed": observed, "passed": passed,
              "verdict": PASSES if passed else FAILS_CHECK}
    validate(record)
    return record


def describe(record: Mapping[str, Any], digits: int = 3) -> dict[str, str]:
    """A claim as readable cells: our estimate with its interval, n, the threshold in words, the verdict."""
    fmt = lambda v: f"{v:.{digits}g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.2e}"  # noqa: E731
    unit = f" {record['unit']}" if record.get("unit") else ""
    if record["kind"] == "check":
        return {"ours": str(record["observed"]), "n": "", "threshold": "exact check", "verdict": record["verdict"]}
    if record.get("estimate") is None:
        ours = "—"
    else:
        lo, hi = record["interval"]
        ours = f"{fmt(record['estimate'])}{unit} [{fmt(lo)}, {fmt(hi)}]"
    thr = record["threshold"]
    if record["direction"] == "within":
        threshold = f"within [{fmt(thr[0])}, {fmt(thr[1])}]{unit}"
    else:
        threshold = f"{'>' if record['direction'] == 'above' else '<'} {fmt(thr)}{unit}"
    verdict = record["verdict"] + (f" ({record['reason']})" if record.get("reason") else "")
    return {"ours": ours, "n": "" if record.get("n") is None else str(record["n"]), "threshold": threshold,
            "verdict": verdict}
