"""mdn.optics and mdn.datasets.simulate_ocean_colour: the forward model and the simulated set."""

from __future__ import annotations

import numpy as np
import pytest

from mdn.datasets import (
    OCEAN_COLOUR_CORRELATION,
    OCEAN_COLOUR_LOG10_MEAN,
    OCEAN_COLOUR_LOG10_SD,
    simulate_ocean_colour,
)
from mdn.ocean import optics, sensors

GRID = np.arange(348.0, 796.0)


def _rrs_by_hand(a_w, b_bw, a_ph, a_cdom, a_nap, b_bp):
    """Lee et al. (2002): u, r_rs = g0 u + g1 u^2, R_rs = 0.52 r_rs / (1 - 1.7 r_rs)."""
    a, bb = a_w + a_ph + a_cdom + a_nap, b_bw + b_bp
    u = bb / (a + bb)
    below = 0.0895 * u + 0.1247 * u**2
    return 0.52 * below / (1 - 1.7 * below)


def test_rrs_at_560_nm_by_hand():
    chl, tss, cdom = 2.0, 5.0, 0.2
    # 560 nm is halfway between the water tables' rows at 557.5 and 562.5 nm; Bricaud's
    # table has a row at 560 nm: A = 0.0062, B = 0.016.
    a_w = (0.0605 + 0.0638) / 2
    b_bw = (0.0009119 + 0.00087783) / 2
    a_ph = 0.0062 * chl ** (1 - 0.016)
    a_cdom = cdom * np.exp(-0.015 * (560 - 443))
    a_nap = 0.041 * tss * np.exp(-0.0123 * (560 - 443))
    ratio = 0.002 + 0.01 * (0.5 - 0.25 * np.log10(chl))  # Morel & Maritorena (2001)
    b_bp = (0.416 * chl**0.766 * ratio + 0.01 * tss) * (555 / 560) ** 1.0
    expected = _rrs_by_hand(a_w, b_bw, a_ph, a_cdom, a_nap, b_bp)
    got = optics.remote_sensing_reflectance([560.0], chl, tss, cdom)
    assert got.shape == (1, 1)
    assert got[0, 0] == pytest.approx(expected, rel=1e-12)
    assert 0.005 < expected < 0.02  # green-peaked coastal water


def test_rrs_at_705_nm_by_hand_past_bricauds_table():
    chl, tss, cdom = 30.0, 1.0, 0.5
    a_w = 0.6747 + (0.7762 - 0.6747) * 3 / 5  # rows at 702 and 707 nm
    b_bw = 0.00034102 + (0.0003309 - 0.00034102) * 2.5 / 5  # rows at 702.5 and 707.5 nm
    a_ph = 0.003 * np.exp(-5 / 10) * chl ** (1 + 0.034)  # A(700) decaying by e per 10 nm
    a_cdom = cdom * np.exp(-0.015 * (705 - 443))
    a_nap = 0.041 * tss * np.exp(-0.0123 * (705 - 443))
    ratio = 0.002 + 0.01 * (0.5 - 0.25 * np.log10(chl))
    b_bp = (0.416 * chl**0.766 * ratio + 0.01 * tss) * (555 / 705)
    expected = _rrs_by_hand(a_w, b_bw, a_ph, a_cdom, a_nap, b_bp)
    assert optics.remote_sensing_reflectance([705.0], chl, tss, cdom)[0, 0] == pytest.approx(
        expected, rel=1e-12
    )


def test_the_forward_model_checks_its_inputs():
    with pytest.raises(ValueError, match=r"347\.5 to 795 nm"):
        optics.remote_sensing_reflectance([340.0, 443.0], 1.0, 1.0, 0.1)
    with pytest.raises(ValueError, match="chl must be finite and > 0"):
        optics.remote_sensing_reflectance([443.0], [1.0, 0.0], 1.0, 0.1)
    with pytest.raises(ValueError, match="cdom must be finite and >= 0"):
        optics.cdom_absorption([443.0], -0.1)
    with pytest.raises(ValueError, match="> 0"):
        optics.reflectance(0.0, 0.01)


def test_the_simulator_is_deterministic_under_a_seed():
    X, y = simulate_ocean_colour(300, random_state=7)
    X2, y2 = simulate_ocean_colour(300, random_state=np.random.RandomState(7))
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)
    X3, _ = simulate_ocean_colour(300, random_state=8)
    assert not np.allclose(X, X3)
    assert X.shape == (300, 7) and y.shape == (300, 3)


@pytest.mark.parametrize("name", sorted(sensors.SENSORS))
def test_rrs_are_finite_and_positive_at_every_sensor_even_with_large_noise(name):
    X, y = simulate_ocean_colour(400, name, random_state=0, noise=(0.5, 0.01))
    assert X.shape == (400, len(sensors.sensor(name).bands))
    assert np.isfinite(X).all() and (X > 0).all() and (y > 0).all()


def test_noise_is_relative_plus_absolute_and_keeps_rrs_positive():
    clean, y = simulate_ocean_colour(6000, random_state=2, noise=(0, 0))
    noisy, y2 = simulate_ocean_colour(6000, random_state=2, noise=(0.05, 5e-4))
    np.testing.assert_array_equal(y, y2)  # the noise is drawn last
    sd = np.hypot(0.05 * clean, 5e-4)
    z = (noisy - clean) / sd
    far = clean / sd > 5  # truncation at Rrs = 0 is negligible there
    assert far.sum() > 15_000
    assert abs(z[far].mean()) < 0.03 and z[far].std() == pytest.approx(1.0, abs=0.03)
    assert (noisy > 0).all()


