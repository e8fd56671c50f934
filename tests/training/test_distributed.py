"""Training over two processes with DistributedDataParallel (gloo on this CPU)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import mdn
from mdn.datasets import make_inverted_sine
from mdn.distributed import main, read_table

PARAMS = '{"n_iter": 800, "hidden": [32, 32], "n_models": 1, "random_state": 0, "verbose": 0}'


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ddp")
    X, y = make_inverted_sine(2000, random_state=0)
    path = folder / "train.csv"
    pd.DataFrame({"x": X[:, 0], "y": y}).to_csv(path, index=False)
    return path


def test_two_processes_fit_like_one_and_write_one_model_file(table, tmp_path):
    out = tmp_path / "ddp.safetensors"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            "2",
            "-m",
            "mdn.distributed",
            str(table),
            "--target",
            "y",
            "--out",
            str(out),
            "--params",
            PARAMS,
        ],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    # Only process 0 writes, and nothing is left beside the model.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp.safetensors"]
    distributed = mdn.load(out)
    assert distributed.n_iter_ == 800

    single = out.with_name("single.safetensors")
    assert main([str(table), "--target", "y", "--out", str(single), "--params", PARAMS]) == 0
    alone = mdn.load(single)

    X_test, y_test = make_inverted_sine(2000, random_state=1)
    X_test = pd.DataFrame({"x": X_test[:, 0]})
    nll_distributed, nll_alone = -distributed.score(X_test, y_test), -alone.score(X_test, y_test)
    # Same optimisation in expectation (one step sees `batch` rows in all), different draws.
    assert abs(nll_distributed - nll_alone) < 0.1, (nll_distributed, nll_alone)
    assert nll_distributed < -0.8  # far below a single Gaussian's -0.58: the branches are found
    assert not np.allclose(distributed.predict(X_test), alone.predict(X_test))


def test_read_table_errors(tmp_path, table):
    with pytest.raises(FileNotFoundError, match="no data file"):
        read_table(tmp_path / "absent.csv", ["y"])
    with pytest.raises(ValueError, match=r"no column\(s\) \['chl'\]"):
        read_table(table, ["chl"])
    np.savez(tmp_path / "arrays.npz", inputs=np.zeros((3, 2)))
    with pytest.raises(ValueError, match="named X and y"):
        read_table(tmp_path / "arrays.npz", [])
    X, y = read_table(table, ["y"])
    assert list(X.columns) == ["x"] and y.name == "y"


def test_command_line_errors(table, capsys):
    with pytest.raises(SystemExit):
        main([str(table), "--out", "m.safetensors"])
    assert "--target" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([str(table), "--target", "y", "--out", "m.safetensors", "--params", "{n_iter: 5"])
    assert "not valid JSON" in capsys.readouterr().err
