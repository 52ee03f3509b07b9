"""The run layer: the objective protocol (run_jobs, groups, many), the run cache, executors."""
from __future__ import annotations

import json
import math
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

from mmrepro.publish import execution
from mmrepro.runs.cache import RunCache, default_cache, load_verified, run_cache_dir
from mmrepro.runs.executors import RayExecutor
from mmrepro.runs.jobs import run_jobs
from mmrepro.runs.keys import code_digest
from mmrepro.runs.protocol import check_jobs, groups
from mmrepro.runs.repeat import search_then_repeat
from mmrepro.runs.search import random_search
from mmrepro.runs.space import LogUniform


@dataclass
class Toy:
    """A plain-data candidate whose scores are a known function of (config, seed)."""

    config: dict
    seed: int
    score: float
    test: dict = field(default_factory=dict)

    def evaluate_test(self):
        return dict(self.test)


class ToyObjective:
    """Counts the runs it trains; ``batched`` adds ``many`` and ``group`` (by ``width``)."""

    def __init__(self):
        self.trained: list[tuple] = []

    def __call__(self, config, seed):
        self.trained.append((tuple(sorted(config.items())), seed))
        s = -abs(math.log10(config["lr"]) + 3) + 0.01 * seed
        return Toy(dict(config), seed, s, {"fusion": 1 + s})


class BatchedToy(ToyObjective):
    def __init__(self):
        super().__init__()
        self.calls: list[int] = []

    def many(self, jobs):
        self.calls.append(len(jobs))
        return [ToyObjective.__call__(self, c, s) for c, s in jobs]

    def group(self, config):
        return config.get("width", 0)


def test_run_jobs_keeps_order_and_batches_by_group():
    jobs = [({"lr": 1e-3, "width": w}, s) for s, w in enumerate([1, 2, 1, 2, 1])]
    plain, batched = ToyObjective(), BatchedToy()
    a = run_jobs(plain, jobs, cache=False)
    b = run_jobs(batched, jobs, cache=False)
    assert [c.seed for c in a] == [0, 1, 2, 3, 4] and a == b
    assert batched.calls == [3, 2]  # one `many` call per width
    assert groups(batched, jobs) == [[0, 2, 4], [1, 3]]
    assert run_jobs(plain, []) == []


def test_searches_are_the_same_with_and_without_many():
    space = {"lr": LogUniform(1e-5, 1e-1)}
    a = search_then_repeat(ToyObjective(), space, 6, [3, 4, 5], keep_runs=True)
    b = search_then_repeat(BatchedToy(), space, 6, [3, 4, 5], keep_runs=True)
    assert a.rows == b.rows and a.search.trials == b.search.trials
    assert random_search(BatchedToy(), space, 4, 1).best_config == random_search(ToyObjective(), space, 4, 1).best_config


def test_bad_jobs_and_executors_are_named():
    with pytest.raises(TypeError, match="job 1"):
        check_jobs([({"lr": 1}, 0), ({"lr": 1}, "0")])
    with pytest.raises(ValueError, match="executor='nope'"):
        run_jobs(ToyObjective(), [({"lr": 1e-3}, 0)], executor="nope")

    class Short(BatchedToy):
        def many(self, jobs):
            return []

    with pytest.raises(RuntimeError, match="returned 0 candidates for 1 jobs"):
        run_jobs(Short(), [({"lr": 1e-3}, 0)])


# ----------------------------------------------------------------------------- the run cache

class KeyedToy(BatchedToy):
    def key(self, config, seed):
        return {"objective": "toy", "config": config, "seed": seed}


@pytest.fixture
def store(tmp_path):
    return RunCache(tmp_path / "runs")


class KeyedPlainToy(ToyObjective):
    """Keyed, without ``many``: every run is its own chunk."""

    def key(self, config, seed):
        return {"objective": "toy", "config": config, "seed": seed}


def test_finished_runs_are_reused_not_retrained(store):
    jobs = [({"lr": 10.0 ** -k}, s) for k in range(1, 4) for s in (0, 1)]
    first, second = KeyedPlainToy(), KeyedPlainToy()
    a = run_jobs(first, jobs, cache=store)
    b = run_jobs(second, jobs + [({"lr": 1e-5}, 0)], cache=store)
    assert len(first.trained) == 6 and second.trained == [((("lr", 1e-5),), 0)]
    assert b[:6] == a and len(store.entries()) == 7
    assert {r["kind"]: r["runs"] for r in store.info()} == {"toy": 7}
    # the key holds the package's code digest, version and torch version besides the objective's parts
    key = json.loads(store.key(KeyedToy().key({"lr": 0.1}, 0)).text)
    assert key["code"] == code_digest() and {"mmrepro", "torch", "cache_format"} <= set(key)


