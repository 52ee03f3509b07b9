"""Helpers for tests that stop runs: wait until a process has ended."""
from __future__ import annotations

import os
import time

import pytest


def assert_ends(pid: int, why: str, seconds: float = 10.0) -> None:
    """Fail unless process ``pid`` ends within ``seconds`` (``why``: what should have stopped it)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.25)
    pytest.fail(f"kernel process {pid} is still running after {why}")
