"""Test-session defaults: the offline data copy beside the checkout, quiet progress bars."""
from __future__ import annotations

import os
from pathlib import Path

import torch

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

# Tests and CI read the datasets from ../shared/data (read-only); a user's machine downloads them.
if "MMREPRO_DATA" not in os.environ and SHARED_DATA.is_dir():
    os.environ["MMREPRO_DATA"] = str(SHARED_DATA)
os.environ.setdefault("TQDM_DISABLE", "1")
# Finished runs are cached per user (mmrepro.runs.cache): off in the tests, so that every test trains what it
# checks (determinism above all); the run-cache tests give themselves a cache of their own.
os.environ["MMREPRO_RUN_CACHE"] = "off"

# The tests train tiny models: one thread is faster than two and avoids oversubscribing 2-core CI.
torch.set_num_threads(1)
