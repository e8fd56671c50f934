"""Speed of the working tree against an earlier git revision, side by side in one run.

For reporting what a change did to speed: ratios measured in one run on one machine are
comparable, numbers from different days are not. ``REV``'s ``src/`` is exported with
``git archive`` to a temporary folder; every measurement runs in a fresh subprocess with
``PYTHONPATH=<tree>/src`` (so the old tree's ``mdn`` shadows the editable install, which the
subprocess asserts), and each repeat alternates old and new (ABAB...). The table reports the
median over repeats. Run it on a quiet machine:

    .venv/bin/python benchmarks/before_after.py REV [--repeats 3] [--steps 300]

Measurements (public API and ``mdn.nn`` / ``mdn.training.train`` only, which old and new
trees share): training steps/s of the reference network (7 inputs, 5 x 100 ReLU, K=5,
batch 128, clip_grad=10, 10,000 rows, 1 thread, after 20 warm-up steps) for D=1 diag,
D=1 full, D=3 full and the 5-member D=1 diag ensemble; ``MDN.predict`` rows/s on 10^6 rows
and ``MDN.predict_interval`` (D=3 full) rows/s on 10^5 rows, both on 2 threads.
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

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
import speed  # noqa: E402 (the measured code is shared with speed.py)

PRELUDE = """
import json, sys, time
from pathlib import Path
import numpy as np, torch, mdn
tree = Path({tree!r})
assert Path(mdn.__file__).resolve().is_relative_to(tree), (mdn.__file__, str(tree))
sys.path.insert(0, {here!r})
from data import make_data
"""

TRAIN = """
from mdn.nn import MixtureDensityNetwork
from mdn.training import train
torch.set_num_threads(1)
d, covariance, n_models, steps = {d}, {covariance!r}, {n_models}, {steps}
x, y = (torch.as_tensor(a, dtype=torch.float32) for a in make_data(10_000, d, 0))
torch.manual_seed(0)
net = MixtureDensityNetwork(7, d, 5, (100,) * 5, "relu", covariance, n_models=n_models)
gens = None if n_models is None else [torch.Generator().manual_seed(e) for e in range(n_models)]
settings = dict(generator=gens, clip_grad=10.0, batch_size=128)
train(net, x, y, n_iter=20, **settings)
start = time.perf_counter()
train(net, x, y, n_iter=steps, **settings)
value = steps / (time.perf_counter() - start)
"""

PREDICT = (
    speed.FITTED_1D
    + """
start = time.perf_counter()
model.predict(X)
value = {rows} / (time.perf_counter() - start)
"""
)

INTERVAL = (
    speed.FITTED_3D_FULL
    + """
start = time.perf_counter()
model.predict_interval(X, coverage=0.9)
value = {rows} / (time.perf_counter() - start)
"""
)

REPORT = """
print(json.dumps({"value": value, "mdn": mdn.__file__, "torch": torch.__version__}))
"""


def measurements(steps: int, predict_rows: int, interval_rows: int) -> dict[str, str]:
    """Name -> code (without prelude) of every measurement; each code sets ``value``."""
    out = {}
    for d, covariance in ((1, "diag"), (1, "full"), (3, "full")):
        out[f"training D={d} {covariance}, steps/s"] = TRAIN.format(
            d=d, covariance=covariance, n_models=None, steps=steps
        )
    out["ensemble n_models=5 D=1 diag, steps/s"] = TRAIN.format(
        d=1, covariance="diag", n_models=5, steps=steps
    )
    out[f"MDN.predict {predict_rows:.0e} rows, rows/s"] = PREDICT.format(rows=predict_rows)
    out[f"predict_interval D=3 full {interval_rows:.0e} rows, rows/s"] = INTERVAL.format(
        rows=interval_rows
    )
    return out


def measure(tree: Path, code: str) -> dict:
    """Run one measurement in a fresh process importing ``mdn`` from ``tree/src``."""
    env = dict(os.environ, PYTHONPATH=str(tree / "src"))
    prelude = PRELUDE.format(tree=str(tree.resolve()), here=str(HERE))
    run = subprocess.run(
        [sys.executable, "-c", prelude + code + REPORT],
        capture_output=True,
        text=True,
        env=env,
        cwd=tree,  # holds no ./mdn that could shadow the tree's src/mdn
    )
    lines = [line for line in run.stdout.splitlines() if line.startswith("{")]
    if run.returncode or not lines:
        raise RuntimeError(f"measurement failed under {tree}:\n{run.stderr[-2000:]}")
    return json.loads(lines[-1])


def git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(REPO), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rev", help="the earlier git revision (e.g. main, HEAD~2, a hash)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=300, help="timed training steps")
    parser.add_argument("--predict-rows", type=int, default=10**6)
    parser.add_argument("--interval-rows", type=int, default=10**5)
    args = parser.parse_args(argv)
    short = git("rev-parse", "--short", args.rev)
    todo = measurements(args.steps, args.predict_rows, args.interval_rows)
    results: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="mdn-before-") as tmp:
        old = Path(tmp)
        archive = subprocess.Popen(
            ["git", "-C", str(REPO), "archive", args.rev, "src"], stdout=subprocess.PIPE
        )
        subprocess.run(["tar", "-x", "-C", str(old)], stdin=archive.stdout, check=True)
        if archive.wait():
            raise SystemExit(f"git archive {args.rev} src failed")
        trees = {"before": old, "after": REPO}
        torch_version = "?"
        for repeat in range(args.repeats):
            for name, code in todo.items():
                for side, tree in trees.items():  # ABAB...: old then new, each measurement
                    outcome = measure(tree, code)
                    torch_version = outcome["torch"]
                    if repeat == 0 and name == next(iter(todo)):
                        print(f"# {side}: mdn from {outcome['mdn']}", file=sys.stderr)
                    results.setdefault((name, side), []).append(outcome["value"])
            print(f"# repeat {repeat + 1}/{args.repeats} done", file=sys.stderr, flush=True)

    print(
        f"# machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch_version}; median of {args.repeats} repeat(s), old and new alternated\n"
    )
    print(f"| measurement | before ({short}) | after (working tree) | after/before |")
    print("|---|---|---|---|")
    for name in todo:
        before = statistics.median(results[(name, "before")])
        after = statistics.median(results[(name, "after")])
        print(f"| {name} | {before:,.1f} | {after:,.1f} | {after / before:.2f}x |")


if __name__ == "__main__":
    main()
