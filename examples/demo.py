"""Fit an MDN to the inverted sine, print its figures and write a plot.

Run with ``make demo`` or ``python examples/demo.py --out demo-output``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from mdn import MDN
from mdn.datasets import inverted_sine_on_branch, make_inverted_sine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="demo-output", help="folder for the plot and model")
    parser.add_argument("--n-iter", type=int, default=4000, help="training iterations")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    # One thread is as fast as two for this small network, and cannot stall when other
    # processes share the cores.
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    X, y = make_inverted_sine(2000, random_state=args.seed)
    X_test, y_test = make_inverted_sine(2000, random_state=args.seed + 1)
    print("Inverted sine: y ~ U(0, 1), x = y + 0.3 sin(2 pi y) + U(-0.1, 0.1); predict y from x")
    print(f"2000 training rows, 2000 test rows, {args.n_iter} iterations\n")

    rows = []
    for name, n_mix in (("MDN, 5 components", 5), ("single Gaussian", 1)):
        start = time.perf_counter()
        model = MDN(n_mix=n_mix, n_iter=args.n_iter, random_state=args.seed, verbose=0)
        model.fit(X, y)
        seconds = time.perf_counter() - start
        lower, upper = model.predict_interval(X_test, coverage=0.9)
        rows.append((
            name,
            -model.score(X_test, y_test),
            inverted_sine_on_branch(X_test, model.predict(X_test, point="top")).mean(),
            inverted_sine_on_branch(X_test, model.predict(X_test, point="mean")).mean(),
            np.mean((y_test >= lower) & (y_test <= upper)),
            seconds,
        ))
        if n_mix == 5:
            best = model
    print(f"{'model':<20} {'test NLL':>9} {'top on branch':>14} {'mean on branch':>15} "
          f"{'90% cover':>10} {'fit s':>6}")
    for name, nll, top, mean, cover, seconds in rows:
        print(f"{name:<20} {nll:>9.3f} {top:>14.1%} {mean:>15.1%} {cover:>10.1%} {seconds:>6.1f}")

    best.save(out / "inverted_sine.safetensors")
    try:
        import matplotlib

        matplotlib.use("Agg")
        from mdn.plotting import plot_conditional_density

        ax = plot_conditional_density(best, X_test, y_test)
        ax.set_title("MDN on the inverted sine: p(y | x) and the top estimate")
        ax.figure.savefig(out / "inverted_sine.png", dpi=120, bbox_inches="tight")
        print(f"\nwrote {out / 'inverted_sine.png'} and {out / 'inverted_sine.safetensors'}")
    except ImportError:
        print("\nmatplotlib is not installed (pip install 'mdn[plot]'): no plot written")


if __name__ == "__main__":
    main()
