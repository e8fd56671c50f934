"""The bad-input matrix: what ``MDN`` does with every kind of wrong or unusual input.

Each case asserts either a correct result or the documented exception type with a message
that names the problem (a specific regex, never a bare raise). Where the library is wrong,
or its message does not name the problem, the case is a strict xfail that says what should
happen instead, so that fixing it turns the case into an XPASS that must be unmarked.
"""

from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file
from sklearn.exceptions import NotFittedError

import mdn
from mdn import MDN
from mdn.params import PARAMETERS

QUICK = dict(n_models=2, hidden=(8,), n_iter=60, verbose=0, random_state=0)
N, P = 60, 2


def make_data(d: int = 1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, P))
    y = np.stack([X[:, 0] + 0.5 * X[:, 1] ** 2, -X[:, 1]][:d], axis=1)
    y = y + 0.1 * rng.normal(size=y.shape)
    return X, (y[:, 0] if d == 1 else y)


def quiet_fit(model: MDN, X, y) -> MDN:
    """Fit with every warning an error: the inputs here are meant to be unremarkable."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return model.fit(X, y)


def changed(X: np.ndarray, row: int, column: int, value: object) -> np.ndarray:
    out = X.astype(object) if value is None else X.copy()
    out[row, column] = value
    return out


def xfail(reason: str) -> pytest.MarkDecorator:
    return pytest.mark.xfail(strict=True, reason=reason)


@pytest.fixture(scope="module")
def data():
    return make_data()


@pytest.fixture(scope="module")
def model(data):
    """An ensemble of two, on a 1-D target, fitted on NumPy arrays."""
    return quiet_fit(MDN(**QUICK), *data)


@pytest.fixture(scope="module")
def frame_data():
    X, y = make_data(d=2, seed=1)
    index = pd.Index([f"r{i}" for i in range(N)], name="id")
    return (
        pd.DataFrame(X, columns=["a", "b"], index=index),
        pd.DataFrame(y, columns=["t1", "t2"], index=index),
    )


@pytest.fixture(scope="module")
def frame_model(frame_data):
    """One network on two targets, fitted on pandas DataFrames (feature and target names)."""
    return quiet_fit(MDN(**{**QUICK, "n_models": 1}), *frame_data)


@pytest.fixture(scope="module")
def series_model(frame_data, data):
    """One target given as a named Series, inputs as a DataFrame."""
    return quiet_fit(MDN(**QUICK), frame_data[0], pd.Series(data[1], name="t"))


@pytest.fixture(scope="module")
def log_model(data):
    X, y = data
    return quiet_fit(MDN(**{**QUICK, "target_transform": "log"}), X, np.exp(y))


# ---------------------------------------------------------------- prediction: bad X
METHODS = {
    "predict-top": lambda m, X, y: m.predict(X, point="top"),
    "predict-mean": lambda m, X, y: m.predict(X, point="mean"),
    "predict-mode": lambda m, X, y: m.predict(X, point="mode"),
    "predict-median": lambda m, X, y: m.predict(X, point="median"),
    "predict_members": lambda m, X, y: m.predict_members(X),
    "predict_interval": lambda m, X, y: m.predict_interval(X, coverage=0.8),
    "predict_dist": lambda m, X, y: m.predict_dist(X),
    "sample": lambda m, X, y: m.sample(X, n_samples=2, random_state=0),
    "log_prob": lambda m, X, y: m.log_prob(X, y),
    "score": lambda m, X, y: m.score(X, y),
    "evaluate": lambda m, X, y: m.evaluate(X, y),
}

ROW = r"Input X contains NaN or infinity in row {}, column {};"
BAD_X = {  # (X, y) -> (X, y), and the message
    "nan": (lambda X, y: (changed(X, 3, 1, np.nan), y), ROW.format(3, 1)),
    "inf": (lambda X, y: (changed(X, 4, 0, np.inf), y), ROW.format(4, 0)),
    "-inf-last-row": (lambda X, y: (changed(X, N - 1, 1, -np.inf), y), ROW.format(N - 1, 1)),
    "None": (lambda X, y: (changed(X, 5, 1, None), y), ROW.format(5, 1)),
    "beyond-float32": (
        lambda X, y: (changed(X, 7, 0, 1e300), y),
        r"Input X has values beyond float32's range after scaling in row 7, column 0;",
    ),
    "3-features": (
        lambda X, y: (np.c_[X, X[:, 0]], y),
        r"X has 3 features, but MDN is expecting 2 features as input",
    ),
    "1-feature": (
        lambda X, y: (X[:, :1], y),
        r"X has 1 features, but MDN is expecting 2 features as input",
    ),
    "1-D": (lambda X, y: (X[:, 0], y), r"Expected 2D array, got 1D array instead"),
    "3-D": (lambda X, y: (X[:, :, None], y), r"Found array with dim 3"),
    "complex": (lambda X, y: (X + 1j, y), r"Complex data not supported"),
    "words": (
        lambda X, y: (np.full(X.shape, "abc"), y),
        r"could not convert string to float: .*'abc'",
    ),
    "0-rows": (lambda X, y: (X[:0], y[:0]), r"Found array with 0 sample\(s\)"),
}


@pytest.mark.parametrize("kind", BAD_X)
@pytest.mark.parametrize("method", METHODS)
def test_bad_X_at_prediction_is_refused_and_named(model, data, method, kind):
    make, message = BAD_X[kind]
    X, y = make(*data)
    with pytest.raises(ValueError, match=message):
        METHODS[method](model, X, y)


@pytest.fixture(scope="module")
def chunked_model(data):
    return quiet_fit(MDN(**{**QUICK, "chunk_size": 16}), *data)  # 8 rows per member a chunk


def test_nan_in_a_later_chunk_names_its_row_in_the_input(chunked_model, data):
    X = changed(changed(data[0], 41, 0, np.nan), 50, 1, np.inf)
    with pytest.raises(ValueError, match=ROW.format(41, 0)):
        chunked_model.predict_interval(X)


def test_the_count_of_bad_rows_says_which_rows_it_counts(chunked_model, data):
    """Prediction looks at one chunk at a time (8 rows here): X is never scanned whole."""
    X = changed(changed(changed(data[0], 41, 0, np.nan), 42, 0, np.nan), 50, 1, np.nan)
    with pytest.raises(
        ValueError, match=ROW.format(41, 0)[:-1] + r" \(2 such rows in rows 40 to 47\)"
    ):
        chunked_model.predict(X)


# ---------------------------------------------------------------- fitting: bad X and y
OVERFLOWED_VARIANCE = (
    "StandardScaler's variance overflows on the one value 1e300, its scale falls back to 1, "
    "so every row is beyond float32 after scaling and the message names row 0 (of 60 such "
    "rows) instead of row 5, the value that is out of range"
)


def _words_frame(X, y):
    return pd.DataFrame({"a": X[:, 0], "b": ["x"] * len(X)}), y


def _category_frame(X, y):
    return pd.DataFrame({"a": X[:, 0], "b": pd.Categorical(["x", "y"] * (len(X) // 2))}), y


def _mixed_names(X, y):
    return pd.DataFrame(X, columns=["a", 1]), y


def _all_missing_column(X, y):
    return X, np.c_[y, np.full(len(y), np.nan)]


FIT_CASES = [  # id, (X, y) -> (X, y, extra params), exception, message
    pytest.param(
        lambda X, y: (changed(X, 3, 1, np.nan), y, {}),
        ValueError,
        ROW.format(3, 1),
        id="X-nan",
    ),
    pytest.param(
        lambda X, y: (changed(X, 4, 0, np.inf), y, {}),
        ValueError,
        ROW.format(4, 0),
        id="X-inf",
    ),
    pytest.param(
        lambda X, y: (changed(X, 5, 1, None), y, {}),
        ValueError,
        ROW.format(5, 1),
        id="X-None",
    ),
    pytest.param(
        lambda X, y: (X[:0], y[:0], {}),
        ValueError,
        r"Found array with 0 sample\(s\)",
        id="X-0-rows",
    ),
    pytest.param(
        lambda X, y: (X[:, :0], y, {}),
        ValueError,
        r"Found array with 0 feature\(s\)",
        id="X-0-features",
    ),
    pytest.param(
        lambda X, y: (X[:, 0], y, {}),
        ValueError,
        r"Expected 2D array, got 1D array",
        id="X-1-D",
    ),
    pytest.param(
        lambda X, y: (X[:, :, None], y, {}), ValueError, r"Found array with dim 3", id="X-3-D"
    ),
    pytest.param(
        lambda X, y: (X + 1j, y, {}), ValueError, r"Complex data not supported", id="X-complex"
    ),
    pytest.param(
        lambda X, y: (np.full(X.shape, "abc"), y, {}),
        ValueError,
        r"could not convert string to float: .*'abc'",
        id="X-words",
    ),
    pytest.param(
        lambda X, y: (*_words_frame(X, y), {}),
        ValueError,
        r"could not convert string to float: 'x'",
        id="DataFrame-text-column",
    ),
    pytest.param(
        lambda X, y: (*_category_frame(X, y), {}),
        ValueError,
        r"could not convert string to float: 'x'",
        id="DataFrame-category-column",
    ),
    pytest.param(
        lambda X, y: (*_mixed_names(X, y), {}),
        TypeError,
        r"Feature names are only supported if all input features have string names",
        id="DataFrame-mixed-name-types",
    ),
    pytest.param(
        lambda X, y: (X, y[:10], {}),
        ValueError,
        r"inconsistent numbers of samples: \[60, 10\]",
        id="X-y-rows-differ",
    ),
    pytest.param(
        lambda X, y: (changed(X, 5, 0, 1e300), y, {}),
        ValueError,
        r"Input X has values beyond float32's range after scaling in row 5, column 0;",
        id="X-beyond-float32",
    ),
    pytest.param(
        lambda X, y: (X, None, {}),
        ValueError,
        r"requires y to be passed, but the target y is None",
        id="y-None",
    ),
    pytest.param(
        lambda X, y: (X, changed(y[:, None], 2, 0, np.inf)[:, 0], {}),
        ValueError,
        r"Input y contains infinity",
        id="y-inf",
    ),
    pytest.param(
        lambda X, y: (X, changed(y[:, None], 9, 0, -np.inf)[:, 0], {}),
        ValueError,
        r"Input y contains infinity",
        id="y-minus-inf",
    ),
    pytest.param(
        lambda X, y: (*_all_missing_column(X, y), {}),
        ValueError,
        r"target column\(s\) \[1\] have no observed value \(all NaN\); drop them",
        id="y-all-NaN-column",
    ),
    pytest.param(
        lambda X, y: (X, np.full(len(y), np.nan), {}),
        ValueError,
        r"target column\(s\) \[0\] have no observed value \(all NaN\)",
        id="y-all-NaN",
    ),
    pytest.param(
        lambda X, y: (X, np.empty((len(y), 0)), {}),
        ValueError,
        r"y has no target columns; pass at least one",
        id="y-0-columns",
    ),
    pytest.param(
        lambda X, y: (X, y[:, None, None], {}), ValueError, r"Found array with dim 3", id="y-3-D"
    ),
    pytest.param(
        lambda X, y: (X, np.full(len(y), "abc"), {}),
        ValueError,
        r"could not convert string to float: .*'abc'",
        id="y-words",
    ),
    pytest.param(
        lambda X, y: (X, y + 1j, {}), ValueError, r"Complex data not supported", id="y-complex"
    ),
    pytest.param(
        lambda X, y: (X, changed(y[:, None], 5, 0, 1e300)[:, 0], {"scaler_y": "robust"}),
        ValueError,
        r"Input y has values beyond float32's range after scaling in row 5, column 0;",
        id="y-beyond-float32-robust",
    ),
    pytest.param(
        lambda X, y: (X, changed(y[:, None], 5, 0, 1e300)[:, 0], {}),
        ValueError,
        r"Input y has values beyond float32's range after scaling in row 5, column 0;",
        id="y-beyond-float32-standard",
        marks=[
            xfail(OVERFLOWED_VARIANCE),
            pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning"),
            pytest.mark.filterwarnings("ignore:scaler_y. in column:UserWarning"),
        ],
    ),
    pytest.param(
        lambda X, y: (
            X,
            changed(np.exp(y)[:, None], 7, 0, -1.0)[:, 0],
            {"target_transform": "log"},
        ),
        ValueError,
        r"needs y > 0, but 1 target values are <= 0 \(column 0: 1, smallest -1, rows 7\); .*"
        r"nonpositive_targets='missing'",
        id="log-target-negative",
    ),
    pytest.param(
        lambda X, y: (X, changed(np.exp(y)[:, None], 8, 0, 0.0)[:, 0], {"target_transform": "log"}),
        ValueError,
        r"needs y > 0, but 1 target values are <= 0 \(column 0: 1, smallest 0, rows 8\)",
        id="log-target-zero",
    ),
]


@pytest.mark.parametrize(("make", "error", "message"), FIT_CASES)
def test_bad_data_at_fit_is_refused_and_named(data, make, error, message):
    X, y, params = make(*data)
    with pytest.raises(error, match=message):
        MDN(**{**QUICK, **params}).fit(X, y)


def test_rows_without_any_target_are_dropped_with_a_warning():
    X, y = make_data(d=2)
    gappy = y.copy()
    gappy[[1, 2]] = np.nan
    gappy[3, 0] = np.nan  # one of two missing: the row stays
    with pytest.warns(UserWarning, match=r"2 of 60 rows have every target missing \(NaN\) and"):
        with_gaps = MDN(**QUICK).fit(X, gappy)
    keep = np.ones(N, dtype=bool)
    keep[[1, 2]] = False
    without = quiet_fit(MDN(**QUICK), X[keep], gappy[keep])
    np.testing.assert_array_equal(with_gaps.predict(X), without.predict(X))


@pytest.mark.parametrize("validation_fraction", [0.0, 0.1])
def test_one_row_fits(data, validation_fraction):
    X, y = data
    model = MDN(**{**QUICK, "validation_fraction": validation_fraction})
    if validation_fraction:
        with pytest.warns(UserWarning, match=r"leaves no validation or no training row out of 1"):
            model.fit(X[:1], y[:1])
    else:
        quiet_fit(model, X[:1], y[:1])
    assert np.isfinite(model.predict(X)).all()
    assert np.isfinite(model.log_prob(X, y)).all()


# ---------------------------------------------------------------- parameters
BAD_PARAMS = [  # name, value, exception, message
    ("n_mix", 0, ValueError, r"n_mix must be an integer >= 1, got 0"),
    ("n_mix", True, ValueError, r"n_mix must be an integer >= 1, got True"),
    ("hidden", "100", ValueError, r"hidden must be a sequence of positive integers .*got '100'"),
    ("hidden", (8, 0), ValueError, r"hidden must be a sequence of positive integers"),
    ("activation", "swish", ValueError, r"activation must be one of \(.*\), got 'swish'"),
    ("covariance", "weird", ValueError, r"covariance must be one of \('full', 'diag', 'spher"),
    ("epsilon", 0, ValueError, r"epsilon must be a number > 0, got 0"),
    ("n_models", 0, ValueError, r"n_models must be an integer >= 1, got 0"),
    ("lr", -1, ValueError, r"lr must be a number > 0, got -1"),
    ("lr", math.nan, ValueError, r"lr must be a number > 0, got nan"),
    ("lr_schedule", "linear", ValueError, r"lr_schedule must be one of .*got 'linear'"),
    ("lr_patience", 0, ValueError, r"lr_patience must be an integer >= 1, got 0"),
    ("ema_decay", 1.0, ValueError, r"ema_decay must be a number >= 0 and < 1 or None, got 1.0"),
    ("l2", -1e-4, ValueError, r"l2 must be a number >= 0, got -0.0001"),
    ("n_iter", 1.5, ValueError, r"n_iter must be an integer >= 1, got 1.5"),
    ("batch", 0, ValueError, r"batch must be an integer >= 1, got 0"),
    ("clip_grad", 0, ValueError, r"clip_grad must be a number > 0 or None, got 0"),
    ("patience", 0, ValueError, r"patience must be an integer >= 1 or None, got 0"),
    ("scaler_x", "weird", ValueError, r"scaler_x must be one of .*got 'weird'"),
    ("scaler_y", 3, TypeError, r"scaler_y must be a scaler name or an object with fit and "),
    ("target_transform", "sqrt", ValueError, r"target_transform must be one of .*got 'sqrt'"),
    ("nonpositive_targets", "drop", ValueError, r"nonpositive_targets must be one of .*'drop'"),
    ("spectral_features", "ratio", ValueError, r"spectral_features must be one of .*'ratio'"),
    ("validation_fraction", 1, ValueError, r"validation_fraction must be a number >= 0 and < 1"),
    ("bagging", 1.5, ValueError, r"bagging must be a share of the rows in \(0, 1\] or None"),
    ("bagging", 0, ValueError, r"bagging must be a share of the rows in \(0, 1\] or None"),
    ("combine", "mean", ValueError, r"combine must be one of \('median', 'mixture'\), got 'me"),
    ("point", "centre", ValueError, r"point must be one of \('auto', 'top', 'mean', 'mode', 'm"),
    ("point", None, ValueError, r"point must be one of \('auto', .*got None"),
    ("recalibrate", 1, ValueError, r'recalibrate must be "auto", "scale", True or False, got 1'),
    ("device", "tpu!", ValueError, r"device must be 'cpu', 'cuda', 'cuda:N', 'mps' or 'auto', "),
    ("verbose", -1, ValueError, r"verbose must be an integer >= 0, got -1"),
    ("chunk_size", 0, ValueError, r"chunk_size must be an integer >= 1, got 0"),
    ("checkpoint", 3, ValueError, r"checkpoint must be a file name or None, got 3"),
    ("checkpoint_every", 0, ValueError, r"checkpoint_every must be an integer >= 1, got 0"),
    ("n_threads", 0, ValueError, r"n_threads must be an integer >= 1 or None, got 0"),
    ("n_threads", 1.5, ValueError, r"n_threads must be an integer >= 1 or None, got 1.5"),
    pytest.param(
        "random_state",
        "x",
        ValueError,
        r"random_state",
        id="random_state-'x'",
    ),
    pytest.param(
        "device",
        "cuda",
        ValueError,
        r"device",
        id="device-cuda-without-CUDA",
        marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA"),
    ),
]


@pytest.mark.parametrize(("name", "value", "error", "message"), BAD_PARAMS)
def test_an_invalid_parameter_is_named_at_fit(data, name, value, error, message):
    with pytest.raises(error, match=message):
        MDN(**{**QUICK, name: value}).fit(*data)


def test_every_parameter_rule_of_mdn_has_a_bad_value_above():
    covered = {case.values[0] if hasattr(case, "values") else case[0] for case in BAD_PARAMS}
    rules = set(PARAMETERS) & set(MDN().get_params())
    assert rules - covered == set()


# ---------------------------------------------------------------- prediction arguments
POINT_METHODS = {
    "predict": lambda m, X, y, p: m.predict(X, point=p),
    "predict_members": lambda m, X, y, p: m.predict_members(X, point=p),
    "evaluate": lambda m, X, y, p: m.evaluate(X, y, points=("mean", p)),
}


@pytest.mark.parametrize("point", ["bogus", "auto", "TOP", 1])  # None: the model's default
@pytest.mark.parametrize("method", POINT_METHODS)
def test_an_invalid_point_is_named(model, data, method, point):
    message = rf"point must be one of \('top', 'mean', 'mode', 'median'\) or None, got {point!r}"
    with pytest.raises(ValueError, match=message):
        POINT_METHODS[method](model, *data, point)


@pytest.mark.parametrize("coverage", [0, 1, 1.5, "0.9", math.nan, True, -0.1, None])
def test_an_invalid_coverage_is_named(model, data, coverage):
    message = (
        rf"coverage must be a number strictly between 0 and 1, got {re.escape(repr(coverage))}"
    )
    with pytest.raises(ValueError, match=message):
        model.predict_interval(data[0], coverage=coverage)


@pytest.mark.parametrize("n_samples", [0, -1, 1.5, True, "3", None])
def test_an_invalid_n_samples_is_named(model, data, n_samples):
    message = rf"n_samples must be an integer >= 1, got {re.escape(repr(n_samples))}"
    with pytest.raises(ValueError, match=message):
        model.sample(data[0], n_samples=n_samples)


def test_numpy_scalars_are_valid_arguments(model, data):
    X = data[0]
    lower, upper = model.predict_interval(X, coverage=np.float32(0.9))
    expected = model.predict_interval(X, coverage=0.9)
    np.testing.assert_allclose(lower, expected[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(upper, expected[1], rtol=1e-5, atol=1e-5)
    draws = model.sample(X, n_samples=np.int64(3), random_state=0)
    np.testing.assert_array_equal(draws, model.sample(X, n_samples=3, random_state=0))


BAD_Y = {  # y -> y, and the message
    "2-columns": (
        lambda y: np.c_[y, y],
        r"y must have 1 target column\(s\) as at fit time, got "
        r"shape \(60, 2\)",
    ),
    "10-rows": (lambda y: y[:10], r"X and y have different numbers of rows: 60 and 10"),
    "inf": (lambda y: changed(y[:, None], 2, 0, np.inf)[:, 0], r"Input y contains infinity"),
    "3-D": (lambda y: y[:, None, None], r"Found array with dim 3"),
    "words": (lambda y: np.full(len(y), "abc"), r"could not convert string to float: .*'abc'"),
}
Y_METHODS = {
    "log_prob": lambda m, X, y: m.log_prob(X, y),
    "score": lambda m, X, y: m.score(X, y),
    "evaluate": lambda m, X, y: m.evaluate(X, y),
}


@pytest.mark.parametrize("kind", BAD_Y)
@pytest.mark.parametrize("method", Y_METHODS)
def test_bad_y_when_scoring_is_refused_and_named(model, data, method, kind):
    make, message = BAD_Y[kind]
    with pytest.raises(ValueError, match=message):
        Y_METHODS[method](model, data[0], make(data[1]))


@pytest.mark.parametrize("method", list(Y_METHODS))
def test_y_none_when_scoring_is_named(model, data, method):
    with pytest.raises(ValueError, match=r"y is None"):
        Y_METHODS[method](model, data[0], None)


def test_a_1d_y_for_two_targets_is_refused(frame_model, frame_data):
    with pytest.raises(ValueError, match=r"y must have 2 target column\(s\) as at fit time, "):
        frame_model.log_prob(frame_data[0], frame_data[1]["t1"])


def test_nan_y_is_refused_by_evaluate_but_marginalised_by_log_prob(frame_model, frame_data):
    X, y = frame_data
    gappy = y.to_numpy().copy()
    gappy[:, 1] = np.nan
    gappy[0, 0] = np.nan  # nothing observed: log 1
    with pytest.raises(ValueError, match=r"y contains NaN or infinite values; drop those rows"):
        frame_model.evaluate(X, gappy)
    got = frame_model.log_prob(X, gappy)
    marginal = frame_model.predict_dist(X).marginal([0])
    expected = marginal.log_prob(torch.tensor(y.to_numpy()[:, :1])).numpy()
    np.testing.assert_allclose(got[1:], expected[1:], rtol=1e-10, atol=1e-10)
    assert got[0] == pytest.approx(0.0, abs=1e-6)


def test_sample_weight_of_the_wrong_length_is_named(model, data):
    with pytest.raises(ValueError, match=r"sample_weight"):
        model.score(*data, sample_weight=np.ones(3))


def test_a_log_target_gives_minus_infinity_at_y_at_or_below_zero(log_model, data):
    X, y = data
    positive = np.exp(y)
    bad = positive.copy()
    bad[[0, 1]] = [-1.0, 0.0]
    got = log_model.log_prob(X, bad)
    assert got[0] == got[1] == -np.inf
    np.testing.assert_array_equal(got[2:], log_model.log_prob(X, positive)[2:])


# ---------------------------------------------------------------- not fitted
UNFITTED = {
    **METHODS,
    "save": lambda m, X, y: m.save("never-written.safetensors"),
    "members_": lambda m, X, y: m.members_,
}


@pytest.mark.parametrize("method", UNFITTED)
def test_use_before_fit_is_not_fitted_error(data, method):
    with pytest.raises(NotFittedError, match=r"This MDN instance is not fitted yet"):
        UNFITTED[method](MDN(**QUICK), *data)


# ---------------------------------------------------------------- model files
def _write(path, payload: bytes):
    path.write_bytes(payload)
    return path


def _foreign(path):
    save_file({"w": torch.zeros(3)}, str(path))
    return path


def _flipped(path, saved):
    payload = bytearray(saved.read_bytes())
    payload[-1] ^= 0xFF  # in the last tensor's bytes
    return _write(path, bytes(payload))


FILE_CASES = {  # tmp_path, saved model file -> path, exception, message
    "folder": (lambda tmp, saved: tmp, IsADirectoryError, r"Is a directory"),
    "missing": (
        lambda tmp, saved: tmp / "missing.safetensors",
        FileNotFoundError,
        r"No such file or directory: .*missing\.safetensors",
    ),
    "empty": (
        lambda tmp, saved: _write(tmp / "e.safetensors", b""),
        mdn.ModelFileError,
        r"e\.safetensors is not an mdn model file: it is 0 bytes long \(empty or truncated\)",
    ),
    "5-bytes": (
        lambda tmp, saved: _write(tmp / "f.safetensors", b"12345"),
        mdn.ModelFileError,
        r"is not an mdn model file: it is 5 bytes long",
    ),
    "garbage": (
        lambda tmp, saved: _write(tmp / "g.bin", bytes(range(256)) * 4),
        mdn.ModelFileError,
        r"g\.bin is not an mdn model file: its header claims \d+ bytes but the file has",
    ),
    "json-text": (
        lambda tmp, saved: _write(tmp / "j.json", b'{"format": "mdn-model"}'),
        mdn.ModelFileError,
        r"j\.json is not an mdn model file",
    ),
    "foreign-safetensors": (
        lambda tmp, saved: _foreign(tmp / "o.st"),
        mdn.ModelFileError,
        r"o\.st is not an mdn model file: it holds no 'mdn-model' metadata",
    ),
    "truncated-model": (
        lambda tmp, saved: _write(tmp / "t.safetensors", saved.read_bytes()[:-10]),
        mdn.ModelFileError,
        r"t\.safetensors is a damaged mdn model file: the entry of tensor .* does not match",
    ),
    "half-model": (
        lambda tmp, saved: _write(tmp / "h.safetensors", saved.read_bytes()[:100]),
        mdn.ModelFileError,
        r"h\.safetensors is not an mdn model file: its header claims \d+ bytes but the file",
    ),
    "one-byte-flipped": (
        lambda tmp, saved: _flipped(tmp / "c.safetensors", saved),
        mdn.ModelFileError,
        r"c\.safetensors is damaged: its checksum does not match its contents",
    ),
}


@pytest.fixture(scope="module")
def saved(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("saved") / "model.safetensors"
    model.save(path)
    return path


@pytest.mark.parametrize("kind", FILE_CASES)
def test_loading_a_bad_file_is_refused_and_named(tmp_path, saved, kind):
    make, error, message = FILE_CASES[kind]
    path = make(tmp_path, saved)
    with pytest.raises(error, match=message):
        mdn.load(path)


def test_saving_to_a_folder_or_into_a_missing_folder_is_refused(model, tmp_path):
    with pytest.raises(IsADirectoryError, match=r"is a folder; give a file name such as"):
        model.save(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"cannot write .*nowhere.*m\.safetensors"):
        model.save(tmp_path / "nowhere" / "m.safetensors")
    assert list(tmp_path.iterdir()) == []  # no temporary file left behind


def test_a_saved_model_predicts_as_the_fitted_one(model, data, saved):
    loaded = mdn.load(saved)
    np.testing.assert_array_equal(loaded.predict(data[0]), model.predict(data[0]))
    np.testing.assert_array_equal(loaded.log_prob(*data), model.log_prob(*data))


def test_loading_onto_an_invalid_device_is_named(saved):
    with pytest.raises(ValueError, match=r"device must be"):
        mdn.load(saved, device="tpu!")


def test_a_checkpoint_in_a_folder_or_a_missing_folder_is_refused(data, tmp_path):
    with pytest.raises(IsADirectoryError, match=r"is a folder; give a file name"):
        MDN(**QUICK, checkpoint=tmp_path, checkpoint_every=10).fit(*data)
    with pytest.raises(FileNotFoundError, match=r"cannot write .*nowhere.*ck\.safetensors"):
        MDN(**QUICK, checkpoint=tmp_path / "nowhere" / "ck.safetensors", checkpoint_every=10).fit(
            *data
        )


def test_a_garbage_checkpoint_is_replaced_with_a_warning(model, data, tmp_path):
    path = _write(tmp_path / "ck.safetensors", b"garbage")
    with pytest.warns(UserWarning, match=r"ck\.safetensors is not a readable checkpoint"):
        refit = MDN(**QUICK, checkpoint=path, checkpoint_every=10).fit(*data)
    np.testing.assert_array_equal(refit.predict(data[0]), model.predict(data[0]))
    assert not path.exists()  # a finished fit deletes its checkpoint


# ---------------------------------------------------------------- pandas and feature names
@pytest.mark.parametrize("method", ["predict", "predict_interval", "log_prob", "sample"])
@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("renamed", r"(?s)feature names should match.*unseen at fit time:\n- c\n.*missing:\n- b"),
        ("reordered", r"(?s)feature names should match.*must be in the same order"),
        ("extra", r"(?s)feature names should match.*unseen at fit time:\n- c\n"),
    ],
)
def test_other_feature_names_are_refused(frame_model, frame_data, method, kind, message):
    X, y = frame_data
    X = {
        "renamed": X.rename(columns={"b": "c"}),
        "reordered": X[["b", "a"]],
        "extra": X.assign(c=1.0),
    }[kind]
    with pytest.raises(ValueError, match=message):
        if method == "log_prob":
            frame_model.log_prob(X, y)
        else:
            getattr(frame_model, method)(X)


def test_feature_names_are_checked_after_loading(frame_model, frame_data, tmp_path):
    frame_model.save(tmp_path / "m.safetensors")
    loaded = mdn.load(tmp_path / "m.safetensors")
    with pytest.raises(ValueError, match=r"(?s)feature names should match.*unseen.*- c"):
        loaded.predict(frame_data[0].rename(columns={"b": "c"}))


def test_a_dataframe_in_gives_pandas_out_on_its_index(frame_model, series_model, frame_data):
    rows = frame_data[0].iloc[::-3]  # a reordered subset: the index must follow the rows
    table = frame_model.predict(rows)
    assert isinstance(table, pd.DataFrame)
    assert table.index.equals(rows.index) and list(table.columns) == ["t1", "t2"]
    with pytest.warns(UserWarning, match=r"X does not have valid feature names"):
        plain = frame_model.predict(rows.to_numpy())
    np.testing.assert_array_equal(table.to_numpy(), plain)
    for bound in frame_model.predict_interval(rows):
        assert isinstance(bound, pd.DataFrame) and bound.index.equals(rows.index)
    series = series_model.predict(rows, point="mean")
    assert isinstance(series, pd.Series) and series.name == "t"
    assert series.index.equals(rows.index)
    with pytest.warns(UserWarning, match=r"X does not have valid feature names"):
        np.testing.assert_array_equal(
            series.to_numpy(), series_model.predict(rows.to_numpy(), point="mean")
        )


def test_a_dataframe_to_a_model_fitted_on_arrays_warns_and_predicts(model, frame_data, data):
    with pytest.warns(UserWarning, match=r"X has feature names, but MDN was fitted without"):
        got = model.predict(frame_data[0].set_axis(["u", "v"], axis=1))
    np.testing.assert_array_equal(got.to_numpy(), model.predict(frame_data[0].to_numpy()))


# ---------------------------------------------------------------- equivalent inputs
def _strided(X):
    wide = np.zeros((X.shape[0], 2 * X.shape[1]))
    wide[:, ::2] = X
    return wide[:, ::2]


def _read_only(X):
    out = X.copy()
    out.setflags(write=False)
    return out


SAME_X = {  # X -> an equivalent X (the same float64 values)
    "fortran": np.asfortranarray,
    "strided": _strided,
    "read-only": _read_only,
    "list-of-lists": lambda X: X.tolist(),
    "numeric-strings": lambda X: X.astype(str),
    "torch-float64": torch.from_numpy,
    "torch-requires-grad": lambda X: torch.tensor(X, requires_grad=True),
    "DataFrame": lambda X: pd.DataFrame(X, index=np.arange(100, 100 + len(X))),
}


@pytest.mark.parametrize("kind", SAME_X)
def test_equivalent_inputs_predict_the_same(model, data, kind):
    X, y = data
    other = SAME_X[kind](X)
    got = np.asarray(model.predict(other))
    np.testing.assert_array_equal(got, model.predict(X))
    assert type(model.predict_members(other)) is np.ndarray
    np.testing.assert_array_equal(
        model.log_prob(other, SAME_X[kind](y[:, None])), model.log_prob(X, y)
    )


def test_a_reversed_view_predicts_the_reversed_rows(model, data):
    X = data[0]
    np.testing.assert_array_equal(model.predict(X[::-1]), model.predict(X)[::-1])


LOW_PRECISION = {  # X -> (X in another dtype, the same values as float64)
    "float32": lambda X: (X.astype(np.float32), X.astype(np.float32).astype(np.float64)),
    "float16": lambda X: (X.astype(np.float16), X.astype(np.float16).astype(np.float64)),
    "int": lambda X: ((3 * X).astype(int), (3 * X).astype(int).astype(np.float64)),
    "bool": lambda X: (X > 0, (X > 0).astype(np.float64)),
    "torch-float32": lambda X: (
        torch.tensor(X, dtype=torch.float32),
        torch.tensor(X, dtype=torch.float32).double().numpy(),
    ),
    "torch-int64": lambda X: (torch.tensor(3 * X).long(), torch.tensor(3 * X).long().numpy() * 1.0),
    "torch-bfloat16": pytest.param(
        lambda X: (
            torch.tensor(X, dtype=torch.bfloat16),
            torch.tensor(X, dtype=torch.bfloat16).double().numpy(),
        ),
    ),
}


@pytest.mark.parametrize("convert", LOW_PRECISION.values(), ids=list(LOW_PRECISION))
def test_other_dtypes_predict_as_their_float64_values(model, convert, data):
    other, as_float64 = convert(data[0])
    got = model.predict(other)
    assert type(got) is np.ndarray and got.dtype == np.float64
    np.testing.assert_array_equal(got, model.predict(as_float64))


FIT_SAME = {  # (X, y) -> an equivalent (X, y)
    "fortran": lambda X, y: (np.asfortranarray(X), y),
    "strided": lambda X, y: (_strided(X), _strided(y[:, None])[:, 0]),
    "read-only": lambda X, y: (_read_only(X), _read_only(y)),
    "lists": lambda X, y: (X.tolist(), y.tolist()),
    "torch": lambda X, y: (torch.from_numpy(X), torch.from_numpy(y)),
    "pandas": lambda X, y: (pd.DataFrame(X), pd.Series(y)),
}


@pytest.mark.parametrize("kind", FIT_SAME)
def test_equivalent_inputs_fit_the_same_model(model, data, kind):
    X, y = data
    refit = quiet_fit(MDN(**QUICK), *FIT_SAME[kind](X, y))
    np.testing.assert_array_equal(refit.predict(X), model.predict(X))


@pytest.mark.parametrize("dtype", [np.float32, np.int64])
def test_other_dtypes_fit_as_their_float64_values(dtype):
    X, y = make_data()
    X, y = (3 * X).astype(dtype), (3 * y).astype(dtype)
    got = quiet_fit(MDN(**QUICK), X, y)
    expected = quiet_fit(MDN(**QUICK), X.astype(np.float64), y.astype(np.float64))
    np.testing.assert_array_equal(got.predict(X), expected.predict(X))


# ---------------------------------------------------------------- random shapes and scales
@st.composite
def problems(draw):
    n, p, d = draw(st.integers(1, 40)), draw(st.integers(1, 4)), draw(st.integers(1, 3))
    kx, ky = draw(st.integers(-12, 12)), draw(st.integers(-12, 12))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    X = rng.normal(size=(n, p)) * 10.0**kx
    y = rng.normal(size=(n, d)) * 10.0**ky
    holes = draw(st.sampled_from(["none", "y-some", "y-rows", "y-column", "X-one"]))
    if holes == "y-some":
        y[rng.random(size=y.shape) < 0.3] = np.nan
    elif holes == "y-rows":
        y[rng.random(size=n) < 0.3] = np.nan
    elif holes == "y-column":
        y[:, rng.integers(d)] = np.nan
    elif holes == "X-one":
        X[rng.integers(n), rng.integers(p)] = np.nan
    if d == 1 and draw(st.booleans()):
        y = y[:, 0]
    return X, y, draw(st.sampled_from([0.0, 0.2]))


@settings(max_examples=25, deadline=None, derandomize=True, database=None)
@given(problems())
def test_random_shapes_scales_and_gaps_fit_or_raise_a_clear_value_error(problem):
    X, y, validation_fraction = problem
    model = MDN(
        n_models=1,
        hidden=(4,),
        n_iter=20,
        validation_fraction=validation_fraction,
        verbose=0,
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # documented: dropped rows, tiny splits
        try:
            model.fit(X, y)
        except ValueError as error:  # any other exception type fails the test
            assert str(error).strip()
            return
    assert all(bool(torch.isfinite(w).all()) for w in model.network_.parameters())
    if np.isfinite(X).all():
        for point in ("top", "mean"):
            assert np.isfinite(model.predict(X, point=point)).all()
        lower, upper = model.predict_interval(X)
        assert np.isfinite(lower).all() and np.isfinite(upper).all()
