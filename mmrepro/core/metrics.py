"""Evaluation metrics, modality-utilisation measures and bootstrap confidence intervals.

* :func:`conditional_utilization` -- MIND eq. (6) / MILES eq. (4).
* :func:`d_util` (MIND, after Wu et al. 2022), :func:`delta_ab` (MILES eq. 5) and
  :func:`unimodal_gap` (MILES Sec. V "Performance metrics", the tables' Delta_AB column).
* :func:`score` -- a metric by name, computed by scikit-learn; :func:`score_runs` for K runs at once.
* :func:`bootstrap_ci` -- percentile or basic (pivotal) bootstrap interval, with a fast path
  vectorised over resamples and labels and a general path for any callable metric.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn import metrics as skm

from mmrepro.common.checks import TASK_KINDS, check_seed

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
LOWER_IS_BETTER = ("mse", "loss")  # "loss" is the trainer's logged loss, not a metric of METRICS


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

    Shapes: binary y_true (N,) in {0, 1}, y_score (N,) or (N, 1) probabilities of class 1 (in [0, 1]);
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
    if ys.size and (ys.min() < 0 or ys.max() > 1):
        raise ValueError(f"{task_kind} y_score must hold probabilities in [0, 1], got values in [{ys.min():.4g}, "
                         f"{ys.max():.4g}]: apply a sigmoid to logits (mmrepro.core.models.probabilities)")
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
    if name == "balanced_accuracy":  # mean recall over the classes in y_true (a small fold may lack one)
        with warnings.catch_warnings():  # sklearn notes a predicted class the fold lacks: expected, not a fault
            warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
            return float(skm.balanced_accuracy_score(yt, pred))
    if task_kind == "multilabel" and yt.shape[1] == 1:  # sklearn would read one column as a binary task
        return float(skm.f1_score(yt[:, 0], pred[:, 0], average="binary", zero_division=0.0))
    return float(skm.f1_score(yt, pred, average=name.removeprefix("f1_"), zero_division=0.0))


def score_runs(name: str, y_true: Any, y_score: Any, task_kind: str, valid: Any) -> list[float]:
    """:func:`score` for K runs at once (torch tensors): ``y_true`` (K, N) or (K, N, L), ``y_score``
    (K, N[, C]), ``valid`` (K, N) the rows each run is scored on. NaN for a run without a valid row
    or where the metric is undefined (e.g. AUROC with one class). Accuracy is counted for every run
    in one pass (the same number as scikit-learn's ``accuracy_score``: binary and multilabel scores
    thresholded at 0.5, multilabel as subset accuracy); the other metrics are computed run by run by the
    bootstrap's exact fast path (:func:`resampled_scores` on the identity resample, equal to
    scikit-learn's to float round-off), since scikit-learn's input validation cost far more than the
    metric on the few hundred rows scored after every epoch.
    """
    check_metric(name, task_kind)
    if name == "accuracy":
        if task_kind == "multiclass":
            hit = y_score.argmax(dim=-1) == y_true
        else:
            hit = (y_score >= 0.5) == (y_true == 1)
            hit = hit.all(dim=-1) if task_kind == "multilabel" else hit
        n = valid.sum(dim=-1)
        acc = ((hit & valid).sum(dim=-1).double() / n.clamp(min=1)).tolist()
        return [a if c else float("nan") for a, c in zip(acc, n.tolist())]
    out = []
    for yt, ys, ok in zip(y_true, y_score, valid):
        if not bool(ok.any()):
            out.append(float("nan"))
            continue
        t, s = prepare(yt[ok], ys[ok], task_kind)
        if name in RANK_METRICS and task_kind == "multiclass" and s.ndim != 2:
            raise ValueError("multiclass auroc needs y_score of shape (N, C) (class probabilities)")
        try:
            out.append(float(resampled_scores(name, t, s, task_kind, np.arange(len(t))[None], 0.5)[0]))
        except ValueError:  # undefined on this run's rows (e.g. AUROC where a label has one class)
            out.append(float("nan"))
    return out


def _require_both_classes(yt: np.ndarray, task_kind: str, n_classes: int) -> None:
    onehot = np.eye(n_classes, dtype=np.int64)[yt] if task_kind == "multiclass" else yt.reshape(len(yt), -1)
    npos = onehot.sum(axis=0)
    bad = np.flatnonzero((npos == 0) | (npos == len(yt)))
    if bad.size:
        raise ValueError(
            f"AUROC/AUPRC undefined: label(s)/class(es) {bad.tolist()} have only one class in y_true"
        )


# --------------------------------------------------------------------------- bootstrap
class BootstrapResult(tuple):
    """``(point, low, high)`` of :func:`bootstrap_ci`, unpacks as a 3-tuple, with the details as attributes.

    Attributes: ``point``, ``low``, ``high``; ``replicates`` (the kept resample statistics, in
    resample order); ``n_boot`` (resamples drawn); ``n_dropped`` (resamples on which the metric
    was undefined, e.g. a label with one class for AUROC/AUPRC, and which the interval ignores);
    ``method``; ``level``.
    """

    point: float
    low: float
    high: float
    replicates: np.ndarray
    n_boot: int
    n_dropped: int
    method: str
    level: float

    def __new__(cls, point: float, low: float, high: float, **details: Any) -> "BootstrapResult":
        self = super().__new__(cls, (point, low, high))
        self.point, self.low, self.high = point, low, high
        for key, value in details.items():
            setattr(self, key, value)
        return self

    def __repr__(self) -> str:
        return (
            f"BootstrapResult(point={self.point:.6g}, low={self.low:.6g}, high={self.high:.6g}, "
            f"method={self.method!r}, level={self.level}, n_boot={self.n_boot}, n_dropped={self.n_dropped})"
        )


def bootstrap_indices(n: int, n_boot: int, seed: int = 0) -> np.ndarray:
    """The (n_boot, n) resample indices :func:`bootstrap_ci` uses for ``seed`` (rows drawn with replacement)."""
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if not isinstance(n_boot, (int, np.integer)) or isinstance(n_boot, bool) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive integer, got {n_boot!r}")
    check_seed(seed)
    dtype = np.int32 if n < 2**31 else np.int64
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n), dtype=dtype)


def interval(point: float, replicates: np.ndarray, level: float, method: str) -> tuple[float, float]:
    """Bootstrap interval from replicate statistics (Efron & Tibshirani 1994, ch. 13).

    ``percentile``: the (1-level)/2 and (1+level)/2 quantiles of the replicates.
    ``basic`` (pivotal; MedFuse's and hence MIND's interval): ``2*point - q_hi``, ``2*point - q_lo``,
    i.e. ``point - pct(v_b - point, 97.5)`` and ``point - pct(v_b - point, 2.5)`` at 95 %.
    Quantiles use numpy's default linear interpolation.
    """
    alpha = 1.0 - level
    q_lo, q_hi = np.quantile(replicates, [alpha / 2, 1 - alpha / 2])
    if method == "percentile":
        return float(q_lo), float(q_hi)
    return float(2 * point - q_hi), float(2 * point - q_lo)


def _infer_kind(name: str, yt: np.ndarray, ys: np.ndarray) -> str:
    binary_values = yt.size > 0 and bool(np.all((yt == 0) | (yt == 1)))
    if yt.ndim == 2 and yt.shape[1] > 1:
        return "multilabel" if binary_values and name != "mse" else "regression"
    if ys.ndim == 2 and ys.shape[1] > 1:
        return "multiclass"
    if binary_values:
        return "binary"
    if np.issubdtype(yt.dtype, np.integer) and np.issubdtype(ys.dtype, np.integer):
        return "multiclass"  # class indices and predicted labels
    if name == "mse":
        return "regression"
    raise ValueError(f"cannot infer the task kind of these inputs for metric {name!r}; pass task_kind=one of {TASK_KINDS}")


def bootstrap_ci(
    metric: str | Any,
    y_true: Any,
    y_score: Any,
    n_boot: int = 1000,
    level: float = 0.95,
    method: str = "percentile",
    seed: int = 0,
    *,
    task_kind: str | None = None,
    threshold: float = 0.5,
) -> BootstrapResult:
    """Bootstrap confidence interval of a metric: ``(point, low, high)`` as a :class:`BootstrapResult`.

    Rows are resampled with replacement ``n_boot`` times (:func:`bootstrap_indices`); the point is
    the metric on all rows; ``method`` is ``"percentile"`` or ``"basic"`` (see :func:`interval`;
    MIND reports 95 % intervals from 1,000 resamples, Sec. 5).

    ``metric`` is either a name from ``METRICS`` -- the fast path: the statistic of every resample
    is computed at once from resample counts (:func:`resampled_scores`), equal to scikit-learn on
    every resample up to float round-off -- or a callable ``metric(y_true, y_score) -> float``
    called once per resample on numpy arrays (the general path). ``task_kind`` and ``threshold``
    are as in :func:`score` (the kind is inferred from the shapes when omitted) and apply to names.

    Undefined resamples are dropped and counted (``result.n_dropped``): for AUROC/AUPRC a
    resample in which any label (class, for multiclass AUROC) has only one class present; for a
    callable, a resample on which it returns NaN or inf. If every resample is dropped, or the
    point estimate itself is undefined, a ValueError is raised.
    """
    if method not in ("percentile", "basic"):
        raise ValueError(f"unknown method {method!r}; valid: 'percentile', 'basic'")
    if not isinstance(level, (float, int)) or isinstance(level, bool) or not 0 < level < 1:
        raise ValueError(f"level must be a number strictly between 0 and 1 (e.g. 0.95), got {level!r}")
    if isinstance(metric, str):
        yt0, ys0 = _to_numpy(y_true, "y_true"), _to_numpy(y_score, "y_score")
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; valid: {', '.join(METRICS)} (or pass a callable)")
        if yt0.ndim == 0 or yt0.shape[0] == 0:
            raise ValueError("y_true is empty: bootstrap_ci needs at least one row")
        if not np.all(np.isfinite(yt0)):
            raise ValueError("y_true contains NaN or inf (unknown targets): select the rows with known targets first")
        kind = task_kind or _infer_kind(metric, yt0, ys0)
        point = score(metric, yt0, ys0, kind, threshold)
        yt, ys = prepare(yt0, ys0, kind)
        idx = bootstrap_indices(yt.shape[0], n_boot, seed)
        reps = resampled_scores(metric, yt, ys, kind, idx, threshold)
    elif callable(metric):
        if task_kind is not None:
            raise ValueError("task_kind applies to metric names only; a callable metric gets the raw arrays")
        yt, ys = _to_numpy(y_true, "y_true"), _to_numpy(y_score, "y_score")
        if yt.ndim == 0 or yt.shape[0] != (ys.shape[0] if ys.ndim else -1):
            raise ValueError(f"y_true {yt.shape} and y_score {ys.shape} must have the same number of rows")
        point = float(metric(yt, ys))
        if not np.isfinite(point):
            raise ValueError(f"the metric is {point} on the full data; the interval is undefined")
        idx = bootstrap_indices(yt.shape[0], n_boot, seed)
        reps = np.array([metric(yt[i], ys[i]) for i in idx], dtype=np.float64)
    else:
        raise TypeError(f"metric must be a metric name ({', '.join(METRICS)}) or a callable, got {type(metric).__name__}")
    keep = np.isfinite(reps)
    if not keep.any():
        raise ValueError(f"the metric is undefined on all {n_boot} resamples (e.g. a label with a single class)")
    kept = reps[keep]
    low, high = interval(point, kept, float(level), method)
    return BootstrapResult(
        point, low, high, replicates=kept, n_boot=int(n_boot), n_dropped=int((~keep).sum()), method=method, level=float(level)
    )


def _counts_chunks(idx: np.ndarray, row_size: int, budget: int = 2**16, pad: bool = False):
    """Yield (slice, counts): counts[b, i] = times row i occurs in resample b, in memory-bounded chunks.

    With ``pad`` the counts get an extra all-zero column n.
    """
    n_boot, n = idx.shape
    width = n + pad
    step = max(1, budget // max(1, row_size))
    for start in range(0, n_boot, step):
        block = idx[start : start + step]
        flat = block + (np.arange(block.shape[0], dtype=np.int64)[:, None] * width)
        counts = np.bincount(flat.ravel(), minlength=block.shape[0] * width).reshape(block.shape[0], width)
        yield slice(start, start + block.shape[0]), counts.astype(np.float64)


def resampled_scores(
    name: str, yt: np.ndarray, ys: np.ndarray, task_kind: str, idx: np.ndarray, threshold: float
) -> np.ndarray:
    """Metric ``name`` on every resample in ``idx`` at once; NaN marks an undefined resample.

    A resample is represented by its count vector over the original rows, so every statistic is
    a weighted sum: label metrics are matrix products of counts with per-row indicators, and
    AUROC/AUPRC are evaluated per label on the rows sorted once by score (see :class:`_RankPlan`).
    Counts are integers held exactly in float64: AUROC and the label metrics are ratios of exact
    integer sums; AUPRC and MSE sum floats. Both agree with scikit-learn to float round-off.
    """
    out = np.empty(idx.shape[0], dtype=np.float64)
    if name in RANK_METRICS:
        if task_kind == "multiclass":
            if ys.ndim != 2:
                raise ValueError("multiclass auroc needs y_score of shape (N, C) (class probabilities)")
            y_bin = (yt[:, None] == np.arange(ys.shape[1])[None, :]).astype(np.float64)
        else:
            y_bin = yt.reshape(len(yt), -1).astype(np.float64)
        plan = _RankPlan(y_bin, ys.reshape(len(yt), -1))
        for sl, counts in _counts_chunks(idx, plan.size, pad=True):
            out[sl] = plan.evaluate(counts, name)
        return out
    if name == "mse":
        per_row = ((yt - ys) ** 2).reshape(len(yt), -1).mean(axis=1)
        for sl, counts in _counts_chunks(idx, idx.shape[1]):
            out[sl] = counts @ per_row / idx.shape[1]
        return out
    pred = predictions(ys, task_kind, threshold)
    if name == "accuracy":
        correct = (yt == pred).reshape(len(yt), -1).all(axis=1).astype(np.float64)
        for sl, counts in _counts_chunks(idx, idx.shape[1]):
            out[sl] = counts @ correct / idx.shape[1]
        return out
    if task_kind == "multilabel":  # f1 over the L label columns, each always counted
        truth, predicted = yt.astype(np.float64), pred.astype(np.float64)
    else:  # classes seen in y_true or the predictions; a resample counts those present in it
        classes = np.union1d(yt, pred)
        truth = (yt[:, None] == classes[None, :]).astype(np.float64)
        predicted = (pred[:, None] == classes[None, :]).astype(np.float64)
    k = truth.shape[1]
    design = np.concatenate([truth * predicted, truth, predicted], axis=1)
    for sl, counts in _counts_chunks(idx, idx.shape[1]):
        sums = counts @ design
        tp, t, p = sums[:, :k], sums[:, k : 2 * k], sums[:, 2 * k :]
        present = (t + p) > 0 if task_kind != "multilabel" else np.ones_like(t, dtype=bool)
        if name == "balanced_accuracy":
            has_true = t > 0
            recall = np.divide(tp, t, out=np.zeros_like(tp), where=has_true)
            out[sl] = recall.sum(axis=1) / has_true.sum(axis=1)
        elif name == "f1_macro":
            f1 = np.divide(2 * tp, t + p, out=np.zeros_like(tp), where=(t + p) > 0)
            out[sl] = (f1 * present).sum(axis=1) / present.sum(axis=1)
        else:  # f1_micro
            num, den = 2 * tp.sum(axis=1), (t + p).sum(axis=1)
            out[sl] = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
    return out


class _RankPlan:
    """AUROC / AUPRC of L score columns on many weighted resamples (the fast path's rank metrics).

    Each column is sorted once; rows with equal scores form a tie group. For a resample with
    counts c (weights), and for each positive row k of a label, let ``neg_lt``/``neg_le`` be the
    negative weight scoring below / at most its score and ``pos_ge``/``neg_ge`` the weight scoring
    at least its score. Then, per label with P positive and N negative weight,

    * AUROC (Mann-Whitney, ties counted 1/2): sum_k c_k (neg_lt + neg_le) / (2 P N);
    * AUPRC (average precision as scikit-learn defines it): sum_k c_k pos_ge / (pos_ge + neg_ge) / P.

    Cumulative weights are cumsums over the sorted rows of all labels side by side, so the work is
    vectorised over resamples and labels; all sums are of integers, exact in float64. A label
    without both classes in a resample makes the resample undefined (NaN).
    """

    def __init__(self, y: np.ndarray, s: np.ndarray) -> None:
        n, n_labels = y.shape
        order = np.argsort(s, axis=0, kind="stable")
        s_sorted = np.take_along_axis(s, order, axis=0)
        positive = np.take_along_axis(y, order, axis=0).T.ravel() > 0  # label-major flat positions
        new_group = np.ones((n, n_labels), dtype=bool)
        new_group[1:] = s_sorted[1:] != s_sorted[:-1]
        ends_group = np.ones((n, n_labels), dtype=bool)
        ends_group[:-1] = new_group[1:]
        pos_in_label = np.arange(n)[:, None]
        group_start = np.maximum.accumulate(np.where(new_group, pos_in_label, 0), axis=0)
        group_end = np.minimum.accumulate(np.where(ends_group, pos_in_label + 1, n)[::-1], axis=0)[::-1]
        label = np.repeat(np.arange(n_labels), n)[positive]
        rows = order.T.ravel()
        self.n, self.n_labels = n, n_labels
        self.size = n * n_labels
        self.neg_rows = np.where(positive, n, rows)  # row n of the padded counts is zero
        self.pos_rows = rows[positive]  # positive rows, sorted by score within each label
        padded = label * (n + 1)  # flat offsets into the (L, n + 1) zero-led cumsum
        self.lt = padded + group_start.T.ravel()[positive]
        self.le = padded + group_end.T.ravel()[positive]
        self.label_first = np.searchsorted(label, np.arange(n_labels))
        if np.any(np.bincount(label, minlength=n_labels) == 0):
            raise ValueError("AUROC/AUPRC undefined: a label has no positive sample")
        # index (into the positives) of the first positive of each positive's tie group
        first_pos = np.flatnonzero(np.r_[True, (self.lt[1:] != self.lt[:-1])])
        self.group_first_pos = first_pos[np.cumsum(np.r_[True, self.lt[1:] != self.lt[:-1]]) - 1]
        self.pos_label = label

    def evaluate(self, counts: np.ndarray, name: str) -> np.ndarray:
        """Statistic per resample; ``counts`` is (B, n + 1) with a zero last column."""
        b, n, n_labels = counts.shape[0], self.n, self.n_labels
        neg_cum = np.zeros((b, n_labels, n + 1))
        np.cumsum(counts[:, self.neg_rows].reshape(b, n_labels, n), axis=2, out=neg_cum[:, :, 1:])
        n_neg = neg_cum[:, :, n]
        neg_cum = neg_cum.reshape(b, -1)
        w = counts[:, self.pos_rows]
        n_pos = np.add.reduceat(w, self.label_first, axis=1)
        if name == "auroc":
            num = np.add.reduceat(w * (neg_cum[:, self.lt] + neg_cum[:, self.le]), self.label_first, axis=1)
            den = 2 * n_pos * n_neg
        else:
            pos_cum = np.zeros((b, w.shape[1] + 1))
            np.cumsum(w, axis=1, out=pos_cum[:, 1:])
            pos_lt = pos_cum[:, self.group_first_pos] - pos_cum[:, self.label_first][:, self.pos_label]
            pos_ge = n_pos[:, self.pos_label] - pos_lt
            neg_ge = n_neg[:, self.pos_label] - neg_cum[:, self.lt]
            num = np.add.reduceat(w * pos_ge / np.maximum(pos_ge + neg_ge, 1), self.label_first, axis=1)
            den = n_pos
        defined = (n_pos > 0) & (n_neg > 0)
        value = np.divide(num, den, out=np.full_like(num, np.nan), where=defined)
        return np.where(defined.all(axis=1), value.mean(axis=1), np.nan)
