"""`mmrepro book` on a small fixture project: unchanged notebooks are reused, a failing chapter costs
nothing of the others, --force and --no-execute, and what the fingerprint covers."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from pathlib import Path

import pytest

from mmrepro.publish import book, execution, parameters

from .processes import assert_ends

FIXTURE = Path(__file__).parent / "fixtures" / "contract.md"

SUMMARY = """---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---

# Summary

```{code-cell} ipython3
:tags: [parameters]

profile: str = "book"  # the chapters' profile
```

```{code-cell} ipython3
from mmrepro.publish.notebook import results_dir

print(sorted(p.name for p in results_dir().glob("*.json")))
```
"""


def chapter(name: str) -> str:
    return FIXTURE.read_text().replace('start("contract"', f'start("{name}"')


def make_project(root: Path) -> Path:
    """Two chapters (the contract fixture under two names) and a summary page, as a jb-book."""
    (root / "notebooks").mkdir(parents=True)
    (root / "book").mkdir()
    (root / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nparts:\n  - caption: All\n    chapters:\n"
                                   "      - file: notebooks/alpha\n      - file: notebooks/beta\n"
                                   "      - file: book/summary\n")
    (root / "_config.yml").write_text("title: fixture\n")
    (root / "book" / "intro.md").write_text("# Intro\n")
    (root / "book" / "summary.md").write_text(SUMMARY)
    for name in ("alpha", "beta"):
        (root / "notebooks" / f"{name}.md").write_text(chapter(name))
    return root


def snapshot(build: Path) -> dict[str, bytes]:
    return {str(p.relative_to(build)): p.read_bytes() for d in ("executed", "results")
            for p in sorted((build / d).rglob("*")) if p.is_file()}


REAL_STAGE = book.stage


@pytest.fixture
def project(tmp_path, monkeypatch):
    """The fixture project; the HTML build itself is replaced by `true` (the -W build is tested in test_book)."""
    root = make_project(tmp_path / "project")
    monkeypatch.setattr(book, "stage", lambda root, build, site=None, solutions=True: site or build / "site")
    monkeypatch.setattr(book, "_jupyter_book", lambda: shutil.which("true"))
    runs: list[str] = []
    real = book.execute

    def counted(path, *args, **kwargs):
        runs.append(path.stem)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(book, "execute", counted)
    return root, tmp_path / "build", runs


def test_a_second_build_after_an_unchanged_first_one_executes_nothing(project, capsys):
    root, build, runs = project
    book.build_book(root, profile="smoke", build=build)
    assert runs == ["alpha", "beta", "summary"]
    first = snapshot(build)
    assert {"executed/alpha.ipynb", "executed/beta.ipynb", "executed/summary.ipynb", "results/alpha.json",
            "results/beta.json", "results/alpha/runs_2.png"} <= set(first)
    capsys.readouterr()
    runs.clear()
    book.build_book(root, profile="smoke", build=build)
    out = capsys.readouterr().out
    assert runs == [] and snapshot(build) == first
    assert "reused   notebooks/alpha.md (nothing it depends on changed)" in out
    assert "notebooks: reused alpha, beta, summary" in out

    # --no-execute refuses an executed notebook that is not a completed run
    nb = json.loads((build / "executed" / "beta.ipynb").read_text())
    del nb["metadata"]["mmrepro"]
    (build / "executed" / "beta.ipynb").write_text(json.dumps(nb))
    with pytest.raises(parameters.BookError, match=r"beta.ipynb is not a completed run; run `mmrepro book` without "
                                             r"--no-execute"):
        REAL_STAGE(root, build)


def test_a_failing_chapter_does_not_discard_the_others(project, capsys):
    root, build, runs = project
    source = root / "notebooks" / "beta.md"
    good_beta = source.read_text()
    source.write_text(good_beta.replace("fail: bool = False", "fail: bool = True"))  # beta fails
    with pytest.raises(parameters.BookError, match=r"beta failed \(see above\); the book was not built. The other "
                                             r"notebooks' executed copies and results are kept"):
        book.build_book(root, profile="smoke", build=build)
    out = capsys.readouterr().out
    assert runs == ["alpha", "beta"]  # the summary is not run on results that lack a chapter
    assert "failed   notebooks/beta.md: beta.md failed (AssertionError: asked to fail)" in out
    assert "skipped  book/summary.md: it summarises the chapters, and beta failed" in out
    assert "notebooks: executed alpha; failed beta; skipped summary" in out
    alpha = snapshot(build)
    assert set(alpha) == {"executed/alpha.ipynb", "results/alpha.json", "results/alpha/runs_2.png"}
    assert (build / "failed" / "beta.ipynb").is_file()

    runs.clear()  # beta fixed: only what failed or depends on it runs; alpha's output is reused as it was
    source.write_text(good_beta)
    book.build_book(root, profile="smoke", build=build)
    out = capsys.readouterr().out
    assert runs == ["beta", "summary"]
    assert "reused   notebooks/alpha.md" in out and "running  notebooks/beta.md (profile=smoke; it has not been " \
                                                       "executed yet)" in out
    assert {k: v for k, v in snapshot(build).items() if "alpha" in k} == alpha


def test_force_parameters_data_and_results_decide_what_runs(project, tmp_path, monkeypatch, capsys):
    """What a notebook's fingerprint covers, with execute replaced by a stub that records a completed run."""
    import nbformat

    root, build, _ = project
    calls: list[str] = []

    def fake_execute(path, build, params, root, record=None):
        calls.append(path.stem)
        nb = nbformat.v4.new_notebook()
        results = build / "results" / f"{path.stem}.json"
        nb.metadata["mmrepro"] = {**record, "complete": True,
                                  "results_sha256": execution.sha256_file(results) if results.is_file() else None}
        (build / "executed").mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, str(build / "executed" / f"{path.stem}.ipynb"))

    def build_and_say() -> tuple[list[str], str]:
        calls.clear()
        book.build_book(root, profile=profile, build=build, force=force)
        return list(calls), capsys.readouterr().out

    monkeypatch.setattr(book, "execute", fake_execute)
    profile, force = "smoke", False
    assert build_and_say()[0] == ["alpha", "beta", "summary"]
    assert build_and_say()[0] == []
    force = True
    ran, out = build_and_say()
    assert ran == ["alpha", "beta", "summary"] and "running  notebooks/alpha.md (profile=smoke; --force)" in out
    force, profile = False, "book"
    ran, out = build_and_say()
    assert ran == ["alpha", "beta", "summary"] and "(profile=book; its parameters differ)" in out

    data = tmp_path / "data"
    (data / "mfeat").mkdir(parents=True)
    (data / "mfeat" / "mfeat-fou.csv").write_text("1,2\n")
    monkeypatch.setenv("MMREPRO_DATA", str(data))
    ran, out = build_and_say()
    assert ran == ["alpha", "beta", "summary"] and "(profile=book; the data changed)" in out
    assert build_and_say()[0] == []
    (data / "mfeat" / "mfeat-fou.csv").write_text("1,2,3\n")  # a data file replaced
    assert build_and_say()[0] == ["alpha", "beta", "summary"]

    (build / "results").mkdir(exist_ok=True)
    (build / "results" / "alpha.json").write_text("{}")  # a results file that is not the recorded one
    ran, out = build_and_say()
    assert ran == ["alpha", "summary"]
    assert "alpha.md (profile=book; its results file changed or is missing)" in out
    assert "summary.md (profile=book; the chapters' results changed)" in out

    (root / "notebooks" / "beta.md").write_text(chapter("beta") + "\n")  # its source
    assert build_and_say()[0] == ["beta"]

    from mmrepro.publish.cli import parser

    assert parser().parse_args(["book", "--force"]).force and not parser().parse_args(["book"]).force
    assert parser().parse_args(["book"]).jobs is None and parser().parse_args(["book", "--jobs", "2"]).jobs == 2
    parts = execution.notebook_fingerprint(root / "notebooks" / "alpha.md", {"profile": "book"}, root, build)
    assert set(parts) == {"source", "parameters", "package", "data", "machine"}
    assert set(parts["package"]) == {"version", "source", "libraries", "python"}
    assert parts["data"]["root"] == str(data.resolve())
    assert "results" in execution.notebook_fingerprint(root / "book" / "summary.md", {"profile": "book"}, root, build)


