"""The notebook contract: validated parameters, profiles, results and claims.

Every chapter's second cell is::

    run = start("mfh", globals(), profiles={"smoke": {...}, "book": {...}, "paper": {...}})

``start`` reads the parameters declared (with type annotations) in the cell tagged
``parameters``, rejects names that papermill injected but the notebook never
declared (papermill itself only warns), checks every value's type, fills the
parameters left at ``None`` from the chosen profile, seeds everything and
resolves the device.  The returned :class:`ChapterRun` collects every reported number
and every checked claim and writes them, with provenance, to one JSON file.
"""
from __future__ import annotations

import ast
import contextlib
import json
import math
import os
import platform
import shutil
import subprocess
import tempfile
import time
import types
import typing
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from mmrepro.common.checks import check_seed
from mmrepro.common.files import locked, replace_dir, write_atomic, write_bytes_atomic

PROFILES = ("smoke", "book", "paper")
# Empirical claims of a smoke run are recorded with this reason instead of a verdict.
SMOKE_REASON = "the smoke profile only checks that the code runs (tiny models, few epochs and runs)"
_INJECTED_HEADER = "# Parameters"  # first line of the cell papermill injects
RUN_OUTPUT_ENV = "MMREPRO_RUN_OUTPUT"
# An integer size parameter may be at most CEILING times the largest value a profile (or its default) gives
# it, a list at most CEILING times as long: `-p n_seeds 1000000000` is refused before a kernel starts.
CEILING = 10


class ParameterError(ValueError):
    """A notebook parameter is unknown or has an invalid value."""


class ResultsConflict(ValueError):
    """A run would replace a results file written by a run of another profile."""


# ----------------------------------------------------------------------------- parameters

def _injected_names(history: list[str]) -> set[str]:
    """Names assigned by papermill's injected-parameters cell (the latest one), if any."""
    for source in reversed(history):
        if source.lstrip().startswith(_INJECTED_HEADER):
            tree = ast.parse(source)
            return {t.id for node in tree.body if isinstance(node, ast.Assign)
                    for t in node.targets if isinstance(t, ast.Name)}
    return set()


def _declared_values(history: list[str]) -> dict[str, Any]:
    """The literal values of the parameters cell (the first cell of annotated assignments declaring
    ``profile``) in the kernel's input history: the defaults that papermill's injected values replace."""
    for source in history:
        if source.lstrip().startswith(_INJECTED_HEADER):
            continue
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        found = {node.target.id: node.value for node in tree.body if isinstance(node, ast.AnnAssign)
                 and isinstance(node.target, ast.Name) and node.value is not None}
        if "profile" in found:
            values = {}
            for name, node in found.items():
                try:
                    values[name] = ast.literal_eval(node)
                except ValueError:
                    continue
            return values
    return {}


def _allows_none(annotation: Any) -> bool:
    return type(None) in typing.get_args(annotation)


def _base_types(annotation: Any) -> tuple[type, ...]:
    if isinstance(annotation, (types.UnionType,)) or typing.get_origin(annotation) is typing.Union:
        return tuple(t for t in typing.get_args(annotation) if t is not type(None))
    origin = typing.get_origin(annotation)
    return (origin,) if origin is not None else (annotation,)


def coerce_parameter(name: str, value: Any, annotation: Any) -> Any:
    """Check ``value`` against the declared annotation; ints are accepted for floats."""
    if value is None:
        return None
    allowed = _base_types(annotation)
    if isinstance(value, bool) and bool not in allowed:
        raise ParameterError(f"parameter {name!r} must be {_type_name(annotation)}, got the boolean {value!r}.")
    if float in allowed and isinstance(value, int) and not isinstance(value, bool):
        return float(value) if int not in allowed else value
    if list in allowed and isinstance(value, tuple):
        return list(value)
    if not isinstance(value, allowed):
        raise ParameterError(
            f"parameter {name!r} must be {_type_name(annotation)}, got {value!r} ({type(value).__name__})."
        )
    return value


def _type_name(annotation: Any) -> str:
    return " or ".join(t.__name__ for t in _base_types(annotation))


