"""Shared test settings, and the scene tests' model."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def single_thread():
    """One torch thread for the whole suite.

    The networks in the tests are tiny: one thread is as fast as two here, and it cannot
    stall when other processes share the cores (OpenMP threads spinning against each
    other slowed training 40-fold on this 2-core machine).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def msi_model_file(tmp_path_factory):
    """A small chlorophyll model on Sentinel-2 MSI's seven bands (``Rrs_443``...), saved: an
    ensemble of 2 with a log target, fitted on uniform spectra, for the scene tests."""
    import numpy as np
    import pandas as pd

    from mdn import MDN, sensors

    features = sensors.sensor("msi").columns()
    rng = np.random.default_rng(0)
    X = rng.uniform(0.001, 0.02, size=(400, len(features)))
    chl = np.exp(2 * np.log(X[:, 0] / X[:, 2]) + rng.normal(0, 0.3, len(X)))
    model = MDN(
        n_mix=3,
        hidden=(16,),
        n_iter=50,
        n_models=2,
        verbose=0,
        random_state=0,
        target_transform="log",
    )
    model.fit(pd.DataFrame(X, columns=features), pd.Series(chl, name="chl"))
    path = tmp_path_factory.mktemp("msi") / "chl.safetensors"
    model.save(path)
    return path
