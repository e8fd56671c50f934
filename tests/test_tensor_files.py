"""Model files: exact round trips, atomic writes, clear errors on anything that is not a model."""

from __future__ import annotations

import json
import struct
import warnings

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from sklearn.preprocessing import MinMaxScaler, RobustScaler

import mdn
from mdn import MDN, ModelFileError
from mdn.tensor_files import read_model_file, write_model_file


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(150, 3))
    y = np.c_[X[:, 0] + 0.1 * rng.normal(size=150), X[:, 1] ** 2]
    model = MDN(
        hidden=(16, 16),
        n_iter=200,
        covariance="full",
        random_state=0,
        verbose=0,
        scaler_x=RobustScaler(quantile_range=(10.0, 90.0)),
        scaler_y=MinMaxScaler(feature_range=(-1, 1)),
    )
    return model.fit(X, y), X, y


def test_round_trip_is_exact(fitted, tmp_path):
    model, X, y = fitted
    path = tmp_path / "model.safetensors"
    model.save(path)
    loaded = mdn.load(path)
    for point in ("top", "mean", "median"):
        np.testing.assert_array_equal(loaded.predict(X, point=point), model.predict(X, point=point))
    np.testing.assert_array_equal(loaded.log_prob(X, y), model.log_prob(X, y))
    np.testing.assert_array_equal(loaded.predict_interval(X)[0], model.predict_interval(X)[0])
    assert loaded.history_ == model.history_ and loaded.n_iter_ == model.n_iter_
    params, original = loaded.get_params(deep=False), model.get_params(deep=False)
    for key in ("scaler_x", "scaler_y"):
        assert type(params[key]) is type(original[key])
        assert params.pop(key).get_params() == original.pop(key).get_params()
    assert params == original


def test_round_trip_of_a_1d_log_target_model_with_feature_names(tmp_path):
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(1)
    X = pd.DataFrame(rng.normal(size=(100, 2)), columns=["r443", "r555"])
    y = np.exp(X["r443"].to_numpy() + 0.1 * rng.normal(size=100))
    model = MDN(
        hidden=(8,),
        n_iter=100,
        target_transform="log",
        covariance="diag",
        random_state=0,
        verbose=0,
    ).fit(X, y)
    model.save(tmp_path / "chl.safetensors")
    loaded = MDN.load(tmp_path / "chl.safetensors")
    assert list(loaded.feature_names_in_) == ["r443", "r555"] and loaded.output_1d_
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


def test_loaded_model_can_be_refit(fitted, tmp_path):
    model, X, y = fitted
    model.save(tmp_path / "m.safetensors")
    refit = mdn.load(tmp_path / "m.safetensors").fit(X, y)
    np.testing.assert_array_equal(refit.predict(X), model.predict(X))


def test_file_holds_no_pickle_and_names_its_format(fitted, tmp_path):
    model, _, _ = fitted
    path = tmp_path / "model.safetensors"
    model.save(path)
    (header_size,) = struct.unpack("<Q", path.read_bytes()[:8])
    metadata = json.loads(path.read_bytes()[8 : 8 + header_size])["__metadata__"]
    assert metadata["format"] == "mdn-model" and metadata["format_version"] == "2"
    assert json.loads(metadata["versions"])["torch"] == torch.__version__
    assert b"\x80\x04\x95" not in path.read_bytes()  # no pickle protocol-4 stream


def test_save_replaces_atomically_and_keeps_the_old_file_on_failure(fitted, tmp_path, monkeypatch):
    model, _, _ = fitted
    path = tmp_path / "model.safetensors"
    model.save(path)
    before = path.read_bytes()

    def broken_replace(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("mdn.tensor_files.os.replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"], "temporary file left"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty or truncated"),
        (b"not a model at all, just text", "header claims"),
        (struct.pack("<Q", 5) + b"{{{{{", "not safetensors JSON"),
    ],
)
def test_garbage_files_are_rejected(tmp_path, content, message):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    with pytest.raises(ModelFileError, match=message):
        mdn.load(path)


def test_truncated_model_file_is_rejected(fitted, tmp_path):
    model, _, _ = fitted
    path = tmp_path / "model.safetensors"
    model.save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])
    with pytest.raises(ModelFileError, match="damaged"):
        mdn.load(path)


def test_foreign_safetensors_file_is_rejected(tmp_path):
    path = tmp_path / "foreign.safetensors"
    save_file({"weight": torch.zeros(3)}, path)
    with pytest.raises(ModelFileError, match="no 'mdn-model' metadata"):
        mdn.load(path)


def test_newer_format_and_inconsistent_contents_are_rejected(tmp_path):
    path = tmp_path / "future.safetensors"
    write_model_file(path, {"w": torch.zeros(1)}, {})
    data = path.read_bytes().replace(b'"format_version":"2"', b'"format_version":"9"')
    path.write_bytes(data)
    with pytest.raises(ModelFileError, match="newer"):
        mdn.load(path)
    write_model_file(path, {"w": torch.zeros(1)}, {"params": {}, "fitted": {}})
    with pytest.raises(ModelFileError, match="do not fit together"):
        mdn.load(path)


def test_missing_file_and_folder_targets(fitted, tmp_path):
    model, _, _ = fitted
    with pytest.raises(FileNotFoundError):
        mdn.load(tmp_path / "absent.safetensors")
    with pytest.raises(IsADirectoryError):
        model.save(tmp_path)


def test_low_level_round_trip(tmp_path):
    tensors = {"a": torch.arange(6.0).reshape(2, 3), "b": torch.tensor([1, 2], dtype=torch.int64)}
    write_model_file(tmp_path / "x.safetensors", tensors, {"note": {"k": [1, 2]}})
    read, documents = read_model_file(tmp_path / "x.safetensors")
    assert documents == {"note": {"k": [1, 2]}}
    assert all(torch.equal(read[k], tensors[k]) for k in tensors)


def test_a_random_state_object_is_dropped_on_save_with_a_warning(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 2))
    model = MDN(n_models=1, hidden=(4,), n_iter=10, verbose=0)
    model.set_params(random_state=np.random.RandomState(0)).fit(X, X[:, 0])
    with pytest.warns(UserWarning, match="random_state is a RandomState.*saved as None"):
        model.save(tmp_path / "m.safetensors")
    assert mdn.load(tmp_path / "m.safetensors").random_state is None
    model.set_params(random_state=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.save(tmp_path / "m.safetensors")  # an integer seed is kept without a word
