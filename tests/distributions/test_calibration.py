"""Recalibration of the predictive mixture: the transform, its fit and the estimator's use."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import optimize, stats

import mdn.distributions.calibration
from mdn import MDN, GaussianMixture
from mdn.datasets import make_inverted_sine
from mdn.distributions.calibration import (
    AUTO_MIN_ROWS,
    SCALE_PRIOR_SD,
    TAIL_BOUNDS,
    TAIL_SCALE,
    fit_recalibration,
    fit_tail_weight,
    recalibrate,
)
from mdn.estimator import fitting
from mdn.estimator.fitting import recalibrated


def gaussians(means, sds, covariance: str = "diag") -> GaussianMixture:
    """One-component mixtures with the given means (..., D) and standard deviations."""
    means = torch.as_tensor(means, dtype=torch.float64)
    sds = torch.as_tensor(sds, dtype=torch.float64).expand_as(means)
    logits = torch.zeros(*means.shape[:-1], 1, dtype=torch.float64)
    if covariance == "full":
        precision = torch.diag_embed(1 / sds).unsqueeze(-3)
    elif covariance == "diag":
        precision = (1 / sds).unsqueeze(-2)
    else:
        precision = 1 / sds[..., :1]
    return GaussianMixture(logits, means.unsqueeze(-2), precision, covariance)


def random_ensemble(covariance: str, seed: int = 0) -> GaussianMixture:
    g = torch.Generator().manual_seed(seed)
    e, n, k, d = 3, 7, 2, 2
    logits = torch.randn(e, n, k, generator=g, dtype=torch.float64)
    means = torch.randn(e, n, k, d, generator=g, dtype=torch.float64)
    if covariance == "full":
        a = torch.randn(e, n, k, d, d, generator=g, dtype=torch.float64)
        cov = a @ a.transpose(-1, -2) + torch.eye(d, dtype=torch.float64)
        return GaussianMixture.from_params(logits.softmax(-1), means, cov, "full")
    shape = (e, n, k, d) if covariance == "diag" else (e, n, k)
    sd = 0.5 + torch.rand(shape, generator=g, dtype=torch.float64)
    return GaussianMixture(logits, means, 1 / sd, covariance)


@pytest.mark.parametrize("covariance", ["full", "diag", "spherical"])
def test_unit_values_leave_the_mixture_unchanged(covariance):
    mixture = random_ensemble(covariance)
    y = torch.randn(7, 2, dtype=torch.float64)
    changed = recalibrate(mixture, 1.0, 1.0, members=True)
    torch.testing.assert_close(changed.log_prob(y), mixture.log_prob(y))


@pytest.mark.parametrize("covariance", ["full", "diag", "spherical"])
def test_member_spread_moves_whole_members_about_the_centre(covariance):
    mixture = random_ensemble(covariance)
    centre = mixture.mean().mean(0)
    for spread in (0.0, 0.5, 2.0):
        changed = recalibrate(mixture, spread, 1.0, members=True)
        torch.testing.assert_close(changed.mean(), centre + spread * (mixture.mean() - centre))
        # Each member keeps its shape: the same weights and covariances, the same distances
        # between its components.
        torch.testing.assert_close(changed.covariances, mixture.covariances)
        torch.testing.assert_close(
            changed.means - changed.means[..., :1, :], mixture.means - mixture.means[..., :1, :]
        )
        torch.testing.assert_close(changed.pool(0).mean(), mixture.pool(0).mean())


@pytest.mark.parametrize("covariance", ["full", "diag", "spherical"])
def test_component_scale_multiplies_every_standard_deviation(covariance):
    mixture = gaussians([[0.5, -1.0]], [[2.0, 2.0]], covariance)
    y = torch.tensor([[1.3, 0.4]], dtype=torch.float64)
    changed = recalibrate(mixture, component_scale=3.0, members=False)
    expected = stats.norm(loc=[0.5, -1.0], scale=6.0).logpdf(y.numpy()).sum()
    assert float(changed.log_prob(y)) == pytest.approx(expected, rel=1e-12)


def test_fitted_scale_of_one_gaussian_is_the_maximum_likelihood_scale():
    rng = np.random.default_rng(0)
    y = torch.as_tensor(rng.normal(0.0, 2.5, size=(4000, 1)))
    mixture = gaussians(torch.zeros(4000, 1), 1.0)
    spread, scale = fit_recalibration(mixture, y, members=False)
    assert spread == 1.0
    assert scale == pytest.approx(float(y.square().mean().sqrt()), rel=1e-4)


def test_fit_shrinks_members_whose_disagreement_is_not_in_the_data():
    """Members each right about the noise but scattered about the truth: pooled, they are
    too wide; moving them to the centre restores the noise's width."""
    rng = np.random.default_rng(1)
    n, noise = 3000, 0.1
    truth = rng.normal(size=(n, 1))
    offsets = rng.normal(0.0, 0.5, size=(4, n, 1))  # independent errors of 4 members
    mixture = gaussians(torch.as_tensor(truth + offsets), noise)
    y = torch.as_tensor(truth + rng.normal(0.0, noise, size=(n, 1)))
    spread, scale = fit_recalibration(mixture, y, members=True)
    centre_error = offsets.mean(0)  # what is left when every member moves to the centre
    assert spread < 0.1
    expected = np.sqrt(noise**2 + centre_error.var()) / noise
    assert scale == pytest.approx(expected, rel=0.15)
    before = -mixture.pool(0).log_prob(y).mean()
    after = -recalibrate(mixture, spread, scale, members=True).pool(0).log_prob(y).mean()
    assert after < before - 0.5


