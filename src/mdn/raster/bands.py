"""Which of a scene's bands feed which of a model's features: by name, by wavelength within a
tolerance, or as the user says, with an error naming every feature left without a band."""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from mdn.ocean.sensors import band_wavelengths, nearest_bands

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["DEFAULT_TOLERANCE_NM", "match_bands", "scene_bands"]

#: How far (nm) a scene's band may lie from the one a model was trained on. Wide enough for
#: the same sensor's twins (Sentinel-2A 740.5 nm and 2B 739.1 nm: Rrs_741 and Rrs_739) and for
#: rounding in names; not for another sensor's bands at the red edge, where reflectance
#: changes by tens of percent over 5 nm.
DEFAULT_TOLERANCE_NM = 5.0


def _wavelength(name: str, attrs: Mapping) -> float | None:
    value = attrs.get("wavelength", attrs.get("radiation_wavelength"))
    if isinstance(value, numbers.Real) or (isinstance(value, np.ndarray) and value.size == 1):
        return float(value)
    try:
        return float(band_wavelengths([name])[0])
    except ValueError:
        return None


def scene_bands(scene: xr.Dataset) -> dict[str, float]:
    """The scene's band variables and their wavelengths, shortest first.

    A variable is a band when it has a ``wavelength`` attribute (nm) or its name carries one
    (``Rrs_443``, ``Rrs_442.5``); its wavelength is the attribute's, or else the name's.

    Parameters
    ----------
    scene : xarray.Dataset
        A scene, as ``open_scene`` gives it.

    Returns
    -------
    dict of str to float
        Variable name to wavelength in nm.
    """
    found = {}
    for name, variable in scene.data_vars.items():
        wavelength = _wavelength(str(name), variable.attrs)
        if wavelength is not None:
            found[str(name)] = wavelength
    return dict(sorted(found.items(), key=lambda item: item[1]))


def _listing(names: Sequence[str], limit: int = 16) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" ... ({len(names)} in all)" if len(names) > limit else "")


def _check_named(names: list[str], available: Mapping[str, float]) -> None:
    absent = [b for b in names if b not in available]
    if absent:
        raise ValueError(
            f"the scene has no band(s) {', '.join(absent)}; its bands: {_listing(list(available))}"
        )


def _by_hand(
    features: list[str], available: Mapping[str, float], bands: Sequence[str] | Mapping
) -> dict[int, str]:
    """The features' bands that the user named, by the feature's position."""
    if isinstance(bands, str):
        raise TypeError(
            f"bands must be a list of band names or a mapping, not one string {bands!r}"
        )
    if isinstance(bands, Mapping):
        unknown = [str(f) for f in bands if f not in features]
        if unknown:
            raise ValueError(
                f"bands names {', '.join(unknown)}, which are not features of the "
                f"model ({', '.join(features)})"
            )
        chosen = {i: str(bands[f]) for i, f in enumerate(features) if f in bands}
    else:
        chosen = dict(enumerate(str(b) for b in bands))
        if len(chosen) != len(features):
            raise ValueError(
                f"bands must name one scene band per model feature ({len(features)}: "
                f"{', '.join(features)}), in that order; got {len(chosen)}"
            )
    _check_named(list(chosen.values()), available)
    return chosen


def _wanted_wavelengths(features: list[str]) -> np.ndarray:
    unreadable = []
    for name in features:
        try:
            band_wavelengths([name])
        except ValueError:
            unreadable.append(name)
    if unreadable:
        raise ValueError(
            f"the scene has no variable named {', '.join(unreadable)} and these names carry no "
            "wavelength to match by; pass bands=[...] (--bands) with one scene band per feature"
        )
    return band_wavelengths(features)


def match_bands(
    features: Sequence[str],
    available: Mapping[str, float],
    tolerance_nm: float = DEFAULT_TOLERANCE_NM,
    bands: Sequence[str] | Mapping[str, str] | None = None,
) -> list[str]:
    """The scene band that feeds each of a model's features, in the features' order.

    A feature takes the band of the same name where there is one, else the band nearest in
    wavelength (``mdn.sensors.nearest_bands``) if it lies within ``tolerance_nm``.

    Parameters
    ----------
    features : sequence of str
        The model's feature names (``feature_names_in_``), such as ``Rrs_443``.
    available : mapping of str to float
        The scene's bands and their wavelengths in nm (``scene_bands``).
    tolerance_nm : float
        The largest distance accepted between a feature's wavelength and its band's.
    bands : sequence of str, mapping or None
        The choice made by hand: one scene band per feature in order, or a mapping from
        feature to band (features left out match by name or wavelength as above).

    Returns
    -------
    list of str
        Names of scene bands, one per feature.

    Raises
    ------
    ValueError
        Naming every feature without a band within the tolerance, with the nearest band,
        or the features that would share one band matched by wavelength.
    """
    features = [str(f) for f in features]
    chosen = {} if bands is None else _by_hand(features, available, bands)
    chosen.update({i: f for i, f in enumerate(features) if i not in chosen and f in available})
    rest = [i for i in range(len(features)) if i not in chosen]
    if rest:
        if not available:
            raise ValueError(
                "the scene has no band with a wavelength (Rrs_443, or a 'wavelength' attribute)"
            )
        names, wavelengths = list(available), np.array(list(available.values()))
        wanted = _wanted_wavelengths([features[i] for i in rest])
        try:
            index = nearest_bands(wanted, wavelengths, tolerance_nm)
        except ValueError as error:
            message = _missing(features, rest, wanted, names, wavelengths, tolerance_nm)
            raise (error if message is None else ValueError(message)) from None
        chosen.update({i: names[j] for i, j in zip(rest, index, strict=True)})
        _refuse_shared(features, chosen, rest)
    return [chosen[i] for i in range(len(features))]


def _refuse_shared(features: list[str], chosen: dict[int, str], by_wavelength: list[int]) -> None:
    """Two features fed by one band would give the network a copied band where it learnt
    two (a fluorescence peak, a red-edge slope): refuse it unless chosen by hand."""
    takers: dict[str, list[str]] = {}
    for i, band in sorted(chosen.items()):
        takers.setdefault(band, []).append(features[i])
    shared = [
        f"{', '.join(names)} would take the same band, {band}"
        for band, names in takers.items()
        if len(names) > 1 and any(chosen[i] == band for i in by_wavelength)
    ]
    if shared:
        raise ValueError(
            f"the scene has one band where the model has several: {'; '.join(shared)} "
            "(matched by wavelength). Use a scene with the model's bands, or choose the "
            "bands by hand (bands=..., --bands) if you mean it"
        )


def _missing(features, rest, wanted, names, wavelengths, tolerance_nm) -> str | None:
    """What ``nearest_bands`` refused, by feature name; None if it was not a distance."""
    if not isinstance(tolerance_nm, numbers.Real):
        return None
    gaps = np.abs(wanted[:, None] - wavelengths[None, :])
    nearest = gaps.argmin(axis=1)
    far = [
        f"{features[i]} (nearest {names[j]}, {gaps[k, j]:g} nm away)"
        for k, (i, j) in enumerate(zip(rest, nearest, strict=True))
        if gaps[k, j] > tolerance_nm
    ]
    if not far:
        return None
    return (
        f"the scene has no band within {tolerance_nm:g} nm of the model's feature(s) "
        f"{'; '.join(far)}. Scene bands: {_listing(names)}. Use a scene with these bands, "
        "choose bands by hand (bands=..., --bands) or allow a larger tolerance_nm (--tolerance)"
    )
