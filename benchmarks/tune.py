"""Choose MDN's defaults on the UCI benchmark without touching its test splits.

For each dataset and each of the first ``--splits`` published splits, only the training
rows are used: 20 % of them (drawn per split) are held out as the tuning set, every
candidate setting is fitted on the rest (``MDN`` carves its own validation rows from
those), and its NLL on the held-out rows is recorded. The table gives the mean held-out NLL
per dataset and the mean rank of each setting across datasets.

    .venv/bin/python benchmarks/tune.py --splits 2 --jobs 2
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from uci import DEFAULT_DATA, FOLDERS, load_split

CANDIDATES = {
    "defaults": {},
    "n_mix=3": {"n_mix": 3},
    "n_mix=10": {"n_mix": 10},
    "l2=1e-4": {"l2": 1e-4},
    "l2=1e-2": {"l2": 1e-2},
    "validation_fraction=0.2": {"validation_fraction": 0.2},
    "patience=1000": {"patience": 1000},
    "patience=5000": {"patience": 5000},
    "epsilon=1e-5": {"epsilon": 1e-5},
    "ensemble of 5 (mixture)": {"n_models": 5, "combine": "mixture"},
    "ensemble of 10": {"n_models": 10, "combine": "mixture"},
    "ensemble of 5 + l2=1e-4": {"n_models": 5, "combine": "mixture", "l2": 1e-4},
    "ensemble of 5 + patience=5000": {"n_models": 5, "combine": "mixture", "patience": 5000},
    "ensemble of 5 + l2=1e-4 + epsilon=1e-5": {"n_models": 5, "combine": "mixture", "l2": 1e-4,
                                               "epsilon": 1e-5},
}


def run(data: Path, name: str, split: int, label: str) -> dict:
    import torch

    from mdn import MDN

    torch.set_num_threads(1)
    X, y, _, _ = load_split(data, name, split)  # the test rows are never loaded into use
    order = np.random.default_rng(1000 + split).permutation(len(X))
    held, fit = order[: len(X) // 5], order[len(X) // 5 :]
    start = time.perf_counter()
    params = {"random_state": split, "verbose": 0, **CANDIDATES[label]}
    model = MDN(**params).fit(X[fit], y[fit])
    return {"dataset": name, "split": split, "candidate": label,
            "nll": -model.score(X[held], y[held]), "seconds": time.perf_counter() - start}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--datasets", default=",".join(FOLDERS))
    parser.add_argument("--candidates", default=",".join(CANDIDATES),
                        help="comma-separated names from CANDIDATES")
    parser.add_argument("--splits", type=int, default=2)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None, help="append results (JSON lines)")
    args = parser.parse_args(argv)
    names, labels = args.datasets.split(","), args.candidates.split(",")
    work = [(args.data, n, s, c) for n in names for s in range(args.splits) for c in labels]
    results = []
    with ProcessPoolExecutor(args.jobs) as pool:
        for result in pool.map(run, *zip(*work, strict=True)):
            results.append(result)
            if args.out:  # as they come, so that an interrupted run keeps what it did
                with open(args.out, "a") as f:
                    f.write(json.dumps(result) + "\n")
    table = {c: {n: np.mean([r["nll"] for r in results if r["candidate"] == c
                             and r["dataset"] == n]) for n in names} for c in labels}
    ranks = {c: [] for c in labels}
    for n in names:
        order = sorted(labels, key=lambda c: table[c][n])
        for rank, c in enumerate(order, 1):
            ranks[c].append(rank)
    print(f"Held-out NLL on 20 % of the training rows (mean of {args.splits} splits; lower is "
          "better)\n")
    print("| candidate | " + " | ".join(names) + " | mean rank | mean s |")
    print("|---" * (len(names) + 3) + "|")
    for c in sorted(labels, key=lambda c: np.mean(ranks[c])):
        seconds = np.mean([r["seconds"] for r in results if r["candidate"] == c])
        print(f"| {c} | " + " | ".join(f"{table[c][n]:.3f}" for n in names)
              + f" | {np.mean(ranks[c]):.1f} | {seconds:.0f} |")


if __name__ == "__main__":
    main()