def test_fit_keeps_a_calibrated_mixture_and_ignores_missing_targets():
    rng = np.random.default_rng(2)
    n = 4000
    mean = rng.normal(size=(n, 2))
    mixture = gaussians(torch.as_tensor(mean), 0.7, "full")
    y = mean + rng.normal(0.0, 0.7, size=(n, 2))
    missing = rng.random((n, 2)) < 0.3
    missing[missing.all(1), 0] = False  # rows need an observed coordinate
    y[missing] = np.nan
    spread, scale = fit_recalibration(mixture, torch.as_tensor(y), members=False)
    assert spread == 1.0
    assert scale == pytest.approx(1.0, abs=0.03)


@pytest.mark.parametrize("covariance", ["full", "diag", "spherical"])
@pytest.mark.parametrize("members", [False, True])
def test_the_tail_is_a_copy_of_the_mixture_three_times_as_wide(covariance, members):
    mixture = random_ensemble(covariance) if members else random_ensemble(covariance)[0]
    y = torch.randn(7, 2, dtype=torch.float64)
    w, spread, scale = 0.2, 0.7 if members else 1.0, 1.3

    def log_density(component_scale):
        changed = recalibrate(mixture, spread, component_scale, members=members)
        return (changed.pool(0) if members else changed).log_prob(y)

    changed = recalibrate(mixture, spread, scale, w, members=members)
    expected = torch.logaddexp(
        math.log(1 - w) + log_density(scale), math.log(w) + log_density(scale * TAIL_SCALE)
    )
    torch.testing.assert_close((changed.pool(0) if members else changed).log_prob(y), expected)
    assert changed.n_components == 2 * mixture.n_components


def contaminated(n: int, share: float, seed: int) -> torch.Tensor:
    """n draws of N(0, 1), a ``share`` of them replaced by draws of N(0, TAIL_SCALE**2)."""
    rng = np.random.default_rng(seed)
    wide = rng.random(n) < share
    return torch.as_tensor(rng.normal(0.0, np.where(wide, TAIL_SCALE, 1.0))[:, None])


def test_the_tail_weight_is_the_maximum_likelihood_value():
    y = contaminated(400, 0.1, seed=7)
    mixture = gaussians(torch.zeros(400, 1), 1.0)
    body, tail = (
        stats.norm(0, 1).pdf(y.numpy()[:, 0]),
        stats.norm(0, TAIL_SCALE).pdf(y.numpy()[:, 0]),
    )
    best = optimize.minimize_scalar(
        lambda w: -np.log((1 - w) * body + w * tail).sum(),
        bounds=TAIL_BOUNDS,
        method="bounded",
        options={"xatol": 1e-10},
    )
    weight = fit_tail_weight(mixture, y, members=False)
    assert 0 < weight < TAIL_BOUNDS[1]
    assert weight == pytest.approx(best.x, abs=1e-6)


