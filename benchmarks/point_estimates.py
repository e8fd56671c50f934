"""Which point estimate lands on a branch of a multimodal target: the inverted sine.

6,000 rows, 3,000 iterations, the default 5-member model; for each point estimate and each
way of combining members, the share of 2,000 test rows whose estimate lies within 0.08 of a
true branch: a y with y + 0.3 sin(2 pi y) = x, the noise-free curve::

    python benchmarks/point_estimates.py --seeds 0,1,2
"""

from __future__ import annotations

import argparse

import numpy as np

from mdn import MDN
from mdn.datasets import make_inverted_sine

POINTS = ("top", "mode", "median", "mean")
_GRID = np.linspace(-0.2, 1.2, 14_001)


def branch_distance(x: np.ndarray, y_hat: np.ndarray) -> np.ndarray:
    """Distance from each estimate to the nearest y on the noise-free curve through x."""
    curve = _GRID + 0.3 * np.sin(2 * np.pi * _GRID)
    out = np.empty(len(x))
    for i, (xi, yi) in enumerate(zip(x, y_hat, strict=True)):
        gap = curve - xi
        crossing = np.flatnonzero(np.sign(gap[:-1]) != np.sign(gap[1:]))
        roots = _GRID[crossing] if len(crossing) else _GRID[[np.argmin(np.abs(gap))]]
        out[i] = np.min(np.abs(roots - yi))
    return out


def shares(seed: int, n_iter: int, tol: float) -> dict[str, float]:
    X, y = make_inverted_sine(6000, random_state=seed)
    X_test, _ = make_inverted_sine(2000, random_state=1000 + seed)
    model = MDN(n_iter=n_iter, random_state=seed, verbose=0).fit(X, y)
    out = {}
    for combine in ("median", "mixture"):
        model.combine = combine
        for point in POINTS:
            estimate = np.asarray(model.predict(X_test, point=point))
            near = branch_distance(X_test[:, 0], estimate) <= tol
            out[f"{combine}/{point}"] = float(near.mean())
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--n-iter", type=int, default=3000)
    parser.add_argument("--tol", type=float, default=0.08)
    args = parser.parse_args()
    rows = {}
    for seed in args.seeds.split(","):
        rows[seed] = shares(int(seed), args.n_iter, args.tol)
        print(seed, rows[seed], flush=True)
    keys = list(next(iter(rows.values())))
    print("estimate".ljust(16) + "".join(f"seed {s}".rjust(9) for s in rows))
    for key in keys:
        print(key.ljust(16) + "".join(f"{rows[s][key]:9.3f}" for s in rows))
