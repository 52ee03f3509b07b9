"""Intervals for the MFH chapter's claims, counting the randomness each number rests on.

* Synthetic Gaussian data (Sections 4.2, 5.2): every seed draws its own training *and* test rows (1,000), so a
  seed's accuracy already carries its test rows' noise and Student t over seeds counts both
  (:func:`mmrepro.core.stats.mean_evidence`, :func:`~mmrepro.core.stats.paired_evidence`).
* AV digits (the real-data checks and the Section 3 case study): every seed is scored on the same test
  recordings (FSDD's 300), so seeds alone miss the test rows' noise; :func:`rows_evidence` adds it
  (:func:`mmrepro.core.stats.seed_row_evidence` over the per-row hits, paired by seed and row), and
  :func:`kept_share_evidence` bootstraps the rows for a ratio of accuracies
  (:func:`~mmrepro.core.stats.hierarchical_evidence`).
* A share in [0, 1] that sits on its bound in every seed (precision@k = 1 everywhere) gives Student t no
  width; :func:`share_evidence` then uses an exact binomial bound (Clopper-Pearson on how many seeds reach the
  bound), so that the claim is decided by its seeds, not by an interval of zero width.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.stats import binomtest, norm

from mmrepro.core.metrics import bootstrap_indices
from mmrepro.core.stats import LEVEL, Evidence, Part, hierarchical_evidence, mean_evidence, seed_row_evidence

ACC = (0.0, 100.0)   # accuracies in %: intervals stay inside this range
DIFF = (-100.0, 100.0)
UNIT = (0.0, 1.0)    # precision@k and other shares


def share_evidence(values: Sequence[float], *, parameter: str | None = None, level: float = LEVEL) -> Evidence:
    """Mean of per-seed shares in [0, 1] (Student t on the logit scale near a bound). When every seed sits on
    the same bound, the mean is at least (at most) the probability that a seed reaches it, bounded by
    Clopper-Pearson over the seeds: the interval ends at the bound, which is the estimate itself."""
    v = np.asarray(values, dtype=float).ravel()
    if v.size >= 2 and np.all(v == v[0]) and v[0] in UNIT:
        n = int(v.size)
        ci = binomtest(n, n).proportion_ci(confidence_level=level, method="exact")
        far = 1.0 - float(ci.low)                   # how far below 1 (or above 0) the mean may lie
        interval = (1.0 - far, 1.0) if v[0] == 1.0 else (0.0, far)
        z = float(norm.ppf(0.5 + level / 2))
        return Evidence(float(v[0]), interval, n, f"exact binomial bound over {n} seeds (all at {v[0]:g}; "
                        "Clopper-Pearson)", (Part("seeds", n, (far / z) ** 2, parameter),))
    return mean_evidence(v, bounds=UNIT, parameter=parameter, level=level)


def rows_evidence(a: np.ndarray, b: np.ndarray | None = None, *, parameter: str | None = None) -> Evidence:
    """Accuracy in % (``b`` None) or the paired difference a - b in points from per-row hits (seeds, test rows),
    1 where a model is right: the seeds' and the test rows' variance both counted (seed_row_evidence)."""
    a = np.asarray(a, dtype=float)
    if b is None:
        return seed_row_evidence(100 * a, bounds=ACC, parameter=parameter)
    b = np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"rows_evidence: a {a.shape} and b {b.shape} must be the same seeds and test rows")
    return seed_row_evidence(100 * (a - b), bounds=DIFF, parameter=parameter)


def kept_share(hits_general: np.ndarray, hits_regular: np.ndarray, chance: float) -> np.ndarray:
    """Per seed (last axis rows): the share of the regular teacher's above-chance accuracy (%) that a nullified
    teacher keeps, (acc_general - chance) / (acc_regular - chance)."""
    return (100 * hits_general.mean(-1) - chance) / (100 * hits_regular.mean(-1) - chance)


def kept_share_evidence(digit: tuple[np.ndarray, np.ndarray], group: tuple[np.ndarray, np.ndarray], *,
                        parameter: str | None = None, n_boot: int = 1000, seed: int = 0) -> Evidence:
    """The share of above-chance digit accuracy kept minus the share of above-chance speaker-group accuracy kept
    by a nullified teacher (each a pair of (seeds, rows) hits: nullified, regular): Student t over seeds plus a
    bootstrap over the shared test rows (the same resamples for all four accuracies and every seed)."""
    def stat(idx: np.ndarray | slice) -> np.ndarray:
        return (kept_share(digit[0][..., idx], digit[1][..., idx], 10.0)
                - kept_share(group[0][..., idx], group[1][..., idx], 50.0))

    n_rows = digit[0].shape[-1]
    reps = np.array([stat(idx).mean() for idx in bootstrap_indices(n_rows, n_boot, seed)])
    return hierarchical_evidence(stat(slice(None)), reps, n_rows=n_rows, unit="seeds", parameter=parameter)
