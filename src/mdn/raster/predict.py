"""Per-pixel retrieval over a scene: a lazy xarray Dataset, one dask task per block of
pixels, computed by the threaded scheduler, a ``dask.distributed`` cluster or any other.

Each task gets its block's bands and a ``ModelSource`` (the model file's path and checksum),
and finds the model in its process's cache (``mdn.raster.models``), so the model is loaded
once per process, not shipped with every task. It predicts the block's valid pixels in one
run of the network (``mdn.raster.pixels``) and returns every output for the block, so that
writing the outputs computes each block once.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from mdn.estimator.prediction import resolved_point
from mdn.params import validate_argument
from mdn.raster.bands import DEFAULT_TOLERANCE_NM, match_bands, scene_bands
from mdn.raster.flags import flag_mask
from mdn.raster.metadata import (
    FILL_VALUE,
    FLAGS,
    field_attributes,
    provenance,
    quality_attributes,
)
from mdn.raster.models import ModelSource, model_source
from mdn.raster.optional import require
from mdn.raster.pixels import FIELDS, novel_pixels, predict_pixels, representable
from mdn.raster.readers import DEFAULT_CHUNKS, open_scene
from mdn.runtime import intra_op_threads

if TYPE_CHECKING:
    import xarray as xr

    from mdn.estimator.model import MDN

__all__ = ["QUALITY", "output_names", "predict"]

#: The name of the quality mask in a predicted scene.
QUALITY = "quality_flag"


@dataclass(frozen=True)
class _Settings:
    """What every task needs besides its block and the model: small, so sent with each."""

    point: str
    coverage: float
    fills: tuple[float, ...]  # per band, its own; NaN where it has none
    fill_value: float  # the caller's, for every band; NaN for none
    n_targets: int
    threads: int | None
    flag_mask: int = 0  # bits of the scene's flag variable that leave a pixel out; 0: none


def _valid(values: np.ndarray, settings: _Settings) -> np.ndarray:
    """Pixels (rows) whose bands are all finite, positive and not a fill value."""
    valid = np.isfinite(values).all(axis=1) & (values > 0).all(axis=1)
    if not all(math.isnan(f) for f in settings.fills):  # NaN != anything: no effect
        valid &= (values != np.asarray(settings.fills, dtype=values.dtype)).all(axis=1)
    if not math.isnan(settings.fill_value):
        valid &= (values != values.dtype.type(settings.fill_value)).all(axis=1)
    return valid


def _predict_block(source: ModelSource, settings: _Settings, *arrays: np.ndarray) -> np.ndarray:
    """Every output of one block: FIELDS x targets, then the quality flag, on the block.
    ``arrays`` are the bands, then the scene's flags where ``settings.flag_mask`` is set."""
    bands = arrays[:-1] if settings.flag_mask else arrays
    shape = bands[0].shape
    values = np.stack([band.reshape(-1) for band in bands], axis=1)  # [pixels, bands]
    valid = _valid(values, settings)
    out = np.full((len(FIELDS) * settings.n_targets + 1, values.shape[0]), np.nan, np.float32)
    out[-1] = np.where(valid, FLAGS["valid"], FLAGS["invalid_reflectance"])
    if settings.flag_mask:
        flagged = valid & ((arrays[-1].reshape(-1).astype(np.int64) & settings.flag_mask) != 0)
        out[-1, flagged] = FLAGS["flagged_in_scene"]
        valid &= ~flagged
    if valid.any():
        model = source.load()
        # One corrupt pixel must not end an hour's scene: values the float32 network cannot
        # take after scaling are flagged, as NaN is, where a table's row would be refused.
        beyond = np.zeros_like(valid)
        beyond[valid] = ~representable(model, values[valid])
        out[-1, beyond] = FLAGS["beyond_model_range"]
        valid &= ~beyond
    if valid.any():
        with intra_op_threads(settings.threads):
            fields = predict_pixels(model, values[valid], settings.point, settings.coverage)
        out[:-1, valid] = fields.transpose(0, 2, 1).reshape(-1, fields.shape[1])  # [F, m, D]
        novel = novel_pixels(model, values[valid])
        out[-1, valid] = np.where(novel, FLAGS["outside_training_domain"], FLAGS["valid"])
    return out.reshape(-1, *shape)


def output_names(targets: Sequence[str]) -> list[str]:
    """The variables of a predicted scene, in order: per target its FIELDS, then QUALITY.

    Parameters
    ----------
    targets : sequence of str
        The model's target names.

    Returns
    -------
    list of str
        ``chl``, ``chl_lower``, ``chl_upper``, ``chl_aleatoric_sd``, ``chl_epistemic_sd``...
    """
    return [t if field == "estimate" else f"{t}_{field}" for t in targets for field in FIELDS] + [
        QUALITY
    ]


def _check(interval: float, threads: int | None) -> None:
    validate_argument("interval", interval)
    validate_argument("torch_threads", threads)


