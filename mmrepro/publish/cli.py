"""``mmrepro`` command line: run one notebook, build the book, print the claims, list notebooks, make and grade
classroom assignments."""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
from pathlib import Path

from mmrepro.publish import assignments, book, execution, parameters
from mmrepro.publish.notebook import PROFILES

_WHERE = """
Where: every command works on one project checkout (the folder holding _toc.yml and notebooks/): the
one given by --root or $MMREPRO_ROOT, else the one holding the working folder (or the notebook named
by path), else the checkout this package was installed from with `pip install -e`. Outputs go to
<project>/_build unless --build says otherwise.
"""


def _root(args: argparse.Namespace, near: str | None = None) -> Path:
    """The project the command works on (:func:`mmrepro.publish.parameters.locate_root`); says so on stderr
    when it is not the working folder's but the checkout the package is installed from."""
    candidate = Path(near) if near and near.endswith(".md") and Path(near).is_file() else None
    root, how = parameters.locate_root(getattr(args, "root", None), candidate)
    if how == "installed":
        print(f"mmrepro: project {root} (the checkout this package is installed from; --root DIR or "
              f"{parameters.ROOT_ENV}=DIR chooses another)", file=sys.stderr)
    return root


def _run(args: argparse.Namespace) -> int:
    root = _root(args, args.notebook)
    path = parameters.find_notebook(args.notebook, root)
    params = {name: parameters.parse_value(value) for name, value in args.param}
    if args.profile:
        params["profile"] = args.profile
    values = parameters.check_parameters(path, params)  # before any kernel starts
    build = execution.prepare_build(Path(args.build) if args.build else root / "_build")
    execution.check_profiles(build, [path.stem], values["profile"])
    record = {"fingerprint": execution.notebook_fingerprint(path, values, root, build)}
    out = execution.execute(path, build, params, root, record=record, progress=True)
    results = build / "results" / f"{path.stem}.json"
    print(f"executed notebook: {out}")
    if results.is_file():
        from mmrepro.publish import scorecard

        print(f"results: {results}\n")
        print(scorecard.run_summary(json.loads(results.read_text()), build if args.build else None))
    return 0


def _book(args: argparse.Namespace) -> int:
    build = Path(args.build) if args.build else None
    html = book.build_book(_root(args), profile=args.profile, build=build, execute_notebooks=not args.no_execute,
                           force=args.force, jobs=args.jobs, solutions=not args.no_solutions)
    print(f"book: {html / 'index.html'}")
    return 0


def _claims(args: argparse.Namespace) -> int:
    from mmrepro.publish import scorecard
    from mmrepro.publish.notebook import results_dir

    if args.results or args.build:
        folder = Path(args.results) if args.results else Path(args.build) / "results"
    elif os.environ.get("MMREPRO_RESULTS"):
        folder = results_dir()
    else:
        folder = _root(args) / "_build" / "results"
    try:
        results = scorecard.load_results(folder)
    except (FileNotFoundError, ValueError) as err:
        raise parameters.BookError(str(err)) from None
    if not results:
        raise parameters.BookError(f"no results files in {folder}: run a chapter first (mmrepro run NAME).")
    if args.chapter is not None and args.chapter not in {r["notebook"] for r in results}:
        raise parameters.BookError(f"--chapter {args.chapter!r} has no results in {folder}; chapters there: "
                                   f"{', '.join(r['notebook'] for r in results)}.")
    if not (args.headline or args.chapter or args.outcome):
        print(scorecard.terminal_report(results))
        return 0
    try:
        chosen = scorecard.select(results, chapter=args.chapter, headline=args.headline, outcome=args.outcome)
    except ValueError as err:
        raise parameters.BookError(str(err)) from None
    for record in chosen:
        print(f"{record['chapter']}: {scorecard.claim_line(record, 120 - len(record['chapter']) - 2)}")
    if not chosen:
        print("no claim matches these filters")
    return 0


def _chapters(args: argparse.Namespace) -> list[Path]:
    """The named chapters' sources, or every chapter's when no name is given."""
    names = args.chapters
    root = _root(args, next((n for n in names if n.endswith(".md")), None))
    return [parameters.find_notebook(n, root) for n in names] if names else [
        p for p in parameters.notebooks(root) if parameters.is_chapter(p, root)]


def _export(args: argparse.Namespace) -> int:
    for path in book.export(_chapters(args), Path(args.out)):
        print(path)
    return 0


def _assign(args: argparse.Namespace) -> int:
    for path in assignments.assign(_chapters(args), Path(args.out)):
        print(path)
    return 0


