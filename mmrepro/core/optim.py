"""Adam and SGD for stacked runs (:mod:`mmrepro.core.models.stacked`): one learning rate per run and
parameter group.

Every parameter carries a leading run axis; run k's slice follows exactly the update of
``torch.optim.Adam`` (Kingma & Ba 2015, Algorithm 1, with torch's ``weight_decay`` added to the
gradient) or ``torch.optim.SGD`` (momentum without dampening or Nesterov), at run k's learning
rate of the parameter's group. The learning rates live in one list of parameter-group dicts per
run (:meth:`RunOptimizer.run_view`), the form ``torch.optim`` uses, so that the balancing methods
set them as they would on a torch optimiser.
"""
from __future__ import annotations

from types import SimpleNamespace
from typing import Mapping, Sequence

import torch
from torch import Tensor

from mmrepro.core.models.fusion import leading

OPTIMIZERS = ("adam", "sgd")


class RunOptimizer:
    """``name`` ("adam" or "sgd") over ``groups`` (group name -> stacked parameters), with initial
    learning rates ``lrs`` (one per run, for every group)."""

    def __init__(self, groups: Mapping[str, Sequence[Tensor]], lrs: Sequence[float], name: str = "adam",
                 betas: tuple[float, float] = (0.9, 0.999), weight_decay: float = 0.0, momentum: float = 0.9,
                 eps: float = 1e-8) -> None:
        if name not in OPTIMIZERS:
            raise ValueError(f"optimizer must be 'adam' or 'sgd', got {name!r}")
        self.name, self.betas, self.weight_decay, self.momentum, self.eps = name, betas, weight_decay, momentum, eps
        self.groups = {g: list(ps) for g, ps in groups.items() if ps}
        self.runs = len(lrs)
        #: run k's parameter groups ({"name", "lr"}), read at every step
        self.param_groups_of = [[{"name": g, "lr": float(lr)} for g in self.groups] for lr in lrs]
        self.state: dict[Tensor, dict[str, Tensor]] = {}
        #: each parameter's per-run views of itself and its Adam moments (made once: unbinding is not free)
        self._run_views: dict[Tensor, list[tuple[Tensor, Tensor, Tensor]]] = {}

    def run_view(self, k: int) -> SimpleNamespace:
        """What a balancing method sees of run k's optimiser: ``param_groups``."""
        return SimpleNamespace(param_groups=self.param_groups_of[k])

    def zero_grad(self) -> None:
        for ps in self.groups.values():
            for p in ps:
                p.grad = None

    @torch.no_grad()
    def step(self, frozen: Sequence[tuple[Sequence[Tensor], Tensor]] = ()) -> None:
        """One update of every parameter with a gradient. ``frozen``: (parameters, runs (K,) bool)
        whose slices in those runs keep their values and optimiser state, as a lone run's
        optimiser skips a parameter without a gradient."""
        keep = [(p, runs, self._slices(p, runs)) for ps, runs in frozen for p in ps if p.grad is not None]
        for i, params in enumerate(self.groups.values()):
            params = [p for p in params if p.grad is not None]
            if params:
                lr = torch.tensor([groups[i]["lr"] for groups in self.param_groups_of], dtype=torch.float64,
                                  device=params[0].device)
                (self._adam if self.name == "adam" else self._sgd)(params, lr)
        for p, runs, saved in keep:
            p[runs] = saved.pop("param")
            for key, value in saved.items():
                self.state[p][key][runs] = value

    def _slices(self, p: Tensor, runs: Tensor) -> dict[str, Tensor]:
        saved = {key: v[runs].clone() for key, v in self._init_state(p).items()}
        saved["param"] = p[runs].clone()
        return saved

    def _init_state(self, p: Tensor) -> dict[str, Tensor]:
        if p not in self.state:
            zeros = torch.zeros(p.shape[0], dtype=torch.float64, device=p.device)
            self.state[p] = ({"step": zeros, "exp_avg": torch.zeros_like(p), "exp_avg_sq": torch.zeros_like(p)}
                             if self.name == "adam" else {"has_buf": zeros.bool(), "momentum_buffer": torch.zeros_like(p)})
        return self.state[p]

    def _adam(self, params: list[Tensor], lr: Tensor) -> None:
        """torch's fused CPU/CUDA Adam kernel (``torch._fused_adam_``, what ``torch.optim.Adam(fused=True)``
        calls: one pass over each tensor; bitwise torch.optim.Adam's single-tensor update on this CPU,
        tests/test_batched.py) on every run's slice at the run's own rate and step count. Runs that share
        a rate and step count are updated in one call; a parameter whose runs all do is passed whole,
        otherwise as its runs' slices (``unbind``: views, kept between steps but for the gradient's).
        Measured in bench/README.md: 4-6x faster than the ``_foreach`` form it replaces, which made ~10
        passes over memory."""
        beta1, beta2 = self.betas
        rates = lr.tolist()
        calls: dict[tuple[float, float], list[tuple[Tensor, ...]]] = {}
        for p in params:
            st = self._init_state(p)
            st["step"].add_(1)
            keys = list(zip(rates, st["step"].tolist()))
            if len(set(keys)) == 1:
                calls.setdefault(keys[0], []).append((p, p.grad, st["exp_avg"], st["exp_avg_sq"]))
                continue
            if p not in self._run_views:
                self._run_views[p] = list(zip(p.unbind(0), st["exp_avg"].unbind(0), st["exp_avg_sq"].unbind(0)))
            for key, (param, avg, avg_sq), grad in zip(keys, self._run_views[p], p.grad.unbind(0)):
                calls.setdefault(key, []).append((param, grad, avg, avg_sq))
        for (rate, step), group in calls.items():
            p, grad, avg, avg_sq = (list(t) for t in zip(*group))
            steps = [torch.tensor(step, dtype=torch.float32, device=p[0].device)] * len(p)  # read, not written
            torch._fused_adam_(p, grad, avg, avg_sq, [], steps, lr=rate, beta1=beta1, beta2=beta2,
                               weight_decay=self.weight_decay, eps=self.eps, amsgrad=False, maximize=False)

    def _sgd(self, params: list[Tensor], lr: Tensor) -> None:
        for p in params:
            grad = p.grad if self.weight_decay == 0 else p.grad.add(p, alpha=self.weight_decay)
            if self.momentum != 0:
                st = self._init_state(p)
                first = leading(~st["has_buf"], p)
                st["momentum_buffer"] = torch.where(first, grad, st["momentum_buffer"] * self.momentum + grad)
                st["has_buf"].fill_(True)
                grad = st["momentum_buffer"]
            p.sub_(grad * leading(lr.to(p.dtype), p))