RENDEZVOUS = '''
here = os.path.join({folder!r}, "{name}")
open(here, "w").close()
deadline = time.monotonic() + 120
while not all(os.path.exists(os.path.join({folder!r}, n)) for n in ("alpha", "beta")):
    assert time.monotonic() < deadline, "the other chapter never ran beside this one"
    time.sleep(0.2)
time.sleep(sleep)
'''


def side_by_side(root: Path, folder: Path) -> None:
    """Both chapters wait in their last cell until the other has reached it: they finish only when run
    at the same time."""
    for name in ("alpha", "beta"):
        source = root / "notebooks" / f"{name}.md"
        source.write_text(source.read_text().replace("time.sleep(sleep)\n", RENDEZVOUS.format(folder=str(folder),
                                                                                             name=name)))


def test_chapters_run_side_by_side_and_a_failure_costs_the_other_nothing(tmp_path, capsys):
    root, build, meet = make_project(tmp_path / "project"), tmp_path / "build", tmp_path / "meet"
    meet.mkdir()
    side_by_side(root, meet)
    beta = root / "notebooks" / "beta.md"
    beta.write_text(beta.read_text().replace("fail: bool = False", "fail: bool = True"))
    with pytest.raises(parameters.BookError, match=r"beta failed \(see above\); the book was not built"):
        book.build_book(root, profile="smoke", build=build, jobs=2)
    out = capsys.readouterr().out
    assert "executed notebooks/alpha.md" in out
    assert "failed   notebooks/beta.md: beta.md failed (AssertionError: asked to fail)" in out
    assert "skipped  book/summary.md: it summarises the chapters, and beta failed" in out
    assert set(snapshot(build)) == {"executed/alpha.ipynb", "results/alpha.json", "results/alpha/runs_2.png"}
    assert (build / "failed" / "beta.ipynb").is_file()
    with pytest.raises(parameters.BookError, match="jobs must be a whole number >= 1"):
        book.build_book(root, profile="smoke", build=build, jobs=0)


