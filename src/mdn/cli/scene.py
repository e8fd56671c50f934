"""``mdn predict-scene``: a saved model over every pixel of a satellite scene."""

from __future__ import annotations

import click

from mdn.params import POINTS
from mdn.raster.bands import DEFAULT_TOLERANCE_NM
from mdn.raster.cluster import local_cluster
from mdn.raster.metadata import FLAGS
from mdn.raster.predict import QUALITY, predict
from mdn.raster.readers import DEFAULT_CHUNKS
from mdn.raster.writers import FORMATS, check_scene_output, netcdf_engine, write_scene

__all__ = ["predict_scene"]


def _bands(text: str | None) -> list[str] | dict[str, str] | None:
    """``a,b,c`` (one band per feature, in order) or ``feature=band,...``."""
    if not text:
        return None
    items = [part.strip() for part in text.split(",") if part.strip()]
    pairs = [item.split("=", 1) for item in items if "=" in item]
    if not pairs:
        return items
    if len(pairs) != len(items):
        raise ValueError(
            f"--bands {text!r}: give either band names in the model's feature "
            "order or feature=band pairs, not both"
        )
    return {feature.strip(): band.strip() for feature, band in pairs}


def _run(scene, output, quiet, workers) -> None:
    if not workers:
        write_scene(scene, output, progress=not quiet)
        return
    with local_cluster(workers):
        write_scene(scene, output, progress=not quiet)


@click.command("predict-scene")
@click.argument("model_file", metavar="MODEL", type=click.Path())
@click.argument("scene_file", metavar="SCENE", type=click.Path())
@click.option(
    "--output",
    "-o",
    required=True,
    type=click.Path(),
    help="The file to write: .nc (NetCDF-4), .zarr or .tif (Cloud-Optimized GeoTIFF).",
)
@click.option(
    "--bands",
    help="The scene's bands for the model's features: names in feature "
    "order, or feature=band pairs; comma-separated (default: by name and wavelength).",
)
@click.option(
    "--tolerance",
    type=float,
    default=DEFAULT_TOLERANCE_NM,
    show_default=True,
    help="How far (nm) a band may lie from a feature's wavelength.",
)
@click.option(
    "--point",
    type=click.Choice(POINTS),
    default=None,
    help="The point estimate (default: the model's, see `mdn info`).",
)
@click.option(
    "--interval",
    type=float,
    default=0.9,
    show_default=True,
    help="Coverage of the central interval.",
)
@click.option(
    "--mask-flags",
    help="The scene's own flags whose pixels are left out (quality_flag 3), comma-separated: "
    "SeaDAS l2_flags such as LAND,CLDICE,HIGLINT.",
)
@click.option(
    "--workers",
    type=int,
    default=0,
    help="Run on a local dask cluster of N worker processes (default: threads).",
)
@click.option(
    "--chunks",
    type=int,
    default=DEFAULT_CHUNKS,
    show_default=True,
    help="Pixels per side of the blocks read and predicted at a time.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def predict_scene(
    model_file,
    scene_file,
    output,
    bands,
    tolerance,
    point,
    interval,
    mask_flags,
    workers,
    chunks,
    quiet,
):
    """Predict every pixel of SCENE with MODEL, block by block, and write --output.

    SCENE is a SeaDAS L2, ACOLITE or POLYMER NetCDF file, or a NetCDF/Zarr file with one
    Rrs_NNN variable per band or a band dimension. The model's features are matched to the
    scene's bands by name, else by wavelength within --tolerance nm.

    Per target T the output holds T (the point estimate), T_lower and T_upper (the central
    --interval), T_aleatoric_sd and T_epistemic_sd (for a log target: of ln T), and
    quality_flag (1 where a band is NaN, not positive or a fill value, 3 where one of
    --mask-flags is set, 2 where a band lies beyond the model's range; every output is
    empty there), with the scene's coordinates,
    CRS and attributes, CF attributes and the provenance (mdn version, the model file's
    SHA-256). The output appears only when complete; an existing one is replaced then,
    never damaged by a failed run. The pixels left empty are counted by their flag.

    \b
    Examples:
      mdn predict-scene chl.safetensors S2A_L2W.nc -o chl.nc
      mdn predict-scene chl.safetensors AQUA_MODIS.L2.OC.nc -o chl.nc --mask-flags LAND,CLDICE
      mdn predict-scene chl.safetensors scene.zarr -o chl.tif --point median --workers 2
      mdn predict-scene chl.safetensors olci.nc -o chl.zarr --bands Rrs_442.5,Rrs_490,...
    """
    output = check_scene_output(output)
    if workers < 0 or chunks < 1:
        raise ValueError(f"--workers must be >= 0 and --chunks >= 1, got {workers} and {chunks}")
    flags = [name.strip() for name in mask_flags.split(",")] if mask_flags else None
    result = predict(
        model_file,
        scene_file,
        point=point,
        interval=interval,
        bands=_bands(bands),
        tolerance_nm=tolerance,
        chunks=chunks,
        mask_flags=flags,
    )
    _run(result, output, quiet, workers)
    shape = " x ".join(str(n) for n in result[next(iter(result.data_vars))].shape)
    click.echo(f"wrote {output} ({shape} pixels; bands {result.attrs['mdn_bands']})")
    if FORMATS[output.suffix.lower()] != "cog":  # a GeoTIFF holds the float outputs only
        click.echo(_empty_pixels(output), err=True)


def _empty_pixels(output) -> str:
    """How many pixels the written output left empty, by their quality flag."""
    import dask.array as da
    import xarray as xr

    if FORMATS[output.suffix.lower()] == "zarr":
        written = xr.open_zarr(output)
    else:
        written = xr.open_dataset(output, engine=netcdf_engine(), chunks={})
    with written:
        flags = written[QUALITY].data.ravel()
        counts = da.bincount(flags, minlength=len(FLAGS)).compute()
    novel = counts[FLAGS["outside_training_domain"]]
    named = [
        f"{counts[value]:,} {meaning.replace('_', ' ')}"
        for meaning, value in FLAGS.items()
        if value not in (FLAGS["valid"], FLAGS["outside_training_domain"]) and counts[value]
    ]
    outside = f" ({novel:,} outside the training domain)" if novel else ""
    predicted = counts[FLAGS["valid"]] + novel
    return f"{predicted:,} pixels predicted{outside}; empty: {', '.join(named) or 'none'}"
