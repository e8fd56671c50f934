"""A semi-analytical forward model of remote-sensing reflectance from water constituents.

Inherent optical properties (per metre) from chlorophyll-a (``chl``, mg m^-3), total suspended
solids (``tss``, g m^-3) and coloured dissolved organic matter (``cdom``: its absorption at
443 nm, m^-1), then reflectance from them (Gordon et al. 1988; Lee et al. 2002):

    a    = a_w + a_ph + a_cdom + a_nap                         total absorption
    b_b  = b_bw + b_bp                                         total backscattering
    a_ph(l)   = A(l) chl^(1 - B(l))                            Bricaud et al. (1998)
    a_cdom(l) = cdom exp(-S_cdom (l - 443))                    Bricaud et al. (1981)
    a_nap(l)  = a*_nap tss exp(-S_nap (l - 443))               Babin et al. (2003b)
    b_bp(l)   = (b_bph(chl) + b*_bp tss) (555 / l)^eta
    b_bph(chl) = 0.416 chl^0.766 max(0.002, 0.002 + 0.01 (0.5 - 0.25 log10 chl))
                                                               Morel & Maritorena (2001)
    u = b_b / (a + b_b),   r_rs = g0 u + g1 u^2,   R_rs = 0.52 r_rs / (1 - 1.7 r_rs)

Pure water (``a_w``, ``b_bw``) and Bricaud's ``A``, ``B`` are tables shipped with mdn
(``mdn/ocean/resources/optics``, sources in its SOURCE.md), interpolated linearly. Bricaud's table
covers 400-700 nm: below 400 nm its 400 nm values are kept, and above 700 nm ``A`` keeps
falling as it does from 690 to 700 nm (by e every 10 nm), ``B`` kept at its 700 nm value;
both are assumptions, not data. Raman scattering, chlorophyll fluorescence and the
bidirectional effects are left out. The model is defined from 347.5 to 795 nm, the range of
the water tables.
"""

from __future__ import annotations

import functools
import io
from importlib import resources

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "A_NAP",
    "B_BP_TSS",
    "ETA",
    "G0",
    "G1",
    "S_CDOM",
    "S_NAP",
    "WAVELENGTH_RANGE",
    "cdom_absorption",
    "nap_absorption",
    "particle_backscattering",
    "phytoplankton_absorption",
    "reflectance",
    "remote_sensing_reflectance",
    "water_absorption",
    "water_backscattering",
]

#: Gordon et al. (1988) coefficients of r_rs = g0 u + g1 u^2, as used by Lee et al. (2002).
G0, G1 = 0.0895, 0.1247
#: Spectral slope of CDOM absorption (nm^-1): Bricaud et al. (1981) found 0.014 on average,
#: Babin et al. (2003b) 0.0176 +- 0.0020 in European coastal waters.
S_CDOM = 0.015
#: Absorption of non-algal particles at 443 nm per g m^-3 of suspended solids (m^2 g^-1) and
#: its spectral slope (nm^-1): Babin et al. (2003b), mean of European coastal waters.
A_NAP, S_NAP = 0.041, 0.0123
#: Backscattering of suspended solids at 555 nm per g m^-3 (m^2 g^-1): a mass-specific
#: scattering of about 0.5 m^2 g^-1 (Babin et al. 2003a) times a backscattering ratio of
#: about 0.02 for mineral particles.
B_BP_TSS = 0.01
#: Spectral exponent of particle backscattering, b_bp ~ l^-eta (Lee et al. 2002 range 0-2).
ETA = 1.0
#: The wavelengths (nm) the pure-water tables cover: the model's range.
WAVELENGTH_RANGE = (347.5, 795.0)

_REFERENCE_NM = 443.0  # absorption slopes are referenced here
_BACKSCATTER_NM = 555.0  # backscattering is referenced here
_BRICAUD_RANGE = (400.0, 700.0)
_BRICAUD_DECAY_NM = 10.0  # A's e-folding above 700 nm: A(690) / A(700) = 0.0083 / 0.003


@functools.cache
def _table(name: str) -> np.ndarray:
    """A table shipped in mdn/ocean/resources/optics, read once."""
    text = resources.files("mdn.ocean").joinpath("resources", "optics", name)
    return np.loadtxt(io.StringIO(text.read_text()), delimiter=",")


def _wavelengths(wavelengths: ArrayLike) -> np.ndarray:
    grid = np.asarray(wavelengths, dtype=float)
    if grid.ndim != 1 or grid.size == 0:
        raise ValueError(f"wavelengths must be a 1-D array of nm, got shape {grid.shape}")
    low, high = WAVELENGTH_RANGE
    if not ((grid >= low) & (grid <= high)).all():
        raise ValueError(
            f"the forward model is defined from {low:g} to {high:g} nm (its pure-water "
            f"tables); got wavelengths from {np.nanmin(grid):g} to {np.nanmax(grid):g} nm"
        )
    return grid