def _grade(args: argparse.Namespace) -> int:
    from mmrepro.publish.grading import Limits

    root = None if args.autograder else _root(args)  # without --autograder: built from the project's chapter
    limits = Limits(cell_seconds=args.cell_timeout, total_seconds=args.timeout, memory_gb=args.memory)
    report = assignments.grade(Path(args.submission), Path(args.autograder) if args.autograder else None, root,
                               limits=limits)
    print(report.text())
    return 0


def _cache(args: argparse.Namespace) -> int:
    from mmrepro.runs.cache import ENV, default_cache, describe_cache, size_text

    store = default_cache()
    if args.action == "info" or store is None:
        print(describe_cache(store))
        return 0
    if args.older_than is not None and args.older_than < 0:
        raise parameters.BookError(f"--older-than must be a number of days >= 0, got {args.older_than:g}.")
    try:
        n, freed = store.clear(args.older_than)
    except OSError as err:
        raise parameters.BookError(f"{err.strerror}; is the cache folder read-only? Set {ENV} to a folder you "
                                   "can write, or to off.") from None
    age = f" unused for more than {args.older_than:g} days" if args.older_than is not None else ""
    print(f"removed {n} cached run(s){age} ({size_text(freed)}) from {store.root}")
    return 0


def _plan(args: argparse.Namespace) -> int:
    from mmrepro.publish.notebook import ParameterError, _device_name
    from mmrepro.publish.planning import plan_notebook
    from mmrepro.runs.cost import report

    root = _root(args, args.notebook)
    path = parameters.find_notebook(args.notebook, root)
    params = {name: parameters.parse_value(value) for name, value in args.param}
    try:
        est = plan_notebook(path, args.profile, params, calibrate=not args.count_only)
    except (ParameterError, ValueError) as err:
        raise parameters.BookError(str(err)) from None
    print(report(est, _device_name(__import__("torch").device(est.device))))
    return 0


