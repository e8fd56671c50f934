"""Scaling: scikit-learn scalers reduced to shift and scale vectors, and what is refused."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    MinMaxScaler,
    PolynomialFeatures,
    QuantileTransformer,
    RobustScaler,
    StandardScaler,
)

from mdn.estimator.scaling import SCALERS, AffineScaling, fit_scaling, make_scaler


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    columns = [
        rng.normal(5.0, 2.0, 200),
        rng.exponential(3.0, 200) + 1.0,
        rng.uniform(-100.0, -20.0, 200),
        1e4 + rng.normal(0.0, 1e-1, 200),
    ]
    return np.column_stack(columns)


def assert_matches(scaling: AffineScaling, fitted, X: np.ndarray) -> None:
    np.testing.assert_allclose(scaling.transform(X), fitted.transform(X), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", sorted(SCALERS))
def test_named_scalers_reproduce_sklearn(name, data):
    scaling = fit_scaling(name, data, "target_scaler")
    assert isinstance(scaling, AffineScaling)
    assert scaling.shift.shape == scaling.scale.shape == (data.shape[1],)
    assert_matches(scaling, SCALERS[name]().fit(data), data)
    # Points outside the fitted range too (the map is affine everywhere).
    rng = np.random.default_rng(1)
    other = data.mean(0) + 10 * data.std(0) * rng.normal(size=(30, data.shape[1]))
    assert_matches(scaling, SCALERS[name]().fit(data), other)


@pytest.mark.parametrize(
    "scaler",
    [
        StandardScaler(with_mean=False),
        MinMaxScaler(feature_range=(-3, 7)),
        RobustScaler(quantile_range=(10, 90)),
        StandardScaler(),
    ],
    ids=repr,
)
def test_transformer_instances_are_cloned_and_reproduced(scaler, data):
    scaling = fit_scaling(scaler, data, "x_scaler")
    assert_matches(scaling, scaler.__class__(**scaler.get_params()).fit(data), data)
    assert not hasattr(scaler, "n_features_in_")  # the caller's object is left unfitted


@pytest.mark.parametrize("spec", [None, "none"])
def test_none_gives_identity(spec, data):
    scaling = fit_scaling(spec, data, "x_scaler")
    np.testing.assert_array_equal(scaling.shift, np.zeros(4))
    np.testing.assert_array_equal(scaling.scale, np.ones(4))
    np.testing.assert_array_equal(scaling.transform(data), data)
    assert make_scaler(spec, "x_scaler") is None


def test_pipeline_of_affine_scalers_is_accepted(data):
    pipeline = make_pipeline(StandardScaler(), MinMaxScaler())
    scaling = fit_scaling(pipeline, data, "x_scaler")
    assert_matches(scaling, make_pipeline(StandardScaler(), MinMaxScaler()).fit(data), data)


@pytest.mark.parametrize(
    "transformer",
    [
        QuantileTransformer(n_quantiles=50),
        PCA(),
        PCA(n_components=1),
        FunctionTransformer(np.log1p),
        FunctionTransformer(np.square),
    ],
    ids=repr,
)
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_non_affine_transformers_are_refused(transformer, data):
    with pytest.raises(ValueError, match="affinely") as info:
        fit_scaling(transformer, data, "x_scaler")
    assert "x_scaler" in str(info.value)


@pytest.mark.parametrize("transformer", [PCA(n_components=2), PolynomialFeatures(2)], ids=repr)
def test_width_changing_transformers_are_refused_with_advice(transformer, data):
    with pytest.raises(ValueError, match="affinely"):
        fit_scaling(transformer, data, "x_scaler")


def test_column_dropping_scale_is_refused(data):
    # A transformer that maps a column to a constant (slope 0) cannot be inverted.
    collapse = FunctionTransformer(lambda v: v * np.array([1.0, 0.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="affinely"):
        fit_scaling(collapse, data, "x_scaler")


def test_unknown_name_raises_value_error(data):
    with pytest.raises(ValueError, match="target_scaler"):
        fit_scaling("zscore", data, "target_scaler")


@pytest.mark.parametrize("spec", [object(), 3.0, np.ones(3)])
def test_non_transformer_raises_type_error(spec, data):
    with pytest.raises(TypeError, match="x_scaler"):
        fit_scaling(spec, data, "x_scaler")


@pytest.mark.parametrize("name", sorted(SCALERS))
@pytest.mark.parametrize("value", [0.0, 7.5, -3.0])
def test_constant_columns_give_finite_scaling(name, value, data):
    X = data.copy()
    X[:, 1] = value
    scaling = fit_scaling(name, X, "x_scaler")
    assert np.all(np.isfinite(scaling.shift)) and np.all(np.isfinite(scaling.scale))
    assert np.all(scaling.scale != 0)
    z = scaling.transform(X)
    assert np.all(np.isfinite(z))
    assert_matches(scaling, SCALERS[name]().fit(X), X)


def test_single_row_gives_finite_scaling():
    X = np.array([[1.0, -2.0, 0.0]])
    for name in SCALERS:
        scaling = fit_scaling(name, X, "x_scaler")
        assert np.all(np.isfinite(scaling.shift)) and np.all(np.isfinite(scaling.scale)), name
        np.testing.assert_allclose(
            scaling.transform(X), SCALERS[name]().fit(X).transform(X), atol=1e-12
        )