def _amounts(values: ArrayLike, name: str, positive: bool = False) -> np.ndarray:
    """Concentrations as a column ``(n, 1)`` to broadcast against wavelengths."""
    array = np.asarray(values, dtype=float)
    if array.ndim > 1:
        raise ValueError(f"{name} must be a number or a 1-D array, got shape {array.shape}")
    low_ok = array > 0 if positive else array >= 0
    if not (np.isfinite(array) & low_ok).all():
        raise ValueError(f"{name} must be finite and {'> 0' if positive else '>= 0'}")
    return array.reshape(-1, 1)


def water_absorption(wavelengths: ArrayLike) -> np.ndarray:
    """Absorption of pure water, a_w (m^-1).

    Parameters
    ----------
    wavelengths : array-like of shape (m,)
        Wavelengths in nm, within ``WAVELENGTH_RANGE``.

    Returns
    -------
    ndarray of shape (m,)
    """
    table = _table("aw.csv")
    return np.interp(_wavelengths(wavelengths), table[:, 0], table[:, 1])


def water_backscattering(wavelengths: ArrayLike) -> np.ndarray:
    """Backscattering of pure seawater, b_bw (m^-1).

    Parameters
    ----------
    wavelengths : array-like of shape (m,)
        Wavelengths in nm, within ``WAVELENGTH_RANGE``.

    Returns
    -------
    ndarray of shape (m,)
    """
    table = _table("bbw.csv")
    return np.interp(_wavelengths(wavelengths), table[:, 0], table[:, 1])


def phytoplankton_absorption(
    wavelengths: ArrayLike, chl: ArrayLike, factor: ArrayLike = 1.0
) -> np.ndarray:
    """Phytoplankton absorption from chlorophyll-a (Bricaud et al. 1998), a_ph (m^-1).

    Parameters
    ----------
    wavelengths : array-like of shape (m,)
        Wavelengths in nm, within ``WAVELENGTH_RANGE``.
    chl : float or array-like of shape (n,)
        Chlorophyll-a, mg m^-3, > 0.
    factor : float or array-like of shape (n,)
        Multiplies Bricaud's mean absorption per chl: cells of other sizes and pigments
        absorb more or less than the mean at the same chl.

    Returns
    -------
    ndarray of shape (n, m)
    """
    grid = _wavelengths(wavelengths)
    table = _table("AB_Bricaud.csv")
    inside = np.clip(grid, *_BRICAUD_RANGE)
    a = np.interp(inside, table[:, 0], table[:, 1])
    b = np.interp(inside, table[:, 0], table[:, 2])
    above = grid > _BRICAUD_RANGE[1]
    a[above] *= np.exp(-(grid[above] - _BRICAUD_RANGE[1]) / _BRICAUD_DECAY_NM)
    return a * _amounts(factor, "factor") * _amounts(chl, "chl", positive=True) ** (1.0 - b)


def cdom_absorption(
    wavelengths: ArrayLike, cdom: ArrayLike, slope: ArrayLike = S_CDOM
) -> np.ndarray:
    """Absorption of coloured dissolved organic matter, a_cdom (m^-1).

    Parameters
    ----------
    wavelengths : array-like of shape (m,)
        Wavelengths in nm, within ``WAVELENGTH_RANGE``.
    cdom : float or array-like of shape (n,)
        CDOM absorption at 443 nm, m^-1, >= 0.
    slope : float or array-like of shape (n,)
        Spectral slope, nm^-1.

    Returns
    -------
    ndarray of shape (n, m)
    """
    grid = _wavelengths(wavelengths)
    rate = _amounts(slope, "slope")
    return _amounts(cdom, "cdom") * np.exp(-rate * (grid - _REFERENCE_NM))


def nap_absorption(
    wavelengths: ArrayLike,
    tss: ArrayLike,
    specific: ArrayLike = A_NAP,
    slope: ArrayLike = S_NAP,
) -> np.ndarray:
    """Absorption of non-algal particles, tied to suspended solids, a_nap (m^-1).

    Parameters
    ----------
    wavelengths : array-like of shape (m,)
        Wavelengths in nm, within ``WAVELENGTH_RANGE``.
    tss : float or array-like of shape (n,)
        Total suspended solids, g m^-3, >= 0.
    specific : float or array-like of shape (n,)
        Absorption at 443 nm per g m^-3, m^2 g^-1.
    slope : float or array-like of shape (n,)
        Spectral slope, nm^-1.

    Returns
    -------
    ndarray of shape (n, m)
    """
    grid = _wavelengths(wavelengths)
    at_443 = _amounts(tss, "tss") * _amounts(specific, "specific")
    return at_443 * np.exp(-_amounts(slope, "slope") * (grid - _REFERENCE_NM))


