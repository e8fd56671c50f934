"""Rows/s of ``MDN.predict_interval`` against ``MDN.predict`` for the default model, and how
exact the intervals are.

The default model (``MDN(target_transform="log")``: 5 members of 5 components, 5 x 100 ReLU,
full covariances) is fitted on NOMAD's 2835 chlorophyll matchups (Rrs at 443, 489, 510 and
555 nm, from ``../shared/data/nomad``; ``--data synthetic`` or ``--targets 3``: NOMAD-like
rows made here), saved, and timed in fresh processes (2 threads by default) on the same
rows (NOMAD's, resampled with 5 % noise): ``predict(X, point="top")`` (the network and the
heaviest component: the cheapest estimate), ``predict(X)`` (the model's default, the
median for a log target: a quantile too) and ``predict_interval(X, 0.9)``, each the best of
``--calls`` alternated calls, by the clock and per CPU second. With ``--before REV``, that
revision's ``src/`` (exported with ``git archive``) times the same calls on the same model
in alternation with the working tree (ABAB...), so that before and after come from one
run. Exactness: ``|CDF(bound) - level|`` of every bound, the CDF computed with SciPy from
the predicted mixture's parameters. Run it on a quiet machine:

    .venv/bin/python benchmarks/intervals.py                         # 10^6 rows
    .venv/bin/python benchmarks/intervals.py --before 322bc37 --before-rows 20000
    .venv/bin/python benchmarks/intervals.py --rows 100000 --targets 3

The new solver's speed hardly depends on the model; the old one's did (a chunk took as
many Newton-bisection iterations as its hardest row, from about 8 to 100), so ``--before``
figures vary with the model (``--seed``, ``--fit-iter``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

#: SeaWiFS OC4v6: log10(chl) = sum a_i R^i, R = log10 of the maximum blue-to-green band ratio
#: (O'Reilly et al.; ../shared/data/nomad/SOURCE.md).
OC4 = (0.3272, -2.9940, 2.7218, -1.2259, -0.5683)
BANDS = (443, 489, 510, 555)
NOMAD = REPO.parent / "shared" / "data" / "nomad" / "nomad_seabass_v2.a_2008200.txt.gz"

#: What is timed: the model's default estimate (the median for a log target: quantiles too),
#: the cheapest estimate (the heaviest component's median) and the 90 % interval.
CALLS = {
    "predict": "model.predict(X)",
    "top": "model.predict(X, point='top')",
    "interval": "model.predict_interval(X, coverage=0.9)",
}

# Run in a fresh process under PYTHONPATH=<tree>/src: the mdn it imports is that tree's.
CHILD = """
import json, sys, time
from pathlib import Path
import torch, mdn
assert Path(mdn.__file__).resolve().is_relative_to(Path({tree!r})), mdn.__file__
sys.path.insert(0, {here!r})
from intervals import rows_to_predict
model = mdn.MDN.load({model!r})
torch.set_num_threads({threads})
X = rows_to_predict({rows}, {targets}, {data!r})
model.predict(X[:2000]); model.predict_interval(X[:2000], coverage=0.9)  # warm-up
out = {{}}
for _ in range({calls}):  # alternated, best of each: a busy machine only slows calls down
    for name, call in {what!r}.items():
        wall, cpu = time.perf_counter(), time.process_time()
        eval(call)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        out[name] = max(out.get(name, 0), {rows} / wall)
        out[name + " cpu"] = max(out.get(name + " cpu", 0), {rows} / cpu)
print(json.dumps(out))
"""


def nomad_like(n: int, targets: int = 1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Rows shaped like NOMAD's: Rrs at 443, 489, 510 and 555 nm, and chlorophyll-a.

    Parameters
    ----------
    n : int
        Number of rows.
    targets : {1, 3}
        Chlorophyll alone, or with suspended solids and CDOM absorption correlated with it.
    seed : int

    Returns
    -------
    X : ndarray of shape (n, 4)
        Positive reflectances (sr^-1): the band ratio follows OC4 from chlorophyll, so the
        maximum blue band moves from 443 nm (clear water) to 510 nm (green water).
    y : ndarray of shape (n,) or (n, 3)
        Positive: chl (mg m^-3, about 0.08 to 60), and TSS (g m^-3) and a_CDOM(443) (m^-1).
    """
    if targets not in (1, 3):
        raise ValueError(f"targets must be 1 or 3, got {targets!r}")
    rng = np.random.default_rng(seed)
    ratio = rng.uniform(-0.35, 0.75, n)  # log10 of the maximum band ratio
    log_chl = np.polyval(OC4[::-1], ratio) + 0.15 * rng.standard_normal(n)
    log_tss = 0.5 * log_chl + 0.3 * rng.standard_normal(n)
    log_cdom = -1.3 + 0.4 * log_chl + 0.2 * log_tss + 0.2 * rng.standard_normal(n)
    green = 0.002 * 10 ** (0.3 * log_tss + 0.1 * rng.standard_normal(n))  # Rrs(555)
    blue = [green * 10 ** (f * ratio + 0.02 * rng.standard_normal(n)) for f in (1.0, 0.8, 0.55)]
    X = np.stack([*blue, green], axis=1)
    y = 10 ** np.stack([log_chl, log_tss, log_cdom], axis=1)
    return X, (y[:, 0] if targets == 1 else y)


