"""The installed package's version, recorded in every results file and run-cache key."""
from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mmrepro")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
