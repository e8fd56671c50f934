"""Scenes (mdn.raster, mdn predict-scene): per-pixel predictions equal MDN's row by row, NaN
exactly where the quality mask says; the same on a dask.distributed cluster; each reader
finds its layout's bands; band matching by wavelength; the command's round trip."""

from __future__ import annotations

import hashlib
import math
import sys

import numpy as np
import pytest

xr = pytest.importorskip("xarray")
pytest.importorskip("dask.array")
pytest.importorskip("zarr")
pd = pytest.importorskip("pandas")

from click.testing import CliRunner  # noqa: E402

from mdn import MDN, raster, sensors  # noqa: E402
from mdn.cli import main  # noqa: E402

MSI = sensors.sensor("msi")
FEATURES = MSI.columns()  # Rrs_443, Rrs_492, Rrs_560, Rrs_665, Rrs_704, Rrs_741, Rrs_783
FILL = 65535.0  # an undecoded fill value, positive so that only the fill test catches it
RTOL = 2e-6  # float32 outputs against float64 predictions
BEYOND = (4, 3)  # the pixel of _scene with a value beyond what a model can take


def _h5py() -> bool:
    try:
        import h5py  # noqa: F401
    except ImportError:
        return False
    return True


def _spectra(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.uniform(0.001, 0.02, size=(n, len(FEATURES)))


def _scene(shape=(9, 11), seed=1) -> tuple[xr.Dataset, np.ndarray]:
    """A scene in MSI bands with a CRS, 2-D latitude, and every kind of bad pixel."""
    rng = np.random.default_rng(seed)
    cube = _spectra(rng, shape[0] * shape[1]).T.reshape(len(FEATURES), *shape)
    cube = cube.astype(np.float32)
    cube[0, 0, :3] = np.nan  # missing
    cube[1, 1, :2] = -0.001  # negative
    cube[2, 2, 4] = 0.0  # zero
    cube[3, 3, 5:7] = FILL  # the band's fill value, left in the data
    cube[4, 4, 1] = np.inf
    cube[5][BEYOND] = 3e38  # finite and positive, but beyond float32 once scaled: flag 2
    y, x = np.arange(shape[0]) * -10.0 + 5e6, np.arange(shape[1]) * 10.0 + 4e5
    crs = xr.DataArray(0, attrs={"grid_mapping_name": "transverse_mercator", "epsg": 32631})
    scene = xr.Dataset(
        {name: (("y", "x"), cube[i], {"grid_mapping": "crs"}) for i, name in enumerate(FEATURES)},
        coords={"y": y, "x": x, "lat": (("y", "x"), rng.uniform(40, 41, shape))},
        attrs={"title": "a synthetic MSI scene", "history": "made by a test"},
    )
    scene[FEATURES[3]].attrs["_FillValue"] = FILL
    scene["crs"] = crs
    flat = cube.reshape(len(FEATURES), -1).T
    valid = np.isfinite(flat).all(1) & (flat > 0).all(1) & (flat[:, 3] != FILL)
    valid[np.ravel_multi_index(BEYOND, shape)] = False
    return scene, valid


def _flags(valid: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The quality flag ``_scene``'s pixels should get: 0 valid, 1 bad reflectance, 2 the
    pixel beyond the model's range."""
    flags = (~valid).astype(np.uint8)
    flags[np.ravel_multi_index(BEYOND, shape)] = 2
    return flags


def _rows(scene: xr.Dataset, valid: np.ndarray) -> pd.DataFrame:
    flat = np.stack([scene[n].values.reshape(-1) for n in FEATURES], axis=1)
    return pd.DataFrame(flat[valid].astype(np.float64), columns=FEATURES)


def test_predict_equals_row_by_row(msi_model_file):
    model = MDN.load(msi_model_file)
    assert model.member_spread_ == 1.0  # the members' means below are then the pooled ones'
    scene, valid = _scene()
    out = raster.predict(msi_model_file, scene, point="median", interval=0.8, chunks=4)
    assert out["chl"].chunks == ((4, 4, 1), (4, 4, 3))  # streamed: 9 blocks
    out = out.compute()
    rows = _rows(scene, valid)
    lower, upper = model.predict_interval(rows, coverage=0.8)
    expected = {"chl": model.predict(rows, point="median"), "chl_lower": lower, "chl_upper": upper}
    for name, values in expected.items():
        got = out[name].values.reshape(-1)
        assert np.array_equal(np.isnan(got), ~valid), name  # NaN where masked, nowhere else
        np.testing.assert_allclose(got[valid], np.asarray(values), rtol=RTOL, err_msg=name)
    # the spreads: of ln(chl), by the law of total variance over the members
    members = [m.predict_dist(rows).base for m in model.members_]
    means = np.stack([m.mean().numpy()[:, 0] for m in members])
    total = model.predict_dist(rows).base.variance().numpy()[:, 0]
    aleatoric = out["chl_aleatoric_sd"].values.reshape(-1)[valid]
    epistemic = out["chl_epistemic_sd"].values.reshape(-1)[valid]
    np.testing.assert_allclose(epistemic, means.std(axis=0), rtol=1e-5)
    np.testing.assert_allclose(aleatoric**2 + epistemic**2, total, rtol=1e-5)
    assert (epistemic > 0).all() and np.isnan(
        out["chl_epistemic_sd"].values.reshape(-1)[~valid]
    ).all()
    quality = out[raster.QUALITY].values.reshape(-1)
    novel = np.zeros_like(valid)
    novel[valid] = model.novelty(rows) > model.novelty_threshold_
    np.testing.assert_array_equal(quality == 4, novel)  # predicted, and flagged as novel
    assert np.array_equal(np.where(novel, 0, quality), _flags(valid, (9, 11)))
    with pytest.raises(ValueError, match="beyond float32's range"):  # as a table's row is
        model.predict(_rows(scene, np.arange(valid.size) == np.ravel_multi_index(BEYOND, (9, 11))))


def test_two_targets_and_one_member():
    rng = np.random.default_rng(8)
    X = _spectra(rng, 300)
    y = np.stack([X[:, 0] / X[:, 2], X[:, 1] * 100], axis=1) + rng.normal(0, 0.05, (300, 2))
    model = MDN(n_mix=2, hidden=(8,), n_iter=30, n_models=1, verbose=0, random_state=0)
    model.fit(pd.DataFrame(X, columns=FEATURES), pd.DataFrame(y, columns=["ratio", "tss"]))
    scene, valid = _scene(shape=(6, 7), seed=9)
    out = raster.predict(model, scene, point="mean", chunks=3, units={"ratio": "1"}).compute()
    rows = _rows(scene, valid)
    estimate = model.predict(rows, point="mean").to_numpy()
    lower, upper = (bound.to_numpy() for bound in model.predict_interval(rows, coverage=0.9))
    variance = model.predict_dist(rows).variance().numpy()
    for d, target in enumerate(["ratio", "tss"]):
        for suffix, values in (("", estimate), ("_lower", lower), ("_upper", upper)):
            got = out[target + suffix].values.reshape(-1)
            assert np.array_equal(np.isnan(got), ~valid)
            # the network runs in float32 on other batches: rounding, where means cancel
            scale = np.abs(values[:, d]).max()
            np.testing.assert_allclose(got[valid], values[:, d], rtol=RTOL, atol=RTOL * scale)
        aleatoric = out[f"{target}_aleatoric_sd"].values.reshape(-1)[valid]
        np.testing.assert_allclose(aleatoric**2, variance[:, d], rtol=1e-5)  # in tss's units
        assert (out[f"{target}_epistemic_sd"].values.reshape(-1)[valid] == 0).all()
    assert out["ratio"].attrs["units"] == "1" and out["tss_lower"].attrs["units"] == "g m-3"


def test_coordinates_attributes_and_provenance(msi_model_file):
    scene, _ = _scene()
    out = raster.predict(msi_model_file, scene, chunks=5)
    assert list(out.data_vars) == [*raster.output_names(["chl"]), "crs"]
    np.testing.assert_array_equal(out["lat"].values, scene["lat"].values)
    assert out["x"].equals(scene["x"]) and out["crs"].attrs == scene["crs"].attrs
    assert out["chl"].attrs["grid_mapping"] == "crs"
    assert out["chl"].attrs["units"] == "mg m-3"
    assert "median" in out["chl"].attrs["long_name"]  # the model's default for a log target
    assert out["chl_aleatoric_sd"].attrs["units"] == "1"  # of ln(chl)
    assert "ln(chl)" in out["chl_epistemic_sd"].attrs["long_name"]
    assert math.isnan(out["chl_upper"].encoding["_FillValue"])
    flags = out[raster.QUALITY].attrs
    assert flags["flag_meanings"] == (
        "valid invalid_reflectance beyond_model_range flagged_in_scene outside_training_domain"
    )
    assert list(flags["flag_values"]) == [0, 1, 2, 3, 4]
    digest = hashlib.sha256(msi_model_file.read_bytes()).hexdigest()
    assert out.attrs["mdn_model_sha256"] == digest and out.attrs["mdn_version"]
    assert out.attrs["title"] == "a synthetic MSI scene"
    assert out.attrs["history"].startswith("made by a test\n") and digest in out.attrs["history"]


def test_an_unsaved_model_and_a_fill_value_given(msi_model_file):
    model = MDN.load(msi_model_file)
    scene, valid = _scene(shape=(5, 6), seed=2)
    scene[FEATURES[0]].values[1, 1] = 0.0125  # the fill value passed below
    valid = valid & (scene[FEATURES[0]].values.reshape(-1) != np.float32(0.0125))
    out = raster.predict(model, scene, fill_value=np.float32(0.0125), chunks=3).compute()
    np.testing.assert_array_equal(np.isnan(out["chl"].values.reshape(-1)), ~valid)
    from_file = raster.predict(msi_model_file, scene, fill_value=np.float32(0.0125)).compute()
    assert from_file["chl"].equals(out["chl"])
    assert out.attrs["mdn_model_sha256"] == from_file.attrs["mdn_model_sha256"]


def test_a_cluster_of_two_processes_predicts_as_threads(msi_model_file):
    pytest.importorskip("distributed")
    dask = pytest.importorskip("dask")
    scene, _ = _scene(shape=(12, 10), seed=3)
    out = raster.predict(msi_model_file, scene, interval=0.9, chunks=6)
    threaded = out.compute(scheduler="threads")
    # Forked worker processes start in a second where spawned ones import torch afresh (20 s
    # and more here); tasks and data still go to them pickled, over TCP.
    with (
        dask.config.set({"distributed.worker.multiprocessing-method": "fork"}),
        raster.local_cluster(2) as client,
    ):
        # empty what the fork copied, so that the workers load the model from its path (a
        # lambda: a bound method would be pickled with a copy of the dictionary it clears)
        client.run(lambda: raster.models._CACHE.clear())
        assert set(client.run(lambda: len(raster.models._CACHE)).values()) == {0}
        clustered = client.compute(out).result()
        loaded = client.run(lambda: sorted(raster.models._CACHE))
    # each process that ran a task holds the model once, loaded from the file by its path
    digest = out.attrs["mdn_model_sha256"]
    assert len(loaded) == 2 and all(v in ([], [digest]) for v in loaded.values())
    assert [digest] in loaded.values()
    for name in out.data_vars:
        assert clustered[name].equals(threaded[name]), name


# ---------------------------------------------------------------------------------- readers
def _write_netcdf(dataset: xr.Dataset, path, group: str | None = None, mode: str = "w"):
    """NetCDF-4 through h5netcdf where h5py is installed, else NetCDF-3 (no groups)."""
    if _h5py():
        dataset.to_netcdf(path, engine="h5netcdf", group=group, mode=mode)
    else:
        assert group is None
        dataset.to_netcdf(path, engine="scipy")


def _bands(values: np.ndarray, names: list[str], dims=("y", "x"), attrs=None) -> xr.Dataset:
    return xr.Dataset({n: (dims, v, dict(attrs or {})) for n, v in zip(names, values, strict=True)})


@pytest.fixture
def values():
    return np.random.default_rng(4).uniform(0.001, 0.02, (4, 3, 5)).astype(np.float32)


@pytest.mark.parametrize("store", ["nc", "zarr"])
def test_seadas(tmp_path, values, store):
    if store == "nc" and not _h5py():
        pytest.skip("SeaDAS groups need NetCDF-4: h5py is not installed")
    dims = ("number_of_lines", "pixels_per_line")
    geo = _bands(values, ["Rrs_412", "Rrs_443", "Rrs_488", "Rrs_555"], dims)
    geo["Rrs_unc_443"] = (dims, values[1] / 10)  # an uncertainty, not a band
    navigation = xr.Dataset({"latitude": (dims, values[0] + 40), "longitude": (dims, values[1])})
    root = xr.Dataset(attrs={"title": "MODISA Level-2", "instrument": "MODIS"})
    path = tmp_path / f"A2024.L2_LAC_OC.{store}"
    if store == "nc":
        _write_netcdf(root, path)
        _write_netcdf(geo, path, group="geophysical_data", mode="a")
        _write_netcdf(navigation, path, group="navigation_data", mode="a")
    else:
        import zarr

        root.to_zarr(path, zarr_format=2, consolidated=False)
        geo.to_zarr(path, group="geophysical_data", zarr_format=2, consolidated=False)
        navigation.to_zarr(path, group="navigation_data", zarr_format=2, consolidated=False)
        zarr.consolidate_metadata(str(path))
    scene = raster.open_scene(path)
    assert scene.attrs["mdn_layout"] == "seadas" and scene.attrs["instrument"] == "MODIS"
    assert raster.scene_bands(scene) == {
        "Rrs_412": 412,
        "Rrs_443": 443,
        "Rrs_488": 488,
        "Rrs_555": 555,
    }
    np.testing.assert_array_equal(scene["Rrs_488"].values, values[2])
    np.testing.assert_array_equal(scene["latitude"].values, values[0] + 40)


@pytest.mark.parametrize(
    "names, attrs, factor, layout",
    [
        (["Rrs_443", "Rrs_492", "Rrs_560", "Rrs_665"], {"generated_by": "ACOLITE"}, 1, "acolite"),
        (
            ["rhow_443", "rhow_492", "rhow_560", "rhow_665"],
            {"generated_by": "ACOLITE"},
            math.pi,
            "acolite",
        ),
        (["Rw443", "Rw490", "Rw560", "Rw665"], {"processor": "POLYMER v4.17"}, math.pi, "polymer"),
        (["Rrs_443", "Rrs_490", "Rrs_560", "Rrs_665"], {}, 1, "xarray"),
    ],
)
def test_acolite_polymer_and_named_bands(tmp_path, values, names, attrs, factor, layout):
    dataset = _bands(values * np.float32(factor), names)
    dataset["l2_flags"] = (("y", "x"), np.zeros((3, 5), np.int32))
    dataset["lat"] = (("y", "x"), values[0] + 40)
    dataset = dataset.set_coords("lat").assign_attrs(attrs)
    _write_netcdf(dataset, tmp_path / "scene.nc")
    scene = raster.open_scene(tmp_path / "scene.nc")
    assert scene.attrs["mdn_layout"] == layout
    wavelengths = [float(n.lstrip("Rwrhos_")) for n in names]
    assert list(raster.scene_bands(scene).values()) == wavelengths
    assert "l2_flags" not in scene and "lat" in scene.coords
    first = next(iter(scene.data_vars))
    assert first.startswith("Rrs_") and scene[first].attrs["units"] == "sr-1"
    np.testing.assert_allclose(scene[first].values, values[0], rtol=1e-6)


def test_band_dimension(tmp_path, values):
    cube = xr.Dataset(
        {"Rrs": (("wavelength", "y", "x"), values), "quality": (("y", "x"), np.ones((3, 5)))},
        coords={"wavelength": [412.5, 442.5, 490.0, 560.0]},
    )
    for given in (cube, cube["Rrs"]):
        scene = raster.open_scene(given)
        assert raster.scene_bands(scene) == {
            "Rrs_412.5": 412.5,
            "Rrs_442.5": 442.5,
            "Rrs_490": 490,
            "Rrs_560": 560,
        }
        np.testing.assert_array_equal(scene["Rrs_490"].values, values[2])
    cube.to_zarr(tmp_path / "cube.zarr", zarr_format=2)
    assert list(raster.open_scene(tmp_path / "cube.zarr").data_vars)[1] == "Rrs_442.5"
    with pytest.raises(ValueError, match="wavelengths"):
        raster.open_scene(cube.drop_vars("wavelength"))
    with pytest.raises(ValueError, match=r"no reflectance bands.*found quality"):
        raster.open_scene(cube[["quality"]])
    with pytest.raises(FileNotFoundError, match="no such scene"):
        raster.open_scene(tmp_path / "absent.nc")


# ------------------------------------------------------------------------- band matching
def _olci_scene(shape=(4, 6)) -> xr.Dataset:
    """OLCI's bands, named as SeaDAS names them, with their exact centres as attributes."""
    rng = np.random.default_rng(5)
    olci = sensors.sensor("olci")
    return xr.Dataset(
        {
            f"Rrs_{b.label}": (
                ("y", "x"),
                rng.uniform(0.001, 0.02, shape),
                {"wavelength": b.centre},
            )
            for b in olci.bands
        }
    )


def test_msi_model_on_an_olci_scene(msi_model_file):
    scene = _olci_scene()
    with pytest.raises(ValueError, match=r"feature\(s\) Rrs_741 \(nearest Rrs_754, 12.75 nm"):
        raster.predict(msi_model_file, scene)  # MSI's 740.5 nm band has no OLCI twin
    out = raster.predict(msi_model_file, scene, tolerance_nm=14)
    assert out.attrs["mdn_bands"] == (
        "Rrs_443=Rrs_443, Rrs_492=Rrs_490, Rrs_560=Rrs_560, "
        "Rrs_665=Rrs_665, Rrs_704=Rrs_709, Rrs_741=Rrs_754, "
        "Rrs_783=Rrs_779"
    )
    chosen = ["Rrs_443", "Rrs_490", "Rrs_560", "Rrs_665", "Rrs_709", "Rrs_754", "Rrs_779"]
    rows = pd.DataFrame(
        np.stack([scene[b].values.reshape(-1) for b in chosen], 1), columns=FEATURES
    )
    expected = MDN.load(msi_model_file).predict(rows)
    np.testing.assert_allclose(out["chl"].values.reshape(-1), expected, rtol=RTOL)
    by_hand = raster.predict(msi_model_file, scene, bands={"Rrs_741": "Rrs_754"}).compute()
    assert by_hand["chl"].equals(out["chl"].compute())


def test_band_choices_refused():
    available = {"Rrs_443": 443.0, "Rrs_490": 490.0}
    with pytest.raises(ValueError, match="one scene band per model feature"):
        raster.match_bands(["Rrs_443", "Rrs_490"], available, bands=["Rrs_443"])
    with pytest.raises(ValueError, match=r"no band.*Rrs_500"):
        raster.match_bands(["Rrs_443"], available, bands=["Rrs_500"])
    with pytest.raises(ValueError, match="carry no wavelength"):
        raster.match_bands(["B1"], available)
    with pytest.raises(ValueError, match="tolerance_nm"):
        raster.match_bands(["Rrs_445"], available, tolerance_nm=-1)
    # two features fed by one band (a copied band where the model learnt two): by hand only
    with pytest.raises(ValueError, match="Rrs_445, Rrs_443 would take the same band, Rrs_443"):
        raster.match_bands(["Rrs_445", "Rrs_443"], available, 2)
    by_hand = raster.match_bands(["Rrs_445", "Rrs_443"], available, 2, bands={"Rrs_445": "Rrs_443"})
    assert by_hand == ["Rrs_443", "Rrs_443"]


def test_an_unsaved_model_is_a_snapshot(msi_model_file):
    """A lazy prediction, and the per-process cache keyed by the saved bytes' checksum, keep
    the model as it was: refitting the object afterwards changes neither."""
    model = MDN.load(msi_model_file)
    scene, valid = _scene(shape=(5, 6), seed=3)
    lazy = raster.predict(model, scene)
    rows = _rows(scene, valid)
    expected = model.predict(rows)
    model.set_params(n_iter=5).fit(rows, np.full(len(rows), 50.0))  # refit in place
    np.testing.assert_allclose(lazy["chl"].values.reshape(-1)[valid], expected, rtol=RTOL)
    again = raster.predict(msi_model_file, scene).compute()  # the same checksum as `lazy`'s
    np.testing.assert_allclose(again["chl"].values.reshape(-1)[valid], expected, rtol=RTOL)


@pytest.mark.filterwarnings("ignore:The specified chunks separate the stored chunks")
def test_block_sizes_and_coordinates_stored_in_other_chunks(tmp_path, msi_model_file):
    scene, valid = _scene(shape=(10, 12), seed=4)
    scene.drop_vars("crs").chunk(7).to_zarr(tmp_path / "scene.zarr", zarr_format=2)
    out = raster.predict(msi_model_file, tmp_path / "scene.zarr", chunks=4)
    raster.write_scene(out, tmp_path / "chl.zarr")  # lat is stored in 7 x 7 chunks
    written = xr.open_zarr(tmp_path / "chl.zarr")
    np.testing.assert_array_equal(written["lat"].values, scene["lat"].values)
    assert np.array_equal(np.isnan(written["chl"].values.reshape(-1)), ~valid)
    cube = scene[FEATURES].to_dataarray("wavelength").assign_coords(wavelength=MSI.wavelengths)
    chunks = {"wavelength": -1, "y": 4, "x": 5}  # the band dimension: not the bands' own
    chunked = raster.predict(msi_model_file, cube, chunks=chunks, fill_value=FILL)
    assert chunked["chl"].chunks == ((4, 4, 2), (5, 5, 2))
    np.testing.assert_array_equal(chunked["chl"].values, written["chl"].values)


def _with_l2_flags(scene: xr.Dataset) -> tuple[xr.Dataset, np.ndarray]:
    """SeaDAS's l2_flags beside the bands: ATMFAIL (bit 0), LAND (1), CLDICE (3)."""
    flags = np.zeros(scene[FEATURES[0]].shape, np.int32)
    flags[0, 4], flags[1, 5], flags[2, 6], flags[3, 0] = 1, 2, 8, 2 | 8
    attrs = {"flag_masks": np.array([1, 2, 8], np.int32), "flag_meanings": "ATMFAIL LAND CLDICE"}
    return scene.assign(l2_flags=(("y", "x"), flags, attrs)), flags.reshape(-1)


def test_the_scene_s_own_flags_mask_pixels(tmp_path, msi_model_file):
    scene, valid = _scene(shape=(6, 7), seed=11)
    scene, flags = _with_l2_flags(scene)
    plain = raster.predict(msi_model_file, scene).compute()
    out = raster.predict(msi_model_file, scene, mask_flags=["land", "CLDICE"]).compute()
    masked = valid & ((flags & 10) != 0)  # LAND or CLDICE, on pixels that were valid
    assert masked.sum() == 3
    quality = out[raster.QUALITY].values.reshape(-1)
    predicted = np.where(quality == 4, 0, quality)  # 4: predicted, outside the training domain
    np.testing.assert_array_equal(predicted, np.where(masked, 3, _flags(valid, (6, 7))))
    chl, before = out["chl"].values.reshape(-1), plain["chl"].values.reshape(-1)
    assert np.array_equal(np.isnan(chl), ~valid | masked)
    np.testing.assert_array_equal(chl[valid & ~masked], before[valid & ~masked])  # ATMFAIL too
    assert out.attrs["mdn_mask_flags"] == "l2_flags: land CLDICE"
    assert "l2_flags" not in out and "mdn_mask_flags" not in plain.attrs
    with pytest.raises(
        ValueError, match="flags hold no GLINT; it has l2_flags: ATMFAIL LAND CLDICE"
    ):
        raster.predict(msi_model_file, scene, mask_flags=["LAND", "GLINT"])
    with pytest.raises(ValueError, match="no flag variable"):
        raster.predict(msi_model_file, scene.drop_vars("l2_flags"), mask_flags=["LAND"])
    # from a file, by the command; the empty pixels are counted by reason
    _write_netcdf(scene.drop_vars("crs"), tmp_path / "scene.nc")
    command = ["predict-scene", str(msi_model_file), str(tmp_path / "scene.nc"), "-q"]
    result = CliRunner().invoke(
        main, [*command, "-o", str(tmp_path / "chl.zarr"), "--mask-flags", "LAND,CLDICE"]
    )
    assert result.exit_code == 0, result.output
    written = xr.open_zarr(tmp_path / "chl.zarr")
    np.testing.assert_array_equal(written[raster.QUALITY].values, out[raster.QUALITY].values)
    assert "3 flagged in scene" in result.output


def test_flag_masks_by_name():
    from mdn.raster.flags import flag_mask, flag_variables

    def flags(dtype, masks, meanings):
        return (("y",), np.zeros(2, dtype), {"flag_masks": masks, "flag_meanings": meanings})

    scene = xr.Dataset(
        {
            "a": flags(np.int32, [1, 4], "LAND CLOUD"),
            "b": flags(np.uint8, [2], "GLINT"),
            "c": flags(np.float32, [1], "FLOAT"),  # not a flag variable
            "d": flags(np.int16, [1, 2], "ONE"),
        }
    )
    assert flag_variables(scene) == {"a": {"LAND": 1, "CLOUD": 4}, "b": {"GLINT": 2}}
    assert flag_mask(scene, ["cloud", "LAND"]) == ("a", 5)
    with pytest.raises(ValueError, match="lie in different variables; name flags of one"):
        flag_mask(scene, ["LAND", "GLINT"])
    with pytest.raises(ValueError, match="at least one flag"):
        flag_mask(scene, [" "])


def test_bad_settings(msi_model_file):
    scene, _ = _scene(shape=(6, 7))
    with pytest.raises(ValueError, match="interval must be a number strictly between 0 and 1"):
        raster.predict(msi_model_file, scene, interval=1.0)
    with pytest.raises(ValueError, match="point must be one of"):
        raster.predict(msi_model_file, scene, point="best")
    with pytest.raises(FileNotFoundError, match="no such model file"):
        raster.predict(msi_model_file.with_name("absent.safetensors"), scene)


# ---------------------------------------------------------------------------------- command
def test_predict_scene_command(tmp_path, msi_model_file, monkeypatch):
    scene, valid = _scene(shape=(6, 7), seed=6)
    scene_file = tmp_path / "scene.nc"
    _write_netcdf(scene.drop_vars("crs"), scene_file)
    output = tmp_path / "chl.zarr"
    command = ["predict-scene", str(msi_model_file), str(scene_file), "-o", str(output)]
    result = CliRunner().invoke(main, [*command, "--interval", "0.8", "--chunks", "4"])
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output and "Rrs_443=Rrs_443" in result.output
    bad = (~valid).sum() - 1  # and the one beyond the model's range
    assert f"{valid.sum()} pixels predicted" in result.output
    assert f"; empty: {bad} invalid reflectance, 1 beyond" in result.output
    written = xr.open_zarr(output)
    expected = raster.predict(msi_model_file, scene_file, interval=0.8, chunks=4).compute()
    for name in raster.output_names(["chl"]):
        np.testing.assert_array_equal(written[name].values, expected[name].values)
    assert np.array_equal(np.isnan(written["chl"].values.reshape(-1)), ~valid)
    assert written.attrs["mdn_model_sha256"] == expected.attrs["mdn_model_sha256"]

    # a run that fails half-way leaves the earlier output as it was, and says why in one line
    def failing(*args, **kwargs):
        raise ValueError("the disk is full")

    monkeypatch.setattr(sys.modules["mdn.raster.predict"], "predict_pixels", failing)
    before = {p.name: p.read_bytes() for p in output.rglob("*") if p.is_file()}
    failed = CliRunner().invoke(main, [*command, "--chunks", "4", "-q"])
    assert failed.exit_code == 2
    assert failed.output.strip() == "mdn predict-scene: error: the disk is full"
    assert {p.name: p.read_bytes() for p in output.rglob("*") if p.is_file()} == before
    assert [p.name for p in tmp_path.iterdir() if "partial" in p.name] == []


def test_netcdf_output(tmp_path, msi_model_file):
    pytest.importorskip("h5py", reason="NetCDF-4 needs h5py (pip install 'mdn[raster]')")
    scene, _ = _scene(shape=(6, 7), seed=10)
    out = raster.predict(msi_model_file, scene, chunks=4)
    raster.write_scene(out, tmp_path / "chl.nc")
    written = xr.open_dataset(tmp_path / "chl.nc", engine="h5netcdf")
    for name in raster.output_names(["chl"]):
        np.testing.assert_array_equal(written[name].values, out[name].values)
    assert written["chl"].attrs["units"] == "mg m-3" and written["chl"].attrs["grid_mapping"]
    assert math.isnan(written["chl"].encoding["_FillValue"])
    assert written.attrs["mdn_model_sha256"] == out.attrs["mdn_model_sha256"]
    # the command counts the empty pixels in what it wrote
    _write_netcdf(scene.drop_vars("crs"), tmp_path / "scene.nc")
    command = ["predict-scene", str(msi_model_file), str(tmp_path / "scene.nc"), "-o"]
    result = CliRunner().invoke(main, [*command, str(tmp_path / "cli.nc"), "-q"])
    assert result.exit_code == 0, result.output
    flags = written["quality_flag"].values
    predicted = ((flags == 0) | (flags == 4)).sum()
    assert f"{predicted} pixels predicted" in result.output
    assert f"; empty: {(flags == 1).sum()} invalid " in result.output


def test_geotiff_output(tmp_path, msi_model_file):
    rioxarray = pytest.importorskip("rioxarray")
    scene, _ = _scene(shape=(6, 7), seed=7)
    scene = scene.drop_vars(["crs", "lat"]).rio.write_crs("EPSG:32631")
    out = raster.predict(msi_model_file, scene, chunks=4)
    raster.write_scene(out, tmp_path / "chl.tif")
    written = rioxarray.open_rasterio(tmp_path / "chl.tif")
    assert written.rio.crs.to_epsg() == 32631
    assert written.attrs["long_name"] == tuple(raster.output_names(["chl"])[:-1])
    np.testing.assert_array_equal(written.values[0], out["chl"].values)
    assert written.x.values.tolist() == scene.x.values.tolist()
    # a CF grid-mapping variable (as ACOLITE and GDAL write it) gives the GeoTIFF its CRS
    cf, _ = _scene(shape=(6, 7), seed=7)  # bands with grid_mapping="crs"
    cf["crs"].attrs["crs_wkt"] = rioxarray.crs.CRS.from_epsg(32633).to_wkt()
    raster.write_scene(raster.predict(msi_model_file, cf, chunks=4), tmp_path / "cf.tif")
    assert rioxarray.open_rasterio(tmp_path / "cf.tif").rio.crs.to_epsg() == 32633
    # a swath, or a time series, is no map: refused before any work, the old output kept
    swath = cf.drop_vars("crs").rename(y="line", x="pixel")
    with pytest.raises(ValueError, match=r"outputs lie on \('line', 'pixel'\): write .nc"):
        raster.write_scene(raster.predict(msi_model_file, swath), tmp_path / "chl.tif")
    np.testing.assert_array_equal(
        rioxarray.open_rasterio(tmp_path / "chl.tif").values[0], out["chl"].values
    )


def test_a_zarr_scene_s_json_attributes_in_netcdf(tmp_path, msi_model_file):
    pytest.importorskip("h5py", reason="NetCDF-4 needs h5py (pip install 'mdn[raster]')")
    scene, _ = _scene(shape=(5, 7), seed=5)
    scene.attrs.update(processing={"ac": "acolite"}, cloud_masked=True, tile=None)
    raster.write_scene(raster.predict(msi_model_file, scene), tmp_path / "chl.nc")
    written = xr.open_dataset(tmp_path / "chl.nc", engine="h5netcdf")
    assert written.attrs["processing"] == '{"ac": "acolite"}'
    assert written.attrs["cloud_masked"] == 1 and "tile" not in written.attrs
    assert scene.attrs["cloud_masked"] is True  # the caller's dataset is left as it was
