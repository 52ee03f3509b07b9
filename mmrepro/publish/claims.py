"""The claim contract: how a chapter states a paper's claim and how the book decides it.

A claim is one comparison. There are two kinds:

* ``empirical`` -- an effect measured over runs or test rows. Its record carries the estimate, a
  95 % ``interval``, ``n`` (independent units behind the interval), ``interval_method``, a
  ``threshold`` and a ``direction``: ``"above"`` / ``"below"`` when the paper says the true value
  lies above / below the threshold, ``"within"`` (with ``threshold = [low, high]``) when the paper
  says two things are equal up to a stated margin; ``paper_effect``, the paper's own number on the
  claim's scale (None where the paper gives none); ``headline`` (one of the 3-6 claims the paper's
  abstract and contributions make); ``design``, the sources of randomness the interval counts.

  Two things are computed here from those fields, never passed in. The **verdict** reads the
  interval against the threshold alone:

  ============  ===========================  ============================  ===================
  direction     holds                        does not hold                 otherwise
  ============  ===========================  ============================  ===================
  above t       low > t                      high <= t                     inconclusive
  below t       high < t                     low >= t                      inconclusive
  within [a,b]  a <= low and high <= b       high < a or low > b           inconclusive
  ============  ===========================  ============================  ===================

  The **outcome** reads it as replication studies do (Open Science Collaboration 2015: the direction
  against the threshold *and* whether the original effect lies in the replication's interval):

  * ``reproduces`` -- beyond the threshold on the paper's side, and the paper's effect inside the
    interval (or the paper gives none);
  * ``reproduces, smaller effect`` / ``reproduces, larger effect`` -- beyond the threshold, but wholly
    nearer to it than the paper's effect / wholly farther;
  * ``contradicted`` -- wholly on the other side of the threshold;
  * ``not reproduced`` -- the interval straddles the threshold but excludes the paper's effect: the
    paper's effect is ruled out, no effect is established;
  * ``undecided`` -- it contains the threshold and the paper's effect (or the threshold, when the paper
    gives none); :func:`runs_to_decide` says about how many more seeds, folds or test rows would bring
    its half-width below the distance to the threshold, or why no number would;
  * ``not comparable`` -- the premise is absent or the setting too far from the paper's (``reason``).

  For ``within`` (equivalence, TOST) claims: ``reproduces`` inside the margins, ``contradicted``
  wholly outside, ``undecided`` otherwise. An interval of zero width decides nothing: its verdict is
  inconclusive and its outcome undecided (an exact quantity belongs in a check).

* ``check`` -- an exact identity or proof-style check (a closed form against a numerical maximum,
  a bound in every trial, an equivalence of two code paths, parameter counts): passes or fails.

:func:`validate` re-derives every verdict and outcome from its fields; the scorecard refuses a
results file whose verdict or outcome disagrees with its interval, or a record with a field missing.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

HOLDS, FAILS, INCONCLUSIVE, NOT_COMPARABLE = "holds", "does not hold", "inconclusive", "not comparable at this scale"
EMPIRICAL_VERDICTS = (HOLDS, FAILS, INCONCLUSIVE, NOT_COMPARABLE)
PASSES, FAILS_CHECK = "passes", "fails"
CHECK_VERDICTS = (PASSES, FAILS_CHECK)
REPRODUCES, SMALLER, LARGER = "reproduces", "reproduces, smaller effect", "reproduces, larger effect"
CONTRADICTED, NOT_REPRODUCED, UNDECIDED, OUT_OF_SCOPE = "contradicted", "not reproduced", "undecided", "not comparable"
OUTCOMES = (REPRODUCES, SMALLER, LARGER, CONTRADICTED, NOT_REPRODUCED, UNDECIDED, OUT_OF_SCOPE)
REPRODUCING = (REPRODUCES, SMALLER, LARGER)
DIRECTIONS = ("above", "below", "within")
CLAIM_KINDS = ("empirical", "check")

COMMON = ("id", "chapter", "paper", "where", "paper_value", "criterion", "kind", "verdict")
EMPIRICAL_FIELDS = (*COMMON, "estimate", "interval", "n", "interval_method", "threshold", "direction",
                    "paper_effect", "headline", "outcome")
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
    """The verdict of an empirical claim from its interval (the table in the module docstring); an interval
    of zero width is inconclusive."""
    lo, hi = interval
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    if lo == hi:
        return INCONCLUSIVE
    if direction == "above":
        return HOLDS if lo > threshold else FAILS if hi <= threshold else INCONCLUSIVE
    if direction == "below":
        return HOLDS if hi < threshold else FAILS if lo >= threshold else INCONCLUSIVE
    a, b = threshold
    return HOLDS if a <= lo and hi <= b else FAILS if hi < a or lo > b else INCONCLUSIVE


def outcome(interval: tuple[float, float], threshold: float | tuple[float, float], direction: str,
            paper_effect: float | None) -> str:
    """The outcome of an empirical claim (the list in the module docstring). For ``above`` / ``below`` a
    ``paper_effect`` must lie on the paper's side of the threshold; an end equal to it counts as containing it."""
    verdict = decide(interval, threshold, direction)
    lo, hi = interval
    if lo == hi:
        return UNDECIDED
    if direction == "within":
        return {HOLDS: REPRODUCES, FAILS: CONTRADICTED}.get(verdict, UNDECIDED)
    if paper_effect is not None and not (paper_effect > threshold if direction == "above" else paper_effect < threshold):
        raise ValueError(f"the paper's effect {paper_effect:g} is not {direction} the threshold {threshold:g}")
    if verdict == FAILS:
        return CONTRADICTED
    contains = paper_effect is None or lo <= paper_effect <= hi
    if verdict == INCONCLUSIVE:
        return UNDECIDED if contains else NOT_REPRODUCED
    if contains:
        return REPRODUCES
    nearer = hi < paper_effect if direction == "above" else lo > paper_effect  # wholly between threshold and paper
    return SMALLER if nearer else LARGER


