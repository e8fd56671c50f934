"""A simulated ocean-colour set: Rrs at a sensor's bands from chlorophyll-a, suspended solids
and CDOM through the semi-analytical forward model (``mdn.ocean.optics``), with sensor-like
noise. ``mdn.datasets.simulate_ocean_colour`` is this module's."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from sklearn.utils import check_random_state

from mdn.ocean import optics, sensors
from mdn.ocean.sensors import Sensor

if TYPE_CHECKING:
    import pandas

__all__ = [
    "OCEAN_COLOUR_CORRELATION",
    "OCEAN_COLOUR_LOG10_MEAN",
    "OCEAN_COLOUR_LOG10_SD",
    "OCEAN_COLOUR_TARGETS",
    "simulate_ocean_colour",
]

#: The simulated set's targets, in the order of ``y``'s columns.
OCEAN_COLOUR_TARGETS = ("chl", "tss", "cdom")
#: Log10 means and standard deviations of chl (mg m^-3), tss (g m^-3) and cdom (absorption at
#: 443 nm, m^-1): 95 % of the rows within about 0.08-50, 0.2-50 and 0.02-1.6.
OCEAN_COLOUR_LOG10_MEAN = (0.3, 0.5, -0.8)
OCEAN_COLOUR_LOG10_SD = (0.7, 0.6, 0.5)
#: Correlations of the three log10 concentrations: constituents that rivers and blooms bring
#: together, as in coastal matchups, yet far from locked (so that the three can be told apart).
OCEAN_COLOUR_CORRELATION = ((1.0, 0.5, 0.6), (0.5, 1.0, 0.4), (0.6, 0.4, 1.0))
# 2 nm steps inside the forward model's range: R_rs is smooth at that scale (Bricaud's table
# has 2 nm steps, the water tables 5-10 nm): 1 nm steps changed MSI's bands by 0.2 % at most.
_GRID = np.arange(348.0, 795.0, 2.0)
_CHUNK = 4096  # rows simulated at a time: (rows, wavelengths) temporaries stay small


def _draw_constituents(rng: np.random.RandomState, n: int) -> np.ndarray:
    """Correlated log-normal chl, tss, cdom, shape (n, 3)."""
    root = np.linalg.cholesky(np.asarray(OCEAN_COLOUR_CORRELATION))
    log10 = rng.standard_normal((n, 3)) @ root.T * OCEAN_COLOUR_LOG10_SD
    return 10.0 ** (log10 + OCEAN_COLOUR_LOG10_MEAN)


def _draw_shapes(rng: np.random.RandomState, n: int, spread: float) -> dict[str, np.ndarray]:
    """Each row's spectral shapes and specific coefficients, spread around mdn.ocean.optics's."""
    return {
        "a_ph_factor": 10.0 ** rng.normal(0.0, 0.1 * spread, n),
        "s_cdom": np.clip(rng.normal(optics.S_CDOM, 0.002 * spread, n), 0.009, 0.021),
        "a_nap": optics.A_NAP * 10.0 ** rng.normal(0.0, 0.15 * spread, n),
        "s_nap": np.clip(rng.normal(optics.S_NAP, 0.0013 * spread, n), 0.008, 0.017),
        "b_bp_tss": optics.B_BP_TSS * 10.0 ** rng.normal(0.0, 0.15 * spread, n),
        "eta": np.clip(rng.normal(optics.ETA, 0.3 * spread, n), 0.0, 2.0),
    }


def _add_noise(
    rng: np.random.RandomState, rrs: np.ndarray, noise: tuple[float, float]
) -> np.ndarray:
    """Gaussian noise of sd sqrt((relative Rrs)^2 + absolute^2), truncated to Rrs > 0."""
    from scipy.special import ndtr, ndtri

    relative, absolute = noise
    sd = np.hypot(relative * rrs, absolute)
    if not (sd > 0).all():
        return rrs
    # z from a standard normal truncated to z > -rrs / sd, by inverting its upper tail
    tail = 1.0 - rng.uniform(size=rrs.shape)  # in (0, 1]
    z = -ndtri(tail * ndtr(rrs / sd))
    return np.maximum(rrs + sd * z, np.finfo(float).tiny)


def _check_noise(noise: tuple[float, float]) -> tuple[float, float]:
    try:
        relative, absolute = (float(v) for v in noise)
    except (TypeError, ValueError):
        raise TypeError(f"noise must be a pair (relative, absolute), got {noise!r}") from None
    if not (np.isfinite([relative, absolute]).all() and relative >= 0 and absolute >= 0):
        raise ValueError(f"noise must be two finite numbers >= 0, got {noise!r}")
    return relative, absolute


def simulate_ocean_colour(
    n_samples: int = 5000,
    sensor: str | Sensor = "msi",
    random_state: int | np.random.RandomState | None = None,
    noise: tuple[float, float] = (0.03, 2e-4),
    *,
    variability: float = 1.0,
    response: tuple | None = None,
    as_frame: bool = False,
) -> tuple[np.ndarray, np.ndarray] | pandas.DataFrame:
    """A simulated ocean-colour set: Rrs at a sensor's bands from chl, tss and cdom.

    Chlorophyll-a (mg m^-3), total suspended solids (g m^-3) and CDOM absorption at 443 nm
    (m^-1) are drawn from correlated log-normals (``OCEAN_COLOUR_LOG10_MEAN``, ``_SD`` and
    ``_CORRELATION``); each row's spectral slopes and specific coefficients vary around
    ``mdn.ocean.optics``'s values (sd 0.002 nm^-1 for the CDOM slope, 0.0013 for the non-algal
    one, 0.3 for the backscattering exponent, a factor of 10^0.1 for the phytoplankton
    absorption per chl and of 10^0.15 for the specific non-algal absorption and
    backscattering: times ``variability``), as they do between
    waters, so that the same constituents do not always give the same spectrum. ``mdn.ocean.optics``
    gives R_rs every 2 nm from 348 to 794 nm, ``mdn.sensors.resample`` averages it under each
    band's response, and sensor-like noise is added: Gaussian with sd
    ``sqrt((relative R_rs)^2 + absolute^2)``, truncated so that R_rs stays > 0.

    Parameters
    ----------
    n_samples : int
        Number of rows.
    sensor : str or Sensor
        Whose bands (``mdn.sensors.SENSORS``).
    random_state : int, RandomState or None
        The same seed gives the same rows.
    noise : (float, float)
        Relative and absolute (sr^-1) noise; ``(0, 0)`` for none.
    variability : float
        Scales the spread of the slopes and specific coefficients between rows; 0 keeps
        them at ``mdn.ocean.optics``'s values (R_rs is then a function of chl, tss and cdom).
    response : (wavelengths, table) or None
        Measured band responses instead of Gaussians (see ``mdn.sensors.resample``).
    as_frame : bool
        Return a pandas DataFrame with columns ``Rrs_<nm>`` and chl, tss, cdom.

    Returns
    -------
    X : ndarray of shape (n_samples, n_bands)
        R_rs (sr^-1) at the sensor's bands, in the order of its ``bands``.
    y : ndarray of shape (n_samples, 3)
        chl, tss and cdom (``OCEAN_COLOUR_TARGETS``).
    frame : pandas.DataFrame
        Instead of ``(X, y)`` when ``as_frame`` is true.
    """
    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)):
        raise TypeError(f"n_samples must be an int, got {type(n_samples).__name__}")
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    chosen = sensors.sensor(sensor)
    noise = _check_noise(noise)
    if not (isinstance(variability, (int, float)) and 0 <= variability < np.inf):
        raise ValueError(f"variability must be a finite number >= 0, got {variability!r}")
    weights = sensors.band_weights(_GRID, chosen, response)  # checks the bands before drawing
    # Wavelengths where no band has a weight of 1e-12 or more need not be simulated.
    used = np.flatnonzero(weights.max(axis=0) >= 1e-12)
    grid, weights = _GRID[used[0] : used[-1] + 1], weights[:, used[0] : used[-1] + 1]
    rng = check_random_state(random_state)
    y = _draw_constituents(rng, n_samples)
    shapes = _draw_shapes(rng, n_samples, float(variability))
    X = np.empty((n_samples, len(chosen.bands)))
    for start in range(0, n_samples, _CHUNK):
        rows = slice(start, start + _CHUNK)
        chl, tss, cdom = y[rows].T
        parts = {name: value[rows] for name, value in shapes.items()}
        spectra = optics.remote_sensing_reflectance(grid, chl, tss, cdom, **parts)
        X[rows] = spectra @ weights.T
    X = _add_noise(rng, X, noise)
    if not as_frame:
        return X, y
    try:
        import pandas as pd
    except ImportError as error:
        raise ImportError("as_frame=True needs pandas: pip install 'mdn[io]'") from error
    frame = pd.DataFrame(X, columns=chosen.columns())
    for name, column in zip(OCEAN_COLOUR_TARGETS, y.T, strict=True):
        frame[name] = column
    return frame
