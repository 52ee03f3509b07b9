"""Evaluation metrics, modality-utilisation measures and bootstrap confidence intervals.

* :func:`conditional_utilization` -- MIND eq. (6) / MILES eq. (4).
* :func:`d_util` (MIND, after Wu et al. 2022), :func:`delta_ab` (MILES eq. 5) and
  :func:`unimodal_gap` (MILES Sec. V "Performance metrics", the tables' Delta_AB column).
* :func:`score` -- a metric by name, computed by scikit-learn.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn import metrics as skm

TASK_KINDS = ("binary", "multiclass", "multilabel", "regression")

# metric name -> task kinds it is defined for
METRICS: dict[str, tuple[str, ...]] = {
    "accuracy": ("binary", "multiclass", "multilabel"),
    "f1_macro": ("binary", "multiclass", "multilabel"),
    "f1_micro": ("binary", "multiclass", "multilabel"),
    "balanced_accuracy": ("binary", "multiclass"),
    "auroc": ("binary", "multiclass", "multilabel"),
    "auprc": ("binary", "multilabel"),
    "mse": ("regression", "binary", "multilabel"),
}
RANK_METRICS = ("auroc", "auprc")


# --------------------------------------------------------------------------- utilisation
def _as_float_array(x: Any, name: str) -> np.ndarray:
    try:
        arr = np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a number or an array of numbers, got {type(x).__name__}") from exc
    return arr


def _scalar_or_array(x: np.ndarray) -> float | np.ndarray:
    return float(x) if x.ndim == 0 else x


def conditional_utilization(m_ab: Any, m_a: Any, m_b: Any) -> tuple[float | np.ndarray, float | np.ndarray]:
    """Conditional utilisation rates (u_A, u_B) of a two-modality fusion model.

    MIND eq. (6) and MILES eq. (4): with M a performance metric of the fusion head (m_ab)
    and of the unimodal heads (m_a, m_b)::

        u_A = (M(y_AB) - M(y_B)) / M(y_AB),    u_B = (M(y_AB) - M(y_A)) / M(y_AB)

    Inputs are numbers or broadcastable arrays (numpy or torch); scalars in, floats out.
    No range is assumed: u is negative when a unimodal head beats the fusion head and may
    exceed 1 when the metric can be negative.
    """
    ab, a, b = (_as_float_array(v, n) for v, n in ((m_ab, "m_ab"), (m_a, "m_a"), (m_b, "m_b")))
    try:
        ab, a, b = np.broadcast_arrays(ab, a, b)
    except ValueError as exc:
        raise ValueError(f"m_ab, m_a, m_b have incompatible shapes {ab.shape}, {a.shape}, {b.shape}") from exc
    if np.any(ab == 0):
        raise ValueError(
            "conditional_utilization is undefined where the fusion metric m_ab == 0 (division by zero); "
            "use a metric that is non-zero for the fusion head, e.g. accuracy or AUROC instead of a loss"
        )
    return _scalar_or_array((ab - b) / ab), _scalar_or_array((ab - a) / ab)


def d_util(u_a: Any, u_b: Any) -> float | np.ndarray:
    """Signed utilisation imbalance d_util = u_A - u_B (MIND Sec. 3, following Wu et al. 2022).

    Not clipped: values outside [-1, 1] occur in practice and are returned as they are.
    """
    return _scalar_or_array(_as_float_array(u_a, "u_a") - _as_float_array(u_b, "u_b"))


def delta_ab(u_a: Any, u_b: Any) -> float | np.ndarray:
    """Absolute utilisation difference delta_AB = |u_A - u_B| (MILES eq. 5), used by Algorithm 1."""
    return _scalar_or_array(np.abs(_as_float_array(u_a, "u_a") - _as_float_array(u_b, "u_b")))


def unimodal_gap(m_a: Any, m_b: Any) -> float | np.ndarray:
    """Delta_AB = A_A - A_B, the performance gap between the unimodal heads (MILES Tables II-III).

    By the paper's convention A is the stronger modality, so a negative gap means the weaker
    modality overtook the stronger one (as MILES reports for CREMA-D).
    """
    return _scalar_or_array(_as_float_array(m_a, "m_a") - _as_float_array(m_b, "m_b"))


# --------------------------------------------------------------------------- inputs
def _to_numpy(x: Any, name: str) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise TypeError(f"{name} must be numeric (numpy array or torch tensor), got dtype {arr.dtype}")
    return arr


def _check_kind(task_kind: str) -> None:
    if task_kind not in TASK_KINDS:
        raise ValueError(f"unknown task_kind {task_kind!r}; valid: {', '.join(TASK_KINDS)}")


def check_metric(name: str, task_kind: str) -> None:
    """Raise ValueError unless ``name`` is a known metric defined for ``task_kind``."""
    _check_kind(task_kind)
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}; valid: {', '.join(METRICS)}")
    if task_kind not in METRICS[name]:
        raise ValueError(
            f"metric {name!r} is not defined for task_kind {task_kind!r}; it supports {', '.join(METRICS[name])}"
        )


def prepare(y_true: Any, y_score: Any, task_kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Validate and normalise (y_true, y_score) for ``task_kind``.

    Shapes: binary y_true (N,) in {0, 1}, y_score (N,) or (N, 1) probabilities of class 1;
    multiclass y_true (N,) int in [0, C), y_score (N, C) scores or (N,) predicted labels;
    multilabel y_true and y_score (N, L); regression (N,) or (N, D). Unknown targets (NaN / -1)
    are rejected: select the rows with known targets first.
    """
    _check_kind(task_kind)
    yt, ys = _to_numpy(y_true, "y_true"), _to_numpy(y_score, "y_score")
    if task_kind == "binary":
        yt, ys = (a.reshape(-1) if a.ndim == 2 and a.shape[1] == 1 else a for a in (yt, ys))
    if yt.ndim == 0 or yt.shape[0] == 0:
        raise ValueError("y_true is empty; need at least one sample")
    if yt.shape[0] != ys.shape[0]:
        raise ValueError(f"y_true has {yt.shape[0]} samples but y_score has {ys.shape[0]}")
    if not np.all(np.isfinite(ys)):
        raise ValueError("y_score contains NaN or inf")
    if task_kind != "regression" and (not np.all(np.isfinite(yt)) or np.any(yt < 0)):
        raise ValueError("y_true contains unknown targets (NaN or negative); select rows with known targets first")
    if task_kind == "regression":
        if not np.all(np.isfinite(yt)):
            raise ValueError("y_true contains NaN or inf; select rows with known targets first")
        if yt.shape != ys.shape:
            raise ValueError(f"regression y_true {yt.shape} and y_score {ys.shape} must have the same shape")
        return yt.astype(np.float64), ys.astype(np.float64)
    if task_kind == "binary":
        if yt.ndim != 1 or ys.ndim != 1:
            raise ValueError(f"binary task: y_true and y_score must be (N,), got {yt.shape} and {ys.shape}")
    elif task_kind == "multilabel":
        if yt.ndim != 2 or yt.shape != ys.shape:
            raise ValueError(f"multilabel task: y_true and y_score must both be (N, L), got {yt.shape} and {ys.shape}")
    else:  # multiclass
        if yt.ndim != 1 or ys.ndim not in (1, 2):
            raise ValueError(f"multiclass task: y_true must be (N,) and y_score (N, C) or (N,), got {yt.shape}, {ys.shape}")
        if np.any(yt != np.round(yt)):
            raise ValueError("multiclass y_true must hold integer class indices")
        if ys.ndim == 2 and yt.max() >= ys.shape[1]:
            raise ValueError(f"y_true has class {int(yt.max())} but y_score has only {ys.shape[1]} columns")
        return yt.astype(np.int64), ys.astype(np.float64) if ys.ndim == 2 else ys.astype(np.int64)
    if np.any((yt != 0) & (yt != 1)):
        raise ValueError(f"{task_kind} y_true must contain only 0 and 1")
    return yt.astype(np.int64), ys.astype(np.float64)


