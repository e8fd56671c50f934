"""Band averages of sampled spectra (the weights of each band's response) and band matching.

A spectrum sampled at wavelengths ``l_0 < ... < l_n`` is taken as linear between its samples.
A band's value is the average of that spectrum under the band's response ``S``, over the
sampled range: ``sum_i w_i R_i`` with ``w_i = int hat_i(l) S(l) dl / int S(l) dl``, where
``hat_i`` is the piecewise-linear interpolation basis. The weights are integrated exactly
(closed form for a Gaussian response; the product of two piecewise-linear functions for a
tabulated one), so they hold on any grid, regular or not, fine or coarse, and each band's
weights sum to 1: its response, normalised over the grid, integrates to 1.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "FWHM_TO_SD",
    "apply_weights",
    "band_wavelengths",
    "check_grid",
    "gaussian_weights",
    "half_maximum_range",
    "nearest_bands",
    "tabulated_weights",
]

#: A Gaussian's standard deviation is its FWHM times this, 1 / (2 sqrt(2 ln 2)).
FWHM_TO_SD = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))


def check_grid(wavelengths: ArrayLike) -> np.ndarray:
    """The wavelengths as a float array, checked: 1-D, finite, strictly increasing.

    Parameters
    ----------
    wavelengths : array-like of shape (n,)
        Sample wavelengths in nm, at least two.

    Returns
    -------
    ndarray of float, shape (n,)
    """
    grid = np.asarray(wavelengths, dtype=float)
    if grid.ndim != 1 or grid.size < 2:
        raise ValueError(f"wavelengths must be 1-D with at least 2 values, got {grid.shape}")
    if not np.isfinite(grid).all():
        raise ValueError("wavelengths must be finite")
    if not (np.diff(grid) > 0).all():
        raise ValueError("wavelengths must be strictly increasing: sort the spectra by them")
    return grid


def _normalised(weights: np.ndarray) -> np.ndarray:
    total = weights.sum(axis=1, keepdims=True)
    if not (total > 0).all():
        raise ValueError("a band's response is zero over the whole wavelength grid")
    return weights / total


def gaussian_weights(wavelengths: ArrayLike, centres: ArrayLike, fwhm: ArrayLike) -> np.ndarray:
    """Weights of Gaussian responses with the given centres and FWHM on a wavelength grid.

    Parameters
    ----------
    wavelengths : array-like of shape (n,)
        The spectra's sample wavelengths in nm, strictly increasing.
    centres, fwhm : array-like of shape (n_bands,)
        Band centres and full widths at half maximum in nm.

    Returns
    -------
    ndarray of shape (n_bands, n)
        Row ``b`` holds band ``b``'s weights, which sum to 1.
    """
    from scipy.special import ndtr  # scipy is imported where used: `import mdn` stays light

    grid = check_grid(wavelengths)
    centre = np.asarray(centres, dtype=float).reshape(-1, 1)  # [B, 1]
    sd = np.asarray(fwhm, dtype=float).reshape(-1, 1) * FWHM_TO_SD  # [B, 1]
    if centre.shape != sd.shape or not (sd > 0).all():
        raise ValueError("centres and fwhm must have the same length, and fwhm be > 0")
    z = (grid - centre) / sd  # [B, n]
    mass = np.diff(ndtr(z), axis=1)  # [B, n-1]: the response's integral over each interval
    density = np.exp(-0.5 * z**2) / np.sqrt(2.0 * np.pi)  # [B, n]
    # int over [l_k, l_k+1] of (l - l_k) N(l; c, sd) dl, the first moment about l_k
    moment = (centre - grid[:-1]) * mass + sd * (density[:, :-1] - density[:, 1:])
    upper = moment / np.diff(grid)  # the part of each interval's mass its right end gets
    weights = np.zeros_like(z)
    weights[:, 1:] += upper
    weights[:, :-1] += mass - upper
    return _normalised(weights)


def _hat_matrix(grid: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Values of the piecewise-linear basis of ``grid`` at ``at`` (inside its range)."""
    k = np.clip(np.searchsorted(grid, at, side="right") - 1, 0, grid.size - 2)
    t = (at - grid[k]) / (grid[k + 1] - grid[k])
    hats = np.zeros((at.size, grid.size))
    rows = np.arange(at.size)
    hats[rows, k] = 1.0 - t
    hats[rows, k + 1] = t
    return hats