def test_an_interrupted_parallel_build_stops_every_chapter_and_keeps_what_finished(tmp_path):
    """Ctrl-C or SIGTERM to `mmrepro book --jobs 2`: exit 130, one line naming each stopped chapter, both
    kernels stopped, the earlier completed output byte-identical."""
    import os
    import signal
    import subprocess
    import sys
    import time

    root, build = make_project(tmp_path / "project"), tmp_path / "build"
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    cli = [sys.executable, "-m", "mmrepro.publish.cli", "book", "--profile", "smoke", "--build", str(build), "--jobs", "2"]
    assert subprocess.run([*cli[:-2], "--jobs", "1", "--no-execute"], cwd=root, env=env,
                          capture_output=True).returncode == 2  # nothing executed yet: the build refuses
    for sig, name in ((signal.SIGINT, "Ctrl-C"), (signal.SIGTERM, "SIGTERM")):
        pids = {n: tmp_path / f"{name}-{n}.pid" for n in ("alpha", "beta")}
        for n, pid in pids.items():
            source = root / "notebooks" / f"{n}.md"
            source.write_text(chapter(n).replace('pid_file: str = ""', f"pid_file: str = {str(pid)!r}")
                              .replace("sleep: float = 0.0", "sleep: float = 300.0"))
        proc = subprocess.Popen(cli, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 240
        while not all(p.is_file() and p.read_text() for p in pids.values()):
            assert proc.poll() is None and time.monotonic() < deadline, "the chapters never reached their last cells"
            time.sleep(0.5)
        kernels = [int(p.read_text()) for p in pids.values()]
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 130, err
        said = [line for line in err.splitlines() if line.startswith("mmrepro:")]
        assert len(said) == 1 and "Traceback" not in err, err
        for n in ("alpha", "beta"):
            assert f"{n} interrupted (SIGTERM): nothing was written to executed/ or results/; the partial run is " \
                   f"in {build / 'failed' / f'{n}.ipynb'}" in said[0], err
        assert not (build / "executed").exists() or not list((build / "executed").iterdir())
        assert not [p for p in build.iterdir() if p.name.startswith(".run-")]  # no staging folder left
        for kernel in kernels:
            assert_ends(kernel, name)


def test_files_a_chapter_downloads_do_not_make_the_next_build_run_again(project, tmp_path, monkeypatch):
    root, build, runs = project
    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setenv("MMREPRO_DATA", str(data))
    source = root / "notebooks" / "beta.md"  # beta "downloads" a file while alpha's run is already recorded
    source.write_text(source.read_text().replace(
        "time.sleep(sleep)\n", "time.sleep(sleep)\nopen(os.path.join(os.environ['MMREPRO_DATA'], 'got.csv'), 'w')\n"))
    book.build_book(root, profile="smoke", build=build)
    assert runs == ["alpha", "beta", "summary"] and (data / "got.csv").is_file()
    runs.clear()
    book.build_book(root, profile="smoke", build=build)
    assert runs == []
    (data / "other.csv").write_text("1\n")  # a file that appears outside a build is a change of the data
    book.build_book(root, profile="smoke", build=build)
    assert sorted(runs[:2]) == ["alpha", "beta"] and runs[2:] == ["summary"]  # the longer last run first


# ----------------------------------------------------------------------------- results kept apart

def staged_run(folder: Path, marker: str, profile: str = "book") -> Path:
    """A finished run's staging folder as execute() leaves it: figures, results file, executed notebook."""
    import nbformat

    (folder / "results" / "demo").mkdir(parents=True)
    for fig in ("a", "b"):
        (folder / "results" / "demo" / f"{fig}.png").write_text(marker)
    (folder / "results" / "demo.json").write_text(json.dumps({"profile": profile, "marker": marker}))
    nbformat.write(nbformat.v4.new_notebook(), str(folder / "demo.ipynb"))
    return folder


def test_concurrent_commits_into_one_build_folder_are_serialised(tmp_path):
    """Two runs of one chapter committing into one build folder at the same moment: each commit is whole
    (the figures, results file and executed notebook of one run), nothing is left aside, nothing fails."""
    import threading

    build = tmp_path / "build"
    build.mkdir()
    for round_ in range(40):
        stages = [staged_run(tmp_path / f"stage-{round_}-{i}", f"run {round_}.{i}") for i in range(3)]
        errors: list[BaseException] = []
        go = threading.Barrier(len(stages))

        def commit(stage: Path) -> None:
            go.wait()
            try:
                execution._commit(stage, build, "demo", {"fingerprint": {}})
            except BaseException as err:  # noqa: BLE001 - collected and reported below
                errors.append(err)

        threads = [threading.Thread(target=commit, args=(s,)) for s in stages]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, f"round {round_}: {errors!r}"
        results = build / "results"
        marker = json.loads((results / "demo.json").read_text())["marker"]
        assert {p.read_text() for p in (results / "demo").iterdir()} == {marker}, f"round {round_}: figures mixed"
        assert sorted(p.name for p in results.iterdir()) == ["demo", "demo.json"], f"round {round_}: left aside"
        recorded = json.loads((build / "executed" / "demo.ipynb").read_text())["metadata"]["mmrepro"]
        assert recorded["results_sha256"] == execution.sha256_file(results / "demo.json")


def test_a_build_folder_keeps_one_profile(project, capsys):
    """A `smoke` build or run into a folder holding `book` results is refused before anything runs, with
    the way out; the commit itself refuses too (a run started meanwhile)."""
    from mmrepro.publish.cli import main

    root, build, runs = project
    (build / "results").mkdir(parents=True)
    (build / "results" / "alpha.json").write_text(json.dumps({"profile": "book", "notebook": "alpha"}))
    with pytest.raises(parameters.BookError, match=r"alpha.json holds a 'book'-profile run of alpha; this "
                                                   r"'smoke'-profile run would replace it"):
        book.build_book(root, profile="smoke", build=build)
    assert runs == []
    assert main(["run", str(root / "notebooks" / "alpha.md"), "--profile", "smoke", "--build", str(build)]) == 2
    err = capsys.readouterr().err
    assert "holds a 'book'-profile run of alpha" in err and "--build <folder>" in err and len(err.splitlines()) == 1
    assert runs == [] and (build / "results" / "alpha.json").read_text().startswith('{"profile": "book"')
    stage = staged_run(build / ".run-x", "smoke run", profile="smoke")
    (build / "results" / "demo.json").write_text(json.dumps({"profile": "book"}))
    with pytest.raises(parameters.BookError, match="holds a 'book'-profile run of demo"):
        execution._commit(stage, build, "demo", {})
    assert json.loads((build / "results" / "demo.json").read_text()) == {"profile": "book"}


# ----------------------------------------------------------------------------- interrupts that always end

IDLE_WORKERS = """
import sys
from pathlib import Path

from mmrepro.publish import book, cli
from tests.processes import stand_in_chapter

ARGS = list(sys.argv)


def build_book(project_root=None, **kwargs):  # the command line passes the project root first
    root, build, n = Path(ARGS[1]), Path(ARGS[2]), int(ARGS[3])
    book._run_all([(root / "notebooks" / f"ch{i}.md", {}) for i in range(n)], build, "smoke", root, n)


if __name__ == "__main__":  # the chapters' processes import this file as __mp_main__
    book.execute, book.build_book = stand_in_chapter, build_book
    sys.argv = ["mmrepro", "book"]
    sys.exit(cli.main())
"""


def interrupt_one_build(script: Path, folder: Path, attempt: int, n: int) -> str | None:
    """Run the stand-in build of ``n`` chapters, wait until all but ch0 have finished (their workers, where
    there are workers, are idle then), signal it, and say what went wrong (None: nothing)."""
    import signal
    import subprocess
    import sys
    import time

    import psutil

    sig = (signal.SIGINT, signal.SIGTERM)[attempt % 2]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, str(script), str(folder), str(folder / "build"), str(n)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    finished = 0
    while finished < n - 1:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            return f"try {attempt}: the build ended before the signal: {proc.stderr.read()[-600:]}"
        finished += line.startswith("executed ")
    time.sleep(0.5)
    family = [p.pid for p in psutil.Process(proc.pid).children(recursive=True)]
    if sig == signal.SIGINT:
        os.killpg(proc.pid, sig)  # what a terminal does on Ctrl-C
        time.sleep(0.1 * (attempt % 4))
        os.killpg(proc.pid, sig)  # and a second Ctrl-C, impatient
    else:
        proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        for pid in family:
            with contextlib.suppress(psutil.NoSuchProcess):
                psutil.Process(pid).kill()
        proc.communicate()
        return f"try {attempt} ({sig.name}): still running 30 s after the signal"
    said = [line for line in err.splitlines() if line.startswith("mmrepro:")]
    if proc.returncode != 130 or "Traceback" in err or len(said) != 1 or "ch0 interrupted" not in said[0]:
        return f"try {attempt} ({sig.name}): exit {proc.returncode}, stderr {err[-600:]!r}"
    deadline = time.monotonic() + 10
    while [p for p in family if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]:
        if time.monotonic() > deadline:
            return f"try {attempt} ({sig.name}): processes {family} outlived the build"
        time.sleep(0.1)
    return None


def test_an_interrupt_with_idle_workers_always_ends(tmp_path):
    """One chapter still running beside idle workers (the others finished), then Ctrl-C (to the terminal's
    process group) or SIGTERM (to mmrepro alone), eight times (four at once): every try ends within 30 s,
    exit 130, one line naming the stopped chapter, no traceback, and no process of the build left behind.
    (A process pool hung or printed tracebacks in most such tries: an idle worker got the signal while it
    held the pool's queue lock.)"""
    from concurrent.futures import ThreadPoolExecutor

    script = tmp_path / "idle.py"
    script.write_text(IDLE_WORKERS)
    folders = [tmp_path / f"try-{i}" for i in range(8)]
    for folder in folders:
        folder.mkdir()
    with ThreadPoolExecutor(4) as tries:
        failures = [f for f in tries.map(lambda i: interrupt_one_build(script, folders[i], i, 5), range(8)) if f]
    assert not failures, "\n".join(failures)


def test_a_second_signal_is_ignored_even_before_the_clean_up_starts():
    """Within `interrupt_once` the first Ctrl-C raises KeyboardInterrupt; a second Ctrl-C or a SIGTERM that
    arrives before the ``except`` clause's first line is ignored, also in a nested block, until the outermost
    block ends; then the handlers are as before and a new block raises again. (Ignoring signals only from
    the ``except`` clause on let a double Ctrl-C skip stopping the chapters, and the command hung at exit.)"""
    import signal

    from mmrepro.common.processes import interrupt_once

    def second_signals() -> None:
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.2)  # the handlers run here, in the main thread

    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    caught = []
    for _ in range(2):  # the second round: the state is reset when the block ends
        with interrupt_once():
            try:
                with interrupt_once():
                    os.kill(os.getpid(), signal.SIGINT)
                    time.sleep(5)
            except KeyboardInterrupt as err:
                second_signals()  # before the clean-up: no second KeyboardInterrupt
                caught.append(str(err))
            second_signals()  # still inside the outer block
        assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    assert caught == ["", ""]
    with pytest.raises(KeyboardInterrupt, match="SIGTERM"), interrupt_once():
        with interrupt_once():
            pass  # an inner block that ended does not make the outer one ignore its first signal
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)


