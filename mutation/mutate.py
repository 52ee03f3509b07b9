"""Mutation testing of the code that decides the book's verdicts (outside CI; see mutation/README.md).

Plants one small, plausible bug at a time -- a comparison moved across its boundary (``<`` to ``<=``),
an arithmetic operator swapped (``+``/``-``, ``*``/``/``), a number changed by one, ``and``/``or``
swapped, a ``not`` or a minus sign dropped, ``min``/``max`` or ``any``/``all`` swapped -- in the
functions listed in :data:`TARGETS`, runs the tests that cover each module, and reports the
mutants no test caught ("survivors"). Survivors listed in ``mutation/equivalent.toml`` with a
reason (an equivalent mutant: the program computes the same numbers) are reported apart.

Speed on a shared machine: the test files of a module are imported once; each mutant runs in a
forked child that swaps the mutated function's code object in place (so every module that imported
the function sees the mutant) and runs pytest with ``-x`` (stop at the first failure), under a time
limit per mutant. Only the test files named for the module run.

    python mutation/mutate.py                      # every target, results to mutation/results.json
    python mutation/mutate.py --target stats       # one target
    python mutation/mutate.py --list --target claims  # the mutants only, no tests run
"""
from __future__ import annotations

import argparse
import ast
import copy
import gc
import importlib
import json
import os
import random
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import CodeType

import tomllib

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Target:
    """``functions`` (qualified names; None: every function and method) of the module at ``path``,
    and the ``tests`` (files or node ids, fastest and most telling first) that cover them."""

    path: str
    tests: tuple[str, ...]
    functions: tuple[str, ...] | None = None


STATS_TESTS = ("tests/test_stats_reference.py", "tests/test_outcomes.py", "tests/test_claims.py")
BALANCING_TESTS = ("tests/test_balancing.py",)
MULTIMODN_TESTS = ("tests/test_multimodn_losses.py",)

TARGETS: dict[str, Target] = {
    "claims": Target("mmrepro/publish/claims.py", STATS_TESTS,
                     ("decide", "outcome", "_deciding_distance", "runs_to_decide", "_expected_empirical")),
    "stats": Target("mmrepro/core/stats.py", STATS_TESTS),
    "metrics-bootstrap": Target("mmrepro/core/metrics.py", ("tests/test_stats_reference.py", *(
        f"tests/test_metrics.py::test_{t}" for t in (
            "bootstrap_equals_plain_loop_on_same_indices", "basic_interval_is_medfuse_pivotal_form",
            "bootstrap_agrees_with_scipy_in_distribution", "bootstrap_result_tuple_api_and_determinism",
            "one_class_resamples_are_dropped_and_counted", "all_resamples_undefined_raises", "bootstrap_errors",
            "task_kind_inference", "bootstrap_names_empty_unknown_labels_and_scores_outside_0_1"))),
        ("interval", "bootstrap_ci", "bootstrap_indices")),
    "ogm": Target("mmrepro/core/balancing/ogm.py", BALANCING_TESTS),
    "gblend": Target("mmrepro/core/balancing/gblend.py", BALANCING_TESTS),
    "mses": Target("mmrepro/core/balancing/mses.py", BALANCING_TESTS),
    "mslr": Target("mmrepro/core/balancing/mslr.py", BALANCING_TESTS),
    "miles": Target("mmrepro/papers/miles/scheduler.py", BALANCING_TESTS),
    "multimodn-losses": Target("mmrepro/papers/multimodn/model.py", MULTIMODN_TESTS, ("output_loss", "state_change")),
    "multimodn-heads": Target("mmrepro/papers/multimodn/heads.py", MULTIMODN_TESTS, ("pair_losses",)),
}

# --------------------------------------------------------------------------- mutation operators
COMPARE = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq,
           ast.NotEq: ast.Eq, ast.Is: ast.IsNot, ast.IsNot: ast.Is, ast.In: ast.NotIn, ast.NotIn: ast.In}
