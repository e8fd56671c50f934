"""mdn: mixture density networks on PyTorch.

``MDN`` is the scikit-learn estimator, ``MixtureDensityHead`` the PyTorch layer for your own
networks, and ``GaussianMixture`` the distribution both of them predict.
"""

from mdn.estimator import MDN, REFERENCE, load
from mdn.io import ModelFileError
from mdn.mixture import GaussianMixture
from mdn.nn import MixtureDensityHead, MixtureDensityNetwork
from mdn.training import TrainingDiverged
from mdn.transforms import AffineTransform, LogGaussianMixture

__all__ = [
    "MDN",
    "REFERENCE",
    "AffineTransform",
    "GaussianMixture",
    "LogGaussianMixture",
    "MixtureDensityHead",
    "MixtureDensityNetwork",
    "ModelFileError",
    "TrainingDiverged",
    "load",
]
__version__ = "0.1.0"
