"""The UCI regression benchmark: held-out NLL, RMSE and interval coverage of MDN.

The standard protocol on the published splits (Hernandez-Lobato & Adams 2015): per split,
the model trains only on ``index_train_i`` (``MDN`` carves its validation rows from them),
and ``index_test_i`` is used once, for the figures. NLL is in the target's original units;
RMSE uses ``point="mean"`` as the literature does, with ``point="top"`` beside it. The
table shows mean +- standard error over splits, next to the published figures in
``uci_published.csv``.

    .venv/bin/python benchmarks/uci.py --jobs 2              # every split (about an hour)
    .venv/bin/python benchmarks/uci.py --quick               # 2 splits of the small sets
    .venv/bin/python benchmarks/uci.py --params '{"n_mix": 3}' --datasets boston,yacht

Wine's target is an integer score: a mixture can put ever narrower components on the
integers, so its NLL is bounded below only by the variance floor (``epsilon``, in scaled
units). It is reported as is, and as "wine (dequantised)": trained and tested on
``y + U(-0.5, 0.5)``, a continuous target whose NLL is meaningful.

Data: ``../shared/data/uci`` (or ``--data`` / ``MDN_UCI_DATA``), evaluation only; it is
never copied into the package.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

FOLDERS = {
    "boston": "bostonHousing",
    "concrete": "concrete",
    "energy": "energy",
    "kin8nm": "kin8nm",
    "naval": "naval-propulsion-plant",
    "power": "power-plant",
    "protein": "protein-tertiary-structure",
    "wine": "wine-quality-red",
    "yacht": "yacht",
}
QUICK = ("boston", "concrete", "energy", "yacht")
DEQUANTISED = "wine (dequantised)"
HERE = Path(__file__).parent
DEFAULT_DATA = Path(os.environ.get("MDN_UCI_DATA", HERE.parents[1] / "shared" / "data" / "uci"))


def load_split(data: Path, name: str, split: int):
    """Train and test arrays of one published split."""
    folder = data / FOLDERS[name.removesuffix(" (dequantised)")] / "data"
    table = np.loadtxt(folder / "data.txt")
    features = np.loadtxt(folder / "index_features.txt", dtype=int)
    target = int(np.loadtxt(folder / "index_target.txt"))
    train = np.loadtxt(folder / f"index_train_{split}.txt", dtype=int)
    test = np.loadtxt(folder / f"index_test_{split}.txt", dtype=int)
    return (
        table[train][:, features],
        table[train, target],
        table[test][:, features],
        table[test, target],
    )


def n_splits(data: Path, name: str) -> int:
    folder = data / FOLDERS[name.removesuffix(" (dequantised)")] / "data"
    return int(np.loadtxt(folder / "n_splits.txt"))


def run_split(data: Path, name: str, split: int, params: dict) -> dict:
    """Fit on one split's training rows and score its test rows once."""
    import torch

    from mdn import MDN

    torch.set_num_threads(1)  # one process per core (OpenMP threads must not compete)
    X_train, y_train, X_test, y_test = load_split(data, name, split)
    if name == DEQUANTISED:
        rng = np.random.default_rng(split)
        y_train = y_train + rng.uniform(-0.5, 0.5, len(y_train))
        y_test = y_test + rng.uniform(-0.5, 0.5, len(y_test))
    start = time.perf_counter()
    model = MDN(**{"random_state": split, "verbose": 0, **params}).fit(X_train, y_train)
    seconds = time.perf_counter() - start
    scores = model.evaluate(X_test, y_test)  # mdn.metrics: NLL, CRPS, coverage, RMSE
    return {
        "dataset": name,
        "split": split,
        "nll": scores["nll"],
        "crps": scores["crps"],
        "rmse_mean": scores["rmse_mean"],
        "rmse_top": scores["rmse_top"],
        "coverage_90": scores["coverage_90"],
        "seconds": seconds,
        "n_iter": model.n_iter_,
    }


def published(path: Path = HERE / "uci_published.csv") -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def summarise(results: list[dict], key: str) -> dict[str, tuple[float, float, int]]:
    """Mean, standard error and number of splits of ``key`` per dataset."""
    out = {}
    for name in dict.fromkeys(r["dataset"] for r in results):
        values = np.array([r[key] for r in results if r["dataset"] == name])
        se = values.std(ddof=1) / math.sqrt(len(values)) if len(values) > 1 else float("nan")
        out[name] = (float(values.mean()), float(se), len(values))
    return out


