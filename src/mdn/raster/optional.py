"""The optional packages that scenes need, imported when used: a missing one is named with
the extra that installs it, so that ``import mdn.raster`` works without them."""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["require"]

#: The extra that installs each optional package.
EXTRAS = {
    "xarray": "raster",
    "dask": "raster",
    "dask.array": "raster",
    "dask.diagnostics": "raster",
    "distributed": "raster",
    "h5netcdf": "raster",
    "zarr": "raster",
    "rioxarray": "geotiff",
}


def require(module: str, purpose: str = "scenes") -> ModuleType:
    """Import ``module``, or fail with the ``pip install`` line that provides it.

    Parameters
    ----------
    module : str
        One of the packages in ``EXTRAS`` (``"xarray"``, ``"dask.array"``, ``"rioxarray"``...).
    purpose : str
        What it is needed for, for the message.

    Returns
    -------
    module
    """
    try:
        return importlib.import_module(module)
    except ImportError as error:
        extra = EXTRAS.get(module, "raster")
        raise ImportError(
            f"{purpose} need the package {module.split('.')[0]!r} ({error}): "
            f"pip install 'mdn[{extra}]'"
        ) from None
