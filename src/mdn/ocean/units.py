"""The unit guard: inputs whose level is the training inputs' times a known factor are probably
in another unit, and a retrieval given them is wrong without a sign.

Reflectance comes in several units: remote-sensing reflectance ``Rrs`` (sr^-1), water-leaving
reflectance ``rho_w = pi Rrs`` (ACOLITE's ``rhow``, ESA's OLCI ``Oa..._reflectance``), either
in percent, and Sentinel-2 L2A's integers (reflectance times 10,000). ``unit_factor``
compares the median of each input column with the training inputs' and names the factor that
the columns agree on, where it is one of those.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["KNOWN_FACTORS", "unit_factor", "unit_warning"]

#: Factors between units of reflectance, and what an input that many times the training
#: data's probably is.
KNOWN_FACTORS = {
    math.pi: "water-leaving reflectance rho_w = pi Rrs",
    100.0: "percent",
    100.0 * math.pi: "water-leaving reflectance in percent",
    10_000.0: "integers scaled by 10,000 (as Sentinel-2 L2A's)",
    10_000.0 * math.pi: "water-leaving reflectance scaled by 10,000",
}
#: How close (as a ratio) the inputs' level must be to a factor to be taken for it.
TOLERANCE = 1.25
#: How far apart the columns' own ratios may be for them to agree on one factor.
AGREEMENT = 2.0


def unit_factor(inputs: np.ndarray, typical: np.ndarray) -> float | None:
    """The factor between the level of ``inputs`` and ``typical`` where it is a known one.

    Parameters
    ----------
    inputs : ndarray of shape (n, p)
    typical : ndarray of shape (p,)
        The training inputs' median of each column.

    Returns
    -------
    float or None
        A key of ``KNOWN_FACTORS`` or its inverse, where every column's median is that factor
        times its training median (within ``TOLERANCE``, the columns agreeing within
        ``AGREEMENT``); None otherwise.
    """
    with np.errstate(invalid="ignore"):
        medians = np.nanmedian(np.asarray(inputs, dtype=np.float64), axis=0)
    usable = np.isfinite(medians) & (medians > 0) & (typical > 0)
    if usable.sum() < 2:
        return None
    ratios = medians[usable] / typical[usable]
    if ratios.max() / ratios.min() > AGREEMENT:
        return None
    level = math.exp(float(np.mean(np.log(ratios))))
    for factor in (*KNOWN_FACTORS, *(1 / f for f in KNOWN_FACTORS)):
        if 1 / TOLERANCE <= level / factor <= TOLERANCE:
            return factor
    return None


def unit_warning(factor: float) -> str:
    """The warning for inputs ``factor`` times the training inputs.

    Parameters
    ----------
    factor : float
        As ``unit_factor`` returns it.

    Returns
    -------
    str
    """
    if factor > 1:
        guess, fix = KNOWN_FACTORS[factor], f"divide them by {_name(factor)}"
    else:
        guess = f"the training data were {KNOWN_FACTORS[1 / factor]}"
        fix = f"multiply them by {_name(1 / factor)}"
    return (
        f"the inputs are about {_name(factor)} times the training inputs: {guess}? The model "
        f"was fitted on another unit; {fix} before predicting"
    )


_NAMES = {math.pi: "pi", 100.0: "100", 100.0 * math.pi: "100 pi", 10_000.0: "10,000",
          10_000.0 * math.pi: "10,000 pi"}  # fmt: skip


def _name(factor: float) -> str:
    return _NAMES.get(factor) or f"1/{_NAMES[1 / factor]}"
