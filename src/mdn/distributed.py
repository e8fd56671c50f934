"""Fit an MDN over several processes or machines with DistributedDataParallel.

Launch with ``torchrun``, one process per CPU socket, machine or GPU::

    torchrun --standalone --nproc-per-node 2 -m mdn.distributed table.csv --target chl \\
        --out model.safetensors --params '{"n_iter": 10000, "n_models": 10}'

Every process reads the whole table (MDN training sets are small; the work is in the
steps) and fits the same ``MDN``: initial weights are identical, each process draws its
own ``batch // world_size`` rows of every minibatch, and gradients are averaged across
processes after each backward pass, so a step sees ``batch`` rows in all, as in one process.
Validation, early stopping and the NaN guard take the same decisions everywhere. Process 0
writes the model file, the same kind of file as ``MDN.save``. The backend is NCCL where
there are GPUs (each process takes the GPU of its ``LOCAL_RANK``) and gloo on CPUs.

Run without ``torchrun`` it fits in this one process.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.distributed as dist

from mdn.estimator.model import MDN

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["main", "read_table"]

logger = logging.getLogger(__name__)


def read_table(
    path: str | os.PathLike, targets: Sequence[str], features: Sequence[str] | None = None
) -> tuple[pd.DataFrame | np.ndarray, pd.Series | pd.DataFrame | np.ndarray]:
    """Inputs and targets from a CSV or Parquet table (pandas) or an ``.npz`` with X and y.

    Parameters
    ----------
    path : str or path-like
        A ``.csv``, ``.parquet`` or ``.npz`` file.
    targets : sequence of str
        Target columns (ignored for ``.npz``).
    features : sequence of str, optional
        Input columns (ignored for ``.npz``).

    Returns
    -------
    X : DataFrame or ndarray
        ``features`` columns (default: every column that is not a target).
    y : Series, DataFrame or ndarray
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no data file at {path}")
    if path.suffix == ".npz":
        with np.load(path) as arrays:
            if not {"X", "y"} <= set(arrays.files):
                raise ValueError(f"{path} must hold arrays named X and y, has {arrays.files}")
            return arrays["X"], arrays["y"]
    try:
        import pandas as pd
    except ImportError:
        raise ImportError("reading CSV or Parquet needs pandas: pip install 'mdn[io]'") from None
    table = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    missing = [c for c in [*targets, *(features or [])] if c not in table.columns]
    if missing:
        raise ValueError(
            f"{path} has no column(s) {missing}; its columns are {list(table.columns)}"
        )
    features = list(features) if features else [c for c in table.columns if c not in targets]
    y = table[targets[0]] if len(targets) == 1 else table[list(targets)]
    return table[features], y


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="torchrun --nproc-per-node N -m mdn.distributed",
        description="Fit an MDN with DistributedDataParallel and save it.",
    )
    parser.add_argument("data", help="CSV, Parquet, or .npz with arrays X and y")
    parser.add_argument(
        "--target",
        action="append",
        default=[],
        help="target column (repeat for several; not needed for .npz)",
    )
    parser.add_argument(
        "--feature",
        action="append",
        default=None,
        help="input column (repeat; default: every non-target column)",
    )
    parser.add_argument("--out", required=True, help="model file to write")
    parser.add_argument(
        "--params",
        default="{}",
        help='MDN parameters as JSON, e.g. \'{"n_iter": 5000, "n_mix": 3}\'',
    )
    args = parser.parse_args(argv)
    try:
        args.params = json.loads(args.params)
    except json.JSONDecodeError as error:
        parser.error(f"--params is not valid JSON: {error}")
    if not isinstance(args.params, dict):
        parser.error("--params must be a JSON object such as '{\"n_iter\": 5000}'")
    if "hidden" in args.params:
        args.params["hidden"] = tuple(args.params["hidden"])
    if not args.data.endswith(".npz") and not args.target:
        parser.error("name the target column(s) with --target")
    return args


def _check_replicas_agree(model: MDN) -> None:
    """Raise if the processes ended with different weights (gradients were not shared)."""
    total = torch.stack([p.detach().double().sum() for p in model.network_.parameters()]).sum()
    spread = torch.stack([total, -total]).to(next(model.network_.parameters()).device)
    dist.all_reduce(spread, op=dist.ReduceOp.MAX)
    if float(spread[0] + spread[1]) > 1e-6 * max(1.0, abs(float(total))):
        raise RuntimeError(
            "the processes ended with different weights; the distributed "
            "gradient averaging did not take place"
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m mdn.distributed`` (under ``torchrun`` or alone).

    Parameters
    ----------
    argv : sequence of str, optional
        Command-line arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit status, 0.
    """
    args = _arguments(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    launched = "RANK" in os.environ and "WORLD_SIZE" in os.environ
    if launched:
        gpus = torch.cuda.is_available()
        dist.init_process_group("nccl" if gpus else "gloo")
        if gpus:
            local = int(os.environ.get("LOCAL_RANK", 0))
            torch.cuda.set_device(local)
            args.params["device"] = f"cuda:{local}"
    try:
        X, y = read_table(args.data, args.target, args.feature)
        model = MDN(**args.params).fit(X, y)
        if launched:
            _check_replicas_agree(model)
        if not launched or dist.get_rank() == 0:
            model.save(args.out)
            logger.info("fitted in %d iterations; wrote %s", model.n_iter_, args.out)
        if launched:
            dist.barrier()
    finally:
        if launched:
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