BINARY = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.FloorDiv: ast.Div,
          ast.Pow: ast.Mult, ast.Mod: ast.FloorDiv}
BOOLEAN = {ast.And: ast.Or, ast.Or: ast.And}
NAMES = {"min": "max", "max": "min", "any": "all", "all": "any"}
SYMBOL = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=", ast.Is: "is",
          ast.IsNot: "is not", ast.In: "in", ast.NotIn: "not in", ast.Add: "+", ast.Sub: "-", ast.Mult: "*",
          ast.Div: "/", ast.FloorDiv: "//", ast.Pow: "**", ast.Mod: "%", ast.And: "and", ast.Or: "or"}


@dataclass
class Mutant:
    target: str
    function: str
    line: int
    source: str  # the line as written
    change: str  # e.g. "`<` -> `<=`"
    occurrence: int  # the same change on the same line: 0, 1, ...
    code: CodeType | None = field(default=None, repr=False)
    status: str = ""
    seconds: float = 0.0

    @property
    def key(self) -> tuple[str, str, str, int]:
        return (self.function, self.source, self.change, self.occurrence)

    def record(self) -> dict:
        return {"target": self.target, "function": self.function, "line": self.line, "source": self.source,
                "change": self.change, "occurrence": self.occurrence, "status": self.status,
                "seconds": round(self.seconds, 2)}


def _skipped(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    """Inside an error message, a raise, a docstring or an annotation: not mutated."""
    while node in parents:
        parent = parents[node]
        if isinstance(parent, (ast.Raise, ast.JoinedStr)):
            return True
        if isinstance(parent, ast.arg) or (isinstance(parent, (ast.FunctionDef, ast.AnnAssign)) and
                                            node in (getattr(parent, "returns", None), getattr(parent, "annotation", None))):
            return True
        if isinstance(parent, ast.Expr) and isinstance(node, ast.Constant) and isinstance(node.value, str):
            return True
        node = parent
    return False


def _edits(fn: ast.FunctionDef) -> list[tuple[ast.AST, str, object]]:
    """Every (node, change description, replacement maker) inside the body of ``fn`` (nested
    functions and lambdas included)."""
    parents = {child: parent for parent in ast.walk(fn) for child in ast.iter_child_nodes(parent)}
    out = []
    body = fn.body[1:] if (fn.body and isinstance(fn.body[0], ast.Expr)
                           and isinstance(fn.body[0].value, ast.Constant)) else fn.body
    nodes = [n for stmt in body for n in ast.walk(stmt)]
    for node in nodes:
        if _skipped(node, parents):
            continue
        if isinstance(node, ast.Compare):
            for i, op in enumerate(node.ops):
                if type(op) in COMPARE:
                    new = COMPARE[type(op)]
                    out.append((node, f"`{SYMBOL[type(op)]}` -> `{SYMBOL[new]}`",
                                lambda n, i=i, new=new: setattr(n, "ops", n.ops[:i] + [new()] + n.ops[i + 1:])))
        elif isinstance(node, (ast.BinOp, ast.AugAssign)) and type(node.op) in BINARY:
            new = BINARY[type(node.op)]
            out.append((node, f"`{SYMBOL[type(node.op)]}` -> `{SYMBOL[new]}`",
                        lambda n, new=new: setattr(n, "op", new())))
        elif isinstance(node, ast.BoolOp):
            new = BOOLEAN[type(node.op)]
            out.append((node, f"`{SYMBOL[type(node.op)]}` -> `{SYMBOL[new]}`", lambda n, new=new: setattr(n, "op", new())))
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.Not)):
            what = "-" if isinstance(node.op, ast.USub) else "not"
            out.append((node, f"`{what}` dropped", lambda n: setattr(n, "op", ast.UAdd() if isinstance(n.op, ast.USub)
                                                                     else _Keep())))
        elif isinstance(node, ast.Constant) and type(node.value) in (int, float):
            out.append((node, f"`{node.value!r}` -> `{node.value + 1!r}`", lambda n: setattr(n, "value", n.value + 1)))
        elif isinstance(node, ast.Constant) and isinstance(node.value, bool):
            out.append((node, f"`{node.value}` -> `{not node.value}`", lambda n: setattr(n, "value", not n.value)))
        elif isinstance(node, ast.Name) and node.id in NAMES and isinstance(parents.get(node), ast.Call) \
                and parents[node].func is node:
            out.append((node, f"`{node.id}` -> `{NAMES[node.id]}`", lambda n: setattr(n, "id", NAMES[n.id])))
    return out