def test_stacked_runs_are_reused_from_the_same_stack_only(store):
    """An objective with ``many``: a repeated call loads every run; a call that stacks the runs otherwise
    trains its own stacks (the key names the stack); a stack with one run missing is trained whole."""
    jobs = [({"lr": 1e-3, "width": w}, s) for w in (1, 2) for s in range(3)]
    first = KeyedToy()
    a = run_jobs(first, jobs, cache=store)
    assert first.calls == [3, 3]
    again = KeyedToy()
    assert run_jobs(again, jobs, cache=store) == a and again.trained == []
    other = KeyedToy()
    run_jobs(other, jobs[:2] + jobs[3:], cache=store)  # width 1 stacked as two runs, width 2 as before
    assert other.calls == [2]
    keys = [json.loads(load_verified(k)["key"]) for k in store.entries()]
    assert sorted((k["stack"]["runs"], k["stack"]["place"]) for k in keys) == [(2, 0), (2, 1)] + sorted(
        [(3, 0), (3, 1), (3, 2)] * 2)
    lost = next(k for k in store.entries() if json.loads(load_verified(k)["key"])["seed"] == 2)
    lost.unlink()  # one run of a three-run stack lost
    resumed = KeyedToy()
    assert run_jobs(resumed, jobs, cache=store) == a and resumed.calls == [3]


def test_runs_trained_one_by_one_are_reused_from_any_chunk(store):
    """An objective without ``many`` under an executor that chunks its jobs (Ray does): a chunk with runs
    missing trains only those, and the keys do not name a stack."""
    from mmrepro.runs.executors import LocalExecutor

    class Chunking(LocalExecutor):
        def chunk_size(self, objective, n):
            return n

    jobs = [({"lr": 1e-3}, s) for s in range(4)]
    first, second = KeyedPlainToy(), KeyedPlainToy()
    a = run_jobs(first, jobs[::2], Chunking(), cache=store)
    b = run_jobs(second, jobs, Chunking(), cache=store)
    assert b[::2] == a and [seed for _, seed in second.trained] == [1, 3]
    assert all("stack" not in json.loads(load_verified(k)["key"]) for k in store.entries())


def test_numbers_do_not_depend_on_what_the_cache_held(tmp_path):
    """A stacked ResNet sweep (MILES's objective on a small image set) gives the same bits from an empty
    cache as from one warmed by other sweeps of the same jobs: one that trained a run alone, one that
    stacked two of them in another order. Those give other bits (so this test can fail: when the cache key did not name
    the stack, the warmed cache gave them back here): a ResNet of width 4 stacked 2 or 3 times takes
    other kernel blocks, and a run trained alone other kernels."""
    from mmrepro.core.data import MultimodalDataset, Task
    from mmrepro.papers.miles.setup import Arch, JointSetup

    g = torch.Generator().manual_seed(0)
    n = 96
    y = torch.randint(3, (n,), generator=g)
    x = {"img": torch.randn(n, 1, 12, 12, generator=g) + y.view(-1, 1, 1, 1), "v": torch.randn(n, 4, generator=g)}
    data = MultimodalDataset("t", x, {}, {m: torch.ones(n, dtype=torch.bool) for m in x}, {"y": y},
                             {"y": Task("y", "multiclass", 3)},
                             {"train": torch.arange(64), "val": torch.arange(64, 80), "test": torch.arange(80, n)},
                             {"modality_kinds": {"img": "image", "v": "tabular"}})
    objective = JointSetup(data, Arch(resnet_width=4, mlp_hidden=(8,)), epochs=2, batch_size=16).objective(
        "vanilla", "concat")
    jobs = [({"lr": 3e-3}, s) for s in range(3)]

    def numbers(runs):
        return [(r.history, r.val_readout, r.sealed_test) for r in runs]

    fresh = numbers(run_jobs(objective, jobs, cache=RunCache(tmp_path / "fresh")))
    warmed = RunCache(tmp_path / "warmed")
    lone = numbers(run_jobs(objective, jobs[1:2], cache=warmed))
    pair = numbers(run_jobs(objective, [jobs[2], jobs[0]], cache=warmed))
    assert lone[0] != fresh[1] and pair[0] != fresh[2]
    assert numbers(run_jobs(objective, jobs, cache=warmed)) == fresh


