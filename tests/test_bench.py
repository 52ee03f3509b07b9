"""The benchmarks cannot rot unseen (issue 28): each ``bench/*.py`` runs in its ``--tiny`` mode (seconds, small
settings) in a fresh process and must finish cleanly and print at least one speed ratio. No timing is
asserted: the ratios of the tiny settings say nothing about speed, and the machine may be shared."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHES = sorted(p.name for p in (ROOT / "bench").glob("bench_*.py"))
RATIO = re.compile(r"\d+(\.\d+)?x\b")


def test_every_bench_is_listed() -> None:
    assert {"bench_batched.py", "bench_bootstrap.py", "bench_data.py", "bench_layout.py", "bench_mfh.py",
            "bench_multimodn.py", "bench_probe.py", "bench_trainer.py"} <= set(BENCHES)


@pytest.mark.parametrize("script", BENCHES)
def test_bench_tiny_mode_runs(script: str) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
           "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    done = subprocess.run([sys.executable, str(ROOT / "bench" / script), "--tiny"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    out = done.stdout + done.stderr
    assert done.returncode == 0, f"{script} --tiny exited {done.returncode}:\n{out[-3000:]}"
    assert RATIO.search(done.stdout), f"{script} --tiny printed no ratio line:\n{done.stdout[-3000:]}"