class _Keep(ast.unaryop):
    """Marker: ``not x`` becomes ``x`` (resolved by :class:`_DropNot`)."""


class _DropNot(ast.NodeTransformer):
    def visit_UnaryOp(self, node: ast.UnaryOp) -> ast.AST:
        self.generic_visit(node)
        return node.operand if isinstance(node.op, _Keep) else node


def _functions(tree: ast.Module) -> dict[str, ast.FunctionDef]:
    """Top-level functions and class methods by qualified name."""
    out = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            out[node.name] = node
        elif isinstance(node, ast.ClassDef):
            out.update({f"{node.name}.{m.name}": m for m in node.body if isinstance(m, ast.FunctionDef)})
    return out


def _find_code(code: CodeType, qualname: str) -> CodeType | None:
    if code.co_qualname == qualname:
        return code
    for const in code.co_consts:
        if isinstance(const, CodeType) and (found := _find_code(const, qualname)):
            return found
    return None


def mutants(name: str, target: Target) -> list[Mutant]:
    path = ROOT / target.path
    text = path.read_text()
    lines = text.splitlines()
    tree = ast.parse(text)
    functions = _functions(tree)
    wanted = target.functions or tuple(functions)
    missing = [f for f in wanted if f not in functions]
    if missing:
        raise SystemExit(f"{target.path}: no function(s) {missing}; found {sorted(functions)}")
    out: list[Mutant] = []
    for qual in wanted:
        seen: dict[tuple[int, str], int] = {}
        for k, (node, change, _) in enumerate(_edits(functions[qual])):
            mutated_tree = copy.deepcopy(tree)
            fn = _functions(mutated_tree)[qual]
            node2, _, apply = _edits(fn)[k]
            apply(node2)
            mutated_tree = ast.fix_missing_locations(_DropNot().visit(mutated_tree))
            code = _find_code(compile(mutated_tree, str(path), "exec"), qual)
            occurrence = seen.get((node.lineno, change), 0)
            seen[(node.lineno, change)] = occurrence + 1
            out.append(Mutant(name, qual, node.lineno, lines[node.lineno - 1].strip(), change, occurrence, code))
    return out


# --------------------------------------------------------------------------- running
def _module_name(path: str) -> str:
    return path.removesuffix(".py").replace("/", ".")


def _function_object(module: object, qualname: str):
    obj = module
    for part in qualname.split("."):
        raw = obj.__dict__.get(part) if isinstance(obj, type) else getattr(obj, part)
        obj = raw.__func__ if isinstance(raw, (classmethod, staticmethod)) else raw
    while hasattr(obj, "__wrapped__"):  # e.g. torch.no_grad()
        obj = obj.__wrapped__
    return obj