def test_a_lost_first_signal_and_one_that_arrives_while_a_process_starts(monkeypatch):
    """A signal that comes after the clean-up time raises again (the first was lost: Python drops an exception
    raised inside a finaliser); one that arrives while interrupts are held (a chapter's process starting, its
    pid not yet known to the clean-up) is raised when the held section ends."""
    import signal

    from mmrepro.common import processes

    monkeypatch.setattr(processes, "CLEAN_UP_SECONDS", 0.3)
    with processes.interrupt_once():
        with contextlib.suppress(KeyboardInterrupt):  # lost
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.1)  # within the clean-up time: ignored
        with pytest.raises(KeyboardInterrupt):
            time.sleep(0.3)
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
    started = []
    with pytest.raises(KeyboardInterrupt, match="SIGTERM"), processes.interrupt_once():
        with processes.interrupts_held():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.2)
            started.append("pid known")
        started.append("after")
    assert started == ["pid known"]


def test_a_book_without_solutions_and_the_previous_book_kept(tmp_path, monkeypatch, capsys):
    """`mmrepro book --no-solutions` stages the chapters without their solutions (exercises and checks stay);
    a build whose HTML step fails or is interrupted leaves the previous book in site/ as it was."""
    import jupytext
    import nbformat

    from mmrepro.publish.cli import main, parser

    root, build = make_project(tmp_path / "project"), tmp_path / "build"
    exercises = Path(__file__).parent / "fixtures" / "exercises.md"
    (root / "notebooks" / "alpha.md").write_text(exercises.read_text())
    nb = jupytext.read(exercises)
    nb.metadata["mmrepro"] = {"complete": True}
    (build / "executed").mkdir(parents=True)
    for name in ("alpha", "beta", "summary"):
        nbformat.write(nb, str(build / "executed" / f"{name}.ipynb"))
    vendored = tmp_path / "mathjax"
    vendored.mkdir()
    monkeypatch.setattr(book, "ensure_mathjax", lambda root: vendored)
    course = book.stage(root, build, tmp_path / "course", solutions=False)
    staged = (course / "notebooks" / "alpha.ipynb").read_text()
    assert "BEGIN SOLUTION" not in staged and "{solution" not in staged and "does not depend on the seed" not in staged
    assert staged.count("{exercise}") == 3 and "check_mean_public(mean_of)" in staged
    assert "BEGIN SOLUTION" in (book.stage(root, build, tmp_path / "full") / "notebooks" / "alpha.ipynb").read_text()
    assert parser().parse_args(["book", "--no-solutions"]).no_solutions

    (build / "site").mkdir()
    (build / "site" / "index.html").write_text("the previous book")
    monkeypatch.setattr(book, "_jupyter_book", lambda: shutil.which("false"))
    monkeypatch.chdir(root)
    assert main(["book", "--no-execute", "--build", str(build)]) == 2
    assert "this build is in" in capsys.readouterr().err
    assert (build / "site" / "index.html").read_text() == "the previous book" and (build / "site-failed").is_dir()
    monkeypatch.setattr(book, "_jupyter_book", lambda: shutil.which("true"))
    assert main(["book", "--no-execute", "--no-solutions", "--build", str(build)]) == 0
    assert "BEGIN SOLUTION" not in (build / "site" / "notebooks" / "alpha.ipynb").read_text()
    assert not (build / "site-failed").exists() and not [p for p in build.iterdir() if p.name.startswith(".site")]
    capsys.readouterr()
    (build / "executed" / "beta.ipynb").write_text('{"cells": 5}')  # JSON, but not a notebook
    assert main(["book", "--no-execute", "--build", str(build)]) == 2
    err = capsys.readouterr().err.strip()
    assert f"{build / 'executed' / 'beta.ipynb'} is not a readable notebook" in err and len(err.splitlines()) == 1