def _check_table(table_wavelengths: ArrayLike, table: ArrayLike) -> tuple[np.ndarray, ...]:
    knots = check_grid(table_wavelengths)
    values = np.asarray(table, dtype=float)
    if values.ndim == 1:
        values = values[:, None]
    if values.ndim != 2 or values.shape[0] != knots.size:
        raise ValueError(
            f"a response table must have one row per wavelength ({knots.size}) and one "
            f"column per band, got shape {values.shape}"
        )
    if not np.isfinite(values).all() or (values < 0).any():
        raise ValueError("a response table must hold finite values >= 0")
    if not (values.max(axis=0) > 0).all():
        raise ValueError("every band of a response table needs a positive response")
    return knots, values


def tabulated_weights(
    wavelengths: ArrayLike, table_wavelengths: ArrayLike, table: ArrayLike
) -> np.ndarray:
    """Weights of tabulated responses (linear between their rows, 0 outside) on a grid.

    Parameters
    ----------
    wavelengths : array-like of shape (n,)
        The spectra's sample wavelengths in nm, strictly increasing.
    table_wavelengths : array-like of shape (m,)
        The table's wavelengths in nm, strictly increasing.
    table : array-like of shape (m, n_bands)
        Each band's response (any scale) in a column.

    Returns
    -------
    ndarray of shape (n_bands, n)
        Row ``b`` holds band ``b``'s weights, which sum to 1.
    """
    grid = check_grid(wavelengths)
    knots, values = _check_table(table_wavelengths, table)
    inside = knots[(knots > grid[0]) & (knots < grid[-1])]
    points = np.union1d(grid, inside)  # both functions are linear between these
    hats = _hat_matrix(grid, points)  # [P, n]
    response = np.stack(
        [np.interp(points, knots, column, left=0.0, right=0.0) for column in values.T], axis=1
    )  # [P, B]
    step = np.diff(points)[:, None]  # [P-1, 1]
    # int over one step of two linear functions f, g: h/6 (2 f0 g0 + f0 g1 + f1 g0 + 2 f1 g1)
    left = step * (2.0 * response[:-1] + response[1:]) / 6.0  # [P-1, B]
    right = step * (response[:-1] + 2.0 * response[1:]) / 6.0
    return _normalised(left.T @ hats[:-1] + right.T @ hats[1:])


def half_maximum_range(table_wavelengths: ArrayLike, table: ArrayLike) -> np.ndarray:
    """Where each tabulated band first rises to and last falls from half its peak.

    The table is linear between its rows, so the crossings are interpolated.

    Parameters
    ----------
    table_wavelengths : array-like of shape (m,)
        The table's wavelengths in nm, strictly increasing.
    table : array-like of shape (m, n_bands)
        Each band's response in a column.

    Returns
    -------
    ndarray of shape (n_bands, 2)
        The first and last wavelength (nm) at half of each band's peak.
    """
    knots, values = _check_table(table_wavelengths, table)
    ranges = np.empty((values.shape[1], 2))
    for b, column in enumerate(values.T):
        half = 0.5 * column.max()
        above = np.flatnonzero(column >= half)
        first, last = above[0], above[-1]
        ranges[b] = knots[first], knots[last]
        if first > 0:  # the rise crosses half between rows first - 1 and first
            ranges[b, 0] = np.interp(
                half, column[first - 1 : first + 1], knots[first - 1 : first + 1]
            )
        if last < knots.size - 1:  # the fall, between rows last and last + 1 (reversed: rising)
            ranges[b, 1] = np.interp(
                half, column[last : last + 2][::-1], knots[last : last + 2][::-1]
            )
    return ranges


def apply_weights(spectra: ArrayLike, weights: np.ndarray, max_missing: float) -> np.ndarray:
    """Band averages of spectra; NaN samples are left out of a band if it can spare them.

    Parameters
    ----------
    spectra : array-like of shape (..., n)
        Spectra on the grid the weights were made for.
    weights : ndarray of shape (n_bands, n)
        Each band's weights, summing to 1 (``gaussian_weights``, ``tabulated_weights``).
    max_missing : float
        The largest share of a band's weight that missing (NaN or infinite) samples may
        carry: the band is then averaged over the others; beyond it the band is NaN.

    Returns
    -------
    ndarray of shape (..., n_bands)
    """
    values = np.asarray(spectra, dtype=float)
    if values.ndim == 0 or values.shape[-1] != weights.shape[1]:
        raise ValueError(
            f"spectra must have one value per wavelength ({weights.shape[1]}) on their last "
            f"axis, got shape {values.shape}"
        )
    if not 0.0 <= max_missing < 1.0:
        raise ValueError(f"max_missing must be in [0, 1), got {max_missing!r}")
    flat = values.reshape(-1, values.shape[-1])
    finite = np.isfinite(flat)
    if finite.all():
        return (flat @ weights.T).reshape(*values.shape[:-1], weights.shape[0])
    present = finite.astype(float) @ weights.T  # [N, B]: the weight of the finite samples
    total = np.where(finite, flat, 0.0) @ weights.T
    with np.errstate(invalid="ignore", divide="ignore"):
        # the slack keeps max_missing=0 from failing on rounding in the sum of weights
        out = np.where(present >= 1.0 - max_missing - 1e-12, total / present, np.nan)
    return out.reshape(*values.shape[:-1], weights.shape[0])