def test_bands_average_the_forward_model_under_their_responses():
    X, y = simulate_ocean_colour(50, "msi", random_state=3, noise=(0, 0), variability=0)
    spectra = optics.remote_sensing_reflectance(GRID, *y.T)
    msi = sensors.sensor("msi")
    # Independent weights: each Gaussian sampled every nm (the simulator: 2 nm, with exact
    # weights, and cut at 794 nm) and normalised by its sum.
    gauss = np.exp(-0.5 * ((GRID[:, None] - msi.wavelengths) / (msi.fwhm * 0.4246609)) ** 2)
    np.testing.assert_allclose(X, spectra @ (gauss / gauss.sum(axis=0)), rtol=4e-3)
    # OCI's 5 nm band at 560 nm is within 0.2 % of R_rs at 560 nm by the formulas.
    X, y = simulate_ocean_colour(50, "oci", random_state=3, noise=(0, 0), variability=0)
    at_560 = optics.remote_sensing_reflectance([560.0], *y.T)[:, 0]
    np.testing.assert_allclose(
        X[:, sensors.sensor("oci").columns().index("Rrs_560")], at_560, rtol=2e-3
    )


@pytest.fixture(scope="module")
def seawifs_and_msi():
    # The same seed draws the same waters: only the bands differ.
    return [
        simulate_ocean_colour(20_000, s, random_state=0, noise=(0, 0)) for s in ("seawifs", "msi")
    ]


def test_concentrations_follow_the_stated_log_normals(seawifs_and_msi):
    (_, y), _ = seawifs_and_msi
    log10 = np.log10(y)
    np.testing.assert_allclose(log10.mean(axis=0), OCEAN_COLOUR_LOG10_MEAN, atol=0.02)
    np.testing.assert_allclose(log10.std(axis=0), OCEAN_COLOUR_LOG10_SD, rtol=0.03)
    np.testing.assert_allclose(np.corrcoef(log10.T), OCEAN_COLOUR_CORRELATION, atol=0.03)


def test_oc4_gives_back_the_chl_of_case_1_like_waters(seawifs_and_msi):
    # NASA's OC4v6 band ratio (O'Reilly et al. 2000) on rows where phytoplankton dominate:
    # chl 0.1-3 mg m^-3, little suspended matter, CDOM with 0.3-1.5 times a_ph(443).
    (X, y), _ = seawifs_and_msi
    chl, tss, cdom = y.T
    a_ph = optics.phytoplankton_absorption([443.0], chl)[:, 0]
    case_1 = (chl > 0.1) & (chl < 3) & (tss < 0.5) & (cdom > 0.3 * a_ph) & (cdom < 1.5 * a_ph)
    assert case_1.sum() > 200
    ratio = np.log10(X[case_1, 1:4].max(axis=1) / X[case_1, 4])  # 443, 490, 510 over 555
    oc4 = 10 ** np.polyval([-0.5683, -1.2259, 2.7218, -2.9940, 0.3272], ratio)
    factor = oc4 / chl[case_1]
    assert 0.7 < np.median(factor) < 1.4
    assert 0.4 < np.percentile(factor, 5) and np.percentile(factor, 95) < 3


def test_msi_spectra_lie_in_published_ranges(seawifs_and_msi):
    _, (X, y) = seawifs_and_msi
    chl, tss, cdom = y.T
    # Clear oligotrophic water (chl < 0.1): blue, with R_rs(443) near 0.01 sr^-1
    # (Morel and Maritorena 2001; NOMAD's clearest stations).
    clear = (chl < 0.1) & (tss < 0.3) & (cdom < 0.03)
    assert clear.sum() > 30
    assert (X[clear, 0] > X[clear, 2]).all() and (X[clear, 1] > X[clear, 2]).all()
    assert 0.005 < np.median(X[clear, 0]) < 0.012 and (X[clear, 3] < 0.001).all()
    # Green and red rise with chl (blue-green ratio falls with chl, as OCx assumes).
    blue_green = X[:, 0] / X[:, 2]
    low, high = (chl < 0.3) & (tss < 1), (chl > 10) & (tss < 1)
    assert np.median(blue_green[low]) > 1 > np.median(blue_green[high])
    # Sediment-dominated water: R_rs(665) against Nechad et al. (2010)'s calibration,
    # tss = A rho / (1 - rho / C), rho = pi R_rs, A = 355.85 g m^-3, C = 0.1728.
    turbid = (tss > 5) & (tss < 50) & (chl < 3) & (cdom < 0.5)
    assert turbid.sum() > 500
    nechad = tss[turbid] * 0.1728 / (355.85 * 0.1728 + tss[turbid]) / np.pi
    factor = X[turbid, 3] / nechad
    assert 0.7 < np.median(factor) < 1.5
    assert 0.5 < np.percentile(factor, 5) and np.percentile(factor, 95) < 2.5


def test_as_frame_names_the_bands_and_targets():
    frame = simulate_ocean_colour(20, "olci", random_state=0, as_frame=True)
    X, y = simulate_ocean_colour(20, "olci", random_state=0)
    assert list(frame.columns) == [*sensors.sensor("olci").columns(), "chl", "tss", "cdom"]
    np.testing.assert_array_equal(frame.to_numpy(), np.hstack([X, y]))


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="unknown sensor 'msi2'"):
        simulate_ocean_colour(10, "msi2")
    with pytest.raises(ValueError, match="n_samples must be >= 1"):
        simulate_ocean_colour(0)
    with pytest.raises(TypeError, match="n_samples must be an int"):
        simulate_ocean_colour(10.0)
    with pytest.raises(TypeError, match="pair"):
        simulate_ocean_colour(10, noise=0.1)
    with pytest.raises(ValueError, match="noise must be two finite numbers >= 0"):
        simulate_ocean_colour(10, noise=(-0.1, 0.0))
    with pytest.raises(ValueError, match="variability"):
        simulate_ocean_colour(10, variability=-1)
