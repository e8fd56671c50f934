"""Scene readers on files in the layouts processors write: SeaDAS L2 navigation on pixel
control points, POLYMER/ACOLITE latitude and longitude as variables, bands still packed,
band numbers with the wavelengths beside them, PACE OCI's Rrs on wavelength_3d. Each scene
opens with its bands and coordinates, and predicts as ``MDN.predict`` on the decoded pixels."""

from __future__ import annotations

import math

import numpy as np
import pytest

xr = pytest.importorskip("xarray")
pytest.importorskip("dask.array")
pytest.importorskip("h5netcdf")
pytest.importorskip("h5py", reason="NetCDF-4 groups need h5py (pip install 'mdn[raster]')")
pd = pytest.importorskip("pandas")

from mdn import MDN, raster, sensors  # noqa: E402

FEATURES = sensors.sensor("msi").columns()  # Rrs_443, Rrs_492, ... Rrs_783
WAVELENGTHS = [float(f[4:]) for f in FEATURES]
RTOL = 2e-6  # float32 outputs against float64 predictions
LINES = ("number_of_lines", "pixels_per_line")
# OBPG's packing of Rrs in Level-2 files; a scale alone, as some processors write
SCALED_OFFSET = {"dtype": "int16", "scale_factor": 2e-6, "add_offset": 0.05, "_FillValue": -32767}
SCALED = {"dtype": "uint16", "scale_factor": 1e-6, "_FillValue": 65535}