def test_a_corrupt_entry_is_detected_and_recomputed(store):
    job = [({"lr": 1e-3}, 0)]
    a = run_jobs(KeyedToy(), job, cache=store)[0]
    (path,) = store.entries()
    raw = bytearray(path.read_bytes())
    raw[-5] ^= 0xFF  # one flipped bit in the payload
    path.write_bytes(bytes(raw))
    again = KeyedToy()
    with pytest.warns(UserWarning, match="does not match its SHA-256"):
        b = run_jobs(again, job, cache=store)[0]
    assert len(again.trained) == 1 and a == b
    path.write_bytes(path.read_bytes()[:40])  # truncated
    with pytest.warns(UserWarning, match="unusable"):
        run_jobs(KeyedToy(), job, cache=store)
    assert load_verified(path).keys() == {"key", "type", "fields"}  # rewritten whole


def test_only_plain_data_is_cached_and_keys_are_json(store):
    class Holder(ToyObjective):
        key = KeyedToy.key

        def __call__(self, config, seed):
            cand = super().__call__(config, seed)
            cand.test = {"model": torch.nn.Linear(1, 1)}
            return cand

    with pytest.raises(TypeError, match=r"Toy.test\['model'\] is a Linear"):
        run_jobs(Holder(), [({"lr": 1e-3}, 0)], cache=store)
    with pytest.raises(TypeError, match="JSON-able"):
        store.key({"objective": "toy", "x": torch.zeros(1)})


def test_clear_and_where_the_cache_lives(store, monkeypatch, tmp_path):
    run_jobs(KeyedToy(), [({"lr": 1e-3}, s) for s in range(3)], cache=store)
    old = store.entries()[0]
    os.utime(old, (time.time() - 3 * 86400,) * 2)
    assert store.clear(older_than_days=2)[0] == 1 and len(store.entries()) == 2
    assert store.clear()[0] == 2 and store.entries() == []
    monkeypatch.setenv("MMREPRO_RUN_CACHE", str(tmp_path / "elsewhere"))
    assert run_cache_dir() == tmp_path / "elsewhere"
    monkeypatch.setenv("MMREPRO_RUN_CACHE", "off")
    assert default_cache() is None
    monkeypatch.delenv("MMREPRO_RUN_CACHE")
    assert run_cache_dir().parts[-2:] == ("mmrepro", "runs")


SWEEP = """
import json, os, time
from dataclasses import dataclass
from mmrepro.publish import book
from mmrepro.runs.space import LogUniform
from mmrepro.runs.search import random_search


@dataclass
class Slow:
    config: dict
    seed: int
    score: float

    def evaluate_test(self):
        return {"score": self.score}


class Objective:
    def __call__(self, config, seed):
        time.sleep(0.2)
        with open(os.environ["SWEEP_LOG"], "a") as log:
            log.write(json.dumps(config) + "\\n")
        return Slow(config, seed, -abs(config["lr"] - 1e-3))

    def key(self, config, seed):
        return {"objective": "slow", "config": config, "seed": seed}


def sweep():
    return random_search(Objective(), {"lr": LogUniform(1e-5, 1e-1)}, 12, seed=7)


if __name__ == "__main__":
    print(json.dumps(sweep().best_config))
"""


def test_a_killed_sweep_resumes_without_redoing_finished_runs(tmp_path, monkeypatch):
    import runpy
    import signal
    import subprocess
    import sys

    script, log = tmp_path / "sweep.py", tmp_path / "trained.log"
    script.write_text(SWEEP)
    env = {**os.environ, "MMREPRO_RUN_CACHE": str(tmp_path / "cache"), "SWEEP_LOG": str(log)}
    proc = subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE)
    deadline = time.time() + 300
    while time.time() < deadline and (not log.exists() or len(log.read_text().splitlines()) < 4):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = log.read_text().splitlines()
    assert 4 <= len(before) < 12, "the sweep was not killed halfway"
    cached = len(RunCache(tmp_path / "cache").entries())
    assert cached >= len(before) - 1  # every finished run but, at most, the one being stored at the kill
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, check=True)
    after = log.read_text().splitlines()[len(before):]
    assert len(after) == 12 - cached and not set(after) & set(before[:cached])
    # the resumed sweep selects what an uninterrupted one does
    monkeypatch.setenv("MMREPRO_RUN_CACHE", str(tmp_path / "fresh"))
    monkeypatch.setenv("SWEEP_LOG", str(tmp_path / "whole.log"))
    whole = runpy.run_path(str(script))["sweep"]()
    assert json.loads(done.stdout) == whole.best_config


