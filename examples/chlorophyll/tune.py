"""How the defaults for a log target were chosen: measured on held-out TRAINING rows only.

For each protocol split s (``RandomState(s).permutation(n)``, first n // 2 rows for
training), the training half is split again, 70 % to fit and 30 % to score
(``RandomState(1000 + s)``); the test halves are never read. Each configuration is fitted
once per split and scored with every point estimate and both ways of combining members::

    python examples/chlorophyll/tune.py --splits 0-4 --config '{}' --out tune.jsonl
    python examples/chlorophyll/tune.py --splits 0-4 --config '{"n_models": 10}' --out tune.jsonl
    python examples/chlorophyll/tune.py --summary tune.jsonl
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import mdn
from mdn import metrics

HERE = Path(__file__).resolve().parent
POINTS = ("top", "median", "mode", "mean")


def inner_split(n: int, split: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows to fit and rows to score, both inside split ``split``'s training half."""
    train = np.random.RandomState(split).permutation(n)[: n // 2]
    inner = np.random.RandomState(1000 + split).permutation(len(train))
    cut = int(0.7 * len(train))
    return train[inner[:cut]], train[inner[cut:]]


def score(model: mdn.MDN, X: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Every point estimate and both combinations of members, on held-out rows."""
    out = {}
    for combine in ("median", "mixture"):
        model.combine = combine
        for point in POINTS:
            estimate = np.asarray(model.predict(X, point=point)).ravel()
            for name, value in metrics.retrieval_scores(estimate, y).items():
                out[f"{combine}/{point}/{name}"] = value
    dist = model.predict_dist(X)
    out["nll_log10"] = metrics.nll(dist, y) - float(np.mean(np.log(y * np.log(10))))
    out["coverage_90"] = metrics.coverage(dist, y, [0.9])[0.9]
    return out


def run(config: dict, splits: list[int], out: Path) -> None:
    sys_path = HERE
    import sys

    sys.path.insert(0, str(sys_path))
    from nomad import load_nomad

    table = load_nomad()
    X = table[["Rrs_443", "Rrs_489", "Rrs_510", "Rrs_555"]].to_numpy()
    y = table["chl"].to_numpy()
    for split in splits:
        fit_rows, score_rows = inner_split(len(y), split)
        params = {"target_transform": "log", "verbose": 0, "random_state": split, **config}
        start = time.perf_counter()
        model = mdn.MDN(**params).fit(X[fit_rows], y[fit_rows])
        seconds = time.perf_counter() - start
        row = {"config": config, "split": split, "fit_s": seconds, "n_iter": model.n_iter_}
        row.update(score(model, X[score_rows], y[score_rows]))
        with out.open("a") as file:
            file.write(json.dumps(row) + "\n")
        print(json.dumps({k: row[k] for k in ("config", "split", "fit_s")}), flush=True)


def summary(path: Path) -> None:
    """Mean over splits of the main figures, per configuration."""
    import pandas as pd

    rows = pd.DataFrame([json.loads(line) for line in path.open()])
    rows["config"] = rows["config"].map(lambda c: json.dumps(c, sort_keys=True))
    keys = ["nll_log10", "coverage_90", "fit_s"] + [
        f"{c}/{p}/{m}" for c in ("median", "mixture") for p in POINTS for m in ("mdsa", "sspb")
    ]
    table = rows.groupby("config")[keys].mean().T
    table.loc["splits"] = rows.groupby("config").size()
    print(table.round(3).to_string())


def _splits(text: str) -> list[int]:
    if "-" in text:
        low, high = map(int, text.split("-"))
        return list(range(low, high + 1))
    return [int(s) for s in text.split(",")]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--splits", default="0-4", type=_splits)
    parser.add_argument("--config", default="{}", type=json.loads)
    parser.add_argument("--out", default="tune.jsonl", type=Path)
    parser.add_argument("--summary", type=Path)
    args = parser.parse_args()
    if args.summary:
        summary(args.summary)
    else:
        run(args.config, args.splits, args.out)