def test_the_tail_weight_recovers_the_share_of_wide_rows():
    y = contaminated(20_000, 0.08, seed=8)
    assert fit_tail_weight(
        gaussians(torch.zeros(20_000, 1), 1.0), y, members=False
    ) == pytest.approx(0.08, abs=0.015)


def test_the_tail_weight_stays_at_its_bounds_where_the_rows_ask_to_go_beyond():
    rng = np.random.default_rng(9)
    n = 500
    narrow = torch.as_tensor(rng.normal(0.0, 0.5, size=(n, 1)))
    wide = torch.as_tensor(rng.normal(0.0, TAIL_SCALE, size=(n, 1)))
    mixture = gaussians(torch.zeros(n, 1), 1.0)
    assert fit_tail_weight(mixture, narrow, members=False) == 0.0
    assert fit_tail_weight(mixture, wide, members=False) == TAIL_BOUNDS[1]


def test_the_tail_weight_uses_the_given_scale_and_marginalises_missing_targets():
    """Rows of N(0, 2^2): with the scale 2 given they need no tail; under the unit scale
    they do. A missing entry is marginalised out, not propagated."""
    rng = np.random.default_rng(10)
    n = 1000
    y = torch.as_tensor(rng.normal(0.0, 2.0, size=(n, 2)))
    y[::3, 1] = math.nan
    mixture = gaussians(torch.zeros(n, 2), 1.0)
    assert fit_tail_weight(mixture, y, members=False) > 0.2
    assert fit_tail_weight(mixture, y, members=False, component_scale=2.0) < 0.02


# ---------------------------------------------------------------------- the estimator
@pytest.fixture(scope="module")
def sine():
    X, y = make_inverted_sine(600, random_state=0)
    return X, y


@pytest.fixture(scope="module")
def fitted_pair(sine):
    """The same ensemble without recalibration and with values set by hand."""
    X, y = sine
    params = {"n_iter": 300, "n_models": 3, "hidden": (16, 16), "random_state": 0, "verbose": 0}
    plain = MDN(recalibrate=False, **params).fit(X, y)
    calibrated = MDN(recalibrate=True, **params).fit(X, y)
    calibrated.member_spread_, calibrated.component_scale_, calibrated.tail_weight_ = 0.6, 1.3, 0.05
    return plain, calibrated


def test_fit_stores_the_values_fitted_on_the_validation_rows(sine, monkeypatch):
    X, y = sine
    seen = {}

    def fake(mixture, y_val, *, members, scale_prior_sd):
        seen.update(
            batch=tuple(mixture.batch_shape), rows=len(y_val), members=members, prior=scale_prior_sd
        )
        return 0.5, 2.0

    def fake_tail(mixture, y_val, *, members, component_scale):
        seen.update(tail_scale=component_scale)
        return 0.25

    monkeypatch.setattr(mdn.distributions.calibration, "fit_recalibration", fake)
    monkeypatch.setattr(mdn.distributions.calibration, "fit_tail_weight", fake_tail)
    params = dict(
        n_iter=20, n_models=2, hidden=(8,), validation_fraction=0.25, random_state=0, verbose=0
    )
    model = MDN(recalibrate=True, **params).fit(X, y)
    assert (model.member_spread_, model.component_scale_, model.tail_weight_) == (0.5, 2.0, 0.0)
    assert seen == {"batch": (2, 150), "rows": 150, "members": True, "prior": None}
    # The scale alone, under the prior, and then the tail given that scale.
    model = MDN(recalibrate="scale", **params).fit(X, y)
    assert (model.member_spread_, model.component_scale_, model.tail_weight_) == (0.5, 2.0, 0.25)
    assert seen["prior"] == SCALE_PRIOR_SD and seen["tail_scale"] == 2.0
    # "auto" fits the scale alone below AUTO_MIN_ROWS validation rows (150 here) and lets
    # BIC choose both values from there (600).
    seen.clear()
    assert MDN(**params).fit(X, y).tail_weight_ == 0.25
    assert seen["rows"] == 150 and seen["prior"] == SCALE_PRIOR_SD
    X_large, y_large = make_inverted_sine(2400, random_state=1)
    seen.clear()
    model = MDN(**params).fit(X_large, y_large)
    assert (model.member_spread_, model.component_scale_, model.tail_weight_) == (0.5, 2.0, 0.0)
    assert seen["rows"] == 600 >= AUTO_MIN_ROWS and seen["prior"] is None
    assert "tail_scale" not in seen
    seen.clear()
    model = MDN(recalibrate=False, **params).fit(X_large, y_large)
    assert (model.member_spread_, model.component_scale_) == (1.0, 1.0) and not seen


