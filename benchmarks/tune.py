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
from scipy.stats import rankdata
from uci import DEFAULT_DATA, FOLDERS, load_split

# Options added after round 1 are pinned to what round 1 ran with.
ROUND_1_OPTIONS = {"lr_schedule": "constant", "recalibrate": False, "ema_decay": None}
# Round 1 started from one network with the reference's l2 and variance floor.
SINGLE = {**ROUND_1_OPTIONS, "n_models": 1, "l2": 1e-3, "epsilon": 1e-3}
ENSEMBLE = {**ROUND_1_OPTIONS, "n_models": 5, "combine": "mixture"}
ROUND_1 = {
    "defaults": SINGLE,
    "n_mix=3": {**SINGLE, "n_mix": 3},
    "n_mix=10": {**SINGLE, "n_mix": 10},
    "l2=1e-4": {**SINGLE, "l2": 1e-4},
    "l2=1e-2": {**SINGLE, "l2": 1e-2},
    "validation_fraction=0.2": {**SINGLE, "validation_fraction": 0.2},
    "patience=1000": {**SINGLE, "patience": 1000},
    "patience=5000": {**SINGLE, "patience": 5000},
    "epsilon=1e-5": {**SINGLE, "epsilon": 1e-5},
    "ensemble of 5 (mixture)": {**SINGLE, **ENSEMBLE},
    "ensemble of 10": {**SINGLE, **ENSEMBLE, "n_models": 10},
    "ensemble of 5 + l2=1e-4": {**SINGLE, **ENSEMBLE, "l2": 1e-4},
    "ensemble of 5 + patience=5000": {**SINGLE, **ENSEMBLE, "patience": 5000},
    "ensemble of 5 + l2=1e-4 + epsilon=1e-5": {**ENSEMBLE, "l2": 1e-4, "epsilon": 1e-5},
}
# Round 2 starts from round 1's choice: 5 members, l2=1e-4, epsilon=1e-5.
CHOSEN_1 = ROUND_1["ensemble of 5 + l2=1e-4 + epsilon=1e-5"]
ROUND_2 = {
    "round 1 choice": CHOSEN_1,
    "recalibration": {**CHOSEN_1, "recalibrate": True},
    "recalibration from 500 validation rows": {**CHOSEN_1, "recalibrate": "auto"},
    "cosine schedule": {**CHOSEN_1, "lr_schedule": "cosine"},
    "cosine schedule + recalibration": {**CHOSEN_1, "lr_schedule": "cosine", "recalibrate": True},
    "plateau schedule": {**CHOSEN_1, "lr_schedule": "plateau"},
    "plateau schedule + recalibration": {**CHOSEN_1, "lr_schedule": "plateau", "recalibrate": True},
}
# Round 3 starts from round 2's choice (the current defaults) and looks for intervals that
# cover what they claim on every set: 20 splits of concrete showed 86 % held-out coverage.
CHOSEN_2 = ROUND_2["recalibration from 500 validation rows"]
ROUND_3 = {
    "round 2 choice": CHOSEN_2,
    "recalibration at any size": {**CHOSEN_2, "recalibrate": True},
    "round 2 choice + bagging=0.75": {**CHOSEN_2, "bagging": 0.75},
    "round 2 choice + validation_fraction=0.2": {**CHOSEN_2, "validation_fraction": 0.2},
    "round 2 choice + l2=1e-3": {**CHOSEN_2, "l2": 1e-3},
    "weight average 0.98": {**CHOSEN_2, "ema_decay": 0.98},
    "weight average 0.99": {**CHOSEN_2, "ema_decay": 0.99},
    "weight average 0.999": {**CHOSEN_2, "ema_decay": 0.999},
    "weight average 0.99 + recalibration at any size": {
        **CHOSEN_2,
        "ema_decay": 0.99,
        "recalibrate": True,
    },
}
CHOSEN_3 = ROUND_3["weight average 0.99"]
# Round 4 is for the sets with fewer than 500 validation rows (boston, concrete, energy, wine,
# yacht). Up to round 3, "auto" left them alone (now: recalibrate=False); since round 4 it
# fits the component scale alone there, under a prior ("scale"). On larger sets "auto" does
# what it did, but rounds 2 and 3's small-set rows with "auto" reproduce only at 34d1a93.
# Round 4 itself was measured with scale_study.py, which scores several priors on one fit.
ROUND_4 = {
    "no recalibration below 500 rows": {**CHOSEN_3, "recalibrate": False},
    "scale recalibration below 500 rows": {**CHOSEN_3, "recalibrate": "scale"},
}
ROUNDS = (ROUND_1, ROUND_2, ROUND_3, ROUND_4)
assert len({label for r in ROUNDS for label in r}) == sum(map(len, ROUNDS)), "labels repeat"
CANDIDATES = {label: options for r in ROUNDS for label, options in r.items()}