def nomad_matchups() -> tuple[np.ndarray, np.ndarray]:
    """NOMAD's rows with chlorophyll-a and positive Rrs at the four bands (2835 rows).

    Returns
    -------
    X : ndarray of shape (n, 4)
        Rrs = Lw / Es at ``BANDS`` (sr^-1).
    y : ndarray of shape (n,)
        HPLC chl_a where measured, else fluorometric chl (mg m^-3).
    """
    import pandas as pd

    table = pd.read_csv(NOMAD, comment="!", na_values=[-999])
    chl = table["chl_a"].fillna(table["chl"]).to_numpy()
    X = np.stack([(table[f"lw{band}"] / table[f"es{band}"]).to_numpy() for band in BANDS], 1)
    keep = np.isfinite(X).all(1) & (X > 0).all(1) & (chl > 0)
    return X[keep], chl[keep]


def rows_to_predict(n: int, targets: int, data: str, seed: int = 1) -> np.ndarray:
    """``n`` rows to predict: NOMAD's, drawn with replacement and each Rrs multiplied by
    ``exp(N(0, 0.05^2))`` (``data="nomad"``), or ``nomad_like``'s.

    Parameters
    ----------
    n : int
    targets : {1, 3}
    data : {"nomad", "synthetic"}
    seed : int

    Returns
    -------
    ndarray of shape (n, 4)
    """
    if data == "synthetic":
        return nomad_like(n, targets, seed)[0]
    X, _ = nomad_matchups()
    rng = np.random.default_rng(seed)
    return X[rng.integers(0, len(X), n)] * np.exp(0.05 * rng.standard_normal((n, X.shape[1])))


def fit_default(args: argparse.Namespace, path: Path) -> dict:
    """Fit the default model on NOMAD (or NOMAD-like rows) and save it to ``path``."""
    from mdn import MDN

    X, y = nomad_matchups() if args.data == "nomad" else nomad_like(5000, args.targets, seed=0)
    model = MDN(target_transform="log", n_iter=args.fit_iter, verbose=0, random_state=args.seed)
    model.fit(X, y).save(path)
    members = model.network_.n_models or 1
    tail = 2 if model.tail_weight_ > 0 else 1
    return {"components": members * model.n_mix * tail, "tail_weight": model.tail_weight_,
            "rows": len(X)}  # fmt: skip


def measure(tree: Path, model: Path, args: argparse.Namespace, rows: int) -> dict[str, float]:
    """Rows/s of each of ``CALLS`` in a fresh process on ``tree``, by the clock and per CPU
    second (all threads): the best of ``args.calls`` alternated calls."""
    code = CHILD.format(tree=str(tree.resolve()), here=str(HERE), model=str(model), rows=rows,
                        targets=args.targets, what=CALLS, calls=args.calls,
                        threads=args.threads, data=args.data)  # fmt: skip
    env = dict(os.environ, PYTHONPATH=str(tree / "src"))
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd=tree)  # fmt: skip
    lines = [line for line in run.stdout.splitlines() if line.startswith("{")]
    if run.returncode or not lines:
        raise RuntimeError(f"measurement failed under {tree}:\n{run.stderr[-2000:]}")
    return json.loads(lines[-1])


def worst_cdf_error(
    model_path: Path, rows: int, targets: int, data: str, coverage: float = 0.9
) -> float:
    """max |CDF(bound) - level| over both bounds of ``rows`` rows and every target, with the
    CDF of each marginal computed by SciPy from the predicted mixture's parameters."""
    import torch
    from scipy import special

    from mdn import MDN

    model = MDN.load(model_path)
    torch.set_num_threads(2)
    X = rows_to_predict(rows, targets, data)
    worst = 0.0
    for start in range(0, rows, 20_000):
        x = X[start : start + 20_000]
        bounds = [b.reshape(len(x), -1) for b in model.predict_interval(x, coverage)]
        base = model.predict_dist(x).base  # the log target's Gaussian mixture
        weights = base.weights.numpy()
        weights /= weights.sum(-1, keepdims=True)
        # Marginal standard deviations from the precision factor U: cov = inv(U U^T).
        u_inv = np.linalg.inv(base.precision_cholesky.numpy())  # [n, K, D, D]
        std = np.sqrt((u_inv**2).sum(-2))  # [n, K, D]
        for bound, level in zip(bounds, ((1 - coverage) / 2, (1 + coverage) / 2), strict=True):
            z = (np.log(bound)[:, None, :] - base.means.numpy()) / std
            cdf = (weights[..., None] * special.ndtr(z)).sum(1)
            worst = max(worst, float(np.abs(cdf - level).max()))
    return worst


