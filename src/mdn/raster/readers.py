"""Scenes from the files users have, as one xarray Dataset of remote-sensing reflectance
(Rrs, sr^-1) with a variable per band, read lazily a window at a time.

Layouts read (the first that fits, in this order):

- SeaDAS (NASA OBPG) Level-2 NetCDF: ``Rrs_NNN`` in the ``geophysical_data`` group,
  latitude and longitude from ``navigation_data`` (the same groups in a Zarr store too);
  PACE OCI's ``Rrs`` on ``wavelength_3d``, with the wavelengths from
  ``sensor_band_parameters``;
- any Dataset or file with variables ``Rrs_NNN`` (ACOLITE L2W, SeaDAS Level-3, your own);
  ACOLITE's water reflectance ``rhow_NNN`` is divided by pi;
- POLYMER: ``RwNNN``, the water reflectance, so Rrs = Rw / pi;
- a variable with a band dimension (``band``, ``wavelength``...; see ``mdn.raster.cubes``):
  ``Rrs`` by preference (``Rw``/``rhow`` are divided by pi).

Bands still packed (``scale_factor``/``add_offset`` in their attributes: a Dataset opened
with ``mask_and_scale=False``) are decoded, lazily. Each band keeps its attributes, with
``wavelength`` (nm, from the variable's attribute or its name) and ``units`` set; the file's
coordinates, latitude and longitude (promoted to coordinates where they are variables),
grid mapping (CRS), CF flag variables (SeaDAS's ``l2_flags``: ``mask_flags=`` of
``raster.predict``) and global attributes are kept, and ``mdn_layout`` names the layout
found.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from mdn.raster.cubes import BAND_DIMS, band_axis
from mdn.raster.flags import flag_variables
from mdn.raster.optional import require

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["BAND_DIMS", "DEFAULT_CHUNKS", "open_scene"]

#: Pixels per side of the blocks a scene is read in (a few MB per band).
DEFAULT_CHUNKS = 512

_NUMBER = r"(\d+(?:\.\d+)?)"
# Prefix -> (factor to Rrs): Rrs itself; water reflectance rho_w = pi Rrs (POLYMER, ACOLITE).
_PREFIXES = {
    "rrs": (re.compile(rf"^Rrs_?{_NUMBER}$"), 1.0),
    "rhow": (re.compile(rf"^rhow_{_NUMBER}$"), 1.0 / math.pi),
    "rw": (re.compile(rf"^Rw_?{_NUMBER}$"), 1.0 / math.pi),
}
# Geolocation that POLYMER (latitude, longitude) and ACOLITE (lat, lon) write as variables.
_GEOLOCATION = {"latitude", "longitude", "lat", "lon"}


def _group(path: Path, group: str, chunks: object, engine: str | None) -> xr.Dataset | None:
    """One group of the file, or None where it has no such group."""
    xr = require("xarray")
    try:
        return xr.open_dataset(path, group=group, chunks=chunks, engine=engine)
    except (OSError, KeyError, ValueError):
        return None


def _with_navigation(data: xr.Dataset, navigation: xr.Dataset, where: Path) -> xr.Dataset:
    """SeaDAS's latitude and longitude as coordinates of the bands, where they lie on the
    bands' pixels. OBPG writes them on ``pixel_control_points``, which is the pixels of a
    line unless the navigation is subsampled."""
    names = [n for n in ("latitude", "longitude") if n in navigation.variables]
    points = navigation.sizes.get("pixel_control_points")
    if points is not None and points == data.sizes.get("pixels_per_line"):
        navigation = navigation.rename_dims(pixel_control_points="pixels_per_line")
    found = {n: navigation[n].variable for n in names}
    fits = {
        n: v for n, v in found.items() if all(data.sizes.get(d) == s for d, s in v.sizes.items())
    }
    if len(fits) < len(found):
        left = {n: dict(v.sizes) for n, v in found.items() if n not in fits}
        warnings.warn(
            f"{where}: navigation_data's {', '.join(left)} lie on {left[next(iter(left))]}, "
            f"not on the bands' pixels {dict(data.sizes)} (subsampled control points?): the "
            "scene is read without them; interpolate them to the pixels and "
            "scene.assign_coords(latitude=..., longitude=...) if you need them",
            stacklevel=5,  # the caller of open_scene
        )
    return data.assign_coords(fits)


def _with_band_wavelengths(data: xr.Dataset, parameters: xr.Dataset) -> xr.Dataset:
    """PACE OCI's band dimension ``wavelength_3d`` has its coordinate in another group."""
    found = {}
    for dim, size in data.sizes.items():
        if dim in BAND_DIMS and dim not in data.coords and dim in parameters.variables:
            wavelengths = parameters[dim]
            if wavelengths.dims == (dim,) and wavelengths.size == size:
                found[dim] = (dim, wavelengths.values, wavelengths.attrs)
    return data.assign_coords(found)