def _spectra(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.uniform(0.001, 0.02, size=(n, len(FEATURES)))


def _cube(shape=(4, 5), seed=1) -> np.ndarray:
    """MSI reflectances (band first), one pixel missing."""
    rng = np.random.default_rng(seed)
    cube = _spectra(rng, math.prod(shape)).T.reshape(len(FEATURES), *shape).astype(np.float32)
    cube[2, 0, 1] = np.nan
    return cube


def _write(dataset: xr.Dataset, path, group: str | None = None, encoding=None, mode="a"):
    dataset.to_netcdf(path, engine="h5netcdf", group=group, mode=mode, encoding=encoding)


def _assert_predicts(msi_model_file, scene, decoded: np.ndarray, coords=()) -> xr.Dataset:
    """``raster.predict`` on the scene equals ``MDN.predict`` on the decoded pixels (band
    first), NaN exactly where a band is missing, and keeps the coordinates named."""
    out = raster.predict(msi_model_file, scene).compute()
    X = decoded.reshape(len(decoded), -1).T.astype(np.float64)
    ok = np.isfinite(X).all(1) & (X > 0).all(1)
    assert 0 < ok.sum() < len(X)
    expected = MDN.load(msi_model_file).predict(pd.DataFrame(X[ok], columns=FEATURES))
    got = out["chl"].values.reshape(-1)
    np.testing.assert_array_equal(np.isnan(got), ~ok)
    np.testing.assert_allclose(got[ok], expected.to_numpy().ravel(), rtol=RTOL)
    np.testing.assert_array_equal(out["quality_flag"].values.reshape(-1), (~ok).astype(int))
    for name in coords:
        assert name in out.coords and name not in out.data_vars, name
    return out


# ----------------------------------------------------------------- SeaDAS navigation_data
def _seadas(path, cube: np.ndarray, control_points: int) -> np.ndarray:
    """An OBPG Level-2 file: Rrs packed in geophysical_data, latitude and longitude in
    navigation_data on (number_of_lines, pixel_control_points). Returns the latitudes."""
    lines = cube.shape[1]
    geo = xr.Dataset({b: (LINES, cube[i]) for i, b in enumerate(FEATURES)})
    geo["l2_flags"] = (LINES, np.zeros(cube.shape[1:], np.int32))
    latitude = 40 + np.arange(lines * control_points, dtype=np.float32).reshape(lines, -1) / 100
    nav_dims = ("number_of_lines", "pixel_control_points")
    navigation = xr.Dataset(
        {
            "latitude": (nav_dims, latitude),
            "longitude": (nav_dims, latitude - 37),
            "cntl_pt_cols": (("pixel_control_points",), np.arange(1, control_points + 1)),
        }
    )
    _write(xr.Dataset(attrs={"title": "S2A MSI Level-2", "instrument": "MSI"}), path, mode="w")
    _write(geo, path, "geophysical_data", {b: SCALED_OFFSET for b in FEATURES})
    _write(navigation, path, "navigation_data")
    return latitude


def test_seadas_latitude_longitude_on_control_points(tmp_path, msi_model_file, recwarn):
    path = tmp_path / "S2A_MSI.L2.OC.nc"
    latitude = _seadas(path, _cube(), control_points=5)
    scene = raster.open_scene(path)
    assert scene.attrs["mdn_layout"] == "seadas" and list(scene.data_vars) == FEATURES
    assert set(scene.coords) == {"latitude", "longitude"}
    assert scene["latitude"].dims == LINES == scene["Rrs_443"].dims
    np.testing.assert_array_equal(scene["latitude"].values, latitude)
    np.testing.assert_array_equal(scene["longitude"].values, latitude - 37)
    assert not [w for w in recwarn if "navigation_data" in str(w.message)]
    decoded = xr.open_dataset(path, group="geophysical_data")
    pixels = np.stack([decoded[b].values for b in FEATURES])
    out = _assert_predicts(msi_model_file, path, pixels, ("latitude", "longitude"))
    np.testing.assert_array_equal(out["latitude"].values, latitude)


def test_seadas_subsampled_control_points_are_left_out(tmp_path):
    path = tmp_path / "A2024.L2_LAC_OC.nc"
    _seadas(path, _cube(), control_points=3)  # every other pixel of 5
    with pytest.warns(UserWarning, match=r"navigation_data.*latitude, longitude.*subsampled"):
        scene = raster.open_scene(path)
    assert list(scene.data_vars) == FEATURES and not set(scene.coords)


# ---------------------------------------------------------- latitude/longitude as variables
@pytest.mark.parametrize(
    "prefix, factor, attrs, names, layout",
    [
        ("Rw", math.pi, {"processor": "POLYMER v4.17"}, ("latitude", "longitude"), "polymer"),
        ("Rrs_", 1.0, {"generated_by": "ACOLITE"}, ("lat", "lon"), "acolite"),
        ("Rrs_", 1.0, {}, ("nav_lat", "nav_lon"), "xarray"),  # by standard_name
    ],
)
def test_latitude_longitude_variables_become_coordinates(
    tmp_path, msi_model_file, prefix, factor, attrs, names, layout
):
    cube = _cube((5, 6))
    dims = ("height", "width")
    dataset = xr.Dataset(
        {f"{prefix}{w:g}": (dims, cube[i] * np.float32(factor)) for i, w in enumerate(WAVELENGTHS)},
        attrs=attrs,
    )
    latitude = np.linspace(43, 44, 30, dtype=np.float32).reshape(5, 6)
    geolocation = zip(names, (latitude, latitude - 38), ("latitude", "longitude"), strict=True)
    for name, values, standard in geolocation:
        units = "degrees_north" if standard == "latitude" else "degrees_east"
        dataset[name] = (dims, values, {"standard_name": standard, "units": units})
    dataset["bitmask"] = (dims, np.zeros((5, 6), np.uint16))
    dataset["lat"] = dataset.get("lat", xr.DataArray(np.arange(3.0), dims="tie_points"))
    path = tmp_path / "scene.nc"
    _write(dataset, path, mode="w")
    scene = raster.open_scene(path)
    assert scene.attrs["mdn_layout"] == layout
    assert list(raster.scene_bands(scene).values()) == WAVELENGTHS
    assert set(scene.coords) == set(names) and set(scene.data_vars) == set(FEATURES)
    np.testing.assert_array_equal(scene[names[0]].values, latitude)
    out = _assert_predicts(msi_model_file, path, cube, names)
    np.testing.assert_array_equal(out[names[1]].values, latitude - 38)
    assert out[names[0]].attrs["standard_name"] == "latitude"


# ------------------------------------------------------------------------ bands still packed
@pytest.mark.parametrize("encoding", [SCALED, SCALED_OFFSET], ids=["scale", "scale-offset"])
@pytest.mark.parametrize(
    "undecoded, chunks",
    [({"mask_and_scale": False}, 2), ({"decode_cf": False}, None)],
    ids=["mask_and_scale-dask", "decode_cf-numpy"],
)
def test_packed_bands_are_decoded(tmp_path, msi_model_file, encoding, undecoded, chunks):
    cube = _cube()
    dims = ("y", "x")
    path = tmp_path / "packed.nc"
    dataset = xr.Dataset({b: (dims, cube[i]) for i, b in enumerate(FEATURES)})
    _write(dataset, path, encoding={b: encoding for b in FEATURES}, mode="w")
    raw = xr.open_dataset(path, chunks=chunks, **undecoded)
    assert raw["Rrs_443"].dtype.kind in "iu" and "scale_factor" in raw["Rrs_443"].attrs
    scene = raster.open_scene(raw)
    decoded = xr.open_dataset(path)
    for band in FEATURES:
        assert scene[band].dtype.kind == "f"
        assert (scene[band].chunks is not None) == (chunks is not None)  # still lazy
        np.testing.assert_array_equal(scene[band].values, decoded[band].values)
    assert np.isnan(scene["Rrs_560"].values[0, 1])  # the fill value, as NaN
    _assert_predicts(msi_model_file, raw, np.stack([decoded[b].values for b in FEATURES]))


# ------------------------------------------------------------- band numbers and wavelengths
@pytest.mark.parametrize("coordinate, units", [("wavelength", None), ("centre", "nm")])
def test_band_numbers_with_a_wavelength_coordinate(msi_model_file, coordinate, units):
    cube = _cube((3, 4))
    attrs = {"units": units} if units else {}
    scene = xr.DataArray(
        cube,
        dims=("band", "y", "x"),
        coords={
            "band": np.arange(1, 8),
            coordinate: ("band", WAVELENGTHS, attrs),
            "y": np.arange(3.0),
            "x": np.arange(4.0),
        },
    )  # fmt: skip  (rioxarray's layout, with the wavelengths beside the band numbers)
    opened = raster.open_scene(scene)
    assert raster.scene_bands(opened) == dict(zip(FEATURES, WAVELENGTHS, strict=True))
    assert set(opened.coords) == {"y", "x"}
    np.testing.assert_array_equal(opened["Rrs_665"].values, cube[3])
    _assert_predicts(msi_model_file, scene, cube, ("y", "x"))


def test_band_numbers_alone_are_refused():
    cube = xr.Dataset(
        {"Rrs": (("band", "y", "x"), _cube((3, 4)))}, coords={"band": np.arange(1, 8)}
    )
    with pytest.raises(ValueError, match=r"'band' holds \[1, 2.*assign_coords\(band="):
        raster.open_scene(cube)
    in_micrometres = cube.assign_coords(wavelength=("band", np.array(WAVELENGTHS) / 1000))
    with pytest.raises(ValueError, match=r"'wavelength' holds \[0.443.*not wavelengths in nm"):
        raster.open_scene(in_micrometres)


# -------------------------------------------------------------------------------- PACE OCI
def test_pace_oci_rrs_on_wavelength_3d(tmp_path, msi_model_file):
    wavelengths = [413.0, *WAVELENGTHS]  # one band more than the model takes
    cube = np.concatenate([_cube()[:1] * 1.1, _cube()])
    dims = (*LINES, "wavelength_3d")
    geo = xr.Dataset(
        {
            "Rrs": (dims, np.moveaxis(cube, 0, -1), {"units": "sr^-1"}),
            "Rrs_unc": (dims, np.moveaxis(cube, 0, -1) / 10),
            "l2_flags": (LINES, np.zeros(cube.shape[1:], np.int32)),
        }
    )
    latitude = np.full(cube.shape[1:], 30.0, np.float32)
    navigation = xr.Dataset({"latitude": (LINES, latitude), "longitude": (LINES, latitude)})
    parameters = xr.Dataset(
        {"wavelength": (("number_of_bands",), np.arange(400.0, 410.0))},
        coords={"wavelength_3d": ("wavelength_3d", wavelengths, {"units": "nm"})},
    )
    path = tmp_path / "PACE_OCI.20240601T120000.L2.OC_AOP.V2_0.nc"
    _write(xr.Dataset(attrs={"instrument": "OCI", "platform": "PACE"}), path, mode="w")
    _write(geo, path, "geophysical_data", {"Rrs": SCALED_OFFSET})
    _write(navigation, path, "navigation_data")
    _write(parameters, path, "sensor_band_parameters")
    scene = raster.open_scene(path)
    assert scene.attrs["mdn_layout"] == "seadas" and scene.attrs["platform"] == "PACE"
    assert raster.scene_bands(scene) == {f"Rrs_{w:g}": w for w in wavelengths}
    assert set(scene.coords) == {"latitude", "longitude"} and scene["Rrs_443"].dims == LINES
    decoded = xr.open_dataset(path, group="geophysical_data")["Rrs"]
    np.testing.assert_array_equal(scene["Rrs_492"].values, decoded.values[..., 2])
    _assert_predicts(msi_model_file, path, np.moveaxis(decoded.values, -1, 0)[1:], ("latitude",))
    # the geophysical_data group alone, still packed: wavelengths given, Rrs decoded
    raw = xr.open_dataset(path, group="geophysical_data", mask_and_scale=False, chunks=2)
    alone = raster.open_scene(raw.assign_coords(wavelength_3d=wavelengths))
    np.testing.assert_array_equal(alone["Rrs_560"].values, decoded.values[..., 3])


def test_an_unknown_band_dimension_is_named():
    cube = xr.Dataset(
        {
            "Rrs": (("y", "x", "channel"), np.ones((2, 3, 4))),
            "flags": (("y", "x"), np.zeros((2, 3))),
        }
    )
    with pytest.raises(ValueError, match=r"found Rrs\('y', 'x', 'channel'\), flags\('y', 'x'\)"):
        raster.open_scene(cube)
    with pytest.raises(ValueError, match=r"without wavelengths.*wavelength_3d="):
        raster.open_scene(cube.rename(channel="wavelength_3d"))
