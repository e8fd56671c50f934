"""Gaussian mixtures: the distribution an MDN predicts, the transforms it can be pushed
through exactly, and (``mdn.distributions.calibration``, with torch and SciPy) its
recalibration. The mixture maths is written once against the Array API: these classes hold
torch tensors or NumPy arrays, and importing them imports no torch."""

from mdn.distributions.mixture import GaussianMixture
from mdn.distributions.transforms import AffineTransform, LogGaussianMixture

__all__ = ["AffineTransform", "GaussianMixture", "LogGaussianMixture"]