def _run_items(items: list, target: Target, mutant: Mutant | None, limit: float,
               killer: Path | None = None) -> tuple[str, float]:
    """Run the collected test ``items`` in a forked child, with ``mutant`` swapped in: 'killed' at the first
    failing test (whose node id the child writes to ``killer``), 'survived' when all pass, 'timeout' past
    ``limit`` seconds (for the unmutated code: 'passed' / 'failed')."""
    from _pytest.runner import runtestprotocol

    start = time.monotonic()
    pid = os.fork()
    if pid == 0:  # child: no collection or start-up of its own, only the tests
        code = 3
        try:
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 1)
            os.dup2(null, 2)
            if mutant is not None:
                fn = _function_object(importlib.import_module(_module_name(target.path)), mutant.function)
                fn.__code__ = mutant.code
            code = 0
            for i, item in enumerate(items):
                reports = runtestprotocol(item, nextitem=items[i + 1] if i + 1 < len(items) else None, log=False)
                if any(r.failed for r in reports):
                    code = 1
                    if killer is not None:
                        killer.write_text(item.nodeid)
                    break
        finally:
            os._exit(code)
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        elapsed = time.monotonic() - start
        if done:
            failed = os.waitstatus_to_exitcode(status) != 0
            break
        if elapsed > limit:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return "timeout", elapsed
        time.sleep(0.02)
    if mutant is None:
        return ("failed" if failed else "passed"), elapsed
    return ("killed" if failed else "survived"), elapsed


class _Plugin:
    """Collects the target's tests once (in the pytest session of :func:`run_target`), then runs them
    unmutated and under every mutant instead of pytest's own test loop."""

    def __init__(self, name: str, target: Target, mutants: list[Mutant], limit: float | None,
                 equivalent: dict) -> None:
        self.name, self.target, self.mutants, self.limit, self.equivalent = name, target, mutants, limit, equivalent
        self.result: dict | None = None

    def pytest_runtestloop(self, session) -> bool:
        items = list(session.items)
        gc.collect()
        gc.freeze()  # children share the parent's heap untouched: no copy, no long collections
        status, base = _run_items(items, self.target, None, 3600)
        if status != "passed":
            raise SystemExit(f"{self.name}: the unmutated tests fail ({', '.join(self.target.tests)})")
        limit = self.limit or max(3 * base, 10.0)
        print(f"{self.name}: {len(self.mutants)} mutants, {len(items)} tests in {', '.join(self.target.tests)} "
              f"({base:.1f} s unmutated, limit {limit:.0f} s)", file=sys.stderr, flush=True)
        killer = Path(f"/tmp/mutation-killer-{os.getpid()}")
        first: dict[str, list[str]] = {}  # per function: the tests that killed its mutants, latest first
        for k, m in enumerate(self.mutants):
            # tests that killed a mutant of the same function run first: most mutants then die in one test
            front = {nodeid: i for i, nodeid in enumerate(first.get(m.function, []))}
            order = sorted(items, key=lambda it: front.get(it.nodeid, len(front)))
            killer.unlink(missing_ok=True)
            m.status, m.seconds = _run_items(order, self.target, m, limit, killer)
            if m.status == "killed" and killer.exists():
                nodeid = killer.read_text()
                first[m.function] = [nodeid] + [n for n in first.get(m.function, []) if n != nodeid]
            if m.status == "survived" and m.key in self.equivalent:
                m.status = "equivalent"
            if m.status == "survived":
                print(f"  SURVIVED {m.function}:{m.line} {m.change} | {m.source}", file=sys.stderr, flush=True)
            if (k + 1) % 25 == 0:
                print(f"  {k + 1} done", file=sys.stderr, flush=True)
        counts = {s: sum(m.status == s for m in self.mutants) for s in STATUSES}
        print(f"  {self.name}: {counts}", file=sys.stderr, flush=True)
        self.result = {"path": self.target.path, "tests": list(self.target.tests), "counts": counts,
                       "unmutated_seconds": round(base, 1),
                       "survivors": [m.record() for m in self.mutants if m.status == "survived"],
                       "equivalent": [m.record() | {"reason": self.equivalent[m.key]}
                                      for m in self.mutants if m.status == "equivalent"]}
        return True


STATUSES = ("killed", "timeout", "survived", "equivalent")


