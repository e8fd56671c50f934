"""Band sets of satellite sensors, spectral resampling and band matching.

Every sensor is a tuple of bands, each with its centre and full width at half maximum (FWHM)
in nanometres, from the sources cited beside it. The sets hold the bands of each sensor's
ocean-colour (remote-sensing reflectance) products from 400 to 800 nm, where water leaves a
signal; near-infrared and short-wave bands used only for the atmospheric correction are left
out.

>>> import numpy as np
>>> from mdn import sensors
>>> msi = sensors.sensor("msi")
>>> msi.columns()
['Rrs_443', 'Rrs_492', 'Rrs_560', 'Rrs_665', 'Rrs_704', 'Rrs_741', 'Rrs_783']
>>> grid = np.arange(400.0, 801.0)
>>> sensors.resample(np.full(grid.size, 0.01), grid, "msi").round(6).tolist()
[0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01]
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
from numpy.typing import ArrayLike

from mdn.ocean import spectral
from mdn.ocean.spectral import band_wavelengths, nearest_bands

__all__ = [
    "SENSORS",
    "Band",
    "Sensor",
    "band_wavelengths",
    "band_weights",
    "nearest_bands",
    "resample",
    "sensor",
]


@dataclass(frozen=True)
class Band:
    """One spectral band: its name on the sensor, centre and FWHM in nanometres."""

    name: str
    centre: float
    fwhm: float

    @property
    def label(self) -> int:
        """The centre rounded half up to a whole nanometre, as in ``Rrs_443``."""
        return math.floor(self.centre + 0.5)


@dataclass(frozen=True)
class Sensor:
    """A sensor's band set, with the source of its band centres and widths."""

    name: str
    title: str
    bands: tuple[Band, ...]
    source: str

    @property
    def wavelengths(self) -> np.ndarray:
        """Band centres in nanometres, shape ``(n_bands,)``."""
        return np.array([b.centre for b in self.bands])

    @property
    def fwhm(self) -> np.ndarray:
        """Full widths at half maximum in nanometres, shape ``(n_bands,)``."""
        return np.array([b.fwhm for b in self.bands])

    @property
    def band_names(self) -> list[str]:
        """The bands' names on the sensor (``B1``, ``Oa01``...)."""
        return [b.name for b in self.bands]

    def columns(self, prefix: str = "Rrs_") -> list[str]:
        """Column names made of a prefix and each band's whole-nanometre centre.

        Parameters
        ----------
        prefix : str
            What comes before the wavelength: ``"Rrs_"`` gives ``Rrs_443``.

        Returns
        -------
        list of str
        """
        return [f"{prefix}{b.label}" for b in self.bands]


def _bands(table: str) -> tuple[Band, ...]:
    """Bands from lines of ``name centre fwhm``."""
    rows = (line.split() for line in table.strip().splitlines())
    return tuple(Band(name, float(centre), float(fwhm)) for name, centre, fwhm in rows)


