"""`-p executor ray` without a cluster: the local Ray instance the run starts ends with it. No Ray process
(worker, raylet) is still running when `mmrepro run` returns, no Ray session folder is left in the temp folder, and
Ray's start-up messages and warnings do not land in the executed notebook; the same when the notebook
fails after Ray started."""
from __future__ import annotations

import ctypes
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = Path(__file__).parent / "fixtures" / "ray_run.md"
PR_SET_CHILD_SUBREAPER = 36


def _children() -> dict[int, str]:
    """This process's children, alive or zombie: {pid: "state name"}."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name, rest = text[text.index("(") + 1: text.rindex(")")], text[text.rindex(")") + 2:].split()
        if int(rest[1]) == os.getpid():
            found[int(stat.parent.name)] = f"{rest[0]} {name}"
    return found


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process checks through /proc and prctl")
def test_a_ray_run_leaves_no_process_session_folder_or_warning():
    pytest.importorskip("ray")
    libc = ctypes.CDLL(None, use_errno=True)
    # orphans of the run (Ray's processes, once the kernel has gone) are re-parented to this process
    assert libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    tmp = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))  # short: Ray's socket paths must fit in 107 bytes
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp), "MMREPRO_RUN_CACHE": "off"}
    env.pop("RAY_ADDRESS", None)
    env.pop("RAY_TMPDIR", None)
    try:
        before = set(_children())
        for fail in (False, True):
            build = tmp / f"build-{fail}"
            done = subprocess.run([sys.executable, "-m", "mmrepro.publish.cli", "run", str(FIXTURE), "--build",
                                   str(build), "-p", "fail", str(fail)], cwd=ROOT, env=env, capture_output=True,
                                  text=True, timeout=600)
            assert done.returncode == (2 if fail else 0), done.stderr
            # Ray's processes must all have exited; one that its parent (raylet) left to the system to reap is
            # re-parented to this process, as it would be to init, and reaped here
            deadline = time.monotonic() + 3
            while (alive := {p: s for p, s in _children().items() if p not in before and not s.startswith("Z")}) \
                    and time.monotonic() < deadline:
                time.sleep(0.2)
            assert not alive, f"processes outlived the run (fail={fail}): {alive}"
            _reap()
            assert sorted(p.name for p in tmp.iterdir() if "ray" in p.name.lower()) == [], "a Ray folder was left"
            nb = json.loads((build / ("failed" if fail else "executed") / "ray_run.ipynb").read_text())
            outputs = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
            assert not [o for o in outputs if o.get("name") == "stderr"], "Ray wrote to the notebook's stderr"
            if not fail:
                assert json.loads((build / "results" / "ray_run.json").read_text())["values"]["squares"] == [0, 1, 4, 9]
    finally:
        libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
        _reap()
        shutil.rmtree(tmp, ignore_errors=True)