def _size(value: Any) -> int | None:
    """The size an integer or list parameter value stands for (its value, its length); None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return abs(value)
    return len(value) if isinstance(value, (list, tuple)) else None


def check_ceiling(name: str, value: Any, profiles: Mapping[str, Mapping[str, Any]],
                  default: Any = None) -> None:
    """ParameterError unless the integer (or list) ``value`` of parameter ``name`` is at most :data:`CEILING`
    times the largest value (length) a profile gives it (its ``default`` when no profile sets it): a run
    asked for 10^9 seeds would be killed for memory hours later, or fail deep inside torch. ``seed`` and
    parameters that no profile nor default sizes are not bounded here (their own checks apply)."""
    size = _size(value)
    if name == "seed" or size is None:
        return
    references = [(f"the {p} profile's", settings[name]) for p, settings in profiles.items()
                  if name in settings and _size(settings[name]) is not None]
    if not references and _size(default) is not None:  # a parameter no profile sets: its declared value
        references.append(("its default", default))
    if not references:
        return
    where, reference = max(reversed(references), key=lambda r: _size(r[1]))  # ties: the paper profile
    ceiling = CEILING * max(_size(reference), 1)
    if size <= ceiling:
        return
    shown = (f"{name}={value!r} is too large: at most {ceiling}" if isinstance(value, int)
             else f"{name} holds {size} items: at most {ceiling}")
    ref = _size(reference) if isinstance(value, int) else len(reference)
    raise ParameterError(f"{shown} ({CEILING} x {where} {ref}), a bound that keeps a run within memory and time.")


class Params(Mapping[str, Any]):
    """Read-only attribute access to the resolved parameters (``P.n_seeds``)."""

    def __init__(self, values: dict[str, Any]):
        self._values = dict(values)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(f"no parameter {name!r}; known: {sorted(self._values)}") from None

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def __iter__(self):
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return "Params(" + ", ".join(f"{k}={v!r}" for k, v in self._values.items()) + ")"


def resolve_parameters(
    declared: Mapping[str, Any],
    values: Mapping[str, Any],
    profiles: Mapping[str, Mapping[str, Any]],
    injected: set[str] = frozenset(),
    choices: Mapping[str, typing.Sequence[Any]] | None = None,
    checks: Mapping[str, tuple[Callable[[Any], bool], str]] | None = None,
    defaults: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Validate parameter values against their declarations and fill ``None`` from the profile.

    ``declared`` maps name -> annotation, ``values`` name -> current value, ``injected``
    the names a caller (papermill) set, ``defaults`` the values the parameters cell declares
    (where known).  ``checks`` maps name -> (predicate, what it must be) for value constraints
    beyond the type; every integer or list parameter is also bounded by :func:`check_ceiling`.
    """
    for required in ("profile", "seed", "device"):
        if required not in declared:
            raise ParameterError(f"the parameters cell must declare {required!r} (with a type annotation).")
    unknown = sorted(set(injected) - set(declared))
    if unknown:
        raise ParameterError(
            f"unknown parameter(s) {', '.join(map(repr, unknown))}; this notebook accepts: "
            f"{', '.join(sorted(declared))}."
        )
    profile = values.get("profile")
    if profile not in PROFILES:
        raise ParameterError(f"profile={profile!r} is not one of {', '.join(PROFILES)}.")
    if set(profiles) != set(PROFILES):
        raise ParameterError(f"profiles must define exactly {PROFILES}, got {sorted(profiles)}.")
    for prof, settings in profiles.items():
        extra = sorted(set(settings) - set(declared))
        if extra:
            raise ParameterError(f"profile {prof!r} sets undeclared parameter(s) {extra}; declare them first.")

    resolved: dict[str, Any] = {}
    for name, annotation in declared.items():
        value = coerce_parameter(name, values.get(name), annotation)
        if value is None and name in profiles[profile]:
            value = coerce_parameter(name, profiles[profile][name], annotation)
        if value is None and not _allows_none(annotation):
            raise ParameterError(f"parameter {name!r} has no value: set it, or give it one in profile {profile!r}.")
        if isinstance(value, float) and not math.isfinite(value):
            raise ParameterError(f"parameter {name!r} must be finite, got {value!r}.")
        resolved[name] = value
    for name, allowed in (choices or {}).items():
        if name not in resolved:
            raise ParameterError(f"choices given for undeclared parameter {name!r}.")
        if resolved[name] not in allowed:
            raise ParameterError(f"{name}={resolved[name]!r} is not one of {list(allowed)}.")
    for name, (predicate, must_be) in (checks or {}).items():
        if resolved.get(name) is not None and not predicate(resolved[name]):
            raise ParameterError(f"{name}={resolved[name]!r} is invalid: it must be {must_be}.")
    for name, value in resolved.items():  # after the checks: a domain bound names the better reason
        check_ceiling(name, value, profiles, (defaults or {}).get(name, None if name in injected else values.get(name)))
    try:
        check_seed(resolved["seed"])
    except (TypeError, ValueError) as err:
        raise ParameterError(str(err)) from None
    return resolved