def tuning_rows(n: int, split: int) -> tuple[np.ndarray, np.ndarray]:
    """The held-out 20 % and the fitting 80 % of a split's ``n`` training rows."""
    order = np.random.default_rng(1000 + split).permutation(n)
    return order[: n // 5], order[n // 5 :]


def run(data: Path, name: str, split: int, label: str) -> dict:
    import torch

    from mdn import MDN

    torch.set_num_threads(1)
    X, y, _, _ = load_split(data, name, split)  # the test rows are never loaded into use
    held, fit = tuning_rows(len(X), split)
    start = time.perf_counter()
    params = {"random_state": split, "verbose": 0, **CANDIDATES[label]}
    model = MDN(**params).fit(X[fit], y[fit])
    seconds = time.perf_counter() - start
    scores = model.evaluate(X[held], y[held])
    return {
        "dataset": name,
        "split": split,
        "candidate": label,
        "nll": scores["nll"],
        "coverage_90": scores["coverage_90"],
        "seconds": seconds,
    }


def tables(results: list[dict]) -> str:
    """Markdown tables of mean held-out NLL (with mean ranks) and 90 % coverage."""
    names = list(dict.fromkeys(r["dataset"] for r in results))
    labels = list(dict.fromkeys(r["candidate"] for r in results))

    def mean(key, c, n):
        return np.mean([r[key] for r in results if r["candidate"] == c and r["dataset"] == n])

    nll = {c: {n: mean("nll", c, n) for n in names} for c in labels}
    ranks = {c: [] for c in labels}
    for n in names:  # tied settings share their mean rank
        for c, rank in zip(labels, rankdata([nll[c][n] for c in labels]), strict=True):
            ranks[c].append(rank)
    splits = len({r["split"] for r in results})
    lines = [
        f"Held-out NLL on 20 % of the training rows (mean of {splits} splits; lower is better)",
        "",
        "| candidate | " + " | ".join(names) + " | mean rank | mean s |",
        "|---" * (len(names) + 3) + "|",
    ]
    for c in sorted(labels, key=lambda c: np.mean(ranks[c])):
        seconds = np.mean([r["seconds"] for r in results if r["candidate"] == c])
        lines.append(
            f"| {c} | "
            + " | ".join(f"{nll[c][n]:.3f}" for n in names)
            + f" | {np.mean(ranks[c]):.1f} | {seconds:.0f} |"
        )
    lines += [
        "",
        "| 90 % coverage of the held-out rows | " + " | ".join(names) + " |",
        "|---" * (len(names) + 1) + "|",
    ]
    lines += [
        f"| {c} | " + " | ".join(f"{100 * mean('coverage_90', c, n):.1f} %" for n in names) + " |"
        for c in labels
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--datasets", default=",".join(FOLDERS))
    parser.add_argument(
        "--candidates",
        default=",".join(ROUND_2),
        help="comma-separated names from CANDIDATES (default: round 2)",
    )
    parser.add_argument("--splits", type=int, default=2)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None, help="append results (JSON lines)")
    parser.add_argument(
        "--table", type=Path, default=None, help="only print the tables of results saved with --out"
    )
    args = parser.parse_args(argv)
    if args.table:
        print(tables([json.loads(line) for line in args.table.read_text().splitlines()]))
        return
    names, labels = args.datasets.split(","), args.candidates.split(",")
    unknown = [c for c in labels if c not in CANDIDATES]
    if unknown:
        parser.error(f"unknown candidates {unknown}; choose from {list(CANDIDATES)}")
    work = [(args.data, n, s, c) for n in names for s in range(args.splits) for c in labels]
    results = []
    with ProcessPoolExecutor(args.jobs) as pool:
        for result in pool.map(run, *zip(*work, strict=True)):
            results.append(result)
            if args.out:  # as they come, so that an interrupted run keeps what it did
                with open(args.out, "a") as f:
                    f.write(json.dumps(result) + "\n")
    print(tables(results))


if __name__ == "__main__":
    main()
