"""How far an input lies from the training inputs: the novelty score of ``MDN.novelty``.

A retrieval is confidently wrong where its inputs differ from every input it was trained
on. The score is ``-log p(x)`` under a density of the training inputs, in the features the
network sees (after ``spectral_features`` and the input scaling): a Gaussian mixture fitted
to them (scikit-learn's ``GaussianMixture``, full covariances, its number of components
chosen by BIC). The model keeps that mixture (a few numbers: never the training rows) and a
threshold, the score that ``NOVELTY_QUANTILE`` of the training inputs stay below; rows
beyond it are flagged as novel. The mixture is evaluated with ``GaussianMixture`` of
``mdn.distributions``, so the same code scores rows in ``MDN``, in scenes and in the
torch-free predictor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mdn.distributions.mixture import GaussianMixture

__all__ = ["NOVELTY_QUANTILE", "InputDensity", "fit_input_density"]

#: The share of the training inputs whose score stays below the threshold.
NOVELTY_QUANTILE = 0.99
#: The most components the density of the inputs may have (BIC chooses among 1 to this).
MAX_COMPONENTS = 5
#: Rows used to fit it at most (a random subset above), which bounds its cost.
MAX_ROWS = 20_000
#: Rows needed to fit it at all: with fewer, a model has no novelty score.
MIN_ROWS = 10


@dataclass(frozen=True)
class InputDensity:
    """A Gaussian mixture over the network's input features, and the novelty threshold.

    Attributes
    ----------
    log_weights : ndarray of shape (K,)
    means : ndarray of shape (K, p)
    precision_cholesky : ndarray of shape (K, p, p)
        Upper-triangular factors of the precisions, as ``GaussianMixture`` holds them.
    threshold : float
        The score that ``NOVELTY_QUANTILE`` of the training inputs stay below.
    """

    log_weights: np.ndarray
    means: np.ndarray
    precision_cholesky: np.ndarray
    threshold: float

    def score(self, features: Any) -> Any:
        """``-log p(x)`` of each row of ``features`` (n, p): how novel it is.

        Parameters
        ----------
        features : ndarray or Tensor of shape (n, p)
            Scaled features, as the network sees them.

        Returns
        -------
        ndarray or Tensor of shape (n,)
            Of the library and dtype of ``features``.
        """
        parameters = (self.log_weights, self.means, self.precision_cholesky)
        if not isinstance(features, np.ndarray):  # a torch tensor: the same maths on torch
            import torch

            parameters = tuple(
                torch.as_tensor(p, dtype=features.dtype, device=features.device) for p in parameters
            )
        else:
            parameters = tuple(np.asarray(p, dtype=features.dtype) for p in parameters)
        mixture = GaussianMixture(*parameters, "full", validate=False, normalized=True)
        return -mixture.log_prob(features, complete=True)  # features are finite


def fit_input_density(features: np.ndarray, seed: int) -> InputDensity | None:
    """The density of the training inputs' features, and its threshold.

    Parameters
    ----------
    features : ndarray of shape (n, p)
        The scaled features of the training rows.
    seed : int
        Seeds the mixture's initialisation and the subset of rows.

    Returns
    -------
    InputDensity or None
        None where the rows are too few to estimate a density (fewer than ``MIN_ROWS``).
    """
    from sklearn.mixture import GaussianMixture as SklearnMixture

    rows = np.asarray(features, dtype=np.float64)
    if len(rows) < MIN_ROWS:
        return None
    rng = np.random.default_rng(seed)
    if len(rows) > MAX_ROWS:
        rows = rows[rng.choice(len(rows), MAX_ROWS, replace=False)]
    candidates = [
        SklearnMixture(k, covariance_type="full", reg_covar=1e-6, random_state=seed).fit(rows)
        for k in range(1, min(MAX_COMPONENTS, max(1, len(rows) // 50)) + 1)
    ]
    best = min(candidates, key=lambda m: m.bic(rows))
    density = InputDensity(
        np.log(best.weights_), best.means_, np.triu(best.precisions_cholesky_), 0.0
    )
    scores = density.score(rows)
    return InputDensity(
        density.log_weights,
        density.means,
        density.precision_cholesky,
        float(np.quantile(scores, NOVELTY_QUANTILE)),
    )
