"""Scenes with all bands in one variable (a cube): which variable holds the reflectance,
which of its dimensions the bands, and which coordinate their wavelengths in nm.

The band dimension is one of ``BAND_DIMS`` (PACE OCI's ``wavelength_3d`` among them). Its
wavelengths come from a coordinate along it named as wavelengths (``wavelength``, ``wl``,
``lambda``...) or in nm, by preference: rioxarray numbers the bands 1..N on ``band`` and a
hyperspectral file may keep the wavelengths beside them. Else the dimension's own coordinate
gives them, and it must hold wavelengths in nm, not band numbers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["BAND_DIMS", "WAVELENGTH_RANGE_NM", "band_axis"]

#: Names of a band dimension in a Dataset with all bands in one variable.
BAND_DIMS = ("band", "bands", "wavelength", "wavelengths", "wl", "lambda", "wavelength_3d")
#: Wavelengths (nm) a reflectance band may have: ultraviolet to shortwave infrared. Values
#: outside are band numbers or another unit, never matched to a model's bands by chance.
WAVELENGTH_RANGE_NM = (250.0, 2600.0)

_WAVELENGTH_NAMES = {"wavelength", "wavelengths", "wl", "lambda", "wavelength_3d"}
_NM = {"nm", "nanometer", "nanometers", "nanometre", "nanometres"}
# Reflectance variables by preference; others with a band dimension are not taken by guess.
_PREFERRED = ("Rrs", "rrs", "Rw", "rhow")


def _cube(scene: xr.Dataset) -> tuple[str, str] | None:
    """The reflectance variable with a band dimension, and that dimension."""
    cubes = {str(n): v for n, v in scene.data_vars.items() if set(v.dims) & set(BAND_DIMS)}
    if not cubes:
        return None
    preferred = [n for n in _PREFERRED if n in cubes]
    if not preferred and len(cubes) > 1:
        raise ValueError(
            f"several variables have a band dimension ({', '.join(cubes)}); name the "
            "reflectance one 'Rrs', or pass that variable alone"
        )
    name = preferred[0] if preferred else next(iter(cubes))
    return name, next(str(d) for d in cubes[name].dims if d in BAND_DIMS)


def _is_wavelength(name: str, coordinate: xr.DataArray) -> bool:
    units = str(coordinate.attrs.get("units", "")).strip().lower()
    return name.lower() in _WAVELENGTH_NAMES or units in _NM


def band_axis(scene: xr.Dataset) -> tuple[str, str, np.ndarray] | None:
    """The scene's reflectance cube: its variable, band dimension and wavelengths.

    Parameters
    ----------
    scene : xarray.Dataset
        A scene with its bands along one dimension of one variable (``Rrs`` by preference,
        or ``Rw``/``rhow``, or the only variable with a band dimension).

    Returns
    -------
    tuple of (str, str, numpy.ndarray) or None
        The variable's name, its band dimension and the wavelength (nm) of each band along
        it; None when no variable has a band dimension.

    Raises
    ------
    ValueError
        When several variables have a band dimension and none is a preferred name, or the
        wavelengths are missing, not numbers or outside ``WAVELENGTH_RANGE_NM``.
    """
    found = _cube(scene)
    if found is None:
        return None
    name, dim = found
    cube = scene[name]
    named = [
        str(n)
        for n, c in cube.coords.items()
        if n != dim and c.dims == (dim,) and _is_wavelength(str(n), c)
    ]
    source = named[0] if named else dim
    values = cube[source].values if source in cube.coords else None
    hint = (
        f"assign them with scene.assign_coords({dim}=[443.0, 490.0, ...]) or add a "
        f"'wavelength' coordinate along {dim!r}"
    )
    if values is None or values.dtype.kind not in "iuf":
        raise ValueError(
            f"the variable {name!r} has a {dim!r} dimension without wavelengths (nm) as its "
            f"coordinate; {hint}"
        )
    low, high = WAVELENGTH_RANGE_NM
    if not np.all((values >= low) & (values <= high)):
        raise ValueError(
            f"the variable {name!r} has a {dim!r} dimension whose coordinate {source!r} holds "
            f"{_shown(values)}, not wavelengths in nm ({low:g}-{high:g}): band numbers or "
            f"another unit; {hint}"
        )
    return name, dim, values.astype(float)


def _shown(values: np.ndarray, limit: int = 6) -> str:
    shown = ", ".join(f"{v:g}" for v in values[:limit])
    return f"[{shown}{', ...' if len(values) > limit else ''}]"
