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
    from mdn.estimator import MDN, REFERENCE, load
    from mdn.io import ModelFileError
    from mdn.mixture import GaussianMixture
    from mdn.nn import MixtureDensityHead, MixtureDensityNetwork
    from mdn.training import TrainingDiverged
    from mdn.transforms import AffineTransform, LogGaussianMixture

#: Where each public name lives.
_HOMES = {
    "MDN": "mdn.estimator",
    "REFERENCE": "mdn.estimator",
    "load": "mdn.estimator",
    "ModelFileError": "mdn.io",
    "GaussianMixture": "mdn.mixture",
    "MixtureDensityHead": "mdn.nn",
    "MixtureDensityNetwork": "mdn.nn",
    "TrainingDiverged": "mdn.training",
    "AffineTransform": "mdn.transforms",
    "LogGaussianMixture": "mdn.transforms",
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
