"""Full against diagonal covariance on the simulated ocean-colour set, by held-out NLL.

Writes a training CSV and a held-out CSV of Rrs at a sensor's bands with chl, tss and cdom
(``mdn.datasets.simulate_ocean_colour``), fits ``MDN(target_transform="log")`` with each
covariance on the training rows, and prints the held-out NLL (joint and per target) and the
90 % coverage. The same as the README's ``mdn fit``/``mdn evaluate`` commands, in Python.

    python examples/ocean_colour/compare_covariance.py --out ocean-colour-output
    python examples/ocean_colour/compare_covariance.py --seeds 0 --write-only  # CSVs only
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from mdn import MDN
from mdn.datasets import OCEAN_COLOUR_TARGETS, simulate_ocean_colour


def write_sets(out: Path, n_train: int, n_test: int, sensor: str, seed: int) -> list[Path]:
    """The training and held-out tables, from two seeds."""
    paths = []
    for name, n, offset in (("train", n_train, 0), ("test", n_test, 10_000)):
        frame = simulate_ocean_colour(n, sensor, random_state=seed + offset, as_frame=True)
        path = out / f"{sensor}_{name}_seed{seed}.csv"
        frame.to_csv(path, index=False, float_format="%.6g")
        paths.append(path)
    return paths


def held_out_figures(model: MDN, X: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Joint and per-target NLL (nats per row); the share of targets in their 90 % intervals."""
    figures = {"nll": -model.score(X, y)}
    for i, name in enumerate(OCEAN_COLOUR_TARGETS):
        only = np.full_like(y, np.nan)  # NaN targets are missing: the marginal density
        only[:, i] = y[:, i]
        figures[f"nll_{name}"] = -model.score(X, only)
    # inside the central 90 % interval <=> the marginal CDF at y is within 0.05 of 0.95
    pit = model.predict_dist(X).cdf(torch.as_tensor(y)).numpy()
    figures["coverage_90"] = float((np.abs(pit - 0.5) <= 0.45).mean())
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="ocean-colour-output", help="folder for the CSVs")
    parser.add_argument("--sensor", default="msi")
    parser.add_argument("--n-train", type=int, default=5000)
    parser.add_argument("--n-test", type=int, default=5000)
    parser.add_argument("--n-iter", type=int, default=3000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--write-only", action="store_true", help="write the CSVs, fit nothing")
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    targets = list(OCEAN_COLOUR_TARGETS)
    if args.write_only:
        for seed in args.seeds:
            for path in write_sets(out, args.n_train, args.n_test, args.sensor, seed):
                print(path)
        return
    print(
        f"{'seed':>4} {'covariance':>10} {'NLL':>7} "
        + " ".join(f"{'NLL ' + t:>8}" for t in targets)
        + f" {'cov90':>6} {'fit s':>6}"
    )
    for seed in args.seeds:
        train, test = (
            pd.read_csv(p) for p in write_sets(out, args.n_train, args.n_test, args.sensor, seed)
        )
        features = [c for c in train.columns if c.startswith("Rrs_")]
        for covariance in ("full", "diag"):
            model = MDN(
                covariance=covariance,
                target_transform="log",
                n_iter=args.n_iter,
                random_state=seed,
                verbose=0,
            )
            start = time.perf_counter()
            model.fit(train[features].to_numpy(), train[targets].to_numpy())
            seconds = time.perf_counter() - start
            f = held_out_figures(model, test[features].to_numpy(), test[targets].to_numpy())
            print(
                f"{seed:>4} {covariance:>10} {f['nll']:7.3f} "
                + " ".join(f"{f['nll_' + t]:8.3f}" for t in targets)
                + f" {f['coverage_90']:6.3f} {seconds:6.1f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
