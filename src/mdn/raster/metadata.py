"""The attributes a predicted scene carries: CF attributes of each output (``long_name``,
``units``, ``_FillValue``) and the provenance of the whole (mdn's version, the model file's
SHA-256, the bands used, the settings)."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version

import numpy as np

__all__ = [
    "FILL_VALUE",
    "FLAGS",
    "KNOWN_UNITS",
    "field_attributes",
    "mdn_version",
    "provenance",
    "quality_attributes",
]

#: Written for pixels without an estimate (the outputs are float32; NaN in memory).
FILL_VALUE = np.float32(np.nan)

#: The quality flag's values: why a pixel's outputs are empty (NaN), or 0 where they are not.
FLAGS = {
    "valid": 0,
    "invalid_reflectance": 1,
    "beyond_model_range": 2,
    "flagged_in_scene": 3,
    "outside_training_domain": 4,  # predicted: the inputs are novel to the model
}

#: Units of the usual ocean-colour targets (UDUNITS spelling), by lower-case name.
KNOWN_UNITS = {
    "chl": "mg m-3",
    "chla": "mg m-3",
    "chlor_a": "mg m-3",
    "chl_a": "mg m-3",
    "tss": "g m-3",
    "spm": "g m-3",
    "cdom": "m-1",
    "acdom": "m-1",
    "ag440": "m-1",
    "acdom_440": "m-1",
    "secchi": "m",
    "kd490": "m-1",
    "kd_490": "m-1",
    "pc": "mg m-3",
}


def _units(target: str, units: str | Mapping[str, str] | None) -> str | None:
    if isinstance(units, str):
        return units
    if units is not None and target in units:
        return str(units[target])
    return KNOWN_UNITS.get(target.lower())


def field_attributes(
    target: str,
    field: str,
    point: str,
    coverage: float,
    log_target: bool,
    units: str | Mapping[str, str] | None = None,
) -> dict[str, object]:
    """CF attributes of one output of one target.

    Parameters
    ----------
    target : str
        The target's name (``chl``).
    field : str
        One of ``mdn.raster.pixels.FIELDS``.
    point : str
        The point estimate's kind.
    coverage : float
        The central interval's coverage.
    log_target : bool
        Whether the model fits ``ln(target)``: the spreads are then those of ``ln(target)``.
    units : str, mapping or None
        The target's units (one for all, or by target name); by default those of
        ``KNOWN_UNITS``, else none is written.

    Returns
    -------
    dict
        ``long_name`` and, where known, ``units``, plus mdn's own keys.
    """
    unit = _units(target, units)
    share = f"{100 * coverage:g} %"
    if field in ("aleatoric_sd", "epistemic_sd"):
        kind = field.split("_")[0]
        of = f"ln({target})" if log_target else target
        part = "mean within-member" if kind == "aleatoric" else "between-member"
        attrs = {
            "long_name": f"{kind} standard deviation of {of} (square root of the {part} "
            "variance of the predictive mixture)",
            "mdn_spread_space": "natural log of the target" if log_target else "target units",
        }
        unit = "1" if log_target else unit
    elif field == "estimate":
        attrs = {
            "long_name": f"{target}, {point} of the predictive distribution",
            "mdn_point": point,
        }
    else:
        bound = "lower" if field == "lower" else "upper"
        attrs = {
            "long_name": f"{bound} bound of the central {share} interval of {target}",
            "mdn_coverage": float(coverage),
        }
    if unit is not None:
        attrs["units"] = unit
    return attrs


def quality_attributes() -> dict[str, object]:
    """CF flag attributes of the quality mask.

    Returns
    -------
    dict
    """
    return {
        "long_name": "pixel quality: 1 where a band is NaN, not positive or a fill value, 3 "
        "where the scene's own flags chosen to mask are set, 2 where a band lies beyond the "
        "model's range (float32 after its scaling); every output is empty (NaN) where it "
        "is not 0",
        "flag_values": np.array(list(FLAGS.values()), dtype=np.uint8),
        "flag_meanings": " ".join(FLAGS),
    }


def mdn_version() -> str:
    """The installed mdn's version (``"unknown"`` when run from a bare source tree).

    Returns
    -------
    str
    """
    try:
        return version("mdn")
    except PackageNotFoundError:
        return "unknown"


def provenance(
    scene_attrs: Mapping[str, object],
    model_path: str | None,
    model_sha256: str,
    bands: Mapping[str, str],
    point: str,
    coverage: float,
) -> dict[str, object]:
    """Global attributes: the scene's, with mdn's provenance added and ``history`` extended.

    Parameters
    ----------
    scene_attrs : mapping
        The input scene's global attributes (kept).
    model_path : str or None
        The model file (None for a model never saved).
    model_sha256 : str
        The SHA-256 of the model file's bytes.
    bands : mapping of str to str
        Each model feature and the scene band that fed it.
    point : str
    coverage : float

    Returns
    -------
    dict
    """
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    ours = mdn_version()
    line = f"{stamp}: mdn {ours} raster.predict, model SHA-256 {model_sha256}"
    history = str(scene_attrs.get("history", "")).rstrip()
    attrs = {k: v for k, v in scene_attrs.items() if k != "mdn_layout"}
    attrs.update(
        Conventions=str(scene_attrs.get("Conventions", "CF-1.8")),
        history=f"{history}\n{line}" if history else line,
        source=f"mdn {ours} (mixture density network)",
        mdn_version=ours,
        mdn_model_file=model_path or "(a model not saved to a file)",
        mdn_model_sha256=model_sha256,
        mdn_bands=", ".join(f"{f}={b}" for f, b in bands.items()),
        mdn_point=point,
        mdn_interval_coverage=float(coverage),
        mdn_scene_layout=str(scene_attrs.get("mdn_layout", "xarray")),
    )
    return attrs
