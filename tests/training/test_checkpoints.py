"""Checkpoints: a fit killed mid-way and started again ends with the uninterrupted model."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch

from mdn import MDN
from mdn.datasets import make_inverted_sine
from mdn.training.batches import Minibatches

X, Y = make_inverted_sine(400, random_state=0)
SETTINGS = dict(hidden=(16, 16), n_iter=400, verbose=0, random_state=3, checkpoint_every=100)
CASES = {
    "ensemble, averaging, plateau": dict(
        n_models=2, bagging=0.8, lr_schedule="plateau", lr_patience=50
    ),
    "single, no averaging, cosine, no validation": dict(
        n_models=1, ema_decay=None, lr_schedule="cosine", validation_fraction=0
    ),
}


def _weights(model: MDN) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.network_.parameters()]


def _kill_after_checkpoints(path, params: dict, saves: int) -> subprocess.CompletedProcess:
    """Fit in a subprocess that SIGKILLs itself right after its ``saves``-th checkpoint."""
    code = textwrap.dedent(f"""
        import os, signal
        import mdn.training.checkpoint as checkpoint
        from mdn import MDN
        from mdn.datasets import make_inverted_sine

        save, count = checkpoint.Checkpoint.save, [0]
        def save_then_die(self, run):
            save(self, run)
            count[0] += 1
            if count[0] == {saves}:
                os.kill(os.getpid(), signal.SIGKILL)
        checkpoint.Checkpoint.save = save_then_die
        X, Y = make_inverted_sine(400, random_state=0)
        MDN(checkpoint={str(path)!r}, **{params!r}).fit(X, Y)
    """)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=300)


@pytest.mark.parametrize("case", CASES)
def test_a_killed_fit_resumes_to_the_uninterrupted_model(tmp_path, case, monkeypatch):
    params = {**SETTINGS, **CASES[case]}
    uninterrupted = MDN(**params).fit(X, Y)
    path = tmp_path / "fit.ckpt"
    killed = _kill_after_checkpoints(path, params, saves=2)
    assert killed.returncode == -9 and path.is_file(), killed.stderr.decode()[-2000:]
    steps = []
    next_batch = Minibatches.next
    monkeypatch.setattr(Minibatches, "next", lambda self: steps.append(1) or next_batch(self))
    resumed = MDN(checkpoint=path, **params).fit(X, Y)
    assert len(steps) == params["n_iter"] - 200  # it went on from the second checkpoint
    for got, want in zip(_weights(resumed), _weights(uninterrupted), strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    assert resumed.history_ == uninterrupted.history_
    assert not path.exists()  # a finished fit deletes its checkpoint


def test_a_checkpoint_of_another_fit_is_not_resumed(tmp_path):
    path = tmp_path / "fit.ckpt"
    params = {**SETTINGS, "n_models": 1}
    assert _kill_after_checkpoints(path, params, saves=1).returncode == -9
    with pytest.warns(UserWarning, match="checkpoint of another fit"):
        other = MDN(checkpoint=path, **{**params, "lr": 2e-3}).fit(X, Y)
    fresh = MDN(**{**params, "lr": 2e-3}).fit(X, Y)
    for got, want in zip(_weights(other), _weights(fresh), strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_a_damaged_checkpoint_starts_afresh_with_a_warning(tmp_path):
    path = tmp_path / "fit.ckpt"
    path.write_bytes(b"not a checkpoint")
    with pytest.warns(UserWarning, match="not a readable checkpoint"):
        MDN(checkpoint=path, **{**SETTINGS, "n_models": 1, "n_iter": 50}).fit(X, Y)


def test_the_fallback_optimiser_restores_its_moments_beside_each_parameter(monkeypatch):
    """A checkpoint's tensors come from the CPU; where the fused kernel is missing (as on some
    accelerators), torch's Adam must hold them on the parameters' device ('meta' stands in)."""
    import mdn.training.optimizer as optimizer

    monkeypatch.setattr(optimizer, "fused_adam_available", lambda device, dtype: False)
    layer = torch.nn.Linear(2, 1, device="meta")
    adam = optimizer.Adam(layer, 1e-3, 0.0)
    assert adam.fallback is not None
    stored = []
    for p in layer.parameters():
        stored += [torch.zeros(p.shape), torch.ones(p.shape), torch.tensor(3.0)]
    adam.load_state_dict({"tensors": stored, "lr": [1e-3]})
    for p in layer.parameters():
        state = adam.fallback.state[p]
        assert state["exp_avg"].device == state["exp_avg_sq"].device == p.device
        assert float(state["step"]) == 3.0
