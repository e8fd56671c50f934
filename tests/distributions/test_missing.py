"""Missing targets: NaN coordinates are marginalised out, in densities and in training."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mdn import MDN, GaussianMixture


def mixture(covariance: str, seed: int, n: int = 8, k: int = 3, d: int = 3) -> GaussianMixture:
    g = torch.Generator().manual_seed(seed)
    weights = torch.softmax(torch.randn(n, k, generator=g, dtype=torch.float64), -1)
    means = torch.randn(n, k, d, generator=g, dtype=torch.float64)
    if covariance == "full":
        a = torch.randn(n, k, d, d, generator=g, dtype=torch.float64)
        cov = a @ a.mT + 0.3 * torch.eye(d, dtype=torch.float64)
    elif covariance == "diag":
        cov = torch.rand(n, k, d, generator=g, dtype=torch.float64) + 0.2
    else:
        cov = torch.rand(n, k, generator=g, dtype=torch.float64) + 0.2
    return GaussianMixture.from_params(weights, means, cov, covariance)


@pytest.mark.parametrize("covariance", ["full", "diag", "spherical"])
def test_log_prob_with_missing_coordinates_is_the_marginal_density(covariance):
    gm = mixture(covariance, seed=0)
    y = torch.randn(8, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    patterns = [[0, 2], [1], [], [0, 1, 2], [2], [0, 1], [1, 2], [0]]  # observed dims per row
    for row, seen in enumerate(patterns):
        y[row, [d for d in range(3) if d not in seen]] = math.nan
    log_prob = gm.log_prob(y)
    for row, seen in enumerate(patterns):
        expected = 0.0 if not seen else float(gm[row].marginal(seen).log_prob(y[row, seen]))
        assert float(log_prob[row]) == pytest.approx(expected, abs=1e-10)


def test_gradients_through_missing_coordinates_are_finite():
    torch.manual_seed(2)
    logits = torch.randn(4, 2, dtype=torch.float64, requires_grad=True)
    means = torch.randn(4, 2, 3, dtype=torch.float64, requires_grad=True)
    prec = torch.eye(3, dtype=torch.float64).expand(4, 2, 3, 3).clone().requires_grad_()
    y = torch.randn(4, 3, dtype=torch.float64)
    y[0, 1] = y[2, :] = math.nan
    GaussianMixture(logits, means, prec, "full").log_prob(y).sum().backward()
    for tensor in (logits, means, prec):
        assert torch.isfinite(tensor.grad).all()
    assert torch.all(means.grad[2] == 0)  # a row with nothing observed pulls on nothing


def correlated_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, size=(n, 2))
    base = np.stack([np.sin(2 * X[:, 0]), X[:, 1], X[:, 0] * X[:, 1]], axis=1)
    noise = rng.normal(size=(n, 3)) @ np.array(
        [[0.2, 0.1, 0.0], [0.0, 0.15, 0.05], [0.0, 0.0, 0.1]]
    )
    return X, base + noise


@pytest.mark.parametrize("covariance", ["full", "diag"])
def test_training_with_30_percent_missing_recovers_the_complete_data_model(covariance):
    X, y = correlated_data(3000, seed=3)
    X_test, y_test = correlated_data(2000, seed=4)
    holes = np.random.default_rng(5).uniform(size=y.shape) < 0.3
    y_missing = np.where(holes, np.nan, y)
    params = dict(
        n_mix=3, hidden=(32, 32), n_iter=1500, covariance=covariance, verbose=0, random_state=0
    )
    with pytest.warns(UserWarning, match="every target missing"):  # 2.7 % of rows: all NaN
        gappy = MDN(**params).fit(X, y_missing)
    complete = MDN(**params).fit(X, y)
    history = np.array(gappy.history_["train_nll"] + gappy.history_["val_nll"])
    assert np.all(np.isfinite(history))
    nll_gappy, nll_complete = -gappy.score(X_test, y_test), -complete.score(X_test, y_test)
    assert nll_gappy == pytest.approx(nll_complete, abs=0.15), (nll_gappy, nll_complete)
    assert nll_gappy < -1.0  # far better than independent unit-variance guesses
    # Marginal densities of partly observed test rows are finite and agree closely too.
    partial = y_test.copy()
    partial[:, 1] = np.nan
    np.testing.assert_allclose(
        gappy.log_prob(X_test, partial).mean(), complete.log_prob(X_test, partial).mean(), atol=0.15
    )


def test_rows_without_any_target_are_dropped_with_a_warning_and_columns_must_be_seen():
    X, y = correlated_data(200, seed=6)
    y[:10] = np.nan
    with pytest.warns(UserWarning, match="10 of 200 rows have every target missing"):
        model = MDN(n_iter=20, hidden=(8,), verbose=0).fit(X, y)
    assert np.isfinite(model.score(X[10:], y[10:]))
    y[:, 2] = np.nan
    with pytest.raises(ValueError, match=r"target column\(s\) \[2\] have no observed value"):
        MDN(n_iter=20, hidden=(8,), verbose=0).fit(X, y)
