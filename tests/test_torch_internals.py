"""Every private torch call falls back to a public equivalent when its probe fails in any way."""

from __future__ import annotations

import pytest
import torch

from mdn import MixtureDensityNetwork, torch_internals
from mdn.training import optimizer, train


def _broken(*args, **kwargs):
    raise TypeError("got an unexpected keyword argument 'beta1'")  # a renamed keyword


@pytest.fixture
def fresh_probes():
    """Probes decide once per process: forget their answers before and after a test."""
    probes = (
        torch_internals.fused_adam_available,
        torch_internals.relu_backward_kernel,
        torch_internals._foreach_works,
    )
    for probe in probes:
        probe.cache_clear()
    yield
    for probe in probes:
        probe.cache_clear()


def _fit(ema_decay=None, seed=0):
    torch.manual_seed(seed)
    x = torch.randn(256, 3)
    y = x[:, :1] * 2 + 0.1 * torch.randn(256, 1)
    network = MixtureDensityNetwork(3, 1, n_mix=2, hidden=(16, 16))
    history = train(
        network, x, y, n_iter=150, ema_decay=ema_decay, generator=torch.Generator().manual_seed(1)
    )
    return network, history


def _weights(network):
    return [p.detach().clone() for p in network.parameters()]


def test_a_fused_adam_probe_that_raises_type_error_falls_back_and_trains(fresh_probes, monkeypatch):
    monkeypatch.setattr(torch, "_fused_adam_", _broken)
    assert not torch_internals.fused_adam_available(torch.device("cpu"), torch.float32)
    network, history = _fit()
    assert history.train_nll[-1] < history.train_nll[0] - 0.5
    assert optimizer.Adam(network, 1e-3, 0.0).fallback is not None


def test_relu_backward_falls_back_to_the_same_gradients(fresh_probes, monkeypatch):
    grad, inputs = torch.randn(5, 7), torch.randn(5, 7)
    private = torch_internals.relu_backward_kernel()(grad, inputs)
    torch_internals.relu_backward_kernel.cache_clear()
    monkeypatch.setattr(torch.ops.aten, "threshold_backward", _broken)
    public = torch_internals.relu_backward_kernel()(grad, inputs)
    torch.testing.assert_close(public, private, rtol=0, atol=0)
    torch.testing.assert_close(public, grad * (inputs > 0), rtol=0, atol=0)


def test_the_hand_written_backward_trains_the_same_without_threshold_backward(
    fresh_probes, monkeypatch
):
    expected = _weights(_fit()[0])
    torch_internals.relu_backward_kernel.cache_clear()
    monkeypatch.setattr(torch.ops.aten, "threshold_backward", _broken)
    for got, want in zip(_weights(_fit()[0]), expected, strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_weight_averaging_gives_the_same_model_without_the_foreach_kernels(
    fresh_probes, monkeypatch
):
    expected = _weights(_fit(ema_decay=0.9)[0])
    torch_internals._foreach_works.cache_clear()
    monkeypatch.setattr(torch, "_foreach_lerp_", _broken)
    assert not torch_internals._foreach_works()
    for got, want in zip(_weights(_fit(ema_decay=0.9)[0]), expected, strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_no_module_but_torch_internals_calls_a_private_torch_function():
    from pathlib import Path

    import mdn

    private = ("torch._fused_adam_", "torch.ops.aten", "torch._foreach_")
    for path in Path(mdn.__file__).parent.rglob("*.py"):
        if path.name != "torch_internals.py":
            text = path.read_text()
            assert not any(name in text for name in private), path