HTML_STEP = """
import sys
from pathlib import Path

from mmrepro.publish import book, cli

if __name__ == "__main__":
    book.ensure_mathjax = lambda root: Path(sys.argv[3])
    book._jupyter_book = lambda: sys.argv[2]
    sys.exit(cli.main(["book", "--no-execute", "--build", sys.argv[1]]))
"""


def test_an_interrupt_during_the_html_step_keeps_the_previous_book(tmp_path):
    """Ctrl-C (to the process group) or SIGTERM while jupyter-book runs: it and what it started are stopped,
    exit 130 with one line, and the previously built book is left in place."""
    import signal
    import subprocess
    import sys
    import time

    import jupytext
    import nbformat
    import psutil

    root, build = make_project(tmp_path / "project"), tmp_path / "build"
    nb = jupytext.read(root / "notebooks" / "alpha.md")
    nb.metadata["mmrepro"] = {"complete": True}
    (build / "executed").mkdir(parents=True)
    for name in ("alpha", "beta", "summary"):
        nbformat.write(nb, str(build / "executed" / f"{name}.ipynb"))
    (build / "site").mkdir()
    (build / "site" / "index.html").write_text("the previous book")
    (tmp_path / "mathjax").mkdir()
    started = tmp_path / "started"
    slow = tmp_path / "jupyter-book"
    slow.write_text(f"#!/bin/sh\nsleep 300 &\necho $! > {started}\nwait\n")
    slow.chmod(0o755)
    script = tmp_path / "html_step_script.py"
    script.write_text(HTML_STEP)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    for sig in (signal.SIGINT, signal.SIGTERM):
        started.unlink(missing_ok=True)
        proc = subprocess.Popen([sys.executable, str(script), str(build), str(slow), str(tmp_path / "mathjax")],
                                cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        deadline = time.monotonic() + 120
        while not (started.is_file() and started.read_text().strip()):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
            time.sleep(0.2)
        sleeper = int(started.read_text())
        if sig == signal.SIGINT:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
        said = [line for line in err.splitlines() if line.startswith("mmrepro:")]
        assert proc.returncode == 130 and "Traceback" not in err and len(said) == 1, err
        assert "while jupyter-book built the HTML" in said[0] and "the previous book in" in said[0]
        assert (build / "site" / "index.html").read_text() == "the previous book"
        assert not [p for p in build.iterdir() if p.name.startswith(".site")]
        deadline = time.monotonic() + 10
        while psutil.pid_exists(sleeper) and psutil.Process(sleeper).status() != psutil.STATUS_ZOMBIE:
            assert time.monotonic() < deadline, "jupyter-book's child outlived the build"
            time.sleep(0.1)
