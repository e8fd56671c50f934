"""Novelty: a density of the training inputs in the network's own features, a threshold that
99 % of the training rows stay below, kept in the model file, scored wherever it predicts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import mdn
from mdn import MDN
from mdn.estimator.novelty import NOVELTY_QUANTILE, fit_input_density

FROZEN = Path(__file__).parents[1] / "fixtures" / "frozen" / "single_sine.safetensors"


def _data(n: int = 600, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = np.c_[rng.normal(size=n), rng.gamma(2.0, size=n)]
    return X, X[:, 0] + 0.1 * rng.normal(size=n)


def test_the_density_is_scikit_learn_s_mixture_evaluated_by_mdn():
    from sklearn.mixture import GaussianMixture

    features = _data()[0]
    density = fit_input_density(features, seed=0)
    k = len(density.log_weights)
    reference = GaussianMixture(k, covariance_type="full", reg_covar=1e-6, random_state=0)
    reference.fit(features)
    expected = -reference.score_samples(features)
    np.testing.assert_allclose(density.score(features), expected, rtol=1e-9)
    below = np.mean(density.score(features) <= density.threshold)
    assert below == pytest.approx(NOVELTY_QUANTILE, abs=1 / len(features))


def test_rows_far_from_the_training_inputs_are_novel(tmp_path):
    X, y = _data()
    model = MDN(n_iter=30, n_models=2, verbose=0, random_state=0).fit(X, y)
    inside = model.novelty(X) > model.novelty_threshold_
    outside = model.novelty(X + np.array([6.0, 0.0])) > model.novelty_threshold_
    assert inside.mean() < 0.03 and outside.mean() > 0.95
    model.save(tmp_path / "model.safetensors")
    loaded = mdn.load(tmp_path / "model.safetensors")
    np.testing.assert_array_equal(loaded.novelty(X), model.novelty(X))
    assert loaded.novelty_threshold_ == model.novelty_threshold_
    assert all(m.novelty_threshold_ == model.novelty_threshold_ for m in model.members_)


def test_models_without_a_density_say_why():
    with pytest.warns(UserWarning, match="without a checksum"):
        old = mdn.load(FROZEN)  # saved before novelty scores
    with pytest.raises(ValueError, match=r"no density of its training inputs.*refit it"):
        old.novelty(np.zeros((2, 1)))
    X, y = _data(n=8)
    tiny = MDN(n_iter=5, n_models=1, validation_fraction=0, verbose=0).fit(X, y)
    assert tiny.input_density_ is None
    with pytest.raises(ValueError, match="fewer than 10 rows"):
        tiny.novelty(X)