def _mean_se(summary: tuple[float, float, int], mean: str, se: str) -> str:
    """``mean +- se``, or the mean alone for one split (no standard error)."""
    value, error, splits = summary
    return f"{value:{mean}} +- {error:{se}}" if splits > 1 else f"{value:{mean}}"


def tables(results: list[dict], label: str) -> str:
    """Markdown tables: NLL with the published figures, RMSE, and 90 % coverage."""
    names = list(dict.fromkeys(r["dataset"] for r in results))
    nll = summarise(results, "nll")
    lines = ["| NLL | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for row in published():
        cells = [row.get(n, "") for n in names]
        lines.append(f"| {row['method']} | " + " | ".join(cells) + " |")
    lines.append(
        f"| **{label}** | "
        + " | ".join(f"**{_mean_se(nll[n], '.2f', '.2f')}**" for n in names)
        + " |"
    )
    best = _wins(nll)
    if best:
        lines += ["", best]
    lines += ["", "| RMSE | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for key, point in (("rmse_mean", "mean"), ("rmse_top", "top")):
        rmse = summarise(results, key)
        lines.append(
            f"| {label}, point={point} | "
            + " | ".join(_mean_se(rmse[n], ".3g", ".2g") for n in names)
            + " |"
        )
    coverage = summarise(results, "coverage_90")
    seconds = summarise(results, "seconds")
    lines += [
        "",
        "| 90 % interval coverage | " + " | ".join(names) + " |",
        "|---" * (len(names) + 1) + "|",
        f"| {label} | " + " | ".join(f"{100 * coverage[n][0]:.1f} %" for n in names) + " |",
        "| splits; mean fit seconds | "
        + " | ".join(f"{nll[n][2]}; {seconds[n][0]:.0f} s" for n in names)
        + " |",
    ]
    return "\n".join(lines)


def _wins(nll: dict) -> str:
    """Where the mean test NLL is at or below the best and the MC dropout figures."""
    rows = {r["method"]: r for r in published()}
    better_than_best, worse_than_dropout = [], []
    for name, (mean, _, _) in nll.items():
        figures = [float(r[name]) for r in rows.values() if r.get(name)]
        if not figures:
            continue
        if mean <= min(figures):
            better_than_best.append(name)
        dropout = rows.get("MC dropout (Gal 2016)", {}).get(name)
        if dropout and mean > float(dropout):
            worse_than_dropout.append(name)
    return (
        f"At or below the best published NLL: {', '.join(better_than_best) or 'none'}. "
        f"Worse than MC dropout: {', '.join(worse_than_dropout) or 'none'}."
    )


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument(
        "--datasets",
        default=",".join([*FOLDERS, DEQUANTISED]),
        help="comma-separated names (default: all, and wine dequantised)",
    )
    parser.add_argument("--splits", type=int, default=None, help="first N splits (default all)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"2 splits (or --splits, if fewer) of {', '.join(QUICK)} (the CI check)",
    )
    parser.add_argument("--params", default="{}", help="MDN parameters as JSON")
    parser.add_argument("--label", default=None, help="name of this model in the table")
    parser.add_argument("--jobs", type=int, default=1, help="processes (one thread each)")
    parser.add_argument("--out", type=Path, default=None, help="write per-split results (JSON)")
    args = parser.parse_args(argv)
    names = list(QUICK) if args.quick else args.datasets.split(",")
    splits = min(2, args.splits or 2) if args.quick else args.splits
    params = json.loads(args.params)
    if "hidden" in params:
        params["hidden"] = tuple(params["hidden"])
    unknown = [n for n in names if n.removesuffix(" (dequantised)") not in FOLDERS]
    if unknown:
        parser.error(f"unknown datasets {unknown}; choose from {[*FOLDERS, DEQUANTISED]}")
    if not args.data.is_dir():
        parser.error(f"no UCI data at {args.data}; pass --data or set MDN_UCI_DATA")
    work = [
        (args.data, name, split, params)
        for name in names
        for split in range(min(splits or 10**9, n_splits(args.data, name)))
    ]
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            results = list(pool.map(run_split, *zip(*work, strict=True)))
    else:
        results = [run_split(*job) for job in work]
    if args.out:
        args.out.write_text(json.dumps({"params": args.params, "results": results}, indent=1))
    print(tables(results, args.label or f"mdn MDN({args.params if params else ''})"))
    return results


if __name__ == "__main__":
    main()