def _fill(band: xr.DataArray) -> float:
    """The band's fill value when it is still in the data (not decoded to NaN)."""
    for key in ("_FillValue", "missing_value"):  # in attrs only when xarray left it undecoded
        value = band.attrs.get(key)
        if isinstance(value, (numbers.Real, np.generic)):
            return float(value)
    return math.nan


def _blocks(chosen: list[xr.DataArray], chunks: object) -> list:
    """The bands as dask arrays with one block structure."""
    first = chosen[0]
    shapes = {(band.dims, band.shape) for band in chosen}
    if len(shapes) > 1:
        raise ValueError(f"the model's bands differ in dimensions or shape: {sorted(shapes)}")
    if chunks is None and first.chunks is None:
        chunks = DEFAULT_CHUNKS
    if chunks is not None:
        if isinstance(chunks, int):
            chunks = {d: chunks if i >= first.ndim - 2 else 1 for i, d in enumerate(first.dims)}
        else:  # a band dimension, say, is gone once the bands are apart
            chunks = {d: size for d, size in dict(chunks).items() if d in first.dims}
        chosen = [band.chunk(chunks) for band in chosen]
    arrays = [band.data for band in chosen]
    return [arrays[0]] + [a.rechunk(arrays[0].chunks) for a in arrays[1:]]


def _feature_names(model: MDN, bands: object) -> list[str]:
    """The model's feature names; positional ones (x0, x1...) when it has none and the
    bands are given in order."""
    names = getattr(model, "feature_names_in_", None)
    if names is not None:
        return [str(n) for n in names]
    if bands is None or isinstance(bands, (str, Mapping)):
        raise ValueError(
            "the model does not record its feature names (fitted on an array); pass "
            "bands=[...] (--bands) with one scene band per feature, in order, or refit it on "
            "a DataFrame with named columns"
        )
    return [f"x{i}" for i in range(model.n_features_in_)]


def predict(
    model: MDN | str | os.PathLike,
    scene: str | os.PathLike | xr.Dataset | xr.DataArray,
    *,
    point: str | None = None,
    interval: float = 0.9,
    bands: Sequence[str] | Mapping[str, str] | None = None,
    tolerance_nm: float = DEFAULT_TOLERANCE_NM,
    chunks: int | Mapping[str, int] | None = None,
    fill_value: float | None = None,
    units: str | Mapping[str, str] | None = None,
    torch_threads: int | None = 1,
    mask_flags: Sequence[str] | None = None,
) -> xr.Dataset:
    """Predict every pixel of a scene, lazily: a Dataset of dask arrays, one task per block.

    Per target ``T`` the result holds ``T`` (the point estimate, as ``MDN.predict``),
    ``T_lower`` and ``T_upper`` (``MDN.predict_interval``), ``T_aleatoric_sd`` and
    ``T_epistemic_sd`` (see ``mdn.raster.pixels``: of ``ln(T)`` for a log target), all
    float32, and ``quality_flag`` (uint8): 1 where a band the model uses is NaN, not positive
    or a fill value, 3 where the scene's own flags named in ``mask_flags`` are set, 2 where
    a band's value lies beyond what the model can take (beyond float32's range after its
    scaling: a row ``MDN.predict`` would refuse); a pixel gets the first that applies, in
    that order. There, and only there, every output is NaN. The scene's coordinates,
    grid mapping (CRS) and attributes are kept; each output has CF attributes and the
    Dataset the provenance (mdn version, model file SHA-256, bands, settings).

    Nothing is computed until you ask: ``.compute()``, ``.to_netcdf``, ``.to_zarr`` or
    ``mdn.raster.write_scene``, under any dask scheduler (threads by default; a
    ``dask.distributed.Client`` when one is active).

    Parameters
    ----------
    model : MDN or path-like
        A fitted model or its file. Give the file to run on a cluster: each worker process
        loads it once (the workers must see the path).
    scene : path-like, xarray.Dataset or xarray.DataArray
        Anything ``open_scene`` reads.
    point : {"top", "mean", "mode", "median"} or None
        The point estimate; None for the model's, as in ``MDN.predict`` (the median for a
        log target by default).
    interval : float
        Coverage of the central interval, strictly between 0 and 1.
    bands : sequence of str, mapping or None
        The scene band for each model feature, when matching by name and wavelength is not
        wanted (see ``match_bands``).
    tolerance_nm : float
        How far a band's wavelength may lie from a feature's (``match_bands``).
    chunks : int, mapping or None
        Block size: pixels per side of the last two dimensions (1 along others), or a
        mapping from dimension to size. None keeps a dask-backed scene's blocks and uses
        512 x 512 otherwise.
    fill_value : float or None
        A reflectance value that marks missing pixels, besides NaN and values <= 0 and the
        bands' own undecoded ``_FillValue``.
    units : str, mapping or None
        The targets' units (one for all, or by target name) for the ``units`` attributes;
        by default those of ``mdn.raster.metadata.KNOWN_UNITS`` (chl: mg m-3...).
    torch_threads : int or None
        torch's intra-op threads in each task (None: torch's setting). One per task lets the
        scheduler's threads or processes use the cores.
    mask_flags : sequence of str or None
        Names of the scene's own flags (SeaDAS's ``l2_flags``: ``LAND``, ``CLDICE``,
        ``HIGLINT``...; any CF flag variable) whose pixels are left out: NaN, with
        ``quality_flag`` 3.

    Returns
    -------
    xarray.Dataset
        Backed by dask arrays; variables as ``output_names`` lists them.
    """
    _check(interval, torch_threads)
    source, fitted = model_source(model)
    point = resolved_point(fitted, point)
    opened = open_scene(scene, chunks=chunks if chunks is not None else DEFAULT_CHUNKS)
    features = _feature_names(fitted, bands)
    names = match_bands(features, scene_bands(opened), tolerance_nm, bands)
    chosen = [opened[n] for n in names]
    flags, bits = _scene_flags(opened, chosen[0], mask_flags)
    arrays = _blocks(chosen + flags, chunks)
    own_fills = tuple(_fill(band) for band in chosen)
    fill = math.nan if fill_value is None else float(fill_value)
    settings = _Settings(
        point, float(interval), own_fills, fill, fitted.n_outputs_, torch_threads, bits
    )
    stack = _lazy_fields(source, settings, arrays)
    matched = dict(zip(features, names, strict=True))
    attrs = provenance(opened.attrs, source.path, source.sha256, matched, point, interval)
    if flags:
        attrs["mdn_mask_flags"] = f"{flags[0].name}: {' '.join(mask_flags)}"
    return _dataset(stack, chosen[0], opened, fitted, settings, units, attrs)


