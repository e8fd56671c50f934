"""The point-estimate metrics of mdn.metrics against hand-computed cases."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from mdn import GaussianMixture, metrics

# Estimates off by factors 2, 1/2, 10 and 1: log10 ratios 0.30103, -0.30103, 1, 0.
OBSERVED = np.array([1.0, 4.0, 0.1, 3.0])
ESTIMATED = np.array([2.0, 2.0, 1.0, 3.0])
LOG2 = math.log10(2)


def test_log_space_mae_and_bias_by_hand():
    assert metrics.log_mae(ESTIMATED, OBSERVED) == pytest.approx((2 * LOG2 + 1) / 4)
    assert metrics.log_bias(ESTIMATED, OBSERVED) == pytest.approx(1 / 4)


def test_mdsa_and_sspb_by_hand():
    # |ln ratios| = ln 2, ln 2, ln 10, 0: median ln 2, so MdSA = 100 (2 - 1).
    assert metrics.mdsa(ESTIMATED, OBSERVED) == pytest.approx(100.0)
    # signed ln ratios -ln 2, 0, ln 2, ln 10: median ln(2) / 2, so SSPB = 100 (sqrt 2 - 1).
    assert metrics.sspb(ESTIMATED, OBSERVED) == pytest.approx(100 * (math.sqrt(2) - 1))


def test_slope_is_the_least_squares_slope_in_log_space():
    expected = stats.linregress(np.log10(OBSERVED), np.log10(ESTIMATED)).slope
    assert metrics.slope(ESTIMATED, OBSERVED) == pytest.approx(expected)
    assert metrics.slope(OBSERVED**0.5, OBSERVED) == pytest.approx(0.5)
    assert math.isnan(metrics.slope([1.0, 2.0], [3.0, 3.0]))


def test_invalid_pairs_are_counted_and_left_out():
    estimated = np.append(ESTIMATED, [0.0, -1.0, np.nan, 5.0])
    observed = np.append(OBSERVED, [1.0, 2.0, 3.0, np.inf])
    assert metrics.invalid_share(estimated, observed) == pytest.approx(4 / 8)
    scores = metrics.retrieval_scores(estimated, observed)
    assert scores["invalid"] == pytest.approx(0.5)
    assert scores["n_valid"] == 4
    for name in ("mdsa", "sspb", "log_mae", "log_bias", "slope"):
        assert scores[name] == pytest.approx(getattr(metrics, name)(ESTIMATED, OBSERVED))


def test_no_valid_pair_is_an_error():
    with pytest.raises(ValueError, match="none of the 2 pairs"):
        metrics.log_mae([-1.0, 0.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="empty"):
        metrics.rmse([], [])


def test_per_target_scores_each_target_and_skips_missing_values():
    n = 4
    weights = np.ones((n, 1))
    means = np.zeros((n, 1, 2))
    covariances = np.tile(np.eye(2), (n, 1, 1, 1))
    dist = GaussianMixture.from_params(
        torch.as_tensor(weights), torch.as_tensor(means), torch.as_tensor(covariances)
    )
    y = np.array([[0.5, -1.0], [1.0, np.nan], [2.0, 0.0], [0.25, 1.0]])
    point = np.ones_like(y)
    first, second = metrics.per_target(dist, y, point)
    assert first["n"] == 4 and second["n"] == 3
    assert first["nll"] == pytest.approx(-stats.norm.logpdf(y[:, 0]).mean())
    assert second["nll"] == pytest.approx(-stats.norm.logpdf([-1.0, 0.0, 1.0]).mean())
    assert first["rmse"] == pytest.approx(np.sqrt(np.mean((1 - y[:, 0]) ** 2)))
    assert "mdsa" in first and "mdsa" not in second  # only the positive target
    assert first["coverage_90"] == pytest.approx(0.75)  # 2.0 lies beyond 1.645