def _deciding_distance(estimate: float, interval: tuple[float, float], threshold: float | tuple[float, float],
                       direction: str) -> tuple[float, float]:
    """(distance from the estimate to what decides the claim, the interval's half-width on that side)."""
    lo, hi = interval
    if direction == "within":
        a, b = threshold
        if a <= estimate <= b:  # to be shown inside: the nearer margin
            target = a if estimate - a <= b - estimate else b
        else:  # to be shown outside: the nearer margin too
            target = a if abs(estimate - a) <= abs(estimate - b) else b
    else:
        target = threshold
    return abs(estimate - target), (estimate - lo if target <= estimate else hi - estimate)


def runs_to_decide(estimate: float, interval: tuple[float, float], threshold: float | tuple[float, float],
                   direction: str, design: Mapping[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """About how many units of each source of randomness would bring the interval's half-width (on the
    threshold's side) below the estimate's distance to the threshold, if the estimate stayed where it is.

    ``design`` is the evidence's :meth:`~mmrepro.core.stats.Evidence.design`: parts (unit, count, variance,
    parameter) whose variance shrinks as 1 / count, and a ``floor`` that does not shrink. With total
    variance V, floor F and observed half-width h, the needed variance is V (d / h)^2; every part's
    count is scaled by the same factor (V - F) / (V (d / h)^2 - F). Returns ({"factor", "units",
    "parameters"}, None), or (None, the reason no number of runs decides it)."""
    d, h = _deciding_distance(estimate, interval, threshold, direction)
    if d == 0:
        return None, "the estimate sits on the threshold: more runs would not move it off"
    if h <= 0:
        return None, "the interval has no width on the threshold's side"
    parts = list(design.get("parts") or [])
    floor = float(design.get("floor") or 0.0)
    total = sum(float(p["variance"]) for p in parts) + floor
    if total <= 0:
        return None, "the interval records no variance to shrink"
    needed = total * (d / h) ** 2
    if needed <= floor:
        return None, (f"a variance floor ({math.sqrt(floor):.3g} of the {math.sqrt(total):.3g} standard error) that "
                      "more runs of this design cannot lower (e.g. one partition's shared training rows)")
    factor = (total - floor) / (needed - floor)
    units = {p["unit"]: max(int(math.ceil(p["count"] * factor)), int(p["count"]) + 1) for p in parts}
    params = {p["parameter"]: units[p["unit"]] for p in parts if p.get("parameter")}
    return {"factor": round(factor, 2), "units": units, "parameters": params}, None


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


def _check_design(cid: Any, n: int, design: Any) -> None:
    """``n`` must count the units of one of the design's sources of randomness (the evidence's parts, e.g.
    the seeds of a Student t over seeds): an ``n`` that no part counts was not what the interval rests on."""
    parts = design.get("parts") if isinstance(design, Mapping) else None
    if not isinstance(parts, list) or not parts or not all(isinstance(p, Mapping) for p in parts):
        raise _fail(cid, "an empirical claim with an estimate needs its 'design' (the sources of randomness of its "
                         "interval, as mmrepro.core.stats.Evidence.design() records them)")
    counts = [p.get("count") for p in parts]
    if n not in counts:
        shown = " and ".join(f"{p.get('count')!r} {p.get('unit', 'units')}" for p in parts)
        raise _fail(cid, f"field 'n' is {n} but its design counts {shown}: n must be the count of one of its "
                         "sources of randomness")


def _expected_empirical(record: Mapping[str, Any]) -> tuple[str, str, Any, Any]:
    """(verdict, outcome, runs_to_decide, its reason) re-derived from an empirical record's fields."""
    cid = record["id"]
    direction = record["direction"]
    if direction not in DIRECTIONS:
        raise _fail(cid, f"field 'direction' must be one of {DIRECTIONS}, got {direction!r}")
    threshold = (_pair(cid, "threshold", record["threshold"]) if direction == "within"
                 else _number(cid, "threshold", record["threshold"]))
    effect = record["paper_effect"]
    if effect is not None:
        effect = _number(cid, "paper_effect", effect)
    if not isinstance(record["headline"], bool):
        raise _fail(cid, f"field 'headline' must be true or false, got {record['headline']!r}")
    if record["headline"] and not (isinstance(record.get("summary"), str) and record["summary"].strip()):
        raise _fail(cid, "a headline claim needs a 'summary': what the paper claims, in a short sentence")
    reason = record.get("reason")
    if reason is not None and (not isinstance(reason, str) or not reason.strip()):
        raise _fail(cid, "field 'reason' must be a sentence saying why the setting is not comparable")
    interval = None
    if reason is None or record.get("estimate") is not None:
        estimate = _number(cid, "estimate", record["estimate"])
        interval = _pair(cid, "interval", record["interval"])
        if not interval[0] <= estimate <= interval[1]:
            raise _fail(cid, f"the estimate {estimate:g} lies outside its interval {list(interval)}")
        n = record["n"]
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise _fail(cid, f"field 'n' must be a positive int (independent units), got {n!r}")
        _check_design(cid, n, record.get("design"))
        if not isinstance(record["interval_method"], str) or not record["interval_method"].strip():
            raise _fail(cid, "field 'interval_method' must say how the interval was computed")
    if reason is not None:
        return NOT_COMPARABLE, OUT_OF_SCOPE, None, None
    try:
        result = outcome(interval, threshold, direction, effect)
    except ValueError as err:
        raise _fail(cid, str(err)) from None
    runs, why = None, None
    if result == UNDECIDED:
        design = record.get("design")
        if not isinstance(design, Mapping):
            raise _fail(cid, "an undecided claim needs its 'design' (the sources of randomness of its interval)")
        runs, why = runs_to_decide(record["estimate"], interval, threshold, direction, design)
    return decide(interval, threshold, direction), result, runs, why


def validate(record: Mapping[str, Any]) -> str:
    """Check one claim record against the contract and return its verdict, re-derived from its fields.

    Raises :class:`ClaimError` naming the claim and the field when a field is missing or malformed,
    or when the recorded verdict, outcome or runs to decide is not the one its fields give."""
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
        expected, result, runs, why = _expected_empirical(record)
        if record["verdict"] != expected:
            raise _fail(cid, f"recorded verdict {record['verdict']!r} contradicts its fields, which give {expected!r}")
        if record["outcome"] != result:
            raise _fail(cid, f"recorded outcome {record['outcome']!r} contradicts its fields, which give {result!r}")
        if record.get("runs_to_decide") != runs or record.get("runs_to_decide_reason") != why:
            raise _fail(cid, "recorded runs_to_decide contradicts its interval and design")
    if record["verdict"] != expected:
        raise _fail(cid, f"recorded verdict {record['verdict']!r} contradicts its fields, which give {expected!r}")
    return expected


def empirical(*, id: str, chapter: str, paper: str, where: str, paper_value: Any, criterion: str, evidence: Any,
              threshold: float | tuple[float, float], direction: str, paper_effect: float | None = None,
              headline: bool = False, summary: str | None = None, unit: str = "", reason: str | None = None,
              premise: str | None = None) -> dict[str, Any]:
    """An empirical claim record with its verdict and outcome decided from ``evidence`` (a
    :class:`mmrepro.core.stats.Evidence`; None only together with a ``reason``), ``threshold``, ``direction``
    and ``paper_effect`` (the paper's number on the claim's scale, None where it gives none). A ``headline``
    claim carries a ``summary`` (what the paper claims, in words); ``premise`` names the claim that
    measures the phenomenon this one presupposes."""
    record: dict[str, Any] = {"id": id, "chapter": chapter, "paper": paper, "where": where,
                              "paper_value": paper_value, "criterion": criterion, "kind": "empirical",
                              "threshold": list(threshold) if isinstance(threshold, (tuple, list)) else threshold,
                              "direction": direction, "unit": unit,
                              "paper_effect": None if paper_effect is None else float(paper_effect),
                              "headline": headline}
    if summary is not None:
        record["summary"] = summary
    if premise is not None:
        record["premise"] = premise
    if evidence is None:
        if reason is None:
            raise _fail(id, "an empirical claim needs evidence (estimate, interval, n); without it, give a reason "
                            "why the setting is not comparable")
        record.update(estimate=None, interval=None, n=None, interval_method=None)
    else:
        record.update(estimate=float(evidence.estimate), interval=[float(v) for v in evidence.interval],
                      n=int(evidence.n), interval_method=evidence.method, design=evidence.design())
    if reason is not None:
        record["reason"] = reason
    record["verdict"], record["outcome"], runs, why = _expected_empirical(record)
    if runs is not None:
        record["runs_to_decide"] = runs
    if why is not None:
        record["runs_to_decide_reason"] = why
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


def number(value: float, digits: int = 3) -> str:
    """A number for people: 3 significant digits, no exponent between 1e-3 and 1e6, thousands separated."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    if abs(value) >= 1e6 or abs(value) < 1e-3:
        return f"{value:.{digits - 1}e}"
    decimals = max(digits - 1 - int(math.floor(math.log10(abs(value)))), 0)
    text = f"{value:,.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def describe(record: Mapping[str, Any], digits: int = 3) -> dict[str, str]:
    """A claim as readable cells: our estimate with its interval, n, the threshold in words, the paper's
    effect, the verdict and the outcome."""
    fmt = lambda v: number(v, digits)  # noqa: E731
    unit = f" {record['unit']}" if record.get("unit") else ""
    if record["kind"] == "check":
        return {"ours": str(record["observed"]), "n": "", "threshold": "exact check", "paper effect": "",
                "verdict": record["verdict"], "outcome": record["verdict"]}
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
    effect = "—" if record.get("paper_effect") is None else f"{fmt(record['paper_effect'])}{unit}"
    verdict = record["verdict"] + (f" ({record['reason']})" if record.get("reason") else "")
    return {"ours": ours, "n": "" if record.get("n") is None else str(record["n"]), "threshold": threshold,
            "paper effect": effect, "verdict": verdict, "outcome": record["outcome"]}


def decide_hint(record: Mapping[str, Any]) -> str:
    """For an undecided claim: about how many runs would decide it (or why none would), in words."""
    runs = record.get("runs_to_decide")
    if runs:
        units = ", ".join(f"{n:,} {u}" for u, n in runs["units"].items())
        return f"about {units} (×{runs['factor']:g})"
    return record.get("runs_to_decide_reason") or ""
