"""Shared test settings."""

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