def _list(args: argparse.Namespace) -> int:
    root = _root(args)
    print(f"notebooks of {root} (at the end of a comment: what the smoke, book and paper profiles set; "
          "change any with `mmrepro run NAME -p PARAMETER VALUE`)")
    for path in parameters.notebooks(root):
        print(f"\n{path.stem}  ({path.relative_to(root)})")
        values = parameters.profile_values(path)
        for p in parameters.parameters(path):
            print(f"    {p.name}: {p.type} = {p.default}  # {parameters.with_profiles(p.help, values.get(p.name))}")
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="mmrepro", description=__doc__ + _WHERE,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = top.add_subparsers(dest="command", required=True)
    project = argparse.ArgumentParser(add_help=False)
    project.add_argument("--root", metavar="DIR", help=f"the project checkout (the folder with _toc.yml); default: "
                         f"${parameters.ROOT_ENV}, else the one holding the notebook or the working folder, else "
                         "the checkout mmrepro is installed from")

    run = sub.add_parser("run", parents=[project], help="execute one notebook through papermill")
    run.add_argument("notebook", help="notebook name (see `mmrepro list`) or path to its .md")
    run.add_argument("--profile", choices=PROFILES, help="smoke (seconds), book (laptop CPU), paper (GPU)")
    run.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                     help="set a parameter (repeatable); VALUE is read as a Python literal when it is one")
    run.add_argument("--build", help="build folder (default: <project>/_build)")
    run.set_defaults(func=_run)

    bk = sub.add_parser("book", parents=[project],
                        help="execute the notebooks that changed and build the HTML book (-W)")
    bk.add_argument("--profile", choices=PROFILES, default="book")
    bk.add_argument("--build", help="build folder (default: <project>/_build)")
    bk.add_argument("--no-execute", action="store_true", help="rebuild from the last executed notebooks")
    bk.add_argument("--force", action="store_true",
                    help="run every notebook again, even those whose executed copy is up to date")
    bk.add_argument("--no-solutions", action="store_true",
                    help="leave the exercises' solutions out of the HTML (a book for a course; the chapters run "
                         "as always, and a build without this flag puts them back)")
    bk.add_argument("--jobs", type=int, default=None, metavar="N",
                    help="chapters run at a time, each in its own process on one thread (default: all at "
                         "once; the system shares the CPU cores between them)")
    bk.set_defaults(func=_book)

    cl = sub.add_parser("claims", parents=[project],
                        help="print every claim of the executed chapters: outcome, estimate [interval] vs the "
                             "paper's effect, one line each")
    cl.add_argument("--results", help="folder of results files (default: <build>/results)")
    cl.add_argument("--build", help="build folder whose results to read (default: <project>/_build)")
    cl.add_argument("--chapter", help="only this chapter's claims (mfh, mind, miles, multimodn)")
    cl.add_argument("--headline", action="store_true", help="only the papers' headline claims")
    cl.add_argument("--outcome", help="only claims with this outcome (e.g. undecided, 'not reproduced')")
    cl.set_defaults(func=_claims)

    ex = sub.add_parser("export", parents=[project],
                        help="write chapters as unexecuted .ipynb notebooks that plain papermill runs")
    ex.add_argument("chapters", nargs="*", help="chapter names (default: every chapter)")
    ex.add_argument("--out", required=True, help="folder for the .ipynb files")
    ex.set_defaults(func=_export)

    asg = sub.add_parser("assign", parents=[project],
                         help="write student, solution and autograder versions of chapters' exercises")
    asg.add_argument("chapters", nargs="*", help="chapter names (default: every chapter)")
    asg.add_argument("--out", required=True, help="folder for student/, solution/ and autograder/")
    asg.set_defaults(func=_assign)

    gr = sub.add_parser("grade", parents=[project],
                        help="grade a submitted student notebook: its code in a process of its own, the checks "
                             "outside it (not a security sandbox: see the teachers' page)")
    gr.add_argument("submission", help="the student's .ipynb")
    gr.add_argument("--autograder", help="DIR/autograder written by mmrepro assign (default: built now from "
                                         "this checkout's chapter)")
    gr.add_argument("--cell-timeout", type=float, default=120.0, metavar="SECONDS",
                    help="wall-clock limit of each cell and of each call of a graded function (default 120)")
    gr.add_argument("--timeout", type=float, default=900.0, metavar="SECONDS",
                    help="wall-clock limit of the whole submission (default 900)")
    gr.add_argument("--memory", type=float, default=4.0, metavar="GIB",
                    help="memory limit of the submission's process in GiB (default 4)")
    gr.set_defaults(func=_grade)

    pl = sub.add_parser("plan", parents=[project],
                        help="count a notebook's training runs and estimate its time on this device")
    pl.add_argument("notebook", help="notebook name (see `mmrepro list`) or path to its .md")
    pl.add_argument("--profile", choices=PROFILES, help="smoke, book or paper (default: the notebook's)")
    pl.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                    help="set a parameter as `mmrepro run` does (repeatable)")
    pl.add_argument("--count-only", action="store_true", help="count runs and epochs without the timing calibration")
    pl.set_defaults(func=_plan)

    ca = sub.add_parser("cache", help="show or clear the cache of finished runs (MMREPRO_RUN_CACHE)")
    ca.add_argument("action", choices=("info", "clear"), help="info: where it is and what it holds; clear: remove runs")
    ca.add_argument("--older-than", type=float, metavar="DAYS", help="clear only runs unused for more than DAYS days")
    ca.set_defaults(func=_cache)

    ls = sub.add_parser("list", parents=[project], help="show notebooks and their parameters")
    ls.set_defaults(func=_list)
    return top


def _interrupted(argv: list[str] | None) -> int:
    """Exit status 130; as the command line itself (no ``argv``), a second Ctrl-C or SIGTERM while the
    process exits is ignored (it would print a traceback from the interpreter's shutdown)."""
    if argv is None:
        with contextlib.suppress(ValueError):
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, signal.SIG_IGN)
    return 130


def main(argv: list[str] | None = None) -> int:
    """Run a command; errors and interruptions end in one line on stderr (exit 2, or 130 when interrupted)."""
    args = parser().parse_args(argv)
    try:
        previous = signal.signal(signal.SIGTERM, book.raise_interrupt)  # SIGTERM stops as cleanly as Ctrl-C
    except ValueError:  # not the main thread: signals stay as they are
        previous = None
    try:
        return args.func(args)
    except parameters.Interrupted as err:
        print(f"mmrepro: {err}", file=sys.stderr)
        return _interrupted(argv)
    except KeyboardInterrupt as err:
        print(f"mmrepro: interrupted ({str(err) or 'Ctrl-C'}); executed/ and results/ hold only completed runs.",
              file=sys.stderr)
        return _interrupted(argv)
    except (parameters.BookError, assignments.AssignmentError) as err:
        print(f"mmrepro: error: {err}", file=sys.stderr)
        return 2
    finally:
        if previous is not None and argv is not None:  # the command line exits next, ignoring signals if stopped
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
