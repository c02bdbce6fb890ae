"""NumPy reference for `mia bench`'s attack-scoring rows: LiRA (online and offline, the
authors' per-example Gaussians with median centres and a fixed deviation, as in
github.com/tensorflow/privacy's LiRA code) and RMIA scoring, on synthetic signals of
EXAMPLES × MODELS. Prints one JSON object per line: {"attack": ..., "ms": ...}.

Usage: python3 bench/attack_reference.py --examples 50000 --models 64 [--repeat 3]
Exit status 3 (and a message on stderr) when NumPy is not installed. The offline LiRA row
needs SciPy (for the normal CDF) and is skipped, with a message, without it.
"""

import argparse
import json
import sys
import time

try:
    import numpy as np
except ImportError:
    print("NumPy is not installed (pip install numpy)", file=sys.stderr)
    sys.exit(3)


def timed(fn, repeat):
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best * 1000.0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--examples", type=int, default=50000)
    p.add_argument("--models", type=int, default=64)
    p.add_argument("--repeat", type=int, default=3)
    a = p.parse_args()
    rng = np.random.default_rng(0)
    n, m = a.examples, a.models
    keep = rng.random((m, n)) < 0.5
    phi = rng.standard_normal((m, n)).astype(np.float32) + keep
    target = rng.standard_normal(n).astype(np.float32)

    def fit(inside):
        masked = np.where(keep == inside, phi, np.nan)
        mean = np.nanmedian(masked, axis=0)
        std = np.nanstd(masked)
        return mean, std

    def lira_online():
        mi, si = fit(True)
        mo, so = fit(False)
        lin = -0.5 * ((target - mi) / si) ** 2 - np.log(si)
        lout = -0.5 * ((target - mo) / so) ** 2 - np.log(so)
        return lin - lout

    print(json.dumps({"attack": "lira-online", "ms": timed(lira_online, a.repeat)}), flush=True)
    try:
        from scipy.stats import norm

        def lira_offline():
            mo, so = fit(False)
            return norm.logcdf(target, mo, so)

        print(json.dumps({"attack": "lira-offline", "ms": timed(lira_offline, a.repeat)}), flush=True)
    except ImportError:
        print("SciPy is not installed: no offline LiRA reference (pip install scipy)", file=sys.stderr)

    probs = rng.random((m, n)).astype(np.float32)
    target_p = rng.random(n).astype(np.float32)

    def rmia():
        prior = probs.mean(axis=0)
        ratio = target_p / np.maximum(prior, 1e-30)
        ratio_z = np.sort(ratio)
        return np.searchsorted(ratio_z, ratio / 1.0, side="right") / n

    print(json.dumps({"attack": "rmia", "ms": timed(rmia, a.repeat)}), flush=True)


if __name__ == "__main__":
    main()
