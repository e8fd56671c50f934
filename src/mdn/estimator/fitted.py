"""What a fitted ``MDN`` holds, as the estimator's helpers read it.

The helpers of ``MDN`` (prediction, model files, ONNX export) are functions of a fitted
model. They take any object with the attributes of ``FittedModel`` rather than ``MDN``
itself, so that they sit below the class that calls them and never import it; the names of
the fitted values that the model files store live here too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import numpy as np

    from mdn.nn.network import MixtureDensityNetwork

__all__ = ["FITTED", "NO_RECALIBRATION", "SCALINGS", "FittedModel"]

#: The fitted recalibration values that change nothing.
NO_RECALIBRATION = {"member_spread_": 1.0, "component_scale_": 1.0, "tail_weight_": 0.0}
#: The fitted affine scalings, ``z = (v - shift) / scale``, stored as tensors.
SCALINGS = ("x_shift_", "x_scale_", "y_shift_", "y_scale_")
#: The other fitted values a model file stores (besides ``feature_names_in_``).
FITTED = ("n_features_in_", "n_outputs_", "output_1d_", "target_names_", "history_", "n_iter_",
          *NO_RECALIBRATION)  # fmt: skip


class FittedModel(Protocol):
    """The parameters and fitted values of an ``MDN`` that its helpers read.

    Attributes
    ----------
    network_ : MixtureDensityNetwork
    n_features_in_, n_outputs_ : int
    output_1d_ : bool
    target_names_ : list of str or None
    x_shift_, x_scale_, y_shift_, y_scale_ : ndarray
    member_spread_, component_scale_, tail_weight_ : float
    history_ : dict
    n_iter_ : int
    target_transform, spectral_features : str or None
    combine, point, covariance : str
    n_mix, chunk_size : int
    """

    network_: MixtureDensityNetwork
    n_features_in_: int
    n_outputs_: int
    output_1d_: bool
    target_names_: list[str] | None
    x_shift_: np.ndarray
    x_scale_: np.ndarray
    y_shift_: np.ndarray
    y_scale_: np.ndarray
    member_spread_: float
    component_scale_: float
    tail_weight_: float
    history_: dict
    n_iter_: int
    target_transform: str | None
    spectral_features: str | None
    combine: str
    point: str
    covariance: str
    n_mix: int
    chunk_size: int

    def get_params(self, deep: bool = True) -> dict[str, object]:
        """The estimator's parameters (scikit-learn's ``get_params``).

        Parameters
        ----------
        deep : bool

        Returns
        -------
        dict
        """