def test_cache_command(tmp_path, monkeypatch, capsys):
    from mmrepro.publish import cli

    monkeypatch.setenv("MMREPRO_RUN_CACHE", str(tmp_path / "c"))
    assert cli.main(["cache", "info"]) == 0 and "empty" in capsys.readouterr().out
    run_jobs(KeyedToy(), [({"lr": 1e-3}, s) for s in range(2)])
    assert cli.main(["cache", "info"]) == 0
    out = capsys.readouterr().out
    assert str(tmp_path / "c") in out and re.search(r"^toy\s+2\s", out, re.M)
    assert cli.main(["cache", "clear", "--older-than", "-1"]) == 2
    assert "--older-than" in capsys.readouterr().err
    assert cli.main(["cache", "clear", "--older-than", "1"]) == 0 and "removed 0" in capsys.readouterr().out
    assert cli.main(["cache", "clear"]) == 0 and "removed 2" in capsys.readouterr().out
    monkeypatch.setenv("MMREPRO_RUN_CACHE", "off")
    assert cli.main(["cache", "clear"]) == 0 and "off" in capsys.readouterr().out


# ----------------------------------------------------------------------------- executors

SWEEP_NOTEBOOK = Path(__file__).parent / "fixtures" / "sweep.md"
RUNTIME_FIELDS = ("seconds", "cpu_seconds")  # what may differ between two executions of the same notebook


def test_ray_executor_and_local_give_identical_results(tmp_path, monkeypatch):
    """The sweep fixture (MILES search and repeats, MultiModN repetitions, MIND students) executed
    with executor=local and with executor=ray on a local Ray instance, each from an empty run cache."""
    pytest.importorskip("ray")
    root = Path(__file__).resolve().parents[1]
    monkeypatch.setenv("MMREPRO_CACHE", str(tmp_path / "prep"))  # the MIND teachers, trained once
    results = {}
    for ex in ("local", "ray"):
        monkeypatch.setenv("MMREPRO_RUN_CACHE", str(tmp_path / f"cache-{ex}"))
        execution.execute(SWEEP_NOTEBOOK, tmp_path / ex, {"profile": "smoke", "executor": ex}, root)
        results[ex] = json.loads((tmp_path / ex / "results" / "sweep.json").read_text())
        assert len(RunCache(tmp_path / f"cache-{ex}").entries()) == 2 + 1 + 2 + 2 * 2  # trials, repeat, parity, mind
    for r in results.values():
        for name in RUNTIME_FIELDS:
            r.pop(name)
        assert r["params"].pop("executor") in ("local", "ray")
    assert results["local"] == results["ray"]
    assert results["local"]["values"]["miles_trials"] and results["local"]["values"]["mind_test"]


