"""mdn.metrics against closed forms, Monte Carlo and known distributions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

import mdn
from mdn import GaussianMixture, LogGaussianMixture, metrics
from mdn.datasets import make_inverted_sine


def random_mixture(n: int, k: int, d: int, seed: int) -> GaussianMixture:
    g = torch.Generator().manual_seed(seed)
    weights = torch.rand(n, k, generator=g, dtype=torch.float64) + 0.1
    means = 2 * torch.randn(n, k, d, generator=g, dtype=torch.float64)
    scale = torch.randn(n, k, d, d, generator=g, dtype=torch.float64) / math.sqrt(d)
    cov = scale @ scale.mT + 0.2 * torch.eye(d, dtype=torch.float64)
    return GaussianMixture.from_params(weights / weights.sum(-1, keepdim=True), means, cov)


def test_crps_of_a_gaussian_matches_the_closed_form():
    y = np.linspace(-3, 3, 13)
    mean, std = 0.5, 1.7
    dist = GaussianMixture.from_params(
        torch.ones(13, 1, dtype=torch.float64),
        torch.full((13, 1, 1), mean, dtype=torch.float64),
        torch.full((13, 1, 1, 1), std**2, dtype=torch.float64),
    )
    z = (y - mean) / std
    expected = std * (
        z * (2 * stats.norm.cdf(z) - 1) + 2 * stats.norm.pdf(z) - 1 / math.sqrt(math.pi)
    )
    np.testing.assert_allclose(metrics.crps(dist, y), expected, rtol=1e-12)


def test_crps_of_a_mixture_matches_monte_carlo():
    dist = random_mixture(40, 4, 1, seed=0)
    y = np.random.default_rng(1).normal(size=40) * 3
    exact = metrics.crps(dist, y)
    # CRPS = E|X - y| - E|X - X'| / 2 with independent draws X, X'
    g = torch.Generator().manual_seed(2)
    x1, x2 = dist.sample(200_000, g)[..., 0].numpy(), dist.sample(200_000, g)[..., 0].numpy()
    monte_carlo = np.abs(x1 - y).mean(0) - 0.5 * np.abs(x1 - x2).mean(0)
    np.testing.assert_allclose(exact, monte_carlo, atol=0.01)
    assert np.all(exact > 0)


def test_energy_score_in_one_dimension_is_the_crps():
    dist = random_mixture(30, 3, 1, seed=3)
    y = np.random.default_rng(4).normal(size=30)
    np.testing.assert_allclose(
        metrics.energy_score(dist, y, n_samples=40_000), metrics.crps(dist, y), atol=0.03
    )


def test_crps_of_several_dimensions_and_log_targets_uses_the_energy_score():
    dist = random_mixture(20, 3, 2, seed=5)
    y = np.random.default_rng(6).normal(size=(20, 2))
    score = metrics.crps(dist, y, n_samples=500)
    assert score.shape == (20,)
    np.testing.assert_array_equal(score, metrics.energy_score(dist, y, n_samples=500))
    # A point far from the distribution scores worse than one at its mean.
    far = metrics.crps(dist, dist.mean().numpy() + 50, n_samples=500)
    assert np.all(far > metrics.crps(dist, dist.mean().numpy(), n_samples=500))
    log_dist = LogGaussianMixture(random_mixture(10, 2, 1, seed=7))
    assert np.all(np.isfinite(metrics.crps(log_dist, np.ones(10))))


def test_pit_and_coverage_of_draws_from_the_predicted_distribution_are_calibrated():
    dist = random_mixture(6000, 3, 2, seed=8)
    y = dist.sample(1, torch.Generator().manual_seed(9))[0].numpy()
    values = metrics.pit(dist, y)
    assert values.shape == (6000, 2)
    assert stats.kstest(values.ravel(), "uniform").pvalue > 1e-3
    assert metrics.calibration_error(values) < 0.015
    for level, share in metrics.coverage(dist, y).items():
        # binomial standard error of 12,000 pooled values is under 0.005
        assert abs(share - level) < 0.02, (level, share)


def test_overconfident_predictions_are_flagged():
    dist = random_mixture(4000, 1, 1, seed=10)
    y = dist.sample(1, torch.Generator().manual_seed(11))[0].numpy()
    narrow = GaussianMixture(
        torch.zeros(4000, 1, dtype=torch.float64), dist.means, dist.precision_cholesky * 3, "full"
    )
    assert metrics.calibration_error(metrics.pit(narrow, y)) > 0.1
    assert metrics.coverage(narrow, y, [0.9])[0.9] < 0.5


def test_calibration_error_of_known_values():
    assert metrics.calibration_error(np.linspace(0, 1, 100_001)) < 1e-4
    assert metrics.calibration_error(np.full(100, 0.5)) == pytest.approx(0.2525, abs=1e-3)
    with pytest.raises(ValueError, match="no PIT"):
        metrics.calibration_error([])


def test_point_errors():
    y = np.array([1.0, 2.0, 4.0])
    assert metrics.rmse(y + 1, y) == pytest.approx(1.0)
    assert metrics.mae(np.array([1.0, 0.0, 4.0]), y) == pytest.approx(2 / 3)
    assert metrics.mdsa(2 * y, y) == pytest.approx(100.0)
    assert metrics.sspb(2 * y, y) == pytest.approx(100.0)
    assert metrics.sspb(y / 2, y) == pytest.approx(-100.0)
    assert metrics.mdsa(y, y) == 0.0
    assert metrics.mdsa(y - 2, y) == pytest.approx(100.0)  # only (2, 4) is a valid pair
    with pytest.raises(ValueError, match="positive, finite"):
        metrics.mdsa(y - 5, y)
    with pytest.raises(ValueError, match="differ in shape"):
        metrics.rmse(y[:2], y)


def test_bad_targets_are_refused():
    dist = random_mixture(3, 2, 1, seed=12)
    with pytest.raises(ValueError, match=r"shape \(3, 1\)"):
        metrics.nll(dist, np.zeros(4))
    with pytest.raises(ValueError, match="NaN"):
        metrics.nll(dist, np.array([0.0, np.nan, 1.0]))


@pytest.fixture(scope="module")
def fitted():
    X, y = make_inverted_sine(800, random_state=0)
    # No recalibration: the tests below compare with the network's own mixture.
    model = mdn.MDN(
        n_iter=300, hidden=(32, 32), n_models=1, verbose=0, random_state=0, recalibrate=False
    )
    return model.fit(X, y), X, y


def test_nll_in_original_units_is_the_scaled_nll_plus_the_log_jacobian(fitted):
    model, X, y = fitted
    x_scaled = torch.as_tensor((X - model.x_shift_) / model.x_scale_, dtype=torch.float32)
    y_scaled = torch.as_tensor((y[:, None] - model.y_shift_) / model.y_scale_)
    with torch.no_grad():
        scaled = -model.network_(x_scaled).to(torch.float64).log_prob(y_scaled).mean()
    original = metrics.nll(model.predict_dist(X), y)
    assert original == pytest.approx(float(scaled) + float(np.log(model.y_scale_).sum()), rel=1e-6)
    assert original == pytest.approx(-model.score(X, y))


def test_nll_of_a_log_target_adds_the_log_jacobian_of_the_log():
    rng = np.random.default_rng(13)
    X = rng.uniform(size=(400, 2))
    y = np.exp(X[:, 0] + 0.2 * rng.normal(size=400))
    model = mdn.MDN(
        n_iter=150,
        hidden=(16,),
        target_transform="log",
        n_models=1,
        verbose=0,
        random_state=0,
        recalibrate=False,
    ).fit(X, y)
    x_scaled = torch.as_tensor((X - model.x_shift_) / model.x_scale_, dtype=torch.float32)
    z_scaled = torch.as_tensor((np.log(y)[:, None] - model.y_shift_) / model.y_scale_)
    with torch.no_grad():
        scaled = -model.network_(x_scaled).to(torch.float64).log_prob(z_scaled).mean()
    jacobian = float(np.log(model.y_scale_).sum()) + float(np.log(y).mean())
    assert metrics.nll(model.predict_dist(X), y) == pytest.approx(
        float(scaled) + jacobian, rel=1e-6
    )


def test_evaluate_reports_every_score(fitted):
    model, X, y = fitted
    result = model.evaluate(X, y)
    assert set(result) == {
        "n",
        "nll",
        "crps",
        "calibration_error",
        "coverage_50",
        "coverage_80",
        "coverage_90",
        "coverage_95",
        "rmse_mean",
        "mae_mean",
        "rmse_top",
        "mae_top",
    }
    assert result["nll"] == pytest.approx(-model.score(X, y))
    assert result["rmse_mean"] == pytest.approx(metrics.rmse(model.predict(X, point="mean"), y))
    assert 0.8 < result["coverage_90"] < 0.97
    assert result == metrics.evaluate(model, X, y)