def export(rev: str, into: Path) -> Path:
    """``rev``'s ``src/`` in ``into`` (git archive: the checkout is left as it is)."""
    archive = subprocess.Popen(["git", "-C", str(REPO), "archive", rev, "src"],
                               stdout=subprocess.PIPE)  # fmt: skip
    subprocess.run(["tar", "-x", "-C", str(into)], stdin=archive.stdout, check=True)
    if archive.wait():
        raise SystemExit(f"git archive {rev} src failed")
    return into


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10**6)
    parser.add_argument("--targets", type=int, default=1, choices=(1, 3))
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes")
    parser.add_argument("--calls", type=int, default=2, help="timed calls in each process")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--data",
        choices=("nomad", "synthetic"),
        help="what to fit and predict (default: nomad for one target where "
        "../shared/data/nomad is, else synthetic NOMAD-like rows)",
    )
    parser.add_argument("--fit-iter", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0, help="the model's random_state")
    parser.add_argument("--before", metavar="REV", help="also time REV's predict_interval")
    parser.add_argument("--before-rows", type=int, default=20_000)
    parser.add_argument("--check-rows", type=int, default=100_000)
    args = parser.parse_args(argv)
    if args.data is None:
        args.data = "nomad" if args.targets == 1 and NOMAD.exists() else "synthetic"
    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="mdn-intervals-") as tmp:
        model = Path(tmp) / "default.mdn"
        fitted = fit_default(args, model)
        trees = {"after": REPO}
        if args.before:
            trees["before"] = export(args.before, Path(tmp))
        for repeat in range(args.repeats):
            for side, tree in trees.items():  # ABAB...
                rows = args.rows if side == "after" else args.before_rows
                for key, value in measure(tree, model, args, rows).items():
                    results.setdefault(f"{side} {key}", []).append(value)
            print(f"# repeat {repeat + 1}/{args.repeats} done", file=sys.stderr, flush=True)
        worst = worst_cdf_error(model, min(args.check_rows, args.rows), args.targets, args.data)
    report(args, fitted, {key: statistics.median(v) for key, v in results.items()}, worst)


def report(args: argparse.Namespace, fitted: dict, rate: dict[str, float], worst: float) -> None:
    import torch

    print(f"# machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}, {args.threads} thread(s); best of {args.calls} calls "
          f"in each of {args.repeats} processes, median over processes")  # fmt: skip
    print(f"# default model (random_state={args.seed}) fitted {args.fit_iter} iterations on "
          f"{fitted['rows']:,} {args.data} rows, D={args.targets}, {fitted['components']} "
          f"pooled components, tail weight {fitted['tail_weight']:.3g}\n")  # fmt: skip
    names = {"top": '`predict(X, point="top")`', "predict": "`predict(X)` (median)",
             "interval": "`predict_interval(X, 0.9)`"}  # fmt: skip
    print("| tree | measurement | rows | rows/s | share of top | rows per CPU s | share |")
    print("|---|---|---|---|---|---|---|")
    for side in ("before", "after"):
        if f"{side} top" not in rate:
            continue
        tree = args.before if side == "before" else "working tree"
        rows = args.before_rows if side == "before" else args.rows
        for key, name in names.items():
            wall, cpu = rate[f"{side} {key}"], rate[f"{side} {key} cpu"]
            share, cpu_share = wall / rate[f"{side} top"], cpu / rate[f"{side} top cpu"]
            print(f"| {tree} | {name} | {rows:,} | {wall:,.0f} | {100 * share:.1f} % | "
                  f"{cpu:,.0f} | {100 * cpu_share:.1f} % |")  # fmt: skip
    if args.before:
        for key in ("interval", "predict"):
            wall = rate[f"after {key}"] / rate[f"before {key}"]
            cpu = rate[f"after {key} cpu"] / rate[f"before {key} cpu"]
            print(f"\nspeed-up of {names[key]}: {wall:.1f}x (per CPU second {cpu:.1f}x)")
    print(f"\nmax |CDF(bound) - level| over {min(args.check_rows, args.rows):,} rows: {worst:.2e}")


if __name__ == "__main__":
    main()
