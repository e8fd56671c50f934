"""Predicted scenes to files: NetCDF, Zarr, or a Cloud-Optimized GeoTIFF (through rioxarray,
where it is installed). The blocks are computed while they are written, by the scheduler
in use (a ``dask.distributed`` client when one is active, threads otherwise), into a
temporary file beside the output that replaces it only when everything succeeded."""

from __future__ import annotations

import json
import numbers
import os
import shutil
import sys
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mdn.raster.optional import require

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["FORMATS", "check_scene_output", "netcdf_engine", "write_scene"]

#: Output suffixes and their formats.
FORMATS = {".nc": "netcdf", ".nc4": "netcdf", ".zarr": "zarr", ".tif": "cog", ".tiff": "cog"}


def check_scene_output(path: str | os.PathLike) -> Path:
    """``path`` checked before any work: a known suffix and an existing folder.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    Path
    """
    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        raise ValueError(
            f"{path}: unknown scene output type {path.suffix!r}; use {', '.join(FORMATS)}"
        )
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{path}: the folder {path.parent} does not exist")
    kind = FORMATS[path.suffix.lower()]
    if kind == "cog":
        require("rioxarray", "GeoTIFF outputs")
    elif kind == "netcdf":
        netcdf_engine()
    return path


def _active_client() -> object | None:
    try:
        from distributed import get_client
    except ImportError:
        return None
    try:
        return get_client()
    except ValueError:  # no client: dask's local schedulers
        return None


def _compute(delayed: object, progress: bool) -> None:
    """Compute ``delayed``; when it fails, return only once no task of it runs any more, so
    that nothing writes into the temporary output after it is removed."""
    client = _active_client()
    if client is not None:
        future = client.compute(delayed)
        try:
            if progress:
                require("distributed").progress(future)
            future.result()
        except BaseException:
            client.cancel(future)
            raise
        return
    dask = require("dask")
    if dask.config.get("scheduler", None) not in (None, "threads", "threading"):
        delayed.compute()  # a scheduler the caller chose
        return
    # dask's threaded scheduler raises at the first failure while other tasks still run;
    # a pool of our own can be waited for.
    workers = dask.config.get("num_workers", None) or os.cpu_count() or 1
    pool = ThreadPoolExecutor(workers)
    try:
        if progress:
            with require("dask.diagnostics").ProgressBar(out=sys.stderr):
                delayed.compute(scheduler="threads", pool=pool)
        else:
            delayed.compute(scheduler="threads", pool=pool)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _remove(path: Path) -> None:
    """Remove a temporary output, even while a cancelled cluster task may still write to it."""
    for attempt in range(20):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        if not path.exists():
            return
        time.sleep(0.05 * (attempt + 1))


def _geotiff(dataset: xr.Dataset, path: Path) -> tuple[object, Callable[[], None]]:
    """A tiled GeoTIFF written block by block, then copied into COG layout by GDAL (a COG
    cannot be written in pieces: its overviews and tile order come after the data)."""
    require("rioxarray", "GeoTIFF outputs")
    from rasterio.shutil import copy as gdal_copy

    names = [n for n, v in dataset.data_vars.items() if v.dtype == np.float32]
    cube = dataset[names].to_array(dim="band").assign_coords(band=np.arange(1, len(names) + 1))
    _check_geotiff_dims(cube)
    cube.attrs = {"long_name": tuple(names), **dataset.attrs}
    mapping = dataset[names[0]].attrs.get("grid_mapping")
    if mapping in dataset.variables:  # to_array dropped it and the variables' attributes
        cube = cube.assign_coords({mapping: dataset[mapping].variable}).rio.write_grid_mapping(
            mapping
        )
    cube = cube.rio.write_nodata(np.nan, encoded=False)
    tiled = path.with_name(path.name + ".tiles.tif")
    delayed = cube.rio.to_raster(
        tiled,
        driver="GTiff",
        tiled=True,
        blockxsize=512,
        blockysize=512,
        compress="DEFLATE",
        BIGTIFF="IF_SAFER",
        lock=True,
        compute=False,
    )

    def finish() -> None:
        try:
            gdal_copy(tiled, path, driver="COG", COMPRESS="DEFLATE", BIGTIFF="IF_SAFER")
        finally:
            tiled.unlink(missing_ok=True)

    return delayed, finish


