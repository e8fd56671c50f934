"""mdn: mixture density networks on PyTorch.

``MDN`` is the scikit-learn estimator, ``MixtureDensityHead`` the PyTorch layer for your own
networks, and ``GaussianMixture`` the distribution both of them predict.

The names below are imported on first use (PEP 562), so that ``import mdn.onnx`` runs where
torch is not installed; ``from mdn import MDN`` works as ever.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mdn.distributions.mixture import GaussianMixture
    from mdn.distributions.transforms import AffineTransform, LogGaussianMixture
    from mdn.estimator.model import MDN, REFERENCE, load
    from mdn.nn.network import MixtureDensityHead, MixtureDensityNetwork
    from mdn.tensor_files import ModelFileError
    from mdn.training import TrainingDiverged

#: Where each public name lives.
_HOMES = {
    "MDN": "mdn.estimator.model",
    "REFERENCE": "mdn.estimator.model",
    "load": "mdn.estimator.model",
    "ModelFileError": "mdn.tensor_files",
    "GaussianMixture": "mdn.distributions.mixture",
    "MixtureDensityHead": "mdn.nn.network",
    "MixtureDensityNetwork": "mdn.nn.network",
    "TrainingDiverged": "mdn.training",
    "AffineTransform": "mdn.distributions.transforms",
    "LogGaussianMixture": "mdn.distributions.transforms",
}

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


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        value = getattr(importlib.import_module(_HOMES[name]), name)
    elif importlib.util.find_spec(f"{__name__}.{name}") is not None:  # mdn.metrics and kin
        value = importlib.import_module(f"{__name__}.{name}")
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