def load_equivalent() -> dict[tuple[str, str, str, int], str]:
    path = ROOT / "mutation" / "equivalent.toml"
    if not path.exists():
        return {}
    data = tomllib.loads(path.read_text())
    return {(e["function"], e["source"], e["change"], e.get("occurrence", 0)): e["reason"]
            for e in data.get("mutant", [])}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target", action="append", choices=sorted(TARGETS), help="repeatable; default: all")
    ap.add_argument("--list", action="store_true", help="list the mutants, run nothing")
    ap.add_argument("--limit", type=float, default=None,
                    help="seconds per mutant (default: 3 x the unmutated run's time, at least 10)")
    ap.add_argument("--tests", nargs="+", help="run these tests instead of the targets' own")
    ap.add_argument("--sample", type=int, default=None, help="only this many mutants per target, drawn at random")
    ap.add_argument("--rerun-survivors", action="store_true",
                    help="run only the survivors of the last run (in --out) again, after new tests were added")
    ap.add_argument("--out", default=str(ROOT / "mutation" / "results.json"))
    args = ap.parse_args(argv)
    names = args.target or list(TARGETS)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.path.insert(0, str(ROOT))
    os.chdir(ROOT)
    all_mutants = {n: mutants(n, TARGETS[n]) for n in names}
    out = Path(args.out)
    previous = json.loads(out.read_text()) if out.exists() else {}
    if args.rerun_survivors:
        keys = {n: {(r["function"], r["source"], r["change"], r["occurrence"]) for r in previous[n]["survivors"]}
                for n in all_mutants if n in previous}
        all_mutants = {n: [m for m in ms if m.key in keys[n]] for n, ms in all_mutants.items() if n in keys}
    if args.sample is not None:
        rng = random.Random(0)
        all_mutants = {n: sorted(rng.sample(ms, min(args.sample, len(ms))), key=ms.index)
                       for n, ms in all_mutants.items()}
    if args.list:
        for n, ms in all_mutants.items():
            for m in ms:
                print(f"{n}  {m.function}:{m.line}  {m.change}  | {m.source}")
        print(f"{sum(map(len, all_mutants.values()))} mutants")
        return 0

    import pytest
    from hypothesis import settings

    # the same examples every run, and no example database written by a mutant's failures
    settings.register_profile("mutation", database=None, derandomize=True, deadline=None)
    settings.load_profile("mutation")
    equivalent = load_equivalent()
    results: dict[str, dict] = {}
    for n, ms in all_mutants.items():
        target = TARGETS[n] if not args.tests else Target(TARGETS[n].path, tuple(args.tests), TARGETS[n].functions)
        present = tuple(t for t in target.tests if (ROOT / t.split("::")[0]).exists())
        if present != target.tests:
            print(f"{n}: no {sorted(set(target.tests) - set(present))}; running the others", file=sys.stderr)
            target = Target(target.path, present, target.functions)
        plugin = _Plugin(n, target, ms, args.limit, equivalent)
        with open(os.devnull, "w") as null:
            old = os.dup(1)
            os.dup2(null.fileno(), 1)
            try:
                pytest.main([*target.tests, "-q", "-p", "no:cacheprovider", "-p", "no:unraisableexception",
                             "-W", "ignore"], plugins=[plugin])
            finally:
                os.dup2(old, 1)
        gc.unfreeze()
        if plugin.result is None:
            print(f"{n}: no result (the tests did not collect or the unmutated run failed)", file=sys.stderr)
            return 2
        results[n] = plugin.result | ({"sample": args.sample} if args.sample is not None else {})
        if args.rerun_survivors:  # the mutants killed before stay killed (tests are only ever added)
            old = previous[n]
            for s in ("killed", "timeout"):
                results[n]["counts"][s] += old["counts"][s]
            results[n]["counts"]["equivalent"] += old["counts"]["equivalent"]
            results[n]["equivalent"] = old["equivalent"] + results[n]["equivalent"]
    previous.update(results)
    out.write_text(json.dumps(previous, indent=1) + "\n")
    total = {s: sum(r["counts"][s] for r in previous.values()) for s in STATUSES}
    print(f"all targets in {out.name}: {total}")
    return 1 if any(r["survivors"] for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
