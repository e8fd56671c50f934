"""Spectral features: log-reflectance and the spectrum's shape apart from its level, the same
on NumPy and torch, stored with the model and applied wherever it predicts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import mdn
from mdn import MDN
from mdn.ocean.features import RRS_FLOOR, SpectralFeatures

NAMES = ["Rrs_443", "Rrs_490", "Rrs_560", "Rrs_665", "Rrs_865"]


def _spectra(n: int = 300, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.exp(rng.normal(-5.5, 0.6, size=(n, len(NAMES))))


def test_shape_features_are_log_ratios_to_the_visible_sum_and_that_sum():
    features = SpectralFeatures.for_inputs("shape", NAMES, len(NAMES))
    assert features.visible == (True, True, True, True, False)  # 865 nm is not visible
    X = _spectra(10)
    out = features(X)
    assert out.shape == (10, 6) and features.n_outputs() == 6
    visible_sum = X[:, :4].sum(axis=1)
    np.testing.assert_allclose(out[:, -1], np.log(visible_sum))
    np.testing.assert_allclose(np.exp(out[:, :4]).sum(axis=1), 1.0)
    np.testing.assert_allclose(out[:, 4], np.log(X[:, 4] / visible_sum))


def test_features_are_the_same_on_numpy_and_torch_and_floor_the_noise():
    X = _spectra(20)
    X[3, 3] = -2e-4  # a negative red value: noise
    for kind in ("log", "shape"):
        features = SpectralFeatures.for_inputs(kind, NAMES, len(NAMES))
        np.testing.assert_allclose(features(torch.tensor(X)).numpy(), features(X), rtol=1e-12)
    assert SpectralFeatures.for_inputs("log", NAMES, 5)(X)[3, 3] == pytest.approx(np.log(RRS_FLOOR))
    unnamed = SpectralFeatures.for_inputs("shape", None, 5)
    assert unnamed.visible == (True,) * 5  # no wavelengths: every input sums


def test_a_model_keeps_its_features_in_its_file_and_warns_of_many_floored_inputs(tmp_path):
    pd = pytest.importorskip("pandas")
    X = pd.DataFrame(_spectra(), columns=NAMES)
    y = np.exp(2 * np.log(X["Rrs_443"] / X["Rrs_560"]))
    X.iloc[5, 4] = -1e-4  # one noisy value: floored without a word
    params = dict(target_transform="log", n_iter=40, n_models=2, verbose=0, random_state=0)
    model = MDN(spectral_features="shape", **params).fit(X, y)
    with pytest.warns(UserWarning, match=r"1500 of 1500 input values are <= 1e-05"):
        MDN(spectral_features="log", **{**params, "n_iter": 2}).fit(X * 1e-6, y)  # not sr^-1
    assert model.network_.config["in_features"] == 6 and model.x_shift_.shape == (6,)
    model.save(tmp_path / "shape.safetensors")
    loaded = mdn.load(tmp_path / "shape.safetensors")
    assert loaded.spectral_features == "shape"
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    raw = MDN(**params).fit(X, y)  # another model: the features change what it learns
    assert not np.allclose(raw.predict(X), model.predict(X))