def _lazy_fields(source: ModelSource, settings: _Settings, arrays: list) -> object:
    """One dask task per block: the fields of every target and the quality flag, stacked
    along a new first axis."""
    da, dask = require("dask.array"), require("dask")
    return da.map_blocks(
        _predict_block,
        dask.delayed(source, pure=True),  # one piece of data that every task depends on
        settings,
        *arrays,
        new_axis=0,
        chunks=((len(FIELDS) * settings.n_targets + 1,), *arrays[0].chunks),
        dtype=np.float32,
        meta=np.empty((0,) * (arrays[0].ndim + 1), dtype=np.float32),
        token="mdn-predict",
    )


def _scene_flags(
    scene: xr.Dataset, template: xr.DataArray, names: Sequence[str] | None
) -> tuple[list[xr.DataArray], int]:
    """The flag variable to mask by (a list of one, or none) and the bits that mask."""
    if not names:
        return [], 0
    name, bits = flag_mask(scene, names)
    variable = scene[name]
    if (variable.dims, variable.shape) != (template.dims, template.shape):
        raise ValueError(
            f"the flag variable {name!r} lies on {dict(variable.sizes)}, not on "
            f"the bands' pixels {dict(template.sizes)}"
        )
    return [variable], bits


def _unchunked(variable: xr.Variable) -> xr.Variable:
    """A coordinate without its source's chunk layout, which the outputs' blocks need not
    share (Zarr refuses a stored chunk that spans two blocks)."""
    variable = variable.copy(deep=False)
    variable.encoding = {
        k: v
        for k, v in variable.encoding.items()
        if k not in ("chunks", "preferred_chunks", "chunksizes")
    }
    return variable


def _dataset(stack, template, scene, fitted, settings, units, attrs) -> xr.Dataset:
    """The predicted Dataset around the stacked outputs (FIELDS x targets, then the quality
    mask), with the template band's coordinates and grid mapping."""
    xr = require("xarray")
    dims, log_target = template.dims, fitted.target_transform == "log"
    targets = fitted.target_names_ or [f"y{d}" for d in range(fitted.n_outputs_)]
    coords = {
        k: _unchunked(v.variable) for k, v in template.coords.items() if set(v.dims) <= set(dims)
    }
    named = (template.attrs.get("grid_mapping"), template.encoding.get("grid_mapping"))
    grid_mapping = next((m for m in named if m is not None and m in scene.variables), None)
    names, variables = iter(output_names(targets)), {}
    for d, target in enumerate(targets):
        for f, field in enumerate(FIELDS):
            meta = field_attributes(
                target, field, settings.point, settings.coverage, log_target, units
            )
            if grid_mapping:
                meta["grid_mapping"] = grid_mapping
            variable = xr.Variable(dims, stack[f * len(targets) + d], meta)
            variable.encoding["_FillValue"] = FILL_VALUE
            variables[next(names)] = variable
    variables[QUALITY] = xr.Variable(dims, stack[-1].astype(np.uint8), quality_attributes())
    if grid_mapping in scene.data_vars:
        variables[grid_mapping] = scene[grid_mapping]
    return xr.Dataset(variables, coords=coords, attrs=attrs)
