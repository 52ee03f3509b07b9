"""``mmrepro plan NOTEBOOK [--profile P] [-p NAME VALUE]``: a chapter's training runs and their cost on
this device, before any of it is paid.

The parameters are resolved without a kernel, exactly as ``mmrepro run`` checks them before it starts
one (:func:`mmrepro.publish.parameters.static_parameters`: the notebook's parameters cell and the
arguments of its ``start(...)`` call); the paper's own plan (``mmrepro.papers.<name>.plan.sections``)
turns them into sections, which :func:`mmrepro.runs.cost.estimate` prices.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Mapping

from mmrepro.common.device import resolve_device
from mmrepro.publish.parameters import static_parameters
from mmrepro.runs.cost import Estimate, estimate

PAPERS = ("mfh", "mind", "miles", "multimodn")  # the folders under mmrepro/papers/, each with a plan.py


def resolve(path: Path, profile: str | None = None, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The parameter values a run of ``path`` with ``profile`` and ``overrides`` would use, validated
    as the run itself validates them before its kernel starts (:func:`~mmrepro.publish.parameters.static_parameters`)."""
    given = dict(overrides or {})
    if profile is not None:
        given["profile"] = profile
    resolved = static_parameters(Path(path), given)[1]
    if resolved is None:
        raise ValueError(f"{path} has no start(..., profiles=...) call whose parameters can be resolved")
    return resolved


def plan_notebook(path: Path, profile: str | None = None, overrides: Mapping[str, Any] | None = None,
                  calibrate: bool = True) -> Estimate:
    """Resolve the parameters of ``path``, build its chapter's plan and calibrate it on the
    notebook's device (``device`` parameter)."""
    import torch

    name = Path(path).stem
    if name not in PAPERS:
        raise ValueError(f"no plan for {name!r}; chapters with a plan: {', '.join(PAPERS)}")
    params = resolve(path, profile, overrides)
    device = resolve_device(params["device"])
    torch.set_num_threads(int(params.get("threads") or 1))  # as the chapters do
    sections = importlib.import_module(f"mmrepro.papers.{name}.plan").sections(params, device)
    return estimate(name, params, sections, str(device), calibrate)