def _check_geotiff_dims(cube: xr.DataArray) -> None:
    """A GeoTIFF holds a map: refuse, before any work, outputs that are not one."""
    dims = cube.dims[1:]  # after the outputs' band
    try:
        spatial = len(dims) == 2 and {cube.rio.x_dim, cube.rio.y_dim} == set(dims)
    except Exception:  # rioxarray's MissingSpatialDimensionError: no x/y (or lon/lat) dims
        spatial = False
    if not spatial:
        raise ValueError(
            f"a GeoTIFF holds a map on x and y dimensions; this scene's outputs lie on "
            f"{dims}: write .nc or .zarr instead"
        )


def _netcdf_attrs(attrs: Mapping[str, object]) -> dict[str, object]:
    """Global attributes NetCDF can store: a Zarr scene's JSON values (mappings, booleans,
    null) become JSON text, integers or nothing."""
    stored: dict[str, object] = {}
    for key, value in attrs.items():
        if value is None:
            continue
        if isinstance(value, (bool, np.bool_)):
            value = int(value)
        elif isinstance(value, Mapping) or (
            isinstance(value, (list, tuple))
            and not all(isinstance(v, (numbers.Number, str)) for v in value)
        ):
            value = json.dumps(value, default=str)
        stored[key] = value
    return stored


def netcdf_engine() -> str:
    """The xarray engine for NetCDF-4: netCDF4, or h5netcdf with h5py. Both write a block at
    a time (scipy's NetCDF-3 writer holds the whole file in memory, so it is not used).

    Returns
    -------
    str
        ``"netcdf4"`` or ``"h5netcdf"``.
    """
    for engine, module in (("netcdf4", "netCDF4"), ("h5netcdf", "h5py")):
        try:
            __import__(module)
            return engine
        except ImportError:
            continue
    raise ImportError(
        "writing NetCDF-4 needs h5py (or netCDF4): pip install 'mdn[raster]'; or write Zarr (.zarr)"
    )


def _writer(dataset: xr.Dataset, path: Path, kind: str) -> tuple[object, Callable[[], None]]:
    """What computes and writes the blocks, and what completes the file afterwards."""
    if kind == "netcdf":
        dataset = dataset.copy(deep=False)  # the caller's attributes stay as they are
        dataset.attrs = _netcdf_attrs(dataset.attrs)
        return dataset.to_netcdf(path, engine=netcdf_engine(), compute=False), lambda: None
    if kind == "zarr":
        # Zarr format 2 with consolidated metadata: what GDAL and older readers open
        return dataset.to_zarr(
            path, mode="w", zarr_format=2, consolidated=True, compute=False
        ), lambda: None
    return _geotiff(dataset, path)


def _replace(temporary: Path, path: Path) -> None:
    if not temporary.is_dir():
        os.replace(temporary, path)
        return
    backup = path.with_name(f".{path.name}.{os.getpid()}.old")
    if path.exists():
        os.replace(path, backup)
    os.replace(temporary, path)
    shutil.rmtree(backup, ignore_errors=True)


def write_scene(dataset: xr.Dataset, path: str | os.PathLike, *, progress: bool = False) -> Path:
    """Compute ``dataset`` block by block into ``path``: ``.nc``, ``.zarr`` or ``.tif``.

    NetCDF is written with h5netcdf, Zarr with zarr, ``.tif`` as one Cloud-Optimized GeoTIFF
    band per float output (named in the band descriptions; needs ``pip install
    'mdn[geotiff]'`` and x/y dimensions). An existing output is replaced only after the new
    one is complete; a failure leaves it as it was.

    Parameters
    ----------
    dataset : xarray.Dataset
        A predicted scene (``mdn.raster.predict``), or any dataset.
    path : path-like
        The output; its suffix says the format.
    progress : bool
        Show a progress bar on stderr (dask's for local schedulers, distributed's with a
        client).

    Returns
    -------
    Path
        The output written.
    """
    path = check_scene_output(path)
    kind = FORMATS[path.suffix.lower()]
    temporary = path.with_name(f".{path.stem}.{os.getpid()}.partial{path.suffix}")
    try:
        delayed, finish = _writer(dataset, temporary, kind)
        _compute(delayed, progress)
        finish()
        _replace(temporary, path)
    except BaseException:
        _remove(temporary)
        _remove(temporary.with_name(temporary.name + ".tiles.tif"))
        raise
    return path