def _open_grouped(path: Path, chunks: object, engine: str | None) -> xr.Dataset:
    """The root of the file, or SeaDAS's groups joined where it has them."""
    xr = require("xarray")
    root = xr.open_dataset(path, chunks=chunks, engine=engine)
    data = _group(path, "geophysical_data", chunks, engine)
    if data is None:  # not a SeaDAS Level-2 file
        return root
    navigation = _group(path, "navigation_data", chunks, engine)
    if navigation is not None:  # bands without latitude and longitude are still bands
        data = _with_navigation(data, navigation, path)
    parameters = _group(path, "sensor_band_parameters", None, engine)
    if parameters is not None:
        data = _with_band_wavelengths(data, parameters)
    return data.assign_attrs({**root.attrs, **data.attrs, "mdn_layout": "seadas"})


def _open_path(path: Path, chunks: object) -> xr.Dataset:
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such scene file")
    engine = "zarr" if path.is_dir() or path.suffix.lower() == ".zarr" else None
    try:
        return _open_grouped(path, chunks, engine)
    except ImportError as error:  # h5netcdf without h5py cannot open NetCDF-4 (HDF5) files
        raise ImportError(
            f"{path}: reading this scene needs a package ({error}): pip install 'mdn[raster]'"
        ) from None
    except (OSError, ValueError) as error:
        raise ValueError(f"{path} is not a readable NetCDF or Zarr scene ({error})") from None


def _decoded(variable: xr.DataArray) -> xr.DataArray:
    """The band unpacked as xarray opens a file by default, where it is still packed
    (``scale_factor``, ``add_offset`` in its attributes); lazily, dask arrays stay dask."""
    if not {"scale_factor", "add_offset"} & set(variable.attrs):
        return variable
    xr = require("xarray")
    name = str(variable.name or "band")
    alone = xr.Dataset({name: variable.variable})  # without coordinates, left as they are
    decoded = xr.decode_cf(alone, decode_times=False, decode_coords=False, decode_timedelta=False)[
        name
    ].variable
    out = xr.DataArray(decoded, coords=variable.coords, name=variable.name)
    out.encoding = {**variable.encoding, **decoded.encoding}  # as a file opened decoded
    return out


def _band(variable: xr.DataArray, wavelength: float, factor: float) -> xr.DataArray:
    variable = _decoded(variable)
    band = variable if factor == 1.0 else variable * factor
    attrs = dict(variable.attrs)
    attrs.update(
        wavelength=wavelength,
        units="sr-1",
        long_name=f"remote-sensing reflectance at {wavelength:g} nm",
    )
    if factor != 1.0:
        attrs["comment"] = "water reflectance divided by pi"
    band = band.assign_attrs(attrs)
    # a scaled band keeps none of the file's packing (dtype, scale_factor, _FillValue)
    kept = ("grid_mapping", "chunks", "preferred_chunks", "source")
    band.encoding = {k: v for k, v in variable.encoding.items() if factor == 1.0 or k in kept}
    return band


def _named_bands(scene: xr.Dataset) -> tuple[str, dict[str, xr.DataArray]]:
    """The bands of the first prefix (Rrs, rhow, Rw) that names any variable."""
    for prefix, (pattern, factor) in _PREFIXES.items():
        found = {}
        for name, variable in scene.data_vars.items():
            match = pattern.match(str(name))
            if match:
                wavelength = variable.attrs.get("wavelength")
                if not isinstance(wavelength, (int, float)):
                    wavelength = float(match.group(1))
                label = name if prefix == "rrs" else f"Rrs_{match.group(1)}"
                found[label] = _band(variable, float(wavelength), factor)
        if found:
            return prefix, found
    return "", {}


