"""The MDN estimator: quality on known problems, the scikit-learn contract, input checks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, PolynomialFeatures, StandardScaler
from sklearn.utils.estimator_checks import check_estimator

from mdn import MDN, REFERENCE, GaussianMixture, LogGaussianMixture
from mdn.datasets import inverted_sine_on_branch, make_inverted_sine
from mdn.distributions.calibration import recalibrate

SMALL = dict(hidden=(32, 32), n_iter=300, n_models=1, verbose=0, random_state=0)


@pytest.fixture(scope="module")
def sine_data():
    X, y = make_inverted_sine(1500, random_state=0)
    X_test, y_test = make_inverted_sine(1000, random_state=1)
    return X, y, X_test, y_test


@pytest.fixture(scope="module")
def sine_model(sine_data):
    X, y, _, _ = sine_data
    return MDN(n_iter=1500, n_models=1, random_state=0, verbose=0).fit(X, y)


@pytest.fixture(scope="module")
def small_model():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    y = X[:, 0] + 0.1 * rng.normal(size=200)
    return MDN(**SMALL).fit(X, y), X, y


# ---------------------------------------------------------------------- quality
def test_inverted_sine_beats_single_gaussian_and_top_lands_on_a_branch(sine_data, sine_model):
    X, y, X_test, y_test = sine_data
    single = MDN(n_mix=1, n_iter=1500, n_models=1, random_state=0, verbose=0).fit(X, y)
    nll_mdn, nll_single = -sine_model.score(X_test, y_test), -single.score(X_test, y_test)
    assert nll_mdn < nll_single - 0.3, (nll_mdn, nll_single)
    on_branch = inverted_sine_on_branch(X_test, sine_model.predict(X_test, point="top"))
    assert on_branch.mean() >= 0.9
    # The mean of a multimodal p(y|x) falls between branches: that is why top is the default.
    between = inverted_sine_on_branch(X_test, sine_model.predict(X_test, point="mean"))
    assert between.mean() < on_branch.mean()


def test_interval_coverage_on_held_out_data(sine_data, sine_model):
    _, _, X_test, y_test = sine_data
    lower, upper = sine_model.predict_interval(X_test, coverage=0.9)
    assert np.all(lower <= upper)
    assert 0.84 <= np.mean((y_test >= lower) & (y_test <= upper)) <= 0.96


def test_full_covariance_recovers_target_correlation():
    rng = np.random.default_rng(1)
    n, rho = 3000, 0.8
    X = rng.uniform(-1, 1, size=(n, 1))
    noise = rng.multivariate_normal([0, 0], [[0.04, rho * 0.04], [rho * 0.04, 0.04]], size=n)
    y = np.hstack([np.sin(2 * X), X**2]) + noise
    model = MDN(n_mix=1, hidden=(32, 32), n_iter=1500, n_models=1, random_state=0, verbose=0).fit(
        X, y
    )
    cov = model.predict_dist(X[:200]).covariance().numpy()
    corr = cov[:, 0, 1] / np.sqrt(cov[:, 0, 0] * cov[:, 1, 1])
    assert abs(np.median(corr) - rho) < 0.1
    assert model.predict(X[:5]).shape == (5, 2)


# ---------------------------------------------------------------------- predictions
@pytest.mark.parametrize("point", ["top", "mean", "mode", "median"])
def test_point_estimates_match_the_distribution(small_model, point):
    model, X, _ = small_model
    dist = model.predict_dist(X[:20])
    expected = getattr(dist, point)().numpy()[:, 0]
    np.testing.assert_allclose(model.predict(X[:20], point=point), expected, rtol=1e-6)


def test_chunked_prediction_equals_one_pass(small_model):
    model, X, y = small_model
    chunked = clone(model).set_params(chunk_size=7)
    chunked.__dict__.update({k: v for k, v in model.__dict__.items() if k.endswith("_")})
    np.testing.assert_array_equal(chunked.predict(X), model.predict(X))
    np.testing.assert_array_equal(chunked.log_prob(X, y), model.log_prob(X, y))
    np.testing.assert_array_equal(chunked.predict_interval(X)[1], model.predict_interval(X)[1])


def test_log_prob_score_and_sample(small_model):
    model, X, y = small_model
    log_prob = model.log_prob(X, y)
    assert log_prob.shape == (len(X),) and np.all(np.isfinite(log_prob))
    assert model.score(X, y) == pytest.approx(log_prob.mean())
    draws = model.sample(X[:10], n_samples=4000, random_state=0)
    assert draws.shape == (4000, 10)
    np.testing.assert_allclose(draws.mean(0), model.predict(X[:10], point="mean"), atol=0.02)
    np.testing.assert_array_equal(draws, model.sample(X[:10], n_samples=4000, random_state=0))


def test_scaler_folds_exactly_into_user_units(small_model):
    model, X, y = small_model
    # NLL in original units = scaled-space NLL + log|scale| of the target scaler.
    z_x = torch.as_tensor((X - model.x_shift_) / model.x_scale_, dtype=torch.float32)
    z_y = torch.as_tensor((y[:, None] - model.y_shift_) / model.y_scale_)
    with torch.no_grad():
        mixture = recalibrate(
            model.network_(z_x).to(torch.float64),
            model.member_spread_,
            model.component_scale_,
            model.tail_weight_,
            members=False,
        )
        scaled = mixture.log_prob(z_y).numpy()
    np.testing.assert_allclose(
        model.log_prob(X, y), scaled - np.log(model.y_scale_).sum(), rtol=1e-6
    )


def test_log_target_gives_exact_log_normal_mixture():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(400, 2))
    y = np.exp(0.5 * X[:, 0] + 0.2 * rng.normal(size=400))
    model = MDN(target_transform="log", **SMALL).fit(X, y)
    dist = model.predict_dist(X[:50])
    assert isinstance(dist, LogGaussianMixture)
    # log_prob in user units = log-space log_prob - log y (the Jacobian of exp).
    base_log_prob = dist.base.log_prob(torch.as_tensor(np.log(y[:50, None]))).numpy()
    np.testing.assert_allclose(
        model.log_prob(X[:50], y[:50]), base_log_prob - np.log(y[:50]), rtol=1e-10
    )
    lower, upper = model.predict_interval(X[:50])
    assert np.all(lower > 0) and np.all(model.sample(X[:50], 10, random_state=0) > 0)
    assert np.all((model.predict(X[:50]) > lower) & (model.predict(X[:50]) < upper))
    with pytest.raises(ValueError, match="y > 0"):
        MDN(target_transform="log", **SMALL).fit(X, y - 1)


def test_predict_dist_is_a_gaussian_mixture_in_user_units(small_model):
    model, X, _ = small_model
    dist = model.predict_dist(X[:30])
    assert isinstance(dist, GaussianMixture) and dist.batch_shape == (30,)
    # recalibrate="auto" on these few validation rows fitted a tail: a second copy of each
    # component.
    assert model.tail_weight_ > 0
    assert dist.dtype == torch.float64 and dist.n_components == 2 * model.n_mix


def test_pandas_in_pandas_out():
    rng = np.random.default_rng(3)
    X = pd.DataFrame(rng.normal(size=(120, 2)), columns=["a", "b"], index=np.arange(120) + 7)
    y = pd.Series(X["a"] * 2 + 0.1 * rng.normal(size=120), name="target", index=X.index)
    model = MDN(**SMALL).fit(X, y)
    assert list(model.feature_names_in_) == ["a", "b"] and model.target_names_ == ["target"]
    prediction = model.predict(X)
    assert isinstance(prediction, pd.Series) and prediction.name == "target"
    assert (prediction.index == X.index).all()
    with pytest.warns(UserWarning, match="valid feature names"):
        assert isinstance(model.predict(X.to_numpy()), np.ndarray)
    with pytest.raises(ValueError, match="feature names"):
        model.predict(X.rename(columns={"a": "c"}))


def test_torch_tensors_are_accepted(small_model):
    model, X, _ = small_model
    np.testing.assert_array_equal(model.predict(torch.as_tensor(X)), model.predict(X))


# ---------------------------------------------------------------------- determinism
def test_same_random_state_same_model():
    rng = np.random.default_rng(4)
    X, y = rng.normal(size=(150, 2)), rng.normal(size=150)
    first = MDN(**SMALL).fit(X, y).predict(X)
    np.testing.assert_array_equal(first, MDN(**SMALL).fit(X, y).predict(X))
    other = MDN(**{**SMALL, "random_state": 1}).fit(X, y).predict(X)
    assert not np.array_equal(first, other)


# ---------------------------------------------------------------------- scikit-learn
def test_check_estimator():
    results = check_estimator(MDN(hidden=(8,), n_iter=20, verbose=0, random_state=0), on_fail=None)
    failed = [(r["check_name"], r["exception"]) for r in results if r["status"] == "failed"]
    assert not failed
    skipped = {r["check_name"] for r in results if r["status"] == "skipped"}
    # Array API input is checked only when SCIPY_ARRAY_API is set; MDN converts such
    # inputs to NumPy like any other array.
    assert skipped <= {"check_array_api_input"}


def test_clone_pipeline_grid_search_and_cross_validation():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(150, 2))
    y = X[:, 0] - X[:, 1] + 0.1 * rng.normal(size=150)
    params = dict(hidden=(16,), n_iter=100, verbose=0, random_state=0)
    model = MDN(**params)
    assert clone(model).get_params() == model.get_params()
    pipeline = make_pipeline(PolynomialFeatures(2), StandardScaler(), MDN(**params))
    assert pipeline.fit(X, y).predict(X).shape == (150,)
    scores = cross_val_score(MDN(**params), X, y, cv=3)
    assert scores.shape == (3,) and np.all(np.isfinite(scores))
    search = GridSearchCV(MDN(**params), {"n_mix": [1, 2]}, cv=2).fit(X, y)
    assert search.best_params_["n_mix"] in (1, 2)


def test_validation_and_early_stopping_record_history():
    rng = np.random.default_rng(6)
    X, y = rng.normal(size=(100, 1)), rng.normal(size=100)
    model = MDN(
        hidden=(64, 64), lr=1e-2, l2=0, n_iter=3000, patience=200, verbose=0, random_state=0
    ).fit(X, y)
    history = model.history_
    assert model.n_iter_ < 3000, "noise-only data must trigger early stopping"
    assert len(history["val_nll"]) == len(history["step"])
    assert history["best_step"] == history["step"][int(np.argmin(history["val_nll"]))]
    no_val = MDN(**{**SMALL, "validation_fraction": 0}).fit(X, y)
    assert no_val.history_["val_nll"] == [] and no_val.n_iter_ == SMALL["n_iter"]


# ---------------------------------------------------------------------- bad input
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_inputs_are_rejected(bad):
    X, y = np.ones((20, 2)), np.ones(20)
    X_bad, y_bad = X.copy(), y.copy()
    X_bad[3, 1] = bad
    y_bad[5] = bad
    with pytest.raises(ValueError, match=r"Input X contains (NaN|infinity)"):
        MDN(**SMALL).fit(X_bad, y)
    if np.isnan(bad):  # a missing target: its row has no observed target and is dropped
        with pytest.warns(UserWarning, match="1 of 20 rows have every target missing"):
            MDN(**SMALL).fit(X, y_bad)
    else:
        with pytest.raises(ValueError, match=r"Input y contains infinity"):
            MDN(**SMALL).fit(X, y_bad)


def test_shape_errors(small_model):
    model, X, y = small_model
    with pytest.raises(ValueError, match="X has 2 features, but MDN is expecting 3"):
        model.predict(X[:, :2])
    with pytest.raises(ValueError, match="dim 3"):
        MDN(**SMALL).fit(X.reshape(200, 3, 1), y)
    with pytest.raises(ValueError, match="dim 3"):
        model.predict(X.reshape(200, 3, 1))
    with pytest.raises(ValueError, match="0 sample"):
        MDN(**SMALL).fit(np.empty((0, 3)), np.empty(0))
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        MDN(**SMALL).fit(X, y[:-1])
    with pytest.raises(ValueError, match="different numbers of rows"):
        model.log_prob(X, y[:-1])
    with pytest.raises(ValueError, match="target column"):
        model.log_prob(X, np.c_[y, y])


def test_predict_before_fit():
    with pytest.raises(NotFittedError):
        MDN().predict(np.ones((3, 2)))
    with pytest.raises(NotFittedError):
        MDN().save("never-written.safetensors")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"covariance": "weird"}, "covariance must be one of"),
        ({"n_mix": 0}, "n_mix must be an integer >= 1"),
        ({"hidden": "100"}, "hidden must be a sequence"),
        ({"hidden": (100, -1)}, "hidden must be a sequence"),
        ({"lr": -1.0}, "lr must be a number > 0"),
        ({"validation_fraction": 1.0}, "validation_fraction must be a number >= 0 and < 1"),
        ({"activation": "swish!"}, "activation must be one of"),
        ({"target_transform": "sqrt"}, "target_transform must be one of"),
        ({"lr_schedule": "linear"}, "lr_schedule must be one of"),
        ({"ema_decay": 1.0}, "ema_decay must be a number >= 0 and < 1 or None"),
        ({"device": "tpu!"}, "device must be"),
        ({"scaler_x": "zscore"}, "scaler_x must be one of"),
        ({"patience": 0}, "patience must be an integer >= 1 or None"),
    ],
)
def test_unknown_or_invalid_parameters(params, message):
    with pytest.raises(ValueError, match=message):
        MDN(**{**SMALL, **params}).fit(np.ones((10, 2)), np.arange(10.0))


def test_invalid_prediction_arguments(small_model):
    model, X, _ = small_model
    with pytest.raises(ValueError, match="point must be one of"):
        model.predict(X, point="average")
    with pytest.raises(ValueError, match="coverage"):
        model.predict_interval(X, coverage=1.5)
    with pytest.raises(ValueError, match="n_samples"):
        model.sample(X, n_samples=0)


def test_defaults_are_an_ensemble_and_reference_reproduces_the_reference_schedule():
    assert MDN().n_models == 5
    X, y = make_inverted_sine(400, random_state=3)
    reference = MDN(
        **{**REFERENCE, "n_iter": 60, "hidden": (16,), "verbose": 0, "random_state": 0}
    ).fit(X, y)
    assert reference.network_.n_models == 10
    assert reference.history_["val_nll"] == [] and reference.n_iter_ == 60  # no validation
    assert (reference.combine, reference.bagging, reference.clip_grad) == ("median", 0.75, None)
    assert (reference.l2, reference.epsilon, reference.lr_schedule) == (1e-3, 1e-3, "constant")
    assert reference.ema_decay is None  # the reference keeps its last step's weights
    assert reference.scaler_y.feature_range == (-1, 1)  # as the original scales its targets
    assert REFERENCE["scaler_y"].get_params() == MinMaxScaler((-1, 1)).get_params()
    assert (reference.member_spread_, reference.component_scale_) == (1.0, 1.0)
    members = reference.predict_members(X[:5])
    np.testing.assert_allclose(reference.predict(X[:5]), np.median(members, axis=0))


def test_weight_averaging_is_on_by_default_and_reaches_the_loop(monkeypatch):
    import mdn.estimator.model
    from mdn.training import train

    seen = []
    monkeypatch.setattr(
        mdn.estimator.model,
        "train",
        lambda *args, **kwargs: seen.append(kwargs["ema_decay"]) or train(*args, **kwargs),
    )
    X, y = make_inverted_sine(200, random_state=0)
    for decay in (0.99, None, 0.5):
        MDN(
            **({} if decay == 0.99 else {"ema_decay": decay}),
            n_iter=10,
            hidden=(8,),
            n_models=1,
            verbose=0,
            random_state=0,
        ).fit(X, y)
    assert seen == [0.99, None, 0.5]


def test_parameters_after_n_mix_are_keyword_only():
    """New parameters can then sit beside related ones without shifting positional calls."""
    assert MDN(3).n_mix == 3
    with pytest.raises(TypeError):
        MDN(3, (16,))
