"""mdn.sensors and mdn.spectral: the band registry, resampling and band matching."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.stats import norm

from mdn.ocean import sensors, spectral

GRID = np.arange(380.0, 801.0)  # 1 nm, covers every registered band
# An irregular grid: uneven steps, some coarser than a 10 nm band
ODD_GRID = np.array(
    [
        380.0,
        391,
        398.5,
        404,
        409,
        417,
        430,
        433,
        441.5,
        449,
        470,
        520,
        560,
        563,
        600,
        640,
        655,
        667.5,
        690,
        701,
        712,
        740,
        760,
        781,
        790,
        800,
    ]
)


def _hat(grid: np.ndarray, i: int):
    basis = np.eye(grid.size)[i]
    return lambda wl: np.interp(wl, grid, basis)


@pytest.mark.parametrize("name", sorted(sensors.SENSORS))
def test_every_sensor_is_well_formed(name):
    s = sensors.sensor(name)
    assert s.name == name and len(s.bands) >= 4 and s.source
    assert (np.diff(s.wavelengths) > 0).all()
    assert ((s.fwhm > 0) & (s.fwhm <= 70)).all()
    assert ((s.wavelengths >= 400) & (s.wavelengths <= 800)).all()
    assert len(set(s.band_names)) == len(s.bands)
    assert len(set(s.columns())) == len(s.bands)


def test_published_band_sets():
    assert sensors.sensor("msi").columns() == [
        "Rrs_443",
        "Rrs_492",
        "Rrs_560",
        "Rrs_665",
        "Rrs_704",
        "Rrs_741",
        "Rrs_783",
    ]
    assert sensors.sensor("modis").columns(prefix="Rrs") == [
        f"Rrs{nm}" for nm in (412, 443, 469, 488, 531, 547, 555, 645, 667, 678)
    ]
    assert sensors.sensor("seawifs").wavelengths.tolist() == [412, 443, 490, 510, 555, 670]
    oci = sensors.sensor("PACE")
    assert oci.wavelengths.tolist() == list(range(400, 701, 5)) and set(oci.fwhm) == {5.0}
    assert sensors.sensor("S2B").bands[6].centre == 779.7
    assert sensors.sensor(sensors.SENSORS["oli"]) is sensors.SENSORS["oli"]


def test_unknown_sensors_are_named_with_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown sensor 'goes'.*msi, msi-b, olci"):
        sensors.sensor("goes")
    with pytest.raises(TypeError, match="name or a Sensor"):
        sensors.sensor(3)
    with pytest.raises(TypeError):
        sensors.SENSORS["new"] = sensors.SENSORS["msi"]  # read-only


@pytest.mark.parametrize("grid", [GRID, ODD_GRID], ids=["1nm", "irregular"])
@pytest.mark.parametrize("name", sorted(sensors.SENSORS))
def test_a_flat_spectrum_resamples_to_its_value_and_responses_integrate_to_1(grid, name):
    weights = sensors.band_weights(grid, name)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-12)
    flat = np.full((2, grid.size), 0.0123)
    np.testing.assert_allclose(sensors.resample(flat, grid, name), 0.0123, rtol=1e-12)


def test_gaussian_weights_are_the_integrals_of_the_interpolant_times_the_response():
    # Reference: scipy quadrature of hat_i(l) N(l; c, sd) over the grid, over that of N.
    centre, fwhm = 560.0, 36.0
    sd = fwhm / (2 * np.sqrt(2 * np.log(2)))
    weights = spectral.gaussian_weights(ODD_GRID, [centre], [fwhm])[0]
    total = norm.cdf(ODD_GRID[-1], centre, sd) - norm.cdf(ODD_GRID[0], centre, sd)
    for i in (0, 10, 11, 12, 13, 14, 25):  # the ends, and the samples near the centre
        hat = _hat(ODD_GRID, i)
        value = quad(
            lambda wl, hat=hat: hat(wl) * norm.pdf(wl, centre, sd),
            380,
            800,
            points=ODD_GRID,
            limit=200,
            epsabs=1e-13,
        )[0]
        assert weights[i] == pytest.approx(value / total, abs=1e-10)
    # The normalised response integrates to 1 over the grid (its weights sum to 1).
    assert quad(lambda wl: norm.pdf(wl, centre, sd) / total, 380, 800, points=[centre])[
        0
    ] == pytest.approx(1.0, abs=1e-9)


def test_a_linear_spectrum_gives_its_value_at_the_centre_of_a_band_inside_it():
    wide = np.arange(300.0, 901.0)  # every band's Gaussian far inside: symmetric about it
    spectrum = 0.002 + 1e-5 * (wide - 380)
    values = sensors.resample(spectrum, wide, "olci")
    expected = 0.002 + 1e-5 * (sensors.sensor("olci").wavelengths - 380)
    np.testing.assert_allclose(values, expected, rtol=1e-9)


def test_a_response_table_replaces_the_gaussians():
    # Triangles on a coarse table: exact weights against scipy quadrature.
    oli = sensors.sensor("oli")
    knots = np.arange(420.0, 700.0, 2.0)
    table = np.stack(
        [
            np.clip(1 - np.abs(knots - c) / w, 0, None)
            for c, w in zip(oli.wavelengths, oli.fwhm, strict=True)
        ],
        axis=1,
    )
    spectrum = np.sin(GRID / 40.0) + 2.0
    got = sensors.resample(spectrum, GRID, "oli", response=(knots, table))
    for band, column in enumerate(table.T):

        def response(wl, column=column):
            return np.interp(wl, knots, column, left=0.0, right=0.0)

        num = quad(
            lambda wl: np.interp(wl, GRID, spectrum) * response(wl),
            380,
            800,
            points=knots[column > 0],
            limit=400,
        )[0]
        den = quad(response, 380, 800, points=knots[column > 0], limit=400)[0]
        assert got[band] == pytest.approx(num / den, rel=1e-6)
    # A finely tabulated Gaussian gives the Gaussian's weights.
    fine = np.arange(380.0, 800.5, 0.25)
    gaussians = norm.pdf(fine[:, None], oli.wavelengths, oli.fwhm * spectral.FWHM_TO_SD)
    np.testing.assert_allclose(
        sensors.band_weights(GRID, "oli", response=(fine, gaussians)),
        sensors.band_weights(GRID, "oli"),
        atol=2e-5,
    )


def test_a_response_table_must_fit_the_sensor():
    with pytest.raises(ValueError, match="one column per band"):
        sensors.resample(np.ones(GRID.size), GRID, "oli", response=(GRID, np.ones((GRID.size, 3))))
    with pytest.raises(ValueError, match=">= 0"):
        sensors.band_weights(GRID, "viirs", response=(GRID, -np.ones((GRID.size, 5))))
    with pytest.raises(TypeError, match="pair"):
        sensors.band_weights(GRID, "viirs", response=np.ones((GRID.size, 5)))


def test_half_maximum_crossings_are_interpolated():
    knots = np.array([420.0, 425, 430, 437, 440])
    ranges = spectral.half_maximum_range(knots, np.c_[[0, 0.5, 1, 0.3, 0], [1, 1, 0, 0, 0]])
    np.testing.assert_allclose(ranges, [[425.0, 435.0], [420.0, 427.5]])


def test_bands_beyond_the_spectra_are_named():
    with pytest.raises(ValueError, match=r"400-780 nm.*B7 \(772.8-792.8 nm\)"):
        sensors.resample(np.ones(381), np.arange(400.0, 781.0), "msi")
    with pytest.raises(ValueError, match=r"Oa01 \(392.5-407.5 nm\).*in nm"):
        sensors.resample(np.ones(401), np.arange(400.0, 801.0), "olci")
    with pytest.raises(ValueError, match="in nm"):  # micrometres
        sensors.resample(np.ones(5), [0.4, 0.5, 0.6, 0.7, 0.8], "msi")


def test_spectra_and_grids_are_checked():
    with pytest.raises(ValueError, match="one value per wavelength"):
        sensors.resample(np.ones((3, 10)), GRID, "msi")
    with pytest.raises(ValueError, match="strictly increasing"):
        sensors.resample(np.ones(GRID.size), GRID[::-1], "msi")
    with pytest.raises(ValueError, match="max_missing"):
        sensors.resample(np.ones(GRID.size), GRID, "msi", max_missing=1.0)


def test_missing_samples_are_left_out_while_a_band_can_spare_them():
    spectra = np.full((4, 2, GRID.size), 0.01)  # any leading shape
    spectra[1, 0] = np.nan  # a masked pixel
    spectra[2, 1, (GRID >= 442) & (GRID <= 444)] = np.nan  # 13 % of MSI's B1 (FWHM 21)
    spectra[3, 1, GRID == 380] = np.inf  # one sample far from every band
    out = sensors.resample(spectra, GRID, "msi")
    assert out.shape == (4, 2, 7)
    expected_nan = np.zeros(out.shape, dtype=bool)
    expected_nan[1, 0] = True  # every band of the masked pixel
    expected_nan[2, 1, 0] = True  # B1 only
    np.testing.assert_array_equal(np.isnan(out), expected_nan)
    np.testing.assert_allclose(out[3, 1], 0.01)
    # B1's centre sample carries 4.4 % of its weight: spared when 5 % may be missing.
    one_gap = np.where(GRID == 443, np.nan, 0.01)
    lenient = sensors.resample(one_gap, GRID, "msi", max_missing=0.05)
    strict = sensors.resample(one_gap, GRID, "msi", max_missing=0.04)
    weight = sensors.band_weights(GRID, "msi")[0, GRID == 443][0]
    assert 0.04 < weight < 0.05
    assert lenient[0] == pytest.approx(0.01) and np.isnan(strict[0])


def test_band_wavelengths_are_read_from_names():
    names = ["Rrs_443", "Rrs443", "Rw443", "lw443", "nLw_443", "rhos-443", "443", "Rrs_442.5nm"]
    np.testing.assert_array_equal(sensors.band_wavelengths(names), [443] * 7 + [442.5])
    for bad in ["B1", "Oa01_reflectance", "Rrs_443_unc", "chl", "Rrs_12000"]:
        with pytest.raises(ValueError, match=repr(bad)):
            sensors.band_wavelengths([bad])
    with pytest.raises(TypeError, match="sequence of names"):
        sensors.band_wavelengths("Rrs_443")


def test_nearest_bands_match_within_the_tolerance_or_name_the_missing_ones():
    msi, olci = sensors.sensor("msi"), sensors.sensor("olci")
    index = sensors.nearest_bands(msi.wavelengths, olci.columns(), tolerance_nm=15)
    np.testing.assert_array_equal(
        olci.wavelengths[index], [442.5, 490, 560, 665, 708.75, 753.75, 778.75]
    )
    with pytest.raises(ValueError, match=r"^1 band\(s\).*within 10 nm: 740.5 nm: nearest Rrs_754"):
        sensors.nearest_bands(msi.wavelengths, olci.columns(), 10)
    with pytest.raises(
        ValueError, match=r"2 band.*: Rrs_560 \(560 nm\): nearest 490 nm, 70 nm.*Rrs_665"
    ):
        sensors.nearest_bands(["Rrs_443", "Rrs_560", "Rrs_665"], [440.0, 490.0], 5)
    assert sensors.nearest_bands([443.0], [440.0, 445.0], np.float32(2.5)).tolist() == [1]
    with pytest.raises(ValueError, match="tolerance_nm"):
        sensors.nearest_bands([443.0], [443.0], -1)