# ----------------------------------------------------------------------------- provenance

def project_root(start: Path | None = None) -> Path | None:
    """The nearest folder at or above ``start`` (default: cwd) holding ``_toc.yml``."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "_toc.yml").is_file():
            return folder
    return None


def results_dir() -> Path:
    """The results files of the executed chapters (what the scorecard reads): ``$MMREPRO_RESULTS``,
    else ``<project>/_build/results``, else ``./_build/results``."""
    if os.environ.get("MMREPRO_RESULTS"):
        return Path(os.environ["MMREPRO_RESULTS"])
    return (project_root() or Path.cwd()) / "_build" / "results"


def output_dir() -> Path:
    """Where this run writes its results file and figures: ``$MMREPRO_RUN_OUTPUT`` (a staging folder set by
    ``mmrepro run`` / ``mmrepro book``, moved into the results folder only when the whole notebook has
    run), else :func:`results_dir`."""
    staged = os.environ.get(RUN_OUTPUT_ENV)
    return Path(staged) if staged else results_dir()


def recorded_profile(path: Path) -> str | None:
    """The profile a results file records (None when there is no readable results file)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    profile = data.get("profile") if isinstance(data, dict) else None
    return profile if isinstance(profile, str) else None


def check_profile(path: Path, profile: str, name: str) -> None:
    """:class:`ResultsConflict` when ``path`` holds the results of a run of another profile than ``profile``:
    a `smoke` run must never replace a `book` run's results (the scorecard would mix profiles), nor the
    reverse; runs of different profiles are kept in different folders."""
    old = recorded_profile(path)
    if old is not None and old != profile:
        raise ResultsConflict(f"{path} holds a {old!r}-profile run of {name}; this {profile!r}-profile run would "
                              "replace it. Write it to another folder (MMREPRO_RESULTS=<folder> papermill ..., or "
                              f"mmrepro run/book --build <folder>), or delete {path} to replace it.")


def git_sha(root: Path | None = None) -> str | None:
    """Commit of the project checkout, suffixed ``-dirty`` when tracked files differ; None outside git."""
    root = root or project_root() or Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return sha + ("-dirty" if dirty else "")


def to_jsonable(value: Any) -> Any:
    """Numbers, arrays, tensors and frames as plain JSON values (NaN becomes null)."""
    if hasattr(value, "detach"):  # torch tensor
        value = value.detach().cpu().numpy()
    if hasattr(value, "to_dict") and hasattr(value, "columns"):  # pandas DataFrame
        return [to_jsonable(r) for r in value.to_dict(orient="records")]
    if isinstance(value, np.ndarray):
        return [to_jsonable(v) for v in value.tolist()] if value.ndim else to_jsonable(value.item())
    if isinstance(value, np.generic):
        return to_jsonable(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, str)):
        return value
    raise TypeError(f"cannot record a value of type {type(value).__name__} in the results file.")


# ----------------------------------------------------------------------------- the run

