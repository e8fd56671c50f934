"""The unit guard: inputs a known factor away from the training inputs' level (pi, percent,
Sentinel-2's 10,000) are named, once per call, by MDN and by the torch-free predictor."""

from __future__ import annotations

import importlib.util
import math
import warnings

import numpy as np
import pytest

import mdn
from mdn import MDN
from mdn.ocean.units import unit_factor, unit_warning


def _spectra(n: int = 400, seed: int = 0) -> np.ndarray:
    return np.exp(np.random.default_rng(seed).normal(-5.5, 0.5, size=(n, 4)))


@pytest.mark.parametrize("factor", [math.pi, 100.0, 10_000.0, 1 / math.pi, 1 / 100.0])
def test_a_known_factor_is_named(factor):
    X = _spectra()
    assert unit_factor(X * factor, np.median(X, axis=0)) == pytest.approx(factor)


@pytest.mark.parametrize("factor", [1.0, 2.0, 20.0])
def test_other_levels_and_columns_that_disagree_are_not_taken_for_a_unit(factor):
    X = _spectra()
    assert unit_factor(X * factor, np.median(X, axis=0)) is None
    brighter = X * np.array([1.0, 1.5, 4.0, 12.0])  # a turbid lake: the red rises most
    assert unit_factor(brighter, np.median(X, axis=0)) is None


def test_predictions_warn_once_per_call_naming_the_factor(tmp_path):
    X = _spectra()
    model = MDN(n_iter=20, n_models=1, verbose=0, random_state=0).fit(X, np.log(X[:, 0]))
    with pytest.warns(UserWarning, match=r"about pi times .* rho_w = pi Rrs\? .*divide them"):
        model.predict(X * math.pi)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.predict_interval(X * 10_000)
        model.predict(X)
    assert [str(w.message) for w in caught] == [unit_warning(10_000.0)]
    model.save(tmp_path / "model.safetensors")
    with pytest.warns(UserWarning, match="about 100 times"):
        mdn.load(tmp_path / "model.safetensors").predict(X * 100)
    if all(importlib.util.find_spec(name) for name in ("onnx", "onnxruntime", "onnxscript")):
        from mdn.onnx import OnnxPredictor

        model.export_onnx(tmp_path / "model.onnx")
        with pytest.warns(UserWarning, match="about pi times"):
            OnnxPredictor(tmp_path / "model.onnx").predict(X * math.pi)
