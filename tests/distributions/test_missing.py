"""Missing targets: NaN coordinates are marginalised out, in densities and in training."""

from __future__ import annotations

import math
from pathlib import Path

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


def _nearly_singular(gap: float, dtype: torch.dtype) -> GaussianMixture:
    """One full component over three targets correlated to ``1 - gap``, with standard
    deviations 0.01, 1 and 10, its precision factor held in ``dtype`` as a network gives it."""
    std = np.array([1e-2, 1.0, 10.0])
    correlation = np.full((3, 3), 1 - gap) + gap * np.eye(3)
    factor = np.triu(np.linalg.inv(np.linalg.cholesky(correlation * np.outer(std, std))).T)
    parameters = (np.zeros((1, 1)), np.zeros((1, 1, 3)), factor[None, None])
    return GaussianMixture(*(torch.tensor(p, dtype=dtype) for p in parameters), "full")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("gap", [1e-4, 1e-5])
def test_the_marginal_of_a_nearly_singular_component_is_exact(gap, dtype):
    """The density of two observed targets against the marginal of the component's own
    (rounded) precision factor computed with 50 digits (mpmath). Rebuilding the covariance
    from the precision and factorising it in float32, as before, was off by 1e-4 to 3e-3
    here, and not positive-definite on GLORIA's targets."""
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 50
    gm = _nearly_singular(gap, dtype)
    factor = mpmath.matrix(gm.precision_cholesky[0, 0].double().tolist())
    covariance = (factor * factor.T) ** -1
    block = mpmath.matrix(
        [[covariance[0, 0], covariance[0, 2]], [covariance[2, 0], covariance[2, 2]]]
    )
    observed = mpmath.matrix([0.01, 9.0])  # targets 0 and 2; target 1 is missing
    expected = (
        -0.5 * (observed.T * block**-1 * observed)[0]
        - 0.5 * mpmath.log(mpmath.det(block))
        - mpmath.log(2 * mpmath.pi)
    )
    y = torch.tensor([[0.01, math.nan, 9.0]], dtype=dtype)
    got = float(gm.log_prob(y[:, None, :])[0, 0])
    assert got == pytest.approx(float(expected), rel=1e-6 if dtype == torch.float32 else 1e-12)


def test_gloria_s_three_products_fit_with_full_covariances_and_missing_targets():
    """The fit that ended in a LinAlgError within its first evaluation (issue 23): GLORIA's
    chl, tss and cdom with a log target, full covariances and a third of some targets
    missing."""
    path = Path(__file__).parents[3] / "shared" / "data" / "gloria" / "gloria_oli.csv"
    if not path.is_file():
        pytest.skip("needs ../shared/data/gloria")
    pd = pytest.importorskip("pandas")
    table = pd.read_csv(path)
    y = table[["chl", "tss", "cdom"]].where(lambda v: v > 0)  # cdom's 0 is below detection
    X = table[["Rrs_440", "Rrs_490", "Rrs_560", "Rrs_660", "Rrs_850"]]
    model = MDN(target_transform="log", n_iter=100, verbose=0, random_state=0).fit(X, y)
    scores = model.log_prob(X, y)
    assert np.isfinite(scores).all() and np.isfinite(model.history_["val_nll"]).all()


def test_values_below_zero_under_a_log_target_are_refused_or_made_missing():
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 2))
    y = pd.DataFrame(np.exp(X + 0.1 * rng.normal(size=(200, 2))), columns=["chl", "cdom"])
    y.loc[[4, 9, 11, 12, 20, 30], "cdom"] = 0.0
    y.loc[7, "chl"] = -1.0
    quick = dict(
        target_transform="log", n_iter=20, n_models=1, hidden=(8,), verbose=0, random_state=0
    )
    with pytest.raises(
        ValueError,
        match=r"chl: 1, smallest -1, rows 7; cdom: 6, smallest 0, "
        r"rows 4, 9, 11, 12, 20, \.\.\.",
    ):
        MDN(**quick).fit(X, y)
    with pytest.warns(UserWarning, match=r"7 target values <= 0 are treated as missing"):
        model = MDN(**quick, nonpositive_targets="missing").fit(X, y)
    # Those values were left out of the fit as NaN would be: the same model.
    expected = MDN(**quick).fit(X, y.where(y > 0))
    np.testing.assert_array_equal(model.predict(X), expected.predict(X))
