"""Evidence for the defaults of MDN's training protections.

Compares validation/early-stopping and gradient-clipping settings on held-out rows that the
model never sees (neither for training nor for validation). UCI data: only the rows of the
published training split 0 are used (the test splits stay untouched); 20 % of them, drawn
per seed, are the assessment rows. Every other parameter is the reference default
(5 components, 5 x 100 ReLU, lr 1e-3, L2 1e-3, 10,000 iterations, batches of 128).

Usage: python benchmarks/protections.py [--seeds 2] [--data ../shared/data/uci]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from mdn import MDN
from mdn.datasets import make_inverted_sine

CONFIGS = {
    "no validation, no clipping": dict(validation_fraction=0.0, clip_grad=None),
    "no validation, clip 10": dict(validation_fraction=0.0, clip_grad=10.0),
    "val 0.1, best weights, no stop": dict(validation_fraction=0.1, patience=None),
    "val 0.1, patience 2000": dict(validation_fraction=0.1, patience=2000),
}
UCI = {"boston": "bostonHousing", "yacht": "yacht"}
# The study predates the ensemble default: one network with the reference L2, as measured.
SINGLE = {"n_models": 1, "l2": 1e-3}


def load_uci(folder: Path):
    data = np.loadtxt(folder / "data.txt")
    features = np.loadtxt(folder / "index_features.txt", dtype=int)
    target = int(np.loadtxt(folder / "index_target.txt"))
    train = np.loadtxt(folder / "index_train_0.txt", dtype=int)
    return data[train][:, features], data[train, target]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--data", default=str(Path(__file__).parents[2] / "shared/data/uci"))
    args = parser.parse_args()
    # One thread: as fast as two for this network size here, and immune to OpenMP threads
    # spinning against other processes on a shared 2-core machine (measured: 40x slowdowns).
    torch.set_num_threads(1)
    datasets = {"inverted sine": make_inverted_sine(2500, random_state=123)}
    for name, folder in UCI.items():
        datasets[name] = load_uci(Path(args.data) / folder / "data")

    results = {c: {} for c in CONFIGS}
    for name, (X, y) in datasets.items():
        for config, params in CONFIGS.items():
            nlls, seconds, iters = [], [], []
            for seed in range(args.seeds):
                rng = np.random.default_rng(seed)
                order = rng.permutation(len(X))
                held, fit_rows = order[: len(X) // 5], order[len(X) // 5 :]
                start = time.perf_counter()
                model = MDN(random_state=seed, verbose=0, **SINGLE, **params)
                model.fit(X[fit_rows], y[fit_rows])
                seconds.append(time.perf_counter() - start)
                iters.append(model.n_iter_)
                nlls.append(-model.score(X[held], y[held]))
            results[config][name] = (np.mean(nlls), np.mean(seconds), np.mean(iters))
            print(
                f"{name:>14} | {config:<32} | NLL {np.mean(nlls):7.3f} "
                f"({', '.join(f'{v:.3f}' for v in nlls)}) | {np.mean(seconds):5.1f} s "
                f"| {np.mean(iters):6.0f} it",
                flush=True,
            )

    names = list(datasets)
    print("\nHeld-out NLL (mean over seeds; lower is better), mean fit seconds in brackets\n")
    print("| setting | " + " | ".join(names) + " | mean rank |")
    print("|---" * (len(names) + 2) + "|")
    ranks = {c: [] for c in CONFIGS}
    for name in names:
        order = sorted(CONFIGS, key=lambda c: results[c][name][0])
        for rank, config in enumerate(order, 1):
            ranks[config].append(rank)
    for config in CONFIGS:
        cells = [f"{results[config][n][0]:.3f} ({results[config][n][1]:.0f} s)" for n in names]
        print(f"| {config} | " + " | ".join(cells) + f" | {np.mean(ranks[config]):.1f} |")


if __name__ == "__main__":
    main()
