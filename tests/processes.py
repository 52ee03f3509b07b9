"""Helpers for tests that stop runs: wait until a process has ended; a stand-in chapter run."""
from __future__ import annotations

import os
import time
from pathlib import Path


def assert_ends(pid: int, why: str, seconds: float = 10.0) -> None:
    """Fail unless process ``pid`` ends within ``seconds`` (``why``: what should have stopped it)."""
    import pytest

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.25)
    pytest.fail(f"kernel process {pid} is still running after {why}")


def stand_in_chapter(path: Path, build: Path, params: dict, root: Path, record: dict | None = None) -> Path:
    """A stand-in for :func:`mmrepro.publish.execution.execute` (tests of interrupted builds): chapter ``ch0``
    runs until it is interrupted, as a real chapter does (KeyboardInterrupt becomes Interrupted); the
    others end at once."""
    from mmrepro.publish.parameters import Interrupted

    if path.stem != "ch0":
        return path
    try:
        while True:
            time.sleep(0.05)
    except KeyboardInterrupt as err:
        raise Interrupted(f"{path.stem} interrupted ({str(err) or 'Ctrl-C'}): stand-in kept nothing.") from None
