"""Verified model files: damage is detected, contents are checked before anything is built,
and the same model always gives the same bytes."""

from __future__ import annotations

import json
import resource
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import mdn
from mdn import MDN, ModelFileError
from mdn.tensor_files import read_model_file, write_model_file

FROZEN = Path(__file__).parents[1] / "fixtures" / "frozen" / "single_sine.safetensors"


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 3))
    y = np.c_[X[:, 0], X[:, 1] ** 2] + 0.1 * rng.normal(size=(120, 2))
    model = MDN(n_models=2, hidden=(6,), n_iter=40, verbose=0, random_state=0).fit(X, y)
    path = tmp_path_factory.mktemp("files") / "model.safetensors"
    model.save(path)
    return model, path, X[:20]


def _rewrite(source: Path, target: Path, change) -> None:
    """Copy a model file, changing its documents and re-signing it (a crafted file)."""
    tensors, documents = read_model_file(source)
    change(tensors, documents)
    write_model_file(target, tensors, documents)


def test_the_same_model_gives_the_same_bytes(saved, tmp_path):
    model, path, _ = saved
    model.save(tmp_path / "again.safetensors")
    assert (tmp_path / "again.safetensors").read_bytes() == path.read_bytes()
    mdn.load(path).save(tmp_path / "reloaded.safetensors")
    assert (tmp_path / "reloaded.safetensors").read_bytes() == path.read_bytes()


def test_files_are_plain_safetensors(saved):
    from safetensors.torch import load_file

    _, path, _ = saved
    assert "network.head.linear.weight" in load_file(path)


def test_a_flipped_bit_in_the_tensors_is_detected(saved, tmp_path):
    _, path, _ = saved
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x40  # an exponent bit of the last weights
    (tmp_path / "flipped.safetensors").write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match=r"flipped\.safetensors is damaged: its checksum"):
        mdn.load(tmp_path / "flipped.safetensors")


def test_a_changed_digit_in_a_fitted_value_is_detected(saved, tmp_path):
    _, path, _ = saved
    data = path.read_bytes()
    start = data.index(b"component_scale_")
    digit = next(i for i in range(start, start + 40) if data[i : i + 1].isdigit())
    changed = data[:digit] + (b"7" if data[digit : digit + 1] != b"7" else b"8") + data[digit + 1 :]
    (tmp_path / "digit.safetensors").write_bytes(changed)
    with pytest.raises(ModelFileError, match="checksum"):
        mdn.load(tmp_path / "digit.safetensors")


def test_every_sampled_bit_flip_is_detected_or_harmless(saved, tmp_path):
    """The long run flips every bit: MDN_FLIP_SAMPLES=0 (see the README's reliability notes)."""
    import os

    model, path, X = saved
    expected = model.predict(X)
    data = path.read_bytes()
    samples = int(os.environ.get("MDN_FLIP_SAMPLES", "300"))
    rng = np.random.default_rng(0)
    bits = range(len(data) * 8) if samples == 0 else rng.choice(len(data) * 8, samples, False)
    target = tmp_path / "flip.safetensors"
    for bit in bits:
        flipped = bytearray(data)
        flipped[bit // 8] ^= 1 << (bit % 8)
        target.write_bytes(bytes(flipped))
        try:
            loaded = mdn.load(target)
        except ModelFileError:
            continue
        np.testing.assert_array_equal(loaded.predict(X), expected, err_msg=f"bit {bit}")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t, d: d["params"].update(combine="mean"), "combine must be one of"),
        (lambda t, d: d["params"].update(hidden=[6, 0]), "hidden must be"),
        (lambda t, d: d["params"].update(surprise=1), "unknown parameters"),
        (lambda t, d: d["fitted"].update(predict=1), r"fitted values unknown: \['predict'\]"),
        (lambda t, d: d["fitted"].pop("n_iter_"), r"missing: \['n_iter_'\]"),
        (lambda t, d: d["fitted"].update(component_scale_=1e9), "component_scale_ must be"),
        (lambda t, d: d["fitted"].update(n_outputs_="2"), "n_mix must be|n_outputs_"),
        (lambda t, d: d["fitted"].update(target_names_=["a"]), "target_names_ must be"),
        (lambda t, d: t.update(y_scale_=torch.zeros(2, dtype=torch.float64)), "zero scale"),
        (lambda t, d: t.update(x_shift_=torch.zeros(5, dtype=torch.float64)), "x_shift_ must"),
        (lambda t, d: t.pop("network.head.linear.bias"), "shapes its parameters give"),
        (lambda t, d: d.update(params=[1, 2]), "JSON objects"),
    ],
)
def test_crafted_contents_are_refused_by_name(saved, tmp_path, change, message):
    _, path, _ = saved
    target = tmp_path / "crafted.safetensors"
    _rewrite(path, target, change)
    with pytest.raises(ModelFileError, match=message):
        mdn.load(target)


