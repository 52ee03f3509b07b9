"""Device selection and seeding: same seed, same device, same numbers."""
from __future__ import annotations

import random
import re

import numpy as np
import torch

_DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Turn ``"auto"`` into CUDA when available (else CPU) and validate explicit names."""
    if isinstance(device, torch.device):
        return device
    if not isinstance(device, str) or not _DEVICE_RE.match(device):
        raise ValueError(
            f"device={device!r} is not understood; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'."
        )
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was requested but CUDA is not available here; use 'cpu' or 'auto'.")
    if device == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device='mps' was requested but MPS is not available here; use 'cpu' or 'auto'.")
    return torch.device(device)


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch (all devices) and return a CPU generator seeded alike.

    Deterministic algorithms are requested where torch offers them (``warn_only``
    so that ops without a deterministic kernel still run).
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}.")
    random.seed(int(seed))
    np.random.seed(int(seed) % 2**32)
    torch.manual_seed(int(seed))
    torch.use_deterministic_algorithms(True, warn_only=True)
    return torch.Generator().manual_seed(int(seed))
