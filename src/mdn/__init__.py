"""mdn: mixture density networks on PyTorch."""

from mdn.mixture import GaussianMixture

__all__ = ["GaussianMixture"]
__version__ = "0.1.0"
