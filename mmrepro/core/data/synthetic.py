"""A bimodal Gaussian generator with known per-modality strength and learning speed.

For balancing experiments (MILES, OGM-GE, G-Blend) with ground truth: the
label y is uniform over ``n_classes``; modality ``a`` and ``b`` are, given y,
Gaussian ``scale_m * (mu_{m,y} + N(0, I_{d_m}))`` where the class means are
orthogonal directions (randomly rotated) at pairwise distance ``strength_m``.
So ``strength`` sets how informative a modality is (for two classes its Bayes
accuracy is Phi(strength / 2), stored in ``meta["bayes_accuracy"]``), while
``speed`` rescales the features without changing that: the gradient of a
linear (or first) layer scales with the input, so its effective learning rate
grows like ``speed**2`` and the modality is learnt faster.
"""
from __future__ import annotations

import math

import torch

from mmrepro.common.checks import check_seed
from mmrepro.core.data.base import MultimodalDataset, Task
from mmrepro.core.data.splits import stratified_split


def load_synthetic_bimodal(seed: int = 0, n: int = 2000, n_classes: int = 2, dims: tuple[int, int] = (16, 16),
                           strength: tuple[float, float] = (3.0, 1.5), speed: tuple[float, float] = (1.0, 1.0)
                           ) -> MultimodalDataset:
    """Modalities ``a`` (n, dims[0]) and ``b`` (n, dims[1]); task ``label`` (binary if 2 classes, else multiclass)."""
    seed = check_seed(seed)
    if n_classes < 2 or n < 10 * n_classes:
        raise ValueError(f"need n_classes >= 2 and n >= 10 * n_classes, got n_classes={n_classes}, n={n}")
    if len(dims) != 2 or len(strength) != 2 or len(speed) != 2:
        raise ValueError("dims, strength and speed each take two values, one per modality (a, b)")
    if min(dims) < n_classes or min(strength) < 0 or min(speed) <= 0:
        raise ValueError(f"need dims >= n_classes, strength >= 0, speed > 0; got {dims}, {strength}, {speed}")
    gen = torch.Generator().manual_seed(seed)
    y = torch.randint(n_classes, (n,), generator=gen)
    x = {}
    for m, d, s, v in zip(("a", "b"), dims, strength, speed):
        rot, _ = torch.linalg.qr(torch.randn(d, d, generator=gen))
        means = rot[:n_classes] * (s / math.sqrt(2))  # orthonormal rows: pairwise distance s
        x[m] = v * (means[y] + torch.randn(n, d, generator=gen))
    binary = n_classes == 2
    names = [str(c) for c in range(n_classes)]
    task = Task("label", "binary", 1, names) if binary else Task("label", "multiclass", n_classes, names)
    phi = lambda z: 0.5 * (1 + math.erf(z / math.sqrt(2)))  # noqa: E731
    return MultimodalDataset(
        name="synthetic_bimodal", x=x, lengths={}, present={m: torch.ones(n, dtype=torch.bool) for m in x},
        y={"label": y.float() if binary else y}, tasks={"label": task}, splits=stratified_split(y, seed),
        meta={"modality_kinds": {"a": "tabular", "b": "tabular"}, "class_names": names,
              "bayes_accuracy": {m: phi(s / 2) for m, s in zip(x, strength)} if binary else None,
              "source": "generated", "licence": "n/a",
              "options": {"seed": seed, "n": n, "n_classes": n_classes, "dims": list(dims),
                          "strength": list(strength), "speed": list(speed)}},
    )
