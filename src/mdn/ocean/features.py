"""Features of reflectance spectra for a retrieval: the logarithm of each band, or the
spectrum's shape and its magnitude apart.

Retrievals transfer badly between water bodies when they learn the reflectance's level (which
changes with the atmosphere correction, the sun and the sensor) together with its shape
(which the water's constituents set). ``"shape"`` gives the network both apart: each band's
log-reflectance less the log of the visible bands' sum (band ratios, all on one reference),
and that log-sum itself. ``"log"`` gives each band's log-reflectance. Both are functions of
the inputs alone, so they are applied to any input, in training, in prediction, in scenes
and inside the ONNX graph; the same code runs on NumPy arrays and on torch tensors.

Reflectance at or below ``RRS_FLOOR`` (noise and a few negative values in the red, the
near-infrared and the blue of clear water) is raised to it before the logarithm.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import array_api_compat
import numpy as np

from mdn.ocean.spectral import band_wavelengths
from mdn.params import SPECTRAL_FEATURES

__all__ = ["RRS_FLOOR", "SPECTRAL_FEATURES", "VISIBLE_NM", "SpectralFeatures"]

#: The least reflectance (sr^-1) taken before a logarithm: well below the signal of the
#: clearest waters in the visible (about 1e-4 sr^-1), so that only noise is raised.
RRS_FLOOR = 1e-5
#: The bands whose sum gives the spectrum's magnitude (nm): where water leaves its signal.
VISIBLE_NM = (400.0, 700.0)


@dataclass(frozen=True)
class SpectralFeatures:
    """The features a retrieval sees, from its inputs (reflectance in sr^-1).

    Parameters
    ----------
    kind : {None, "log", "shape"}
        None: the inputs as they are; "log": each band's log-reflectance; "shape": each
        band's log-reflectance less the log of the visible bands' sum, and that log-sum.
    visible : tuple of bool
        Which inputs sum into the magnitude ("shape").
    """

    kind: str | None
    visible: tuple[bool, ...]

    @classmethod
    def for_inputs(
        cls, kind: str | None, names: Sequence[str] | None, n_inputs: int
    ) -> SpectralFeatures:
        """The features of ``kind`` for inputs named ``names`` (or unnamed).

        The visible bands are those named with a wavelength in ``VISIBLE_NM``; where the
        names give no wavelengths (or none is visible), every input counts.

        Parameters
        ----------
        kind : {None, "log", "shape"}
        names : sequence of str or None
        n_inputs : int

        Returns
        -------
        SpectralFeatures
        """
        visible = (True,) * n_inputs
        if names is not None and kind == "shape":
            try:
                nm = band_wavelengths([str(n) for n in names])
            except (ValueError, TypeError):
                nm = None
            inside = None if nm is None else (nm >= VISIBLE_NM[0]) & (nm <= VISIBLE_NM[1])
            if inside is not None and inside.any():
                visible = tuple(bool(v) for v in inside)
        return cls(kind, visible)

    def n_outputs(self) -> int:
        """How many features the inputs become.

        Returns
        -------
        int
        """
        return len(self.visible) + (self.kind == "shape")

    def __call__(self, inputs: Any) -> Any:
        """The features of ``inputs`` (n, p), a NumPy array or a torch tensor.

        Parameters
        ----------
        inputs : array of shape (n, p)

        Returns
        -------
        array of shape (n, ``n_outputs()``), of the inputs' library and dtype
        """
        if self.kind is None:
            return inputs
        xp = array_api_compat.array_namespace(inputs)
        log_rrs = xp.log(xp.maximum(inputs, xp.asarray(RRS_FLOOR, dtype=inputs.dtype)))
        if self.kind == "log":
            return log_rrs
        mask = xp.asarray(np.asarray(self.visible), device=array_api_compat.device(inputs))
        visible_sum = xp.sum(xp.where(mask, xp.exp(log_rrs), 0.0), axis=1, keepdims=True)
        magnitude = xp.log(visible_sum)  # [n, 1]
        return xp.concat([log_rrs - magnitude, magnitude], axis=1)
