"""Grading that a submission cannot forge or stall (``mmrepro grade``).

The student's code runs in a process of its own (:mod:`mmrepro.publish.sandbox`), in an empty folder,
with a memory limit and a wall-clock limit per cell, per call and in all. The checks never enter that
process: they run here, in the grader, and hold stand-ins for the student's functions
(:class:`RemoteFunction`) that send each call's inputs to the submission's process and bring back
only its output, as plain data (:func:`mmrepro.publish.sandbox.decode`). So a submission cannot read
the hidden checks, rewrite them, or pass them by returning an object that equals everything; a
cell that never ends, a crash or a memory blow-up costs what it could not answer, and the report
says why. A cell that stalled or killed its process is left out when the process starts again.

What this is not: a security sandbox. The submission runs with the grader's user account: it can
read and write that user's files, use the network and start processes. The grader notices when the
autograder's files or the mmrepro package change while a submission runs (every question then
scores 0), but a hostile submission can still harm the account. For submissions you do not trust,
grade inside a container (see the teachers' page).
"""
from __future__ import annotations

import ast
import builtins
import contextlib
import hashlib
import importlib
import inspect
import io
import json
import os
import pickle
import re
import select
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat

from mmrepro.publish import sandbox

__all__ = ["AssignmentError", "Limits", "Report", "RemoteFunction", "Stopped", "SubmissionError", "grade",
           "grade_questions", "load_checks", "read_submission"]

GRADER_FORMAT = 1  # the checks' layout in <chapter>.json; an autograder without it predates this grader
IGNORE = "otter_ignore"  # otter-grader's tag of the cells grading skips (the chapter's body)


class AssignmentError(ValueError):
    """An exercises section, an assignment folder or a submission is not as it must be."""


