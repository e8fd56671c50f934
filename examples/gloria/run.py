"""Waters the model never saw: GLORIA in Landsat-8 OLI bands, leave-datasets-out.

GLORIA (Lehmann et al. 2023, CC-BY 4.0) lies in ``../shared/data/gloria/`` beside the
repository: 3,182 in-situ spectra of lakes, rivers and coasts from 16 contributing datasets,
with chlorophyll-a, suspended solids (TSS) and CDOM. A retrieval is used in water bodies that
nobody sampled for its training, so every split here holds out 4 whole datasets
(scikit-learn's ``GroupShuffleSplit`` with seed ``s``), fits on the other 12 and scores the
held-out rows: per product, per method and per held-out dataset. The methods are the
options of the transfer issue (23), each against today's default on raw reflectance::

    python examples/gloria/run.py --splits 10 -j 2 -o examples/gloria/results.json
    python examples/gloria/run.py --quick           # 2 splits, 300 iterations: a smoke test

It prints the tables (``--markdown`` for the README) and writes every held-out row's
observation, estimate, interval and novelty with ``-o``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from mdn import MDN
from mdn.metrics import retrieval_scores
from mdn.metrics.crossval import group_splits

DEFAULT_PATH = Path(__file__).resolve().parents[3] / "shared/data/gloria/gloria_oli.csv"
FEATURES = ["Rrs_440", "Rrs_490", "Rrs_560", "Rrs_660", "Rrs_850"]
PRODUCTS = ("chl", "tss", "cdom")
GROUPS = "Dataset_ID"
#: Today's default for a positive target, with a value below detection (0) as missing.
DEFAULT = {"target_transform": "log", "nonpositive_targets": "missing"}


class RowValidated(MDN):
    """``MDN`` as it was before groups: validation rows drawn at random, whatever the groups."""

    def fit(self, X, y, groups=None):
        return super().fit(X, y)


#: name -> (estimator class, its parameters beyond DEFAULT, the product(s) it fits)
METHODS = {
    "before": (RowValidated, {}),
    "groups": (MDN, {}),
    "groups+log": (MDN, {"spectral_features": "log"}),
    "groups+shape": (MDN, {"spectral_features": "shape"}),
}


def load_gloria(path: str | Path = DEFAULT_PATH):
    """GLORIA's OLI table (``pandas.read_csv``), its rows with all five bands finite."""
    import pandas as pd

    table = pd.read_csv(path)
    return table[np.isfinite(table[FEATURES].to_numpy()).all(axis=1)].reset_index(drop=True)


def fit_and_predict(method: str, product: str, table, train, test, seed: int, n_iter: int):
    """One fit on the training datasets' rows of ``product``; the held-out rows' estimate,
    90 % interval, per-row NLL of the observation and novelty."""
    cls, params = METHODS[method]
    observed = table[product].notna().to_numpy()
    train, test = train[observed[train]], test[observed[test]]
    X, y = table[FEATURES], table[product].to_numpy()
    model = cls(**DEFAULT, **params, n_iter=n_iter, random_state=seed, verbose=0)
    start = time.perf_counter()
    with np.errstate(all="ignore"):
        model.fit(X.iloc[train], y[train], groups=table[GROUPS].to_numpy()[train])
    lower, upper = model.predict_interval(X.iloc[test], 0.9)
    return {
        "method": method,
        "product": product,
        "split": seed,
        "rows": test.tolist(),
        "observed": y[test].tolist(),
        "estimate": np.asarray(model.predict(X.iloc[test])).tolist(),
        "lower": np.asarray(lower).tolist(),
        "upper": np.asarray(upper).tolist(),
        "log_prob": model.log_prob(X.iloc[test], np.where(y[test] > 0, y[test], np.nan)).tolist(),
        "novel": (model.novelty(X.iloc[test]) > model.novelty_threshold_).tolist(),
        "fit_s": time.perf_counter() - start,
    }


