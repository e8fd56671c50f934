"""Odd data that would fool a fit without a word: a warning or an error that names it."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from mdn import MDN
from mdn.datasets import make_inverted_sine

QUICK = dict(n_models=1, hidden=(16,), n_iter=150, verbose=0, random_state=0)


def _quiet_fit(model: MDN, X, y) -> MDN:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return model.fit(X, y)


def test_a_feature_in_tiny_units_is_kept_and_named():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 2))
    y = X[:, 1] + 0.05 * rng.normal(size=300)
    X[:, 1] *= 1e-16  # real spread, tiny units
    with pytest.warns(UserWarning, match=r"scaler_x left column\(s\) \[1\] unscaled"):
        model = MDN(**QUICK).fit(X, y)
    assert model.x_scale_[1] == pytest.approx(X[:, 1].std())
    assert model.score(X, y) > MDN(**QUICK).fit(X[:, :1], y).score(X[:, :1], y) + 0.5


def test_a_constant_feature_stays_unscaled_without_a_warning():
    X, y = make_inverted_sine(200, random_state=0)
    X = np.c_[X, np.full(len(X), 3.0)]
    model = _quiet_fit(MDN(**QUICK), X, y)
    assert model.x_scale_[1] == 1.0


def test_target_outliers_that_set_the_standard_scale_are_warned_about():
    X, y = make_inverted_sine(400, random_state=0)
    y = y.copy()
    y[:12] = 1e4  # 3 % gross outliers
    with pytest.warns(UserWarning, match=r"scaler_y: in column\(s\) \[0\].*scaler_y='robust'"):
        MDN(**QUICK).fit(X, y)
    _quiet_fit(MDN(**QUICK, scaler_y="robust"), X, y)  # the advice silences it


def test_values_beyond_float32_after_scaling_are_refused_with_row_and_column():
    X, y = make_inverted_sine(200, random_state=0)
    model = MDN(**QUICK).fit(X, y)
    X_new = X[:10].copy()
    X_new[7, 0] = 1e300
    with pytest.raises(ValueError, match=r"Input X has values beyond float32's range .* row 7"):
        model.predict(X_new)
    X_fit = X.copy()
    X_fit[5, 0] = 1e300
    with pytest.raises(ValueError, match=r"row 5, column 0"):
        MDN(**QUICK).fit(X_fit, y)


def test_nan_at_predict_time_names_its_row_not_a_chunk():
    X, y = make_inverted_sine(200, random_state=0)
    model = MDN(**QUICK, chunk_size=64).fit(X, y)
    X_new = X.copy()
    X_new[[130, 150], 0] = np.nan
    with pytest.raises(
        ValueError, match=r"NaN or infinity in row 130, column 0 \(2 such rows in rows 128 to 191\)"
    ):
        model.predict(X_new)


def test_a_diverged_fit_is_warned_about():
    X, y = make_inverted_sine(500, random_state=0)
    with pytest.warns(UserWarning, match="worse than one Gaussian per target"):
        MDN(**{**QUICK, "n_iter": 400}, lr=10.0).fit(X, y)
    _quiet_fit(MDN(**{**QUICK, "n_iter": 400}), X, y)


def test_a_text_column_of_a_dataframe_is_named():
    pd = pytest.importorskip("pandas")
    X, y = make_inverted_sine(100, random_state=0)
    frame = pd.DataFrame({"r443": X[:, 0], "station": ["a"] * 100, "r555": X[:, 0]})
    with pytest.raises(ValueError, match=r"column\(s\) \['station'\] of X are not numbers"):
        MDN(**QUICK).fit(frame, y)
    model = MDN(**QUICK).fit(frame[["r443", "r555"]], y)
    text_in_r555 = frame.drop(columns="r555").rename(columns={"station": "r555"})
    with pytest.raises(ValueError, match=r"\['r555'\] of X are not numbers"):
        model.predict(text_in_r555)


def test_infinity_in_y_is_named_by_row_and_column():
    X, y = make_inverted_sine(100, random_state=0)
    y = np.c_[y, y]
    y[17, 1] = -np.inf
    with pytest.raises(ValueError, match=r"Input y contains infinity in row 17, column 1"):
        MDN(**QUICK).fit(X, y)
