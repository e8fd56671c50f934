"""Fit an MDN to the inverted sine, print its figures and write a plot.

Run with ``make demo`` or ``python examples/demo.py --out demo-output``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

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
        scores = model.evaluate(X_test, y_test)  # NLL, CRPS, coverage, ... (mdn.metrics)
        rows.append(
            (
                name,
                scores["nll"],
                scores["crps"],
                inverted_sine_on_branch(X_test, model.predict(X_test, point="top")).mean(),
                inverted_sine_on_branch(X_test, model.predict(X_test, point="mean")).mean(),
                scores["coverage_90"],
                seconds,
            )
        )
        if n_mix == 5:
            best = model
    print(
        f"{'model (5-member ensembles)':<27} {'test NLL':>9} {'CRPS':>6} {'top on branch':>14} "
        f"{'mean on branch':>15} {'90% cover':>10} {'fit s':>6}"
    )
    for name, nll, crps, top, mean, cover, seconds in rows:
        print(
            f"{name:<27} {nll:>9.3f} {crps:>6.3f} {top:>14.1%} {mean:>15.1%} {cover:>10.1%} "
            f"{seconds:>6.1f}"
        )

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
