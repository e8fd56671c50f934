"""Devices and denormal flushing: nested blocks, and prediction flushes as training does."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from mdn import MDN, GaussianMixture
from mdn.runtime import denormals_flushed, device_available, resolve_device


def denormal_product() -> float:
    return (torch.tensor([1e-39], dtype=torch.float32) * 1.5).item()


def test_nested_blocks_keep_flushing_until_the_outermost_ends():
    assert denormal_product() != 0.0
    with denormals_flushed():
        with denormals_flushed():
            assert denormal_product() == 0.0
        assert denormal_product() == 0.0  # the inner block did not turn it off
    assert denormal_product() != 0.0


def test_the_flag_belongs_to_the_thread_that_set_it():
    seen = []
    with denormals_flushed():
        worker = threading.Thread(target=lambda: seen.append(denormal_product()))
        worker.start()
        worker.join()
    assert seen == [pytest.approx(1.5e-39)]


def test_prediction_flushes_denormals_and_restores_the_flag(monkeypatch):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 2))
    model = MDN(n_models=1, hidden=(4,), n_iter=20, verbose=0, random_state=0)
    model.fit(X, X[:, 0])
    seen = []
    interval = GaussianMixture.interval

    def probe(self, coverage=0.9):
        seen.append(denormal_product())
        return interval(self, coverage)

    monkeypatch.setattr(GaussianMixture, "interval", probe)
    model.predict_interval(X)
    assert seen == [0.0]
    assert denormal_product() != 0.0


def test_devices_by_name():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    assert device_available(torch.device("cpu"))
    assert device_available(torch.device("cuda", 99)) is False
    with pytest.raises(ValueError, match="device must be"):
        resolve_device("tpu!")