@dataclass
class ChapterRun:
    """One execution of a chapter: parameters, provenance, reported values and claims."""

    name: str
    params: Params
    device: Any
    seed: int
    profile: str
    values: dict[str, Any] = field(default_factory=dict)
    claims: list[dict[str, Any]] = field(default_factory=list)
    started: float = field(default_factory=time.time)
    cpu_started: float = field(default_factory=time.process_time)  # this process's CPU time (all threads)
    sources: dict[str, str] = field(default_factory=dict)  # parameter -> "default" | "profile" | "user"
    _stage: Path | None = field(default=None, init=False, repr=False)

    def _output(self) -> Path:
        """Where this run writes its figures while it runs: the staging folder that ``mmrepro run`` / ``book``
        set (:func:`output_dir`), else (plain papermill) a private folder in the results folder that
        :meth:`save` moves into place, so that a run failing before it saves changes none of an earlier
        run's files; the folder is removed when the process ends."""
        if os.environ.get(RUN_OUTPUT_ENV):
            return output_dir()
        if self._stage is None:
            folder = results_dir()
            folder.mkdir(parents=True, exist_ok=True)
            self._stage = Path(tempfile.mkdtemp(prefix=f".{self.name}.run-", dir=folder))
            weakref.finalize(self, shutil.rmtree, self._stage, True)
        return self._stage

    def _key(self, key: str) -> str:
        if not isinstance(key, str) or not key or any(c.isspace() for c in key):
            raise ValueError(f"result key {key!r} must be a non-empty string without spaces.")
        if key in self.values:
            raise ValueError(f"result key {key!r} was already recorded; every key must be unique.")
        return key

    def record(self, key: str, value: Any) -> Any:
        """Store a value in the results file without showing it."""
        self.values[self._key(key)] = to_jsonable(value)
        return value

    def glue(self, key: str, value: Any, fmt: str = "{:.3f}") -> Any:
        """Record ``value`` and glue its formatted text for ``{glue:text}`key```."""
        from myst_nb import glue

        self.record(key, value)
        text = value if isinstance(value, str) else fmt.format(value)
        # A str glues as its repr, which {glue:text} literal-evaluates back to exactly ``text``
        # (gluing the number would turn "1.00" into "1.0").
        glue(key, text, display=False)
        return value

    def glue_table(self, key: str, table: Any, display: bool = True) -> Any:
        """Record a pandas table (as records) and glue it; shown in place when ``display``.

        A default 0..n-1 index is hidden in the page (a meaningful index, e.g. gamma, is kept)."""
        import pandas as pd
        from IPython.display import HTML
        from myst_nb import glue

        self.record(key, table)
        shown = table
        if isinstance(table, pd.DataFrame) and isinstance(table.index, pd.RangeIndex):
            shown = HTML(table.to_html(index=False, na_rep="—"))  # a 0..n-1 index says nothing
        glue(key, shown, display=display)
        return table

    def glue_figure(self, key: str, fig: Any, display: bool = True) -> Path:
        """Save a matplotlib figure (atomically) as ``<name>/<key>.png`` in the run's output folder (see
        :meth:`_output`), glue it, and close it; returns where the PNG is now. :meth:`save` puts this run's
        figures in place of an earlier run's (whose figures this run did not draw are gone then)."""
        import matplotlib.pyplot as plt
        from myst_nb import glue

        path = self._output() / self.name / f"{self._key(key)}.png"
        write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", bbox_inches="tight"))
        self.values[key] = {"figure": str(path.name)}
        glue(key, fig, display=display)
        plt.close(fig)
        return path

    def _add_claim(self, record: dict[str, Any]) -> dict[str, Any]:
        if any(c["id"] == record["id"] for c in self.claims):
            raise ValueError(f"claim id {record['id']!r} was already recorded.")
        self.claims.append(record)
        return record

    def claim(self, *, id: str, paper: str, where: str, paper_value: Any, criterion: str, evidence: Any,
              threshold: float | tuple[float, float], direction: str, paper_effect: float | None = None,
              headline: bool = False, summary: str | None = None, premise: str | None = None, unit: str = "",
              reason: str | None = None, **unexpected: Any) -> dict[str, Any]:
        """Record an empirical claim (see :mod:`mmrepro.publish.claims`); its verdict and outcome are decided from
        ``evidence`` (:mod:`mmrepro.core.stats`), ``threshold``, ``direction`` and ``paper_effect`` (the paper's
        number on the claim's scale), never passed in. A ``headline`` claim (what the paper's abstract and
        contributions say it shows) needs a ``summary`` in words. ``reason`` marks the setting as not
        comparable with the paper's; a ``smoke`` run gives every claim that reason.

        The premise rule, the same in every chapter: ``premise`` names an earlier claim that measures the
        phenomenon this one presupposes (an imbalance, a teacher's advantage, skill above chance). Unless
        that claim's outcome establishes it (one of :data:`~mmrepro.publish.claims.REPRODUCING`), this claim is
        not comparable, with the premise's interval as the reason; where it is established but smaller than
        the paper's, this claim is scored and ``premise_note`` says so."""
        from mmrepro.publish import claims

        if unexpected:
            raise claims.ClaimError(f"claim {id!r}: unexpected field(s) {sorted(unexpected)}; a verdict is "
                                    "computed from evidence, threshold and direction, never passed in")
        note = None
        if premise is not None:
            found = [c for c in self.claims if c["id"] == premise]
            if not found:
                raise claims.ClaimError(f"claim {id!r}: its premise {premise!r} must be recorded first")
            base = found[0]
            shown = claims.describe(base)["ours"]
            if base["outcome"] not in claims.REPRODUCING and reason is None:
                reason = f"premise absent: {premise} is {shown} ({base['outcome']})"
            elif base["outcome"] == claims.SMALLER:
                note = f"premise {premise} present but smaller than the paper's: {shown}, paper {base['paper_effect']:g}"
        if reason is None and self.profile == "smoke":
            reason = SMOKE_REASON
        record = claims.empirical(
            id=id, chapter=self.name, paper=paper, where=where, paper_value=to_jsonable(paper_value),
            criterion=criterion, evidence=evidence, threshold=threshold, direction=direction,
            paper_effect=paper_effect, headline=headline, summary=summary, unit=unit, reason=reason, premise=premise)
        if note is not None:
            record["premise_note"] = note
        return self._add_claim(record)

    def check(self, *, id: str, paper: str, where: str, paper_value: Any, criterion: str, passed: Any,
              observed: str) -> dict[str, Any]:
        """Record an exact or proof-style check (an identity, a bound in every trial, a count) that passes or fails."""
        from mmrepro.publish import claims

        return self._add_claim(claims.check(id=id, chapter=self.name, paper=paper, where=where,
                                            paper_value=to_jsonable(paper_value), criterion=criterion,
                                            passed=bool(passed) if isinstance(passed, np.bool_) else passed,
                                            observed=observed))

    def claims_table(self, *prefixes: str):
        """The claims recorded so far (those whose id starts with one of ``prefixes``; all without) as a
        table of readable cells (:func:`mmrepro.publish.scorecard.claim_rows`)."""
        from mmrepro.publish.scorecard import claim_rows

        return claim_rows([c for c in self.claims if c["id"].startswith(prefixes or "")], chapter=False)

    def glue_claims(self, key: str, *prefixes: str, display: bool = True) -> None:
        """Glue (and show, when ``display``) the claims whose id starts with one of ``prefixes`` as the book
        shows claims: claim, criterion, paper, ours [interval], n, threshold and a coloured verdict. The
        claims themselves are in the results file already."""
        from myst_nb import glue

        from mmrepro.publish.scorecard import styled

        glue(key, styled(self.claims_table(*prefixes)), display=display)

    def glue_markdown(self, key: str, text: str, display: bool = False) -> str:
        """Record ``text`` and glue it as Markdown, shown where a ``{glue:md}`` block names ``key`` (plain
        prose, where ``{glue:text}`` would set a whole sentence in bold)."""
        from IPython.display import Markdown
        from myst_nb import glue

        self.record(key, text)
        glue(key, Markdown(text), display=display)
        return text

    def glue_in_words(self, key: str, *prefixes: str, display: bool = False) -> str:
        """Glue as Markdown (:meth:`glue_markdown`) the empirical claims whose id starts with one of
        ``prefixes`` grouped by verdict, in words (:func:`mmrepro.publish.scorecard.in_words`)."""
        from mmrepro.publish.scorecard import in_words

        return self.glue_markdown(key, in_words([c for c in self.claims if c["id"].startswith(prefixes or "")]),
                                  display)

    def glue_in_brief(self, caveat: str, key: str = "in_brief") -> str:
        """Glue the chapter's "In brief" box (an HTML element with id ``in-brief``, shown where a
        ``{glue:md}`` block names ``key``, right under the chapter's title): one line per headline claim with
        its outcome, our estimate and interval against the paper's number, then ``caveat``, the one caveat
        that matters most (stand-in data, scale). Call it after every claim is recorded."""
        from mmrepro.publish.scorecard import in_brief

        headline = [c for c in self.claims if c.get("headline")]
        self.record(f"{key}_caveat", caveat)  # the scorecard's box repeats it
        return self.glue_markdown(key, in_brief({self.name: headline}, {self.name: caveat}, profile=self.profile))

    def save(self) -> Path:
        """Write ``<name>.json`` atomically and return its path; the figures folder ``<name>/`` then holds this
        run's figures only. Under ``mmrepro run`` / ``book`` both go to their staging folder (moved into the
        build when the whole notebook has run); under plain papermill this run's staged figures and results
        file replace the earlier ones in :func:`results_dir` one at a time under a lock, and
        :class:`ResultsConflict` refuses to replace a results file of another profile. A local Ray instance
        the run started (``executor="ray"``) is ended (:func:`mmrepro.runs.executors.stop_ray`)."""
        from mmrepro.common.version import __version__

        payload = {
            "notebook": self.name, "profile": self.profile, "seed": self.seed,
            "device": str(self.device), "device_name": _device_name(self.device), "mmrepro_version": __version__,
            "git_sha": git_sha(), "seconds": round(time.time() - self.started, 2),
            "cpu_seconds": round(time.process_time() - self.cpu_started, 2),
            "params": to_jsonable(dict(self.params)), "param_sources": self.sources,
            "values": self.values, "claims": self.claims,
        }
        data = json.dumps(payload, indent=2, allow_nan=False).encode()
        if os.environ.get(RUN_OUTPUT_ENV):
            folder = output_dir()
            figures = {v["figure"] for v in self.values.values() if isinstance(v, dict) and set(v) == {"figure"}}
            if (folder / self.name).is_dir():
                for old in (folder / self.name).glob("*.png"):
                    if old.name not in figures:
                        old.unlink()
            target = write_bytes_atomic(folder / f"{self.name}.json", data)
        else:
            with locked(results_dir()) as folder:
                target = folder / f"{self.name}.json"
                check_profile(target, self.profile, self.name)
                drawn = self._stage / self.name if self._stage is not None else None
                replace_dir(drawn if drawn is not None and drawn.is_dir() else None, folder / self.name)
                write_bytes_atomic(target, data)
        if self._stage is not None:
            shutil.rmtree(self._stage, ignore_errors=True)
            self._stage = None
        from mmrepro.runs.executors import stop_ray

        stop_ray()  # the chapter's work is done: a local Ray instance it started ends with it
        return target