def scores(rows: dict, table) -> dict[str, float]:
    """The held-out rows' scores: MdSA, SSPB, log-MAE (retrieval_scores), NLL of
    log10(y) (the field's form), 90 % coverage, the share flagged as novel and how much
    larger the novel rows' median |log10 error| is than the others'."""
    y, estimate = np.asarray(rows["observed"]), np.asarray(rows["estimate"])
    valid = y > 0
    out = retrieval_scores(estimate[valid], y[valid])
    log_prob = np.asarray(rows["log_prob"])[valid]
    out["nll_log10"] = float(-np.mean(log_prob + np.log(y[valid] * np.log(10))))
    lower, upper = np.asarray(rows["lower"]), np.asarray(rows["upper"])
    out["coverage_90"] = float(np.mean((y >= lower) & (y <= upper)))
    novel = np.asarray(rows["novel"])
    out["novel"] = float(novel.mean())
    error = np.abs(np.log10(np.clip(estimate, 1e-12, None)) - np.log10(np.clip(y, 1e-12, None)))
    if novel.any() and (~novel).any():
        out["novel_error_ratio"] = float(np.median(error[novel]) / np.median(error[~novel]))
    out["n"] = float(len(y))
    return out


def summary(results: list[dict], table, by_dataset: bool = False) -> list[dict]:
    """Means over splits of each method's scores, per product (and per held-out dataset)."""
    datasets = table[GROUPS].to_numpy()
    lines: dict[tuple, list[dict]] = {}
    for rows in results:
        if by_dataset:
            names = datasets[np.asarray(rows["rows"])]
            for name in np.unique(names):
                part = {k: (np.asarray(v)[names == name] if isinstance(v, list) else v)
                        for k, v in rows.items()}  # fmt: skip
                key = (rows["product"], rows["method"], str(name))
                lines.setdefault(key, []).append(scores(part, table))
        else:
            lines.setdefault((rows["product"], rows["method"]), []).append(scores(rows, table))
    out = []
    for key, split_scores in lines.items():
        line = dict(zip(("product", "method", "dataset"), key, strict=False))
        line["splits"] = len(split_scores)
        for name in split_scores[0]:
            values = np.array([s.get(name, np.nan) for s in split_scores], dtype=float)
            line[name] = float(np.nanmean(values)) if np.isfinite(values).any() else np.nan
            if not by_dataset and len(values) > 1:
                line[f"{name}_se"] = float(np.nanstd(values, ddof=1) / np.sqrt(len(values)))
        out.append(line)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gloria", default=DEFAULT_PATH, help="the GLORIA OLI table")
    parser.add_argument("--splits", type=int, default=10, help="seeds 0..N-1")
    parser.add_argument("--held-out", type=int, default=4, help="datasets held out per split")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--products", default=",".join(PRODUCTS))
    parser.add_argument("--n-iter", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true", help="2 splits, 300 iterations")
    parser.add_argument("-j", "--jobs", type=int, default=1)
    parser.add_argument("-o", "--out", help="JSON of every held-out row's predictions")
    args = parser.parse_args()
    splits, n_iter = (2, 300) if args.quick else (args.splits, args.n_iter)
    table = load_gloria(args.gloria)
    cuts = group_splits(table[GROUPS].to_numpy(), range(splits), args.held_out)
    jobs = [
        (method, product, table, train, test, seed, n_iter)
        for seed, (train, test) in enumerate(cuts)
        for product in args.products.split(",")
        for method in args.methods.split(",")
    ]
    from joblib import Parallel, delayed

    results = Parallel(n_jobs=args.jobs)(delayed(fit_and_predict)(*job) for job in jobs)
    if args.out:
        Path(args.out).write_text(json.dumps(results))
    print_tables(summary(results, table), summary(results, table, by_dataset=True))


def print_tables(overall: list[dict], per_dataset: list[dict]) -> None:
    columns = ("mdsa", "sspb", "log_mae", "nll_log10", "coverage_90", "novel",
               "novel_error_ratio")  # fmt: skip
    print("| product | method | splits | " + " | ".join(columns) + " |")
    print("|---" * (3 + len(columns)) + "|")
    for line in sorted(overall, key=lambda r: (r["product"], r["method"])):
        cells = [f"{line.get(c, np.nan):.3g} ± {line.get(c + '_se', np.nan):.2g}" for c in columns]
        print(f"| {line['product']} | {line['method']} | {line['splits']} | " + " | ".join(cells))
    print()
    print("| product | method | dataset | splits | " + " | ".join(columns) + " |")
    print("|---" * (4 + len(columns)) + "|")
    for line in sorted(per_dataset, key=lambda r: (r["product"], r["dataset"], r["method"])):
        cells = [f"{line.get(c, np.nan):.3g}" for c in columns]
        print(f"| {line['product']} | {line['method']} | {line['dataset']} | {line['splits']} | "
              + " | ".join(cells))  # fmt: skip


if __name__ == "__main__":
    main()
