"""Satellite scenes: read them (SeaDAS, ACOLITE, POLYMER, any xarray Dataset), predict
every pixel with a fitted ``MDN`` block by block over xarray and dask, on threads or on a
``dask.distributed`` cluster, and write NetCDF, Zarr or Cloud-Optimized GeoTIFF.

Needs ``pip install 'mdn[raster]'`` (xarray, dask, distributed, h5netcdf, zarr), and
``'mdn[geotiff]'`` for GeoTIFF outputs; they are imported when used.

Examples
--------
>>> from mdn import raster  # doctest: +SKIP
>>> scene = raster.open_scene("S2A_MSI_L2W.nc")  # doctest: +SKIP
>>> out = raster.predict("chl.safetensors", scene, interval=0.9)  # doctest: +SKIP
>>> raster.write_scene(out, "chl.nc", progress=True)  # doctest: +SKIP
"""

from mdn.raster.bands import match_bands, scene_bands
from mdn.raster.cluster import local_cluster
from mdn.raster.pixels import FIELDS, predict_pixels
from mdn.raster.predict import QUALITY, output_names, predict
from mdn.raster.readers import open_scene
from mdn.raster.writers import write_scene

__all__ = [
    "FIELDS",
    "QUALITY",
    "local_cluster",
    "match_bands",
    "open_scene",
    "output_names",
    "predict",
    "predict_pixels",
    "scene_bands",
    "write_scene",
]