def _device_name(device: Any) -> str:
    """What the last bits depend on besides the seed: the GPU, or the CPU and its vector instructions, and torch."""
    import torch

    if getattr(device, "type", None) == "cuda":
        return f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}, CUDA {torch.version.cuda}"
    model = platform.machine()
    with contextlib.suppress(OSError):
        names = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                 if line.startswith("model name")]
        model = names[0] if names else model
    return (f"CPU {model} ({torch.backends.cpu.get_cpu_capability()} kernels), {os.cpu_count()} cores, "
            f"torch {torch.__version__}")


def start(name: str, namespace: dict[str, Any], profiles: Mapping[str, Mapping[str, Any]],
          choices: Mapping[str, typing.Sequence[Any]] | None = None,
          checks: Mapping[str, tuple[Callable[[Any], bool], str]] | None = None) -> ChapterRun:
    """Validate a chapter's parameters (see module docstring) and begin its run.

    ``namespace`` is the notebook's ``globals()``: declared parameters are its
    top-level annotations, injected ones come from the kernel's input history.
    """
    from mmrepro.common import style
    from mmrepro.common.device import resolve_device, seed_everything

    declared = dict(namespace.get("__annotations__", {}))
    history = list(namespace.get("In", []))
    injected = _injected_names(history)
    given = {k: namespace.get(k) for k in declared}
    values = resolve_parameters(declared, given, profiles, injected, choices, checks, _declared_values(history))
    if not os.environ.get(RUN_OUTPUT_ENV):  # plain papermill: refuse before anything runs, not at save()
        check_profile(results_dir() / f"{name}.json", values["profile"], name)
    sources = {k: "user" if k in injected else "profile" if given[k] is None and values[k] is not None
               else "default" for k in declared}
    try:
        device = resolve_device(values["device"])
    except ValueError as err:
        raise ParameterError(str(err)) from None
    seed_everything(values["seed"])
    style.use()
    namespace.update(values)  # the resolved values replace the None placeholders
    return ChapterRun(name=name, params=Params(values), device=device, seed=values["seed"],
               profile=values["profile"], sources=sources)