# Letters, an optional separator, the wavelength, an optional unit: Rrs_443, Rw443, lw443.5.
_BAND_NAME = re.compile(r"^(?:[A-Za-z]+[_\-]?)?(\d+(?:\.\d+)?)\s*(?:nm)?$")
# Outside this range a number in a name is a band index (B1, Oa01), not a wavelength.
_PLAUSIBLE_NM = (250.0, 2600.0)


def band_wavelengths(names: Sequence[str]) -> np.ndarray:
    """The wavelength in each band name, as in ``Rrs_443``, ``Rrs443``, ``Rw443``, ``lw443``.

    A name is letters, an optional ``_`` or ``-``, then the wavelength in nanometres (a
    number, perhaps with decimals and ``nm``); a bare number is a wavelength too.

    Parameters
    ----------
    names : sequence of str
        Variable or column names, one per band.

    Returns
    -------
    ndarray of float, shape (len(names),)
        Wavelengths in nanometres.
    """
    if isinstance(names, str):
        raise TypeError(f"names must be a sequence of names, not one string ({names!r})")
    found = []
    for name in names:
        match = _BAND_NAME.match(str(name).strip())
        value = float(match.group(1)) if match else math.nan
        if not _PLAUSIBLE_NM[0] <= value <= _PLAUSIBLE_NM[1]:
            raise ValueError(
                f"cannot read a wavelength in nm from the band name {name!r}: name bands "
                f"like 'Rrs_443', 'Rrs443' or 'Rw443' (a wavelength of "
                f"{_PLAUSIBLE_NM[0]:g}-{_PLAUSIBLE_NM[1]:g} nm)"
            )
        found.append(value)
    return np.array(found, dtype=float)


def _as_wavelengths(bands: ArrayLike | Sequence[str], what: str) -> tuple[np.ndarray, list]:
    """Wavelengths, and how to name each band in a message (its name, or its wavelength)."""
    values = list(bands) if not isinstance(bands, np.ndarray) else bands
    if len(values) and all(isinstance(v, str) for v in values):
        found = band_wavelengths(values)
        return found, [f"{name} ({nm:g} nm)" for name, nm in zip(values, found, strict=True)]
    array = np.asarray(values, dtype=float)
    if array.ndim != 1 or array.size == 0 or not np.isfinite(array).all():
        raise ValueError(f"{what} must be a non-empty list of finite wavelengths or band names")
    return array, [f"{nm:g} nm" for nm in array]


def nearest_bands(
    wanted: ArrayLike | Sequence[str],
    available: ArrayLike | Sequence[str],
    tolerance_nm: float,
) -> np.ndarray:
    """For each wanted band, the index of the nearest available band, within a tolerance.

    Two wanted bands may be given the same available band when it is within the tolerance
    of both.

    Parameters
    ----------
    wanted : array-like of float or sequence of str
        Wavelengths in nm (or band names such as ``Rrs_443``) that a model needs.
    available : array-like of float or sequence of str
        Wavelengths (or band names) that a scene has.
    tolerance_nm : float
        The largest distance in nm accepted between a wanted band and its match.

    Returns
    -------
    ndarray of int, shape (len(wanted),)
        Indices into ``available``.

    Raises
    ------
    ValueError
        Naming every wanted band farther than ``tolerance_nm`` from all available ones.
    """
    if isinstance(tolerance_nm, bool) or not (
        isinstance(tolerance_nm, numbers.Real) and tolerance_nm >= 0
    ):
        raise ValueError(f"tolerance_nm must be a number >= 0, got {tolerance_nm!r}")
    want, want_labels = _as_wavelengths(wanted, "wanted")
    have, have_labels = _as_wavelengths(available, "available")
    distance = np.abs(want[:, None] - have[None, :])
    index = distance.argmin(axis=1)
    gap = distance[np.arange(want.size), index]
    far = np.flatnonzero(gap > tolerance_nm)
    if far.size:
        missing = "; ".join(
            f"{want_labels[i]}: nearest {have_labels[index[i]]}, {gap[i]:g} nm away" for i in far
        )
        raise ValueError(
            f"{far.size} band(s) have no match within {tolerance_nm:g} nm: {missing}. "
            "Use a scene with these bands, a larger tolerance, or a model trained on the "
            "scene's bands."
        )
    return index