def test_ray_is_optional(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    assert run_jobs(ToyObjective(), [({"lr": 1e-3}, 0)], executor="local", cache=False)[0].seed == 0
    with pytest.raises(ImportError, match=r'pip install -e "\.\[cluster\]"'):
        run_jobs(ToyObjective(), [({"lr": 1e-3}, 0)], executor="ray", cache=False)
    with pytest.raises(ValueError, match="gpu_fraction"):
        RayExecutor(gpu_fraction=2)


# ----------------------------------------------------------------------------- plan

ROOT = Path(__file__).resolve().parents[1]


def test_plan_resolves_parameters_as_a_run_would():
    from mmrepro.publish.notebook import ParameterError
    from mmrepro.publish.planning import resolve

    mind = ROOT / "notebooks" / "mind.md"
    paper = resolve(mind, "paper")
    assert paper["profile"] == "paper" and paper["n_trials"] >= 50 and paper["executor"] == "local"
    assert resolve(mind, "smoke", {"n_trials": 3})["n_trials"] == 3
    with pytest.raises(ParameterError, match="unknown parameter"):
        resolve(mind, "smoke", {"n_trail": 3})
    with pytest.raises(ParameterError, match="executor='cluster' is not one of"):
        resolve(mind, "smoke", {"executor": "cluster"})


class Counting:
    """The local executor, counting the jobs it trains per objective type."""

    def __init__(self):
        from mmrepro.runs.executors import LocalExecutor

        self.local, self.jobs = LocalExecutor(), {}

    def chunk_size(self, objective, n):
        return self.local.chunk_size(objective, n)

    def run(self, objective, chunks):
        name = type(objective).__name__
        self.jobs[name] = self.jobs.get(name, 0) + sum(len(c) for c in chunks)
        return self.local.run(objective, chunks)


def test_multimodn_plan_counts_the_runs_the_chapter_trains(monkeypatch, tmp_path):
    from mmrepro.papers.multimodn import benchmarks as B
    from mmrepro.papers.multimodn import studies as X
    from mmrepro.papers.multimodn.plan import sections

    monkeypatch.setenv("MMREPRO_RUN_CACHE", str(tmp_path))  # runs cached by earlier tests would not reach the executor

    P = {"n_folds": 2, "n_repeats": 1, "n_inits": 1, "transformer_inits": 1, "seed": 0, "epochs": 1, "transformer_epochs": 1, "weather_every": 6,
         "mnar_rates": [0.0, 0.5], "sensitivity_grid": {"state_size": [1, 50]}, "sensitivity_inits": 1}
    sections = {s.name: s for s in sections(P, torch.device("cpu"))}
    counted = Counting()
    X.parity("titanic", B.fold_runs(2, 1), 1, variants={"no penalty": {"loss_weights": (1.0, 0.0)}}, executor=counted)
    X.missingness("pbc", "death_5y", "labs", P["mnar_rates"], B.fold_runs(2, 1), 1, executor=counted)
    X.sensitivity("pbcseq", "death_5y", P["sensitivity_grid"], B.fold_runs(2, 1), 1, executor=counted)
    planned = sum(s.runs for name, s in sections.items()
                  if "titanic" in name or "Experiment 4" in name or "Figure 9" in name)
    assert counted.jobs == {"Repetitions": planned} and planned == 2 * (4 + 2 * 3 + 2)


def test_plan_command_counts_and_estimates(capsys, monkeypatch):
    from mmrepro.publish import cli

    monkeypatch.chdir(ROOT)
    for chapter in ("mfh", "miles", "mind", "multimodn"):
        assert cli.main(["plan", chapter, "--profile", "paper", "--count-only"]) == 0
        out = capsys.readouterr().out
        assert f"{chapter}, profile paper" in out and re.search(r"^total\s+\d+\s+\d+$", out, re.M)
    assert cli.main(["plan", "multimodn", "--profile", "smoke", "-p", "n_inits", "1"]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.startswith("Experiment")]
    assert rows and all(float(r[-3]) > 0 for r in rows)  # every section measured (s/epoch)
    assert re.search(r"^total .*\d+(\.\d)? (s|min|h)", out, re.M) and "calibration took" in out
    assert cli.main(["plan", "scorecard"]) == 2 and "no plan for 'scorecard'" in capsys.readouterr().err


def test_a_read_only_cache_only_warns(store, monkeypatch, capsys):
    """A cache on a read-only file system: a hit still loads (its last-use time is not updated, with a
    warning), a store warns, and `mmrepro cache clear` says so in one line (exit 2)."""
    import errno

    from mmrepro.publish import cli

    job = [({"lr": 1e-3}, 0)]
    first = run_jobs(KeyedToy(), job, cache=store)

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(os, "utime", read_only)
    again = KeyedToy()
    with pytest.warns(UserWarning, match=r"could not mark run cache entry .* as used \(\[Errno 30\] Read-only file "
                                         r"system\)"):
        assert run_jobs(again, job, cache=store) == first
    assert again.trained == []
    monkeypatch.setattr(Path, "unlink", read_only)
    monkeypatch.setenv("MMREPRO_RUN_CACHE", str(store.root))
    assert cli.main(["cache", "clear"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"mmrepro: error: cannot remove runs from {store.root}") and "Read-only" in err
    assert len(err.splitlines()) == 1
