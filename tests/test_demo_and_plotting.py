"""The built-in data set, the conditional-density plot and the demo script."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mdn import MDN
from mdn.datasets import inverted_sine_on_branch, make_inverted_sine

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

ROOT = Path(__file__).resolve().parents[1]


def test_inverted_sine_data_and_branch_check():
    X, y = make_inverted_sine(500, random_state=0)
    assert X.shape == (500, 1) and y.shape == (500,)
    assert np.all((y >= 0) & (y <= 1))
    # The generating y is always on a branch; a y far from every branch never is.
    assert inverted_sine_on_branch(X, y).all()
    assert not inverted_sine_on_branch(X, y + 1.5).any()
    lower = X[:, 0] < 0.2  # only the lower branch exists there
    assert not inverted_sine_on_branch(X[lower], y[lower] + 0.5).any()
    np.testing.assert_array_equal(
        make_inverted_sine(50, random_state=3)[1], make_inverted_sine(50, random_state=3)[1]
    )


def test_plot_conditional_density(tmp_path):
    from mdn.plotting import plot_conditional_density

    X, y = make_inverted_sine(300, random_state=0)
    model = MDN(hidden=(16,), n_iter=50, random_state=0, verbose=0).fit(X, y)
    ax = plot_conditional_density(model, X, y, resolution=40)
    density = ax.collections[0].get_array()
    assert density.size == 40 * 40 and np.all(np.isfinite(density)) and density.max() > 0
    ax.figure.savefig(tmp_path / "plot.png")
    assert (tmp_path / "plot.png").stat().st_size > 1000
    wide = MDN(hidden=(8,), n_iter=10, verbose=0).fit(np.c_[X, X], y)
    with pytest.raises(ValueError, match="one input and one target"):
        plot_conditional_density(wide, np.c_[X, X], y)
    with pytest.raises(ValueError, match="give X and y"):
        plot_conditional_density(model)


def test_demo_script_runs_and_reports(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "demo.py"),
            "--out",
            str(tmp_path),
            "--n-iter",
            "100",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert "test NLL" in result.stdout and "single Gaussian" in result.stdout
    assert (tmp_path / "inverted_sine.png").stat().st_size > 1000
    assert (tmp_path / "inverted_sine.safetensors").exists()