# Sentinel-2 MSI: ESA Sentinel Online, "Sentinel-2 MSI: radiometric resolutions" (central
# wavelength and bandwidth of S2A and S2B), from the spectral response functions of
# COPE-GSEG-EOPG-TN-15-0007. Bands 1-7, the ones that see water (8 and above: land, clouds).
_MSI_A = """
B1 442.7 21
B2 492.4 66
B3 559.8 36
B4 664.6 31
B5 704.1 15
B6 740.5 15
B7 782.8 20
"""
_MSI_B = """
B1 442.2 21
B2 492.1 66
B3 559.0 36
B4 664.9 31
B5 703.8 16
B6 739.1 15
B7 779.7 20
"""
# Sentinel-3 OLCI: ESA Sentinel Online, "OLCI: spectral bands" (centre and width). Oa13-15
# (oxygen A band) and Oa17-21 (near infrared, atmospheric correction) are left out.
_OLCI = """
Oa01 400.0 15
Oa02 412.5 10
Oa03 442.5 10
Oa04 490.0 10
Oa05 510.0 10
Oa06 560.0 10
Oa07 620.0 10
Oa08 665.0 10
Oa09 673.75 7.5
Oa10 681.25 7.5
Oa11 708.75 10
Oa12 753.75 7.5
Oa16 778.75 15
"""
# Envisat MERIS: ESA MERIS Product Handbook, table of the 15 bands (centre and width); band 11
# (oxygen A band) and 13-15 (near infrared) are left out.
_MERIS = """
b1 412.5 10
b2 442.5 10
b3 490.0 10
b4 510.0 10
b5 560.0 10
b6 620.0 10
b7 665.0 10
b8 681.25 7.5
b9 708.75 10
b10 753.75 7.5
b12 778.75 15
"""
# Landsat-8 OLI (and Landsat-9 OLI-2, within a nanometre of it): Barsi et al. (2014), "The
# spectral response of the Landsat-8 Operational Land Imager", Remote Sensing 6, 10232,
# table 3 (centre and FWHM of the measured band averages). Bands 1-4.
_OLI = """
B1 442.96 15.98
B2 482.04 60.04
B3 561.41 57.33
B4 654.59 37.47
"""
# MODIS-Aqua: the ten bands of NASA's ocean-colour Rrs product (SeaDAS names: Rrs_412 ...
# Rrs_678), widths from NASA's MODIS specifications (modis.gsfc.nasa.gov, bandwidths of
# bands 8-14 and of the land bands 3, 4 and 1 used for ocean colour).
_MODIS_AQUA = """
8 412 15
9 443 10
3 469 20
10 488 10
11 531 10
12 547 10
4 555 20
1 645 50
13 667 10
14 678 10
"""
# VIIRS on Suomi NPP: NASA's ocean-colour Rrs bands M1-M5 (Rrs_410 ... Rrs_671, the centres
# of the measured responses); widths from the JPSS VIIRS SDR user's guide (M1 402-422,
# M2 436-454, M3 478-498, M4 545-565, M5 662-682 nm).
_VIIRS_SNPP = """
M1 410 20
M2 443 18
M3 486 20
M4 551 20
M5 671 20
"""
# SeaWiFS: Hooker et al. (1992), SeaWiFS Technical Report Series vol. 1, "An overview of
# SeaWiFS and ocean color", table of bands 1-6 (402-422, 433-453, 480-500, 500-520,
# 545-565, 660-680 nm).
_SEAWIFS = """
1 412 20
2 443 20
3 490 20
4 510 20
5 555 20
6 670 20
"""


def _oci_visible() -> tuple[Band, ...]:
    # PACE OCI measures 340-890 nm continuously with 5 nm wide bands every 2.5 nm (Werdell et
    # al. 2019, "The Plankton, Aerosol, Cloud, ocean Ecosystem mission", BAMS 100, 1775);
    # this grid takes the visible part at 5 nm steps.
    return tuple(Band(f"{nm}", float(nm), 5.0) for nm in range(400, 701, 5))


def _registry() -> dict[str, Sensor]:
    sensors = [
        Sensor("msi", "Sentinel-2A MSI", _bands(_MSI_A), "ESA Sentinel Online, S2A"),
        Sensor("msi-b", "Sentinel-2B MSI", _bands(_MSI_B), "ESA Sentinel Online, S2B"),
        Sensor("olci", "Sentinel-3 OLCI", _bands(_OLCI), "ESA Sentinel Online, OLCI"),
        Sensor("meris", "Envisat MERIS", _bands(_MERIS), "ESA MERIS Product Handbook"),
        Sensor("oli", "Landsat-8/9 OLI", _bands(_OLI), "Barsi et al. (2014)"),
        Sensor("modis-aqua", "MODIS-Aqua", _bands(_MODIS_AQUA), "NASA MODIS specifications"),
        Sensor("viirs", "VIIRS (Suomi NPP)", _bands(_VIIRS_SNPP), "JPSS VIIRS SDR guide"),
        Sensor("seawifs", "SeaWiFS", _bands(_SEAWIFS), "Hooker et al. (1992)"),
        Sensor("oci", "PACE OCI, 5 nm visible grid", _oci_visible(), "Werdell et al. (2019)"),
    ]
    return {s.name: s for s in sensors}


#: Every registered sensor by name (read-only).
SENSORS: Mapping[str, Sensor] = MappingProxyType(_registry())

_ALIASES = {
    "s2a": "msi",
    "msi-a": "msi",
    "s2b": "msi-b",
    "s3": "olci",
    "landsat-8": "oli",
    "landsat-9": "oli",
    "l8": "oli",
    "l9": "oli",
    "modis": "modis-aqua",
    "aqua": "modis-aqua",
    "viirs-snpp": "viirs",
    "snpp": "viirs",
    "pace": "oci",
}