def test_recalibration_changes_the_distribution_not_the_networks(sine, fitted_pair):
    X, y = sine
    plain, calibrated = fitted_pair
    assert (plain.member_spread_, plain.component_scale_) == (1.0, 1.0)
    for a, b in zip(plain.network_.parameters(), calibrated.network_.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    np.testing.assert_array_equal(plain.predict(X[:50]), calibrated.predict(X[:50]))
    np.testing.assert_array_equal(plain.predict_members(X[:50]), calibrated.predict_members(X[:50]))
    members = plain.network_(
        torch.as_tensor((X[:50] - plain.x_shift_) / plain.x_scale_, dtype=torch.float32)
    ).to(torch.float64)
    expected = recalibrate(members, 0.6, 1.3, 0.05, members=True).pool(0)
    z = torch.as_tensor((y[:50].reshape(-1, 1) - plain.y_shift_) / plain.y_scale_)
    log_jacobian = float(np.log(plain.y_scale_).sum())
    np.testing.assert_allclose(
        calibrated.log_prob(X[:50], y[:50]),
        expected.log_prob(z).detach().numpy() - log_jacobian,
        rtol=1e-5,
    )
    lower, upper = calibrated.predict_interval(X[:50])
    plain_lower, plain_upper = plain.predict_interval(X[:50])
    assert not np.allclose(upper - lower, plain_upper - plain_lower)


@pytest.mark.parametrize("how", [True, "scale"])
def test_recalibration_does_not_raise_the_validation_nll(sine, how):
    """The values are fitted on the validation rows: there, the NLL cannot get worse (under
    the prior too: at its peak, NLL + penalty is at most the NLL of no change)."""
    X, y = sine
    model = MDN(
        n_iter=200,
        n_models=2,
        hidden=(8,),
        random_state=3,
        verbose=0,
        validation_fraction=0.3,
        recalibrate=how,
    ).fit(X, y)
    assert recalibrated(model)
    split = torch.Generator().manual_seed(fitting.seeds(model.random_state)[1])
    rows = fitting.split_rows(len(X), model.validation_fraction, split)[1].numpy()
    calibrated = -model.score(X[rows], y[rows])
    model.member_spread_, model.component_scale_, model.tail_weight_ = 1.0, 1.0, 0.0
    assert calibrated <= -model.score(X[rows], y[rows]) + 1e-9


def test_no_recalibration_without_validation_rows(sine):
    X, y = sine
    params = dict(
        n_iter=50, n_models=2, hidden=(8,), validation_fraction=0, random_state=0, verbose=0
    )
    model = MDN(**params).fit(X, y)
    assert (model.member_spread_, model.component_scale_) == (1.0, 1.0)
    for value in (True, "scale"):
        with pytest.warns(UserWarning, match=f"recalibrate={value!r} needs validation rows"):
            model = MDN(recalibrate=value, **params).fit(X, y)
        assert (model.member_spread_, model.component_scale_) == (1.0, 1.0)


def test_the_member_of_a_single_recalibrated_model_is_not_recalibrated(sine):
    X, y = sine
    model = MDN(
        n_iter=50, n_models=1, hidden=(8,), recalibrate=False, random_state=0, verbose=0
    ).fit(X, y)
    assert model.members_ == [model]
    model.component_scale_, model.tail_weight_ = 1.5, 0.1
    (member,) = model.members_
    assert member is not model and (member.component_scale_, member.tail_weight_) == (1.0, 0.0)
    assert model.component_scale_ == 1.5 and member.network_ is model.network_
    lower, upper = model.predict_interval(X[:10])
    member_lower, member_upper = member.predict_interval(X[:10])
    assert np.all(upper - lower > member_upper - member_lower)


def test_members_are_not_recalibrated_and_files_keep_the_values(sine, fitted_pair, tmp_path):
    X, y = sine
    _, calibrated = fitted_pair
    assert all(
        (m.member_spread_, m.component_scale_, m.tail_weight_) == (1.0, 1.0, 0.0)
        for m in calibrated.members_
    )
    path = tmp_path / "model.safetensors"
    calibrated.save(path)
    loaded = MDN.load(path)
    assert loaded.member_spread_ == calibrated.member_spread_
    assert loaded.component_scale_ == calibrated.component_scale_
    assert loaded.tail_weight_ == calibrated.tail_weight_ == 0.05
    np.testing.assert_array_equal(
        loaded.log_prob(X[:20], y[:20]), calibrated.log_prob(X[:20], y[:20])
    )


@pytest.mark.parametrize("value", [1, "yes", None, "AUTO", "Scale"])
def test_recalibrate_must_be_auto_scale_or_a_bool(sine, value):
    X, y = sine
    with pytest.raises(ValueError, match='recalibrate must be "auto", "scale", True or False'):
        MDN(recalibrate=value).fit(X, y)


def test_bic_keeps_no_change_when_the_rows_do_not_ask_for_one():
    """A calibrated mixture and a handful of rows: the fitted values would only fit noise."""
    rng = np.random.default_rng(4)
    mean = rng.normal(size=(20, 1))
    mixture = gaussians(torch.as_tensor(mean[None] + rng.normal(0, 0.3, (3, 20, 1))), 1.0)
    y = torch.as_tensor(mean + rng.normal(0.0, 1.0, size=(20, 1)))
    assert fit_recalibration(mixture, y, members=True) == (1.0, 1.0)


@pytest.mark.parametrize("covariance", ["full", "diag", "spherical"])
@pytest.mark.parametrize("members", [False, True])
def test_a_scale_prior_fits_the_scale_alone_without_a_criterion(covariance, members):
    """Rows the mixture describes well and too few for BIC: with a prior the scale alone is
    still fitted. For one Gaussian per row, the maximum likelihood scale is
    sqrt(mean squared Mahalanobis distance / D); an ensemble's members stay where they are."""
    rng = np.random.default_rng(5)
    n, d = 20, 2
    mean = rng.normal(size=(n, d))
    y = torch.as_tensor(mean + rng.normal(0.0, 1.0, size=(n, d)))
    if members:
        shifted = mean[None] + rng.normal(0.0, 0.3, (3, n, d))
        mixture = gaussians(torch.as_tensor(shifted), 1.0, covariance)
        assert fit_recalibration(mixture, y, members=True) == (1.0, 1.0)
        spread, scale = fit_recalibration(mixture, y, members=True, scale_prior_sd=math.inf)
        assert spread == 1.0 and scale != 1.0
        before = -mixture.pool(0).log_prob(y).mean()
        after = -recalibrate(mixture, 1.0, scale, members=True).pool(0).log_prob(y).mean()
        assert after < before
        return
    mixture = gaussians(torch.as_tensor(mean), 1.0, covariance)
    assert fit_recalibration(mixture, y, members=False) == (1.0, 1.0)
    spread, scale = fit_recalibration(mixture, y, members=False, scale_prior_sd=math.inf)
    expected = np.sqrt(((y.numpy() - mean) ** 2).sum(1).mean() / d)
    assert spread == 1.0 and scale != 1.0
    assert scale == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("prior_sd", [0.05, 0.1, 0.5])
def test_the_scale_under_a_prior_is_the_maximum_a_posteriori_value(prior_sd):
    """One Gaussian per row, D = 1: the posterior of u = log(scale) peaks where
    n (1 - m exp(-2u)) + u / prior_sd^2 = 0, with m the mean squared standardised residual."""
    rng = np.random.default_rng(6)
    n = 40
    y = torch.as_tensor(rng.normal(0.0, 1.6, size=(n, 1)))
    m = float(y.square().mean())
    peak = optimize.brentq(lambda u: n * (1 - m * np.exp(-2 * u)) + u / prior_sd**2, -3, 3)
    _, scale = fit_recalibration(
        gaussians(torch.zeros(n, 1), 1.0), y, members=False, scale_prior_sd=prior_sd
    )
    assert scale == pytest.approx(np.exp(peak), rel=1e-4)
    assert 1.0 < scale < np.sqrt(m)  # pulled from the likelihood's peak towards 1