def particle_backscattering(
    wavelengths: ArrayLike,
    chl: ArrayLike,
    tss: ArrayLike,
    specific: ArrayLike = B_BP_TSS,
    eta: ArrayLike = ETA,
) -> np.ndarray:
    """Backscattering of particles: phytoplankton (from chl) and suspended solids, b_bp (m^-1).

    The phytoplankton part is Morel and Maritorena's (2001) Case-1 particle backscattering
    at 550 nm (used here at 555 nm), whose backscattering ratio is kept at 0.002 or more
    (the value it reaches at 100 mg m^-3).

    Parameters
    ----------
    wavelengths : array-like of shape (m,)
        Wavelengths in nm, within ``WAVELENGTH_RANGE``.
    chl : float or array-like of shape (n,)
        Chlorophyll-a, mg m^-3, > 0.
    tss : float or array-like of shape (n,)
        Total suspended solids, g m^-3, >= 0.
    specific : float or array-like of shape (n,)
        Backscattering at 555 nm per g m^-3 of suspended solids, m^2 g^-1.
    eta : float or array-like of shape (n,)
        Spectral exponent: b_bp(l) = b_bp(555) (555 / l)^eta.

    Returns
    -------
    ndarray of shape (n, m)
    """
    grid = _wavelengths(wavelengths)
    chl = _amounts(chl, "chl", positive=True)
    ratio = np.maximum(0.002, 0.002 + 0.01 * (0.5 - 0.25 * np.log10(chl)))
    at_555 = 0.416 * chl**0.766 * ratio + _amounts(tss, "tss") * _amounts(specific, "specific")
    return at_555 * (_BACKSCATTER_NM / grid) ** _amounts(eta, "eta")


def reflectance(absorption: ArrayLike, backscattering: ArrayLike) -> np.ndarray:
    """Remote-sensing reflectance above water from total absorption and backscattering.

    ``u = b_b / (a + b_b)``, below-water ``r_rs = G0 u + G1 u^2`` (Gordon et al. 1988) and
    above water ``R_rs = 0.52 r_rs / (1 - 1.7 r_rs)`` (Lee et al. 2002).

    Parameters
    ----------
    absorption : array-like
        Total absorption a, m^-1, > 0.
    backscattering : array-like
        Total backscattering b_b, m^-1, > 0; broadcastable against ``absorption``.

    Returns
    -------
    ndarray
        R_rs, sr^-1, of the broadcast shape.
    """
    a = np.asarray(absorption, dtype=float)
    bb = np.asarray(backscattering, dtype=float)
    if not ((a > 0).all() and (bb > 0).all()):
        raise ValueError("absorption and backscattering must be > 0")
    u = bb / (a + bb)
    below = G0 * u + G1 * u**2
    return 0.52 * below / (1.0 - 1.7 * below)


def remote_sensing_reflectance(
    wavelengths: ArrayLike,
    chl: ArrayLike,
    tss: ArrayLike,
    cdom: ArrayLike,
    *,
    a_ph_factor: ArrayLike = 1.0,
    s_cdom: ArrayLike = S_CDOM,
    a_nap: ArrayLike = A_NAP,
    s_nap: ArrayLike = S_NAP,
    b_bp_tss: ArrayLike = B_BP_TSS,
    eta: ArrayLike = ETA,
) -> np.ndarray:
    """R_rs (sr^-1) of water with these constituents, from the model in the module's notes.

    Every constituent and shape parameter may be a number or one value per spectrum.

    Parameters
    ----------
    wavelengths : array-like of shape (m,)
        Wavelengths in nm, within ``WAVELENGTH_RANGE``.
    chl : float or array-like of shape (n,)
        Chlorophyll-a, mg m^-3, > 0.
    tss : float or array-like of shape (n,)
        Total suspended solids, g m^-3, >= 0.
    cdom : float or array-like of shape (n,)
        CDOM absorption at 443 nm, m^-1, >= 0.
    a_ph_factor : float or array-like of shape (n,)
        Multiplies Bricaud's phytoplankton absorption per chl.
    s_cdom : float or array-like of shape (n,)
        CDOM spectral slope, nm^-1.
    a_nap : float or array-like of shape (n,)
        Non-algal absorption at 443 nm per g m^-3 of suspended solids, m^2 g^-1.
    s_nap : float or array-like of shape (n,)
        Non-algal spectral slope, nm^-1.
    b_bp_tss : float or array-like of shape (n,)
        Backscattering at 555 nm per g m^-3 of suspended solids, m^2 g^-1.
    eta : float or array-like of shape (n,)
        Spectral exponent of particle backscattering.

    Returns
    -------
    ndarray of shape (n, m)
    """
    absorption = (
        water_absorption(wavelengths)
        + phytoplankton_absorption(wavelengths, chl, a_ph_factor)
        + cdom_absorption(wavelengths, cdom, s_cdom)
        + nap_absorption(wavelengths, tss, a_nap, s_nap)
    )
    backscattering = water_backscattering(wavelengths) + particle_backscattering(
        wavelengths, chl, tss, b_bp_tss, eta
    )
    return reflectance(absorption, backscattering)
