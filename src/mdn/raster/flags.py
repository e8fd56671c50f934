"""A scene's own pixel flags (SeaDAS's ``l2_flags``, any CF flag variable): which bits of
which variable mark the pixels a user wants left out (land, cloud, glint...).

A CF flag variable holds integers with ``flag_masks`` (one bit mask per flag) and
``flag_meanings`` (their names, space-separated) in its attributes; ``open_scene`` keeps
such variables beside the bands.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["flag_mask", "flag_variables"]


def flag_variables(scene: xr.Dataset) -> dict[str, dict[str, int]]:
    """The scene's CF flag variables and the bit mask of each of their flags.

    Parameters
    ----------
    scene : xarray.Dataset

    Returns
    -------
    dict
        ``{variable: {flag name: bit mask}}``, for the integer variables with ``flag_masks``
        and ``flag_meanings`` attributes of equal length.
    """
    found = {}
    for name, variable in scene.data_vars.items():
        masks = np.atleast_1d(variable.attrs.get("flag_masks", []))
        meanings = str(variable.attrs.get("flag_meanings", "")).split()
        if variable.dtype.kind in "iu" and masks.dtype.kind in "iu" and len(meanings):
            if len(masks) == len(meanings):
                found[str(name)] = {m: int(k) for m, k in zip(meanings, masks, strict=True)}
    return found


def flag_mask(scene: xr.Dataset, names: Sequence[str]) -> tuple[str, int]:
    """The flag variable holding ``names`` and the union of their bit masks.

    Parameters
    ----------
    scene : xarray.Dataset
        An opened scene (``open_scene``).
    names : sequence of str
        Flag names, such as ``["LAND", "CLDICE", "HIGLINT"]`` (upper or lower case).

    Returns
    -------
    variable : str
    mask : int
        A pixel is flagged where ``variable & mask`` is not 0.

    Raises
    ------
    ValueError
        When no names are given, the scene has no flag variable, or a name is in none of
        them (naming the flags there are).
    """
    wanted = [str(n).strip() for n in names if str(n).strip()]
    if not wanted:
        raise ValueError("name at least one flag to mask, such as LAND or CLDICE")
    variables = flag_variables(scene)
    if not variables:
        raise ValueError(
            "the scene has no flag variable (integers with CF flag_masks and flag_meanings "
            "attributes, such as SeaDAS's l2_flags) to mask pixels by; drop the flags to mask"
        )
    for variable, flags in variables.items():
        upper = {k.upper(): v for k, v in flags.items()}
        if all(n.upper() in upper for n in wanted):
            return variable, int(np.bitwise_or.reduce([upper[n.upper()] for n in wanted]))
    listing = "; ".join(f"{v}: {' '.join(f)}" for v, f in variables.items())
    known = {k.upper() for flags in variables.values() for k in flags}
    missing = [n for n in wanted if n.upper() not in known]
    if missing:
        raise ValueError(f"the scene's flags hold no {', '.join(missing)}; it has {listing}")
    raise ValueError(
        f"the flags {', '.join(wanted)} lie in different variables; name flags of one ({listing})"
    )