@dataclass(frozen=True)
class Limits:
    """How long the submission may take (seconds per cell or per call of one of its functions, seconds
    in all) and how much memory its process may use (GiB)."""

    cell_seconds: float = 120.0
    total_seconds: float = 900.0
    memory_gb: float = 4.0

    def __post_init__(self) -> None:
        for name in ("cell_seconds", "total_seconds", "memory_gb"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
                raise AssignmentError(f"{name} must be a positive number, got {value!r}.")


@dataclass
class Report:
    """The result of grading one submission: ``rows`` (name, score or None for written, points, note) and
    ``notes`` about the submission as a whole (cells that stalled or crashed, tampering)."""

    chapter: str
    rows: list[tuple[str, float | None, float, str]]
    notes: list[str] = field(default_factory=list)

    @property
    def score(self) -> float:
        return sum(r[1] for r in self.rows if r[1] is not None)

    @property
    def possible(self) -> float:
        return sum(r[2] for r in self.rows if r[1] is not None)

    def text(self) -> str:
        width = max(len(r[0]) for r in self.rows)
        lines = [f"{self.chapter}: {len(self.rows)} questions"]
        for name, score, points, note in self.rows:
            got = "manual" if score is None else f"{score:g} / {points:g}"
            lines.append(f"  {name:<{width}}  {got:<9}  {note}")
        lines += [f"note: {note}" for note in self.notes]
        lines.append(f"score: {self.score:g} / {self.possible:g}")
        return "\n".join(lines)


class Stopped(BaseException):
    """The submission's process was stopped (over its time, dead, out of memory) before it answered.
    A BaseException, so that a check's own ``except Exception`` cannot take it for an answer."""


class SubmissionError(Exception):
    """An exception the submission raised, of a type the grader does not know."""


def _exception(error: Any) -> Exception:
    """The submission's exception rebuilt from its reply: the same built-in (or already imported) type
    where there is one, so that a check expecting ValueError gets ValueError; else a SubmissionError."""
    if not isinstance(error, dict):
        return SubmissionError("the submission's process sent a malformed error")
    name, module, message = (str(error.get(k, ""))[:2000] for k in ("type", "module", "message"))
    cls: Any = getattr(builtins, name, None) if module == "builtins" else sys.modules.get(module)
    if module != "builtins":
        for part in name.split("."):
            cls = getattr(cls, part, None)
    if isinstance(cls, type) and issubclass(cls, Exception):
        with contextlib.suppress(Exception):
            return cls(message)
    short = re.sub(r"\W", "", name.split(".")[-1]) or "Error"
    return type(short, (SubmissionError,), {})(message)


def _error_text(error: Any) -> str:
    if not isinstance(error, dict):
        return "raised an error"
    line = f" (line {error['line']})" if isinstance(error.get("line"), int) else ""
    return f"raised {str(error.get('type'))[:80]}: {str(error.get('message'))[:300]}{line}"


# ----------------------------------------------------------------------------- the submission's process

class Submission:
    """The student's code cells, run in their own process (see the module docstring)."""

    def __init__(self, cells: list[str], limits: Limits, folder: Path) -> None:
        self.cells, self.limits, self.folder = cells, limits, folder
        self.deadline = time.monotonic() + limits.total_seconds
        self.proc: subprocess.Popen | None = None
        self.ran: list[int] = []            # cells run, in order
        self.fatal: set[int] = set()        # cells that stalled or killed the process: never run again
        self.outcome: dict[int, str] = {}   # cell -> what went wrong in it
        self.notes: list[str] = []
        (folder / "work").mkdir(parents=True, exist_ok=True)

    # -- the process
    def _start(self) -> None:
        from_grader, to_child = os.pipe()  # (read end, write end)
        from_child, to_grader = os.pipe()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MMREPRO_RESULTS", "MMREPRO_RUN", "JPY_"))}
        package = str(Path(__file__).resolve().parents[2])
        env.update(HOME=str(self.folder / "work"), TMPDIR=str(self.folder / "work"), MPLBACKEND="Agg",
                   MMREPRO_RUN_CACHE="off", PYTHONPATH=os.pathsep.join(
                       [package, *[p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]]))
        with open(self.folder / "output.txt", "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "mmrepro.publish.sandbox", str(from_grader), str(to_grader),
                 str(self.limits.memory_gb)], cwd=self.folder / "work", env=env, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, pass_fds=(from_grader, to_grader), start_new_session=True)
        os.close(from_grader)
        os.close(to_grader)
        os.set_blocking(to_child, False)
        self.to_child, self.from_child = to_child, from_child

    def close(self) -> None:
        """Kill the submission's process and everything it started."""
        if self.proc is None:
            return
        from mmrepro.common.processes import stop

        stop([self.proc.pid], grace=2.0, sig=signal.SIGKILL)
        with contextlib.suppress(OSError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # what it started and let go of, in its session
        self.proc.wait()
        for fd in (self.to_child, self.from_child):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.proc = None

    def _why_dead(self) -> str:
        try:
            code = self.proc.wait(timeout=2.0) if self.proc is not None else None
        except subprocess.TimeoutExpired:
            return "its process closed the grader's channel: tampering"
        if code is not None and code < 0:
            name = signal.Signals(-code).name
            hint = f" (over its memory limit of {self.limits.memory_gb:g} GiB?)" if name == "SIGKILL" else ""
            return f"its process was killed by {name}{hint}"
        return f"its process ended (exit code {code})"

    def _left(self, seconds: float) -> tuple[float, str]:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise Stopped(f"the grading time limit of {self.limits.total_seconds:g} s ran out")
        if seconds <= left:
            return seconds, f"did not finish within {seconds:g} s (the limit per cell and per call)"
        return left, f"did not finish before the grading time limit of {self.limits.total_seconds:g} s ran out"

    def _io(self, fd: int, until: float, write: bytes | None = None, n: int = 0) -> bytes:
        """Write ``write`` to, or read ``n`` bytes from, ``fd`` before monotonic time ``until``."""
        out, data = [], memoryview(write) if write is not None else None
        while (data is not None and len(data)) or (data is None and n > 0):
            wait = until - time.monotonic()
            ready = select.select([], [fd], [], max(wait, 0))[1] if data is not None else \
                select.select([fd], [], [], max(wait, 0))[0]
            if not ready:
                raise TimeoutError
            if data is not None:
                data = data[os.write(fd, data):]
            else:
                chunk = os.read(fd, min(n, 1 << 20))
                if not chunk:
                    raise EOFError
                out.append(chunk)
                n -= len(chunk)
        return b"".join(out)

    def _request(self, message: tuple, seconds: float) -> dict[str, Any]:
        """One request and its reply; Stopped (the process killed) when it takes too long or dies."""
        if self.proc is None:
            self._restart()
        wait, late = self._left(seconds)
        until = time.monotonic() + wait
        try:
            payload = pickle.dumps(message)
            self._io(self.to_child, until, write=sandbox._HEADER.pack(len(payload)) + payload)
            (size,) = sandbox._HEADER.unpack(self._io(self.from_child, until, n=sandbox._HEADER.size))
            if size > sandbox.MAX_MESSAGE:
                raise ValueError(f"a reply of {size} bytes")
            reply = json.loads(self._io(self.from_child, until, n=size))
            if not isinstance(reply, dict):
                raise ValueError("a reply that is not an object")
            return reply
        except TimeoutError:
            why = late
        except (EOFError, BrokenPipeError, ConnectionError):
            why = self._why_dead()
        except ValueError as err:  # the submission wrote into the grader's channel
            why = f"its process sent a malformed reply ({str(err)[:100]}): tampering"
        self.close()
        raise Stopped(why)

    def _restart(self) -> None:
        """A new process, with every cell run so far that neither stalled nor killed one run again."""
        while True:
            self._start()
            for i in [i for i in self.ran if i not in self.fatal]:
                try:
                    self._request(("cell", self.cells[i]), self.limits.cell_seconds)
                except Stopped as err:
                    if self.deadline <= time.monotonic():
                        raise
                    self.fatal.add(i)
                    self.outcome[i] = f"{err} when it was run again"
                    break
            else:
                return

    # -- what the grader asks
    def run_cells(self) -> None:
        """Run every cell once, in order, recording what went wrong in each."""
        for i, source in enumerate(self.cells):
            try:
                reply = self._request(("cell", source), self.limits.cell_seconds)
            except Stopped as err:
                self.outcome[i] = str(err)
                if self.deadline <= time.monotonic():
                    self.notes.append(f"cell {i + 1} and the cells after it did not run: {err}")
                    return
                self.fatal.add(i)
                self.ran.append(i)
                self.notes.append(f"cell {i + 1} was stopped: {err}; the cells after it ran in a new process")
                continue
            self.ran.append(i)
            if not reply.get("ok"):
                self.outcome[i] = _error_text(reply.get("error"))

    def describe(self, name: str) -> dict[str, Any]:
        return self._request(("describe", name), self.limits.cell_seconds)

    def call(self, name: str, args: tuple, kwargs: dict) -> Any:
        reply = self._request(("call", name, args, kwargs), self.limits.cell_seconds)
        if not reply.get("ok"):
            raise _exception(reply.get("error"))
        try:
            return sandbox.decode(reply.get("value"))
        except (ValueError, TypeError, KeyError, IndexError, OverflowError) as err:
            self.close()
            raise Stopped(f"its process sent a malformed value ({str(err)[:100]}): tampering") from None

    def why_undefined(self, name: str) -> str:
        """Why the cells did not define ``name``: the error of the cell that should have."""
        pattern = re.compile(rf"^\s*(def\s+{re.escape(name)}\b|{re.escape(name)}\s*=)", re.M)
        for i, source in enumerate(self.cells):
            if pattern.search(source) and i in self.outcome:
                return f"`{name}` is not defined: cell {i + 1}, which defines it, {self.outcome[i]}"
        return f"`{name}` is not defined in the submission"


class RemoteFunction:
    """A student's function, as a check holds it: each call sends its arguments to the submission's
    process and returns the plain-data result (or raises the submission's exception there). It carries
    the function's name, module and the names its code uses (:func:`mmrepro.publish.exercises.own`)."""

    def __init__(self, submission: Submission, variable: str, info: dict[str, Any]) -> None:
        self._submission, self._variable = submission, variable
        self.__name__ = self.__qualname__ = str(info.get("name", variable))[:200]
        self.__module__ = str(info.get("module", ""))[:200]
        self.used_names = frozenset(str(n) for n in info.get("names", []) if isinstance(n, str))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._submission.call(self._variable, args, kwargs)

    def __reduce__(self) -> tuple:  # passed to another of the student's functions: it is theirs already
        return sandbox.user_global, (self._variable,)

    def __deepcopy__(self, memo: dict) -> "RemoteFunction":
        return self

    def __repr__(self) -> str:
        return f"<function {self.__name__} of the submission>"


# ----------------------------------------------------------------------------- the checks

def load_checks(autograder: Path, chapter: str) -> list[dict[str, Any]]:
    """The questions of ``autograder/<chapter>.json`` (written by :func:`mmrepro.publish.assignments.assign`),
    each graded one with its checks' sources."""
    manifest = autograder / f"{chapter}.json"
    if not manifest.is_file() or not (autograder / f"{chapter}-autograder.zip").is_file():
        raise AssignmentError(f"{autograder} holds no autograder for {chapter!r}: run "
                              f"`mmrepro assign {chapter} --out DIR` and pass --autograder DIR/autograder.")
    try:
        data = json.loads(manifest.read_text())
        questions = data["questions"]
        fresh = data.get("grader") == GRADER_FORMAT and all("checks" in q for q in questions if q["graded"])
    except (ValueError, KeyError, TypeError) as err:
        raise AssignmentError(f"{manifest} is not an autograder manifest ({err}); run `mmrepro assign` again.") \
            from None
    if not fresh:
        raise AssignmentError(f"{manifest} was written by an older `mmrepro assign`: run it again to grade with "
                              "this version.")
    return questions


def _preimport(questions: list[dict[str, Any]]) -> None:
    """Import what the checks import before the submission runs, so that a submission that rewrites
    a module's file on disk cannot change what the checks compare with (they use these modules)."""
    for q in questions:
        for check in q.get("checks", []):
            for node in ast.walk(ast.parse(check["source"])):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                         [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
                         if isinstance(node, ast.ImportFrom) and node.module and not node.level else [])
                for name in names:
                    with contextlib.suppress(ImportError):
                        importlib.import_module(name)


def _run_check(check: dict[str, Any], submission: Submission) -> str | None:
    """Run one check against the submission's functions; None when it passes, else why not."""
    namespace: dict[str, Any] = {}
    exec(compile(check["source"], f"<check {check['function']}>", "exec"), namespace)  # noqa: S102 - the teacher's
    function = namespace[check["function"]]
    args = []
    for name in inspect.signature(function).parameters:
        try:
            info = submission.describe(name)
        except Stopped as err:
            return f"stopped: {err}"
        if not info.get("defined"):
            return "not answered: " + submission.why_undefined(name)
        if info.get("callable"):
            args.append(RemoteFunction(submission, name, info))
        else:
            try:
                args.append(sandbox.decode(info.get("value")))
            except (ValueError, TypeError, KeyError, IndexError, OverflowError):
                return f"not answered: `{name}` is not a value the grader can read"
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            function(*args)
    except Stopped as err:
        return f"stopped: {err}"
    except Exception as err:  # noqa: BLE001 - a failed check, whatever it raised
        return f"{type(err).__name__}: {' '.join(str(err).split())[:400]}"
    return None


def _digest(folder: Path | None) -> str | None:
    if folder is None:
        return None
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def _cells(nb: Any) -> list[str]:
    """The submission's code cells that grading runs: not the chapter's body (tagged otter_ignore), nor
    otter's own cells (its set-up and the students' ``grader.check`` calls)."""
    calls = re.compile(r"^\s*(#.*)?$|^\s*grader\.\w+\(.*\)\s*$")
    return [c.source for c in nb.cells if c.cell_type == "code" and IGNORE not in c.metadata.get("tags", [])
            and "otter.Notebook(" not in c.source and not all(calls.match(line) for line in c.source.splitlines())]


def read_submission(path: Path) -> tuple[Any, str]:
    """The submitted notebook and its chapter; AssignmentError in one line for anything else."""
    try:
        nb = nbformat.read(path, as_version=4)
        chapter = nb.metadata.get("otter", {}).get("assignment_name")
        [c.cell_type for c in nb.cells]  # noqa: B018 - a notebook whose cells are not cells fails here
    except (OSError, ValueError, TypeError, AttributeError, KeyError) as err:
        raise AssignmentError(f"cannot read the submission {path}: it is not a notebook ({type(err).__name__}: "
                              f"{str(err)[:200]}).") from None
    if not chapter:
        raise AssignmentError(f"{path} is not a notebook written by `mmrepro assign` (no otter assignment name in "
                              "its metadata): grade the student version's notebook.")
    return nb, str(chapter)


def grade(submission: Path, autograder: Path, limits: Limits | None = None) -> Report:
    """Grade ``submission`` against ``autograder`` (a folder written by :func:`~mmrepro.publish.assignments.assign`)
    as the module docstring says; :func:`mmrepro.publish.assignments.grade` builds the autograder when
    none is given."""
    nb, chapter = read_submission(Path(submission))
    return grade_questions(nb, chapter, load_checks(Path(autograder), chapter), Path(autograder), limits)


def grade_questions(nb: Any, chapter: str, questions: list[dict[str, Any]], guarded: Path | None,
                    limits: Limits | None = None) -> Report:
    """Grade submitted notebook ``nb`` on ``questions`` (:func:`load_checks`); ``guarded`` is the autograder
    folder whose files must not change meanwhile (None: the checks were read from a folder since removed)."""
    from mmrepro.runs.keys import code_digest

    limits = limits or Limits()
    _preimport(questions)
    before = (_digest(guarded), code_digest.__wrapped__())
    rows: list[tuple[str, float | None, float, str]] = []
    with tempfile.TemporaryDirectory(prefix="mmrepro-submission-") as folder:
        student = Submission(_cells(nb), limits, Path(folder))
        try:
            student.run_cells()
            for q in questions:
                if not q["graded"]:
                    rows.append((q["name"], None, q["points"], f"written answer ({q['points']:g} points): graded "
                                                               "by the teacher"))
                    continue
                failures = [(c, why) for c in q["checks"] if (why := _run_check(c, student)) is not None]
                score = q["points"] * (len(q["checks"]) - len(failures)) / len(q["checks"])
                if not failures:
                    note = "all checks pass"
                elif failures[0][1].startswith("not answered"):
                    note = failures[0][1]
                else:
                    note = f"failed{' (hidden check)' if failures[0][0]['hidden'] else ''}: {failures[0][1]}"
                rows.append((q["name"], float(score), float(q["points"]), note))
        finally:
            student.close()
    after = (_digest(guarded), code_digest.__wrapped__())
    notes = list(student.notes)
    changed = [what for what, a, b in (("the autograder's files", before[0], after[0]),
                                       ("the mmrepro package's source", before[1], after[1])) if a != b]
    if changed:
        notes.append(f"tampering: {' and '.join(changed)} changed while the submission ran; every question scores "
                     "0 (restore them, e.g. run `mmrepro assign` again, before grading another submission)")
        rows = [(n, None if s is None else 0.0, p, "0: tampering (see the note below)" if s is not None else note)
                for n, s, p, note in rows]
    return Report(chapter, rows, notes)