def _cube_bands(scene: xr.Dataset) -> dict[str, xr.DataArray]:
    """The bands of a variable with a band dimension, split into one variable each."""
    axis = band_axis(scene)
    if axis is None:
        return {}
    name, dim, wavelengths = axis
    cube = scene[name]
    factor = 1.0 / math.pi if name in ("Rw", "rhow") else 1.0
    return {
        f"Rrs_{float(w):g}": _band(cube.isel({dim: i}, drop=True), float(w), factor)
        for i, w in enumerate(wavelengths)
    }


def _layout(scene: xr.Dataset, prefix: str) -> str:
    if scene.attrs.get("mdn_layout"):
        return str(scene.attrs["mdn_layout"])
    made_by = " ".join(str(scene.attrs.get(k, "")) for k in ("generated_by", "processor"))
    if "acolite" in made_by.lower():
        return "acolite"
    return {"rw": "polymer", "rhow": "acolite"}.get(prefix, "xarray")


def _geolocation(scene: xr.Dataset, dims: set) -> dict[str, xr.DataArray]:
    """Latitude and longitude written as data variables on the bands' dimensions."""
    return {
        str(n): v
        for n, v in scene.data_vars.items()
        if v.ndim
        and set(v.dims) <= dims
        and (
            str(n).lower() in _GEOLOCATION
            or v.attrs.get("standard_name") in ("latitude", "longitude")
        )
    }


def _from_dataset(scene: xr.Dataset, where: str) -> xr.Dataset:
    xr = require("xarray")
    prefix, bands = _named_bands(scene)
    if not bands:
        bands = _cube_bands(scene)
    if not bands:
        found = ", ".join(f"{n}{tuple(map(str, v.dims))}" for n, v in scene.data_vars.items())
        raise ValueError(
            f"{where} holds no reflectance bands: expected variables Rrs_NNN (SeaDAS, "
            "ACOLITE, any), rhow_NNN (ACOLITE), RwNNN (POLYMER) or one with a band "
            f"dimension ({', '.join(BAND_DIMS)}); found {found or 'no variables'}. A band "
            "dimension of another name: scene.rename({'<name>': 'band'})"
        )
    bands = dict(sorted(bands.items(), key=lambda item: item[1].attrs["wavelength"]))
    mappings = {
        str(b.attrs.get("grid_mapping", b.encoding.get("grid_mapping", ""))) for b in bands.values()
    } - {""}
    extra = {m: scene[m] for m in mappings if m in scene.variables and m not in scene.coords}
    dims = {d for b in bands.values() for d in b.dims}
    extra.update({n: scene[n] for n in flag_variables(scene) if set(scene[n].dims) <= dims})
    coords = {k: v for k, v in scene.coords.items() if set(v.dims) <= dims}  # not a band axis
    coords.update(_geolocation(scene, dims))
    out = xr.Dataset({**bands, **extra}, coords=coords, attrs=scene.attrs)
    out.attrs["mdn_layout"] = _layout(scene, prefix)
    return out


def open_scene(
    scene: str | os.PathLike | xr.Dataset | xr.DataArray, *, chunks: object = DEFAULT_CHUNKS
) -> xr.Dataset:
    """A scene's remote-sensing reflectance, one variable per band, read lazily.

    Parameters
    ----------
    scene : path-like, xarray.Dataset or xarray.DataArray
        A NetCDF file (SeaDAS L2, PACE OCI L2, ACOLITE, POLYMER or any with the layouts
        above), a Zarr store, or a Dataset/DataArray in one of those layouts.
    chunks : int, dict or None
        Blocks to read a file in (pixels per side, or xarray's ``chunks``): each block is
        read when it is needed, so a scene larger than memory can be predicted. None reads
        the file without dask. A Dataset given is not rechunked.

    Returns
    -------
    xarray.Dataset
        ``Rrs_<nm>`` variables (sr^-1, decoded), ordered by wavelength, each with a
        ``wavelength`` attribute; the coordinates (latitude and longitude among them), grid
        mapping and attributes of the scene, and ``attrs["mdn_layout"]``: "seadas",
        "acolite", "polymer" or "xarray".
    """
    xr = require("xarray")
    if isinstance(scene, xr.DataArray):
        return _from_dataset(scene.to_dataset(name=scene.name or "Rrs"), "the DataArray")
    if isinstance(scene, xr.Dataset):
        return _from_dataset(scene, "the Dataset")
    if not isinstance(scene, (str, os.PathLike)):
        raise TypeError(
            f"scene must be a path, an xarray Dataset or DataArray, not {type(scene).__name__}"
        )
    path = Path(scene)
    return _from_dataset(_open_path(path, chunks), str(path))