def test_a_small_file_declaring_a_huge_network_is_refused_without_allocating_it(saved, tmp_path):
    _, path, _ = saved
    target = tmp_path / "huge.safetensors"
    _rewrite(path, target, lambda t, d: d["params"].update(hidden=[50_000] * 5))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ModelFileError, match="shapes"):
        mdn.load(target)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 100  # the network would take 40 GB


@pytest.mark.parametrize("where", ["header", "document"])
def test_deeply_nested_json_is_a_model_file_error(saved, tmp_path, where):
    _, path, _ = saved
    target = tmp_path / "deep.safetensors"
    deep = "[" * 100_000 + "]" * 100_000
    if where == "document":
        data = path.read_bytes()
        size = struct.unpack("<Q", data[:8])[0]
        header = json.loads(data[8 : 8 + size])
        header["__metadata__"]["versions"] = deep
        text = json.dumps(header).encode()
        target.write_bytes(struct.pack("<Q", len(text)) + text + data[8 + size :])
    else:
        text = ('{"__metadata__": {"format": "mdn-model"}, "x": ' + deep + "}").encode()
        target.write_bytes(struct.pack("<Q", len(text)) + text)
    with pytest.raises(ModelFileError):
        mdn.load(target)


def test_a_file_from_before_checksums_loads_with_a_warning():
    with pytest.warns(UserWarning, match="without a checksum"):
        model = mdn.load(FROZEN)
    assert model.n_iter_ == 300


def test_a_file_with_a_checksum_loads_silently(saved):
    _, path, _ = saved
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mdn.load(path)


def test_a_failed_write_names_the_users_path_and_leaves_nothing(saved, tmp_path, monkeypatch):
    model, _, _ = saved

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("mdn.tensor_files.os.replace", full)
    with pytest.raises(OSError, match=r"cannot write .*kept\.safetensors: No space left"):
        model.save(tmp_path / "kept.safetensors")
    assert list(tmp_path.iterdir()) == []


def test_temporary_files_of_writers_killed_mid_write_are_removed(saved, tmp_path):
    import os

    model, _, _ = saved
    dead = _a_dead_pid()
    orphan = tmp_path / f".model.safetensors.{dead}.x1y2.tmp"
    orphan.write_bytes(b"half a model")
    live = tmp_path / f".model.safetensors.{os.getpid()}.z3.tmp"  # a write still under way
    live.write_bytes(b"being written")
    model.save(tmp_path / "model.safetensors")
    assert not orphan.exists() and live.exists()


def _a_dead_pid() -> int:
    import subprocess

    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_every_sampled_truncation_is_a_model_file_error(saved, tmp_path):
    _, path, _ = saved
    data = path.read_bytes()
    target = tmp_path / "cut.safetensors"
    for length in sorted({*np.random.default_rng(1).integers(0, len(data), 60).tolist(), 0, 7, 8}):
        target.write_bytes(data[:length])
        with pytest.raises(ModelFileError, match=r"cut\.safetensors"):
            mdn.load(target)
