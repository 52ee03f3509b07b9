"""Device selection and seeding: same seed, same device, same numbers."""
from __future__ import annotations

import random
import re

import numpy as np
import torch

from mmrepro.common.checks import check_seed, check_threads

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
    seed = check_seed(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    deterministic_kernels()
    return torch.Generator().manual_seed(seed)


def deterministic_kernels() -> None:
    """Ask torch for deterministic kernels (``warn_only``: ops without one still run), without the NaN fill of
    every uninitialised tensor that deterministic mode adds by default: it changes no result (every kernel writes
    its output before reading it) and took 15-17 % of a stacked ResNet-10's training step on CPU (profiled:
    ``aten::fill_`` under ``aten::empty``, mostly batch-norm and pooling buffers)."""
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.utils.deterministic.fill_uninitialized_memory = False


def set_threads(threads: int) -> int:
    """Use ``threads`` CPU threads in torch and in the BLAS/OpenMP pools behind numpy, scipy and
    scikit-learn (threadpoolctl), after checking 1 <= threads <= the cores available here.

    Both matter: a scikit-learn probe fitted with two BLAS threads on a shared 2-core machine ran 7x
    slower than with one."""
    from threadpoolctl import threadpool_limits

    threads = check_threads(threads)
    torch.set_num_threads(threads)
    threadpool_limits(limits=threads)
    return threads
