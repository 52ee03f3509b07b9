"""AV-digits preparation time (cold cache) vs cached reload; plus a quick per-modality model.

Targets (issue 3): full preparation <= 30 s on a 2-core machine, cached reload <= 2 s.
Baseline for the ratio: the cold preparation. Run: ``python bench/bench_data.py [--tiny]``
(uses $MMREPRO_DATA, default ../shared/data beside the checkout; a fresh temporary cache).
``--tiny`` (what tests/test_bench.py runs): the timings only, no logistic regressions, and the exit
status does not depend on the targets (a shared machine may miss them).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

torch.set_num_threads(1)
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
if "MMREPRO_DATA" not in os.environ and SHARED.is_dir():
    os.environ["MMREPRO_DATA"] = str(SHARED)


def quick_accuracy(ds, modality: str) -> float:
    """Test accuracy of a logistic regression on 14x14 average-pooled inputs."""
    import torch.nn.functional as F
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    feats = lambda d: F.avg_pool2d(d.x[modality], 2).flatten(1).numpy()  # noqa: E731
    tr, te = ds.split("train"), ds.split("test")
    with threadpool_limits(1):
        clf = LogisticRegression(max_iter=300).fit(feats(tr), tr.y["digit"].numpy())
        return float(clf.score(feats(te), te.y["digit"].numpy()))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tiny", action="store_true", help="timings only, exit status 0 whatever they are (the tests')")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        os.environ["MMREPRO_CACHE"] = cache
        from mmrepro.core.data import load_av_digits

        t0 = time.perf_counter()
        ds = load_av_digits(seed=0)
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        again = load_av_digits(seed=0)
        warm = time.perf_counter() - t0
        assert torch.equal(again.x["audio"], ds.x["audio"]) and torch.equal(again.x["image"], ds.x["image"])
        t0 = time.perf_counter()
        load_av_digits(seed=1)
        new_seed = time.perf_counter() - t0
    print(f"AV digits: {ds}")
    print(f"full preparation (cold cache): {cold:6.2f} s   (target <= 30 s)")
    print(f"cached reload:                 {warm:6.3f} s   (target <= 2 s)")
    print(f"new seed, cached spectrograms: {new_seed:6.2f} s")
    print(f"ratio cold / cached reload:    {cold / warm:6.1f}x")
    if args.tiny:
        return 0
    import warnings

    warnings.filterwarnings("ignore", module="sklearn")
    for m in ("image", "audio"):
        print(f"quick logistic regression, {m:5s}: test accuracy {quick_accuracy(ds, m):.3f} (chance 0.100)")
    return 0 if cold <= 30 and warm <= 2 else 1


if __name__ == "__main__":
    sys.exit(main())