def predictions(y_score: np.ndarray, task_kind: str, threshold: float = 0.5) -> np.ndarray:
    """Hard predictions: score >= threshold (binary, multilabel), argmax (multiclass)."""
    if task_kind == "multiclass":
        return y_score.argmax(axis=1) if y_score.ndim == 2 else y_score
    return (y_score >= threshold).astype(np.int64)


# --------------------------------------------------------------------------- scoring
def score(name: str, y_true: Any, y_score: Any, task_kind: str, threshold: float = 0.5) -> float:
    """Compute metric ``name`` with scikit-learn.

    Names: accuracy, f1_macro, f1_micro, balanced_accuracy, auroc, auprc, mse (see ``METRICS``
    for the task kinds each supports). Binary/multilabel scores are probabilities; label
    metrics threshold them at ``threshold``. Multilabel accuracy is subset accuracy, multilabel
    AUROC/AUPRC and multiclass AUROC (one-vs-rest, probabilities) are macro averages.
    AUROC/AUPRC raise ValueError when a label has only one class.
    """
    check_metric(name, task_kind)
    yt, ys = prepare(y_true, y_score, task_kind)
    if name == "mse":
        return float(skm.mean_squared_error(yt, ys))
    if name in RANK_METRICS:
        if task_kind == "multiclass" and ys.ndim != 2:
            raise ValueError("multiclass auroc needs y_score of shape (N, C) (class probabilities)")
        _require_both_classes(yt, task_kind, ys.shape[1] if ys.ndim == 2 else 0)
        if name == "auroc":
            if task_kind == "multiclass":
                return float(skm.roc_auc_score(yt, ys, multi_class="ovr", average="macro", labels=np.arange(ys.shape[1])))
            return float(skm.roc_auc_score(yt, ys, average="macro"))
        return float(skm.average_precision_score(yt, ys, average="macro"))
    pred = predictions(ys, task_kind, threshold)
    if name == "accuracy":
        return float(skm.accuracy_score(yt, pred))
    if name == "balanced_accuracy":
        return float(skm.balanced_accuracy_score(yt, pred))
    return float(skm.f1_score(yt, pred, average=name.removeprefix("f1_"), zero_division=0.0))


def _require_both_classes(yt: np.ndarray, task_kind: str, n_classes: int) -> None:
    onehot = np.eye(n_classes, dtype=np.int64)[yt] if task_kind == "multiclass" else yt.reshape(len(yt), -1)
    npos = onehot.sum(axis=0)
    bad = np.flatnonzero((npos == 0) | (npos == len(yt)))
    if bad.size:
        raise ValueError(
            f"AUROC/AUPRC undefined: label(s)/class(es) {bad.tolist()} have only one class in y_true"
        )
