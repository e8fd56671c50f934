"""Scores of predicted distributions and point estimates against observed targets.

Every function takes a predicted distribution (a ``GaussianMixture`` or
``LogGaussianMixture`` with batch shape (N,), as ``MDN.predict_dist`` returns) or point
estimates, and observed targets ``y`` of shape (N,) or (N, D). Lower is better for NLL,
CRPS, calibration error, RMSE, MAE, MdSA, |SSPB|, log-space MAE and |bias|; a calibrated
model's central intervals cover their nominal share of the targets; a slope near 1 is best.
``report`` gathers the pooled scores (``MDN.evaluate`` calls it), ``per_target`` one row per
target (``mdn evaluate`` prints it).

Examples
--------
>>> import torch
>>> from mdn import GaussianMixture
>>> from mdn import metrics
>>> dist = GaussianMixture.from_params(torch.ones(3, 1), torch.zeros(3, 1, 1),
...                                    torch.ones(3, 1, 1, 1))
>>> round(metrics.nll(dist, [0.0, 1.0, -1.0]), 4)
1.2523
"""

from mdn.metrics.points import (
    invalid_share,
    log_bias,
    log_mae,
    mae,
    mdsa,
    retrieval_scores,
    rmse,
    slope,
    sspb,
    valid_pairs,
)
from mdn.metrics.reports import evaluate, per_target, report
from mdn.metrics.scores import calibration_error, coverage, crps, energy_score, nll, pit

__all__ = [
    "calibration_error",
    "coverage",
    "crps",
    "energy_score",
    "evaluate",
    "invalid_share",
    "log_bias",
    "log_mae",
    "mae",
    "mdsa",
    "nll",
    "per_target",
    "pit",
    "report",
    "retrieval_scores",
    "rmse",
    "slope",
    "sspb",
    "valid_pairs",
]
