"""Classical retrievals to compare an MDN with: NASA's OC4 band-ratio chlorophyll-a.

A baseline takes the input table's columns by wavelength (``Rrs_443``, ``Rrs490``...) and
returns point estimates; it has no distribution, so only point metrics score it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence

import numpy as np

__all__ = ["BASELINES", "OC4_COEFFICIENTS", "find_band", "oc4"]

#: SeaWiFS OC4v6 (O'Reilly et al. 1998, 2000; NASA OBPG): log10(chl) = sum a_i R^i.
OC4_COEFFICIENTS = (0.3272, -2.9940, 2.7218, -1.2259, -0.5683)
_WAVELENGTH = re.compile(r"(\d{3,4}(?:\.\d+)?)\D*$")


def find_band(columns: Sequence[str], wavelength: float, tolerance: float = 6.0) -> str:
    """The column whose name ends in the wavelength nearest ``wavelength`` (nm).

    Parameters
    ----------
    columns : sequence of str
        Column names such as ``Rrs_443`` or ``Rrs489``.
    wavelength : float
    tolerance : float
        The largest distance in nm accepted.

    Returns
    -------
    str

    Raises
    ------
    ValueError
        If no column lies within ``tolerance``.
    """
    found = {}
    for name in columns:
        match = _WAVELENGTH.search(str(name))
        if match:
            found[str(name)] = float(match.group(1))
    if found:
        name = min(found, key=lambda n: abs(found[n] - wavelength))
        if abs(found[name] - wavelength) <= tolerance:
            return name
    raise ValueError(
        f"no column within {tolerance:g} nm of {wavelength:g} nm among "
        f"{', '.join(map(str, columns))}"
    )


def oc4(columns: Mapping[str, np.ndarray]) -> np.ndarray:
    """OC4 chlorophyll-a (mg m^-3) from Rrs at 443, 490, 510 and 555 nm.

    ``R = log10(max(Rrs443, Rrs490, Rrs510) / Rrs555)``;
    ``log10(chl) = a0 + a1 R + a2 R^2 + a3 R^3 + a4 R^4`` with ``OC4_COEFFICIENTS``.

    Parameters
    ----------
    columns : mapping of str to array
        Reflectance columns named by wavelength (a DataFrame will do); the nearest within
        6 nm of each band is used (so 489 serves for 490).

    Returns
    -------
    ndarray
        NaN where a band is not positive.
    """
    names = list(columns.keys())
    blue = [np.asarray(columns[find_band(names, w)], dtype=np.float64) for w in (443, 490, 510)]
    green = np.asarray(columns[find_band(names, 555)], dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.log10(np.maximum.reduce(blue) / green)
        valid = np.all([b > 0 for b in blue], axis=0) & (green > 0)
        log_chl = np.polynomial.polynomial.polyval(ratio, OC4_COEFFICIENTS)
    return np.where(valid, 10**log_chl, np.nan)


#: Baselines by the name ``mdn cv --baseline`` takes.
BASELINES: dict[str, Callable[[Mapping[str, np.ndarray]], np.ndarray]] = {"oc4": oc4}