def sensor(name: str | Sensor) -> Sensor:
    """The registered sensor of that name (case-insensitive; ``"s2a"``, ``"l8"``... too).

    Parameters
    ----------
    name : str or Sensor
        A name from ``SENSORS`` or an alias; a ``Sensor`` is returned as it is.

    Returns
    -------
    Sensor
    """
    if isinstance(name, Sensor):
        return name
    if not isinstance(name, str):
        raise TypeError(f"sensor must be a name or a Sensor, not {type(name).__name__}")
    key = name.strip().lower().replace("_", "-")
    key = _ALIASES.get(key, key)
    if key not in SENSORS:
        raise ValueError(
            f"unknown sensor {name!r}; known sensors: {', '.join(SENSORS)} "
            f"(aliases: {', '.join(_ALIASES)})"
        )
    return SENSORS[key]


_lookup = sensor  # for the functions whose argument is called `sensor`


def _response_weights(grid: np.ndarray, chosen: Sensor, response: tuple | None) -> np.ndarray:
    """Each band's weights on the grid, after checking that the grid covers the band."""
    if response is None:
        half = chosen.fwhm / 2
        reach = np.stack([chosen.wavelengths - half, chosen.wavelengths + half], axis=1)
    else:
        if not (isinstance(response, (tuple, list)) and len(response) == 2):
            raise TypeError("response must be a pair (wavelengths, table) with a column per band")
        knots, table = response
        table = np.asarray(table, dtype=float)
        columns = table.shape[1] if table.ndim == 2 else 1 if table.ndim == 1 else None
        if columns != len(chosen.bands):
            raise ValueError(
                f"the response table of shape {table.shape} must have one column per band "
                f"of {chosen.name} ({len(chosen.bands)}), in its order"
            )
        reach = spectral.half_maximum_range(knots, table)
    outside = [
        f"{band.name} ({lo:g}-{hi:g} nm)"
        for band, (lo, hi) in zip(chosen.bands, reach, strict=True)
        if lo < grid[0] or hi > grid[-1]
    ]
    if outside:
        raise ValueError(
            f"the spectra cover {grid[0]:g}-{grid[-1]:g} nm but these {chosen.name} bands reach "
            f"beyond at half their peak response: {', '.join(outside)}. Give spectra over a "
            "wider range (wavelengths in nm), or a sensor without those bands."
        )
    if response is None:
        return spectral.gaussian_weights(grid, chosen.wavelengths, chosen.fwhm)
    return spectral.tabulated_weights(grid, *response)


def band_weights(
    wavelengths: ArrayLike, sensor: str | Sensor, response: tuple | None = None
) -> np.ndarray:
    """Each band's weights on a wavelength grid: ``resample`` is ``spectra @ weights.T``.

    Parameters
    ----------
    wavelengths : array-like of shape (n,)
        Sample wavelengths in nm, strictly increasing.
    sensor : str or Sensor
        The sensor or its name (see ``SENSORS``).
    response : (wavelengths, table) or None
        As in ``resample``.

    Returns
    -------
    ndarray of shape (n_bands, n)
        Band ``b``'s weights in row ``b``; each row sums to 1.
    """
    return _response_weights(spectral.check_grid(wavelengths), _lookup(sensor), response)


def resample(
    spectra: ArrayLike,
    wavelengths: ArrayLike,
    sensor: str | Sensor,
    response: tuple | None = None,
    max_missing: float = 0.05,
) -> np.ndarray:
    """Band averages of hyperspectral spectra (Rrs) under each band's spectral response.

    The spectra are taken as linear between their samples and averaged under each band's
    response, normalised so that it integrates to 1 over the sampled range (``mdn.ocean.spectral``
    gives the exact weights). The response is a Gaussian of the band's FWHM unless a table is
    given. Every band must lie inside the spectra's range down to half its peak response
    (for a Gaussian: its centre +- FWHM / 2); the rest of a response that reaches beyond it
    is left out.

    Parameters
    ----------
    spectra : array-like of shape (..., n)
        Spectra, one value per wavelength on the last axis.
    wavelengths : array-like of shape (n,)
        Sample wavelengths in nm, strictly increasing.
    sensor : str or Sensor
        The sensor whose bands to average over, or its name (see ``SENSORS``).
    response : (wavelengths, table) or None
        Measured spectral responses instead of Gaussians: wavelengths of shape ``(m,)`` in nm
        and a table of shape ``(m, n_bands)``, one column per band in the sensor's order
        (any scale; linear between rows, zero outside them).
    max_missing : float
        NaN (or infinite) samples are left out of a band while they carry at most this share
        of its response; past it the band is NaN. All-NaN spectra give NaN bands.

    Returns
    -------
    ndarray of shape (..., n_bands)
        The spectra at the sensor's bands, in the order of the sensor's ``bands``.
    """
    weights = band_weights(wavelengths, sensor, response)
    return spectral.apply_weights(spectra, weights, max_missing)
