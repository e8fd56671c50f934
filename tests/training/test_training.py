"""The fitting loop: likelihood decrease, history, early stopping, determinism, NaN guard."""

from __future__ import annotations

import itertools
import logging
import math

import pytest
import torch
from torch import nn

from mdn import (
    GaussianMixture,
    MixtureDensityHead,
    MixtureDensityNetwork,
    TrainingDiverged,
)
from mdn.nn.fastpath import ReluBackprop
from mdn.training import History, loop, optimizer, train


def linear_data(n: int, seed: int, noise: float = 0.3) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = 2 * torch.rand(n, 1, generator=g) - 1
    y = 2 * x + noise * torch.randn(n, 1, generator=g)
    return x, y


def small_net(seed: int = 0, hidden=(16,), **kwargs) -> MixtureDensityNetwork:
    torch.manual_seed(seed)
    return MixtureDensityNetwork(
        1, n_targets=1, n_mix=2, hidden=hidden, activation="tanh", **kwargs
    )


def nll(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float(-net(x).log_prob(y).mean())


class InjectNaN(nn.Module):
    """Wraps a network; calls listed in ``bad_calls`` (1-based) return NaN means or gradients."""

    def __init__(self, net: nn.Module, bad_calls, where: str = "loss") -> None:
        super().__init__()
        self.net, self.bad_calls, self.where, self.calls = net, bad_calls, where, 0

    def forward(self, x: torch.Tensor) -> GaussianMixture:
        self.calls += 1
        gm = self.net(x)
        if self.calls not in self.bad_calls:
            return gm
        means = gm.means
        if self.where == "loss":
            means = means * math.nan
        elif means.requires_grad:  # finite loss, non-finite gradient
            means = means + 0.0
            means.register_hook(lambda grad: grad * math.nan)
        return GaussianMixture(
            gm.log_weights, means, gm.precision_cholesky, gm.covariance_type, validate=False
        )


class Always:
    def __contains__(self, item) -> bool:
        return True


# ---------------------------------------------------------------------- fitting and history
def test_train_decreases_nll():
    x, y = linear_data(256, seed=0)
    x_test, y_test = linear_data(256, seed=1)
    net = small_net()
    before = nll(net, x_test, y_test)
    history = train(
        net,
        x,
        y,
        n_iter=300,
        batch_size=64,
        lr=1e-2,
        eval_every=50,
        generator=torch.Generator().manual_seed(0),
    )
    after = nll(net, x_test, y_test)
    assert after < before - 0.5, (before, after)
    # Noise sd 0.3: the best possible NLL is 0.5 * log(2 pi e 0.09) ~= 0.22.
    assert after < 0.5, after
    assert history.train_nll[-1] < history.train_nll[0]
    assert not net.training  # left in eval mode


def test_history_without_validation():
    x, y = linear_data(100, seed=0)
    history = train(
        small_net(),
        x,
        y,
        n_iter=120,
        batch_size=32,
        eval_every=50,
        generator=torch.Generator().manual_seed(0),
    )
    assert isinstance(history, History)
    assert history.step == [50, 100, 120]  # the last iteration is always evaluated
    assert len(history.train_nll) == len(history.step)
    assert all(math.isfinite(v) for v in history.train_nll)
    assert history.val_nll == []
    assert history.n_iter == 120
    assert history.best_step == 120
    assert history.recoveries == 0
    assert set(history.as_dict()) == {
        "step",
        "train_nll",
        "val_nll",
        "best_step",
        "n_iter",
        "recoveries",
        "member_val_nll",
        "member_best_step",
        "interrupted",
    }


def test_history_with_validation():
    x, y = linear_data(100, seed=0)
    x_val, y_val = linear_data(50, seed=1)
    history = train(
        small_net(),
        x,
        y,
        x_val=x_val,
        y_val=y_val,
        n_iter=200,
        batch_size=32,
        lr=1e-2,
        eval_every=25,
        generator=torch.Generator().manual_seed(0),
    )
    assert history.step == list(range(25, 201, 25))
    assert len(history.train_nll) == len(history.val_nll) == len(history.step)
    assert history.n_iter == 200
    assert history.best_step in history.step
    assert (
        history.best_step
        == history.step[min(range(len(history.val_nll)), key=history.val_nll.__getitem__)]
    )


def test_empty_validation_set_is_ignored():
    x, y = linear_data(60, seed=0)
    history = train(small_net(), x, y, x_val=x[:0], y_val=y[:0], n_iter=40, eval_every=20)
    assert history.val_nll == [] and history.step == [20, 40]


def test_batch_size_larger_than_data_is_clamped():
    x, y = linear_data(30, seed=0)
    history = train(small_net(), x, y, n_iter=20, batch_size=1000, eval_every=10)
    assert history.n_iter == 20 and len(history.step) == 2


# ---------------------------------------------------------------------- early stopping
def test_early_stopping_restores_the_best_weights():
    # Twelve noisy points, a wide net and a large learning rate: the net overfits and the
    # validation NLL turns up after a short while.
    x, y = linear_data(12, seed=3, noise=0.5)
    x_val, y_val = linear_data(200, seed=4, noise=0.5)
    net = small_net(hidden=(64, 64), epsilon=1e-4)
    n_iter, patience = 3000, 100
    history = train(
        net,
        x,
        y,
        x_val=x_val,
        y_val=y_val,
        n_iter=n_iter,
        batch_size=12,
        lr=2e-2,
        l2=0.0,
        patience=patience,
        eval_every=10,
        generator=torch.Generator().manual_seed(0),
    )
    assert history.n_iter < n_iter
    assert history.n_iter == history.step[-1]
    # It stops at the first evaluation a full patience after the best one.
    assert history.n_iter - history.best_step == patience
    best = min(history.val_nll)
    assert history.best_step == history.step[history.val_nll.index(best)]
    assert history.val_nll[-1] > best  # it did stop improving
    assert nll(net, x_val, y_val) == pytest.approx(best, abs=1e-5)


def test_without_patience_runs_all_iterations_but_keeps_best_weights():
    x, y = linear_data(12, seed=3, noise=0.5)
    x_val, y_val = linear_data(200, seed=4, noise=0.5)
    net = small_net(hidden=(64, 64), epsilon=1e-4)
    history = train(
        net,
        x,
        y,
        x_val=x_val,
        y_val=y_val,
        n_iter=400,
        batch_size=12,
        lr=2e-2,
        l2=0.0,
        eval_every=10,
        generator=torch.Generator().manual_seed(0),
    )
    assert history.n_iter == 400
    assert history.best_step < 400
    assert nll(net, x_val, y_val) == pytest.approx(min(history.val_nll), abs=1e-5)


# ---------------------------------------------------------------------- determinism
def _state_after_training(init_seed: int, generator_seed: int, global_seed: int = 0) -> dict:
    x, y = linear_data(100, seed=0)
    net = small_net(seed=init_seed)
    torch.manual_seed(global_seed)  # the minibatch order must come from the generator alone
    train(
        net,
        x,
        y,
        n_iter=60,
        batch_size=16,
        lr=1e-2,
        eval_every=20,
        generator=torch.Generator().manual_seed(generator_seed),
    )
    return net.state_dict()


def test_same_seeds_give_identical_weights():
    first, second = _state_after_training(0, 7), _state_after_training(0, 7, global_seed=99)
    assert first.keys() == second.keys()
    for key in first:
        assert torch.equal(first[key], second[key]), key
    other = _state_after_training(0, 8)  # another minibatch order changes the result
    assert any(not torch.equal(first[key], other[key]) for key in first)


# ---------------------------------------------------------------------- callbacks
def test_callback_returning_true_stops_at_first_evaluation():
    x, y = linear_data(50, seed=0)
    seen = []

    def stop(history):
        seen.append(list(history.step))
        return True

    history = train(small_net(), x, y, n_iter=500, eval_every=25, callbacks=[stop])
    assert history.n_iter == 25
    assert history.step == [25]
    assert seen == [[25]]


def test_callbacks_returning_none_do_not_stop():
    x, y = linear_data(50, seed=0)
    calls = []
    history = train(
        small_net(), x, y, n_iter=100, eval_every=25, callbacks=[lambda h: calls.append(h.step[-1])]
    )
    assert history.n_iter == 100
    assert calls == [25, 50, 75, 100]


# ---------------------------------------------------------------------- NaN guard
@pytest.mark.parametrize("where", ["loss", "grad"])
def test_transient_nan_triggers_recoveries(where, caplog):
    x, y = linear_data(64, seed=0)
    net = InjectNaN(small_net(), bad_calls={1, 2}, where=where)
    with caplog.at_level(logging.WARNING, logger="mdn.training.loop"):
        history = train(
            net,
            x,
            y,
            n_iter=50,
            batch_size=16,
            lr=1e-2,
            eval_every=25,
            generator=torch.Generator().manual_seed(0),
        )
    assert history.recoveries == 2
    assert history.n_iter == 50 and history.step == [25, 50]
    assert all(math.isfinite(v) for v in history.train_nll)
    assert net.calls == 52  # 50 steps and the two rejected ones
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "lr=0.005" in warnings[0] and "lr=0.0025" in warnings[1]
    assert all(torch.isfinite(p).all() for p in net.parameters())


@pytest.mark.parametrize("ema_decay", [None, 0.9])
def test_nan_after_an_evaluation_restarts_from_the_saved_weights(ema_decay):
    x, y = linear_data(64, seed=0)
    net = InjectNaN(small_net(), bad_calls={31})
    history = train(
        net,
        x,
        y,
        n_iter=60,
        batch_size=16,
        lr=1e-2,
        eval_every=30,
        ema_decay=ema_decay,
        generator=torch.Generator().manual_seed(0),
    )
    assert history.recoveries == 1
    assert history.step == [30, 60] and history.n_iter == 60
    assert all(torch.isfinite(p).all() for p in net.parameters())


@pytest.mark.parametrize("where", ["loss", "grad"])
def test_persistent_nan_raises_training_diverged(where):
    x, y = linear_data(64, seed=0)
    net = InjectNaN(small_net(), bad_calls=Always(), where=where)
    with pytest.raises(TrainingDiverged, match="learning rate"):
        train(net, x, y, n_iter=50, batch_size=16, max_recoveries=3)
    assert net.calls == 4  # the first try and three restarts
    assert issubclass(TrainingDiverged, FloatingPointError)


class SingularCovariance(nn.Module):
    """Wraps a network; its calls listed in ``bad_calls`` (1-based) fail as a factorisation
    of a covariance that is not positive-definite does."""

    def __init__(self, net: nn.Module, bad_calls) -> None:
        super().__init__()
        self.net, self.bad_calls, self.calls = net, bad_calls, 0

    def forward(self, x: torch.Tensor) -> GaussianMixture:
        self.calls += 1
        if self.calls in self.bad_calls:
            torch.linalg.cholesky(-torch.eye(2))  # raises torch.linalg.LinAlgError
        return self.net(x)


def test_a_failed_factorisation_restarts_like_a_non_finite_loss():
    x, y = linear_data(64, seed=0)
    net = SingularCovariance(small_net(), bad_calls={5})
    history = train(net, x, y, n_iter=40, batch_size=16, eval_every=20)
    assert history.recoveries == 1 and history.n_iter == 40
    with pytest.raises(TrainingDiverged, match="covariance='diag'"):
        train(SingularCovariance(small_net(), Always()), x, y, n_iter=10, max_recoveries=1)


def test_zero_recoveries_allowed_raises_at_once():
    x, y = linear_data(64, seed=0)
    net = InjectNaN(small_net(), bad_calls={1})
    with pytest.raises(TrainingDiverged, match="lr"):
        train(net, x, y, n_iter=10, max_recoveries=0)
    assert net.calls == 1


# ---------------------------------------------------------------------- gradient clipping
def _gradient_norms_seen_by_adam(clip_grad, monkeypatch) -> list[float]:
    norms: list[float] = []
    step = optimizer.Adam.step

    def record(optimizer):
        grads = [p.grad for params, _ in optimizer.groups for p in params]
        norms.append(
            float(
                torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
            )
        )
        step(optimizer)

    x, y = linear_data(64, seed=0, noise=0.05)
    monkeypatch.setattr(optimizer.Adam, "step", record)
    train(
        small_net(),
        x,
        y,
        n_iter=40,
        batch_size=16,
        lr=1e-2,
        clip_grad=clip_grad,
        eval_every=20,
        generator=torch.Generator().manual_seed(0),
    )
    monkeypatch.undo()
    return norms


def test_clip_grad_bounds_the_gradient_norm(monkeypatch):
    clip = 0.5
    unclipped = _gradient_norms_seen_by_adam(None, monkeypatch)
    assert len(unclipped) == 40
    assert max(unclipped) > 4 * clip  # without clipping the norm does exceed the bound
    clipped = _gradient_norms_seen_by_adam(clip, monkeypatch)
    assert len(clipped) == 40
    assert max(clipped) <= clip * (1 + 1e-5)
    # Clipping rescales, it does not zero: the bound is reached.
    assert max(clipped) >= clip * (1 - 1e-5)


# ---------------------------------------------------------------------- L2 penalty
def test_l2_shrinks_the_weights():
    x, y = linear_data(64, seed=0)

    def weight_norm(l2):
        net = small_net()
        train(
            net,
            x,
            y,
            n_iter=150,
            batch_size=64,
            lr=1e-2,
            l2=l2,
            eval_every=50,
            generator=torch.Generator().manual_seed(0),
        )
        weights = [p for n, p in net.named_parameters() if n.endswith("weight")]
        return float(sum(w.detach().square().sum() for w in weights))

    assert weight_norm(1.0) < 0.5 * weight_norm(0.0)


def test_denormals_are_flushed_during_training_and_the_flag_is_restored():
    # L2 drives unused weights into float32's denormal range, where CPU arithmetic is ~10x
    # slower; training flushes them to zero and restores the global flag afterwards.
    def denormal_product() -> float:
        return (torch.tensor([1e-39], dtype=torch.float32) * 1.5).item()

    seen = []

    def probe(history):
        seen.append(denormal_product())

    x, y = torch.randn(32, 2), torch.randn(32, 1)
    net = MixtureDensityNetwork(2, 1, hidden=(4,))
    train(net, x, y, n_iter=60, generator=torch.Generator().manual_seed(0), callbacks=[probe])
    assert seen and all(value == 0.0 for value in seen)
    assert denormal_product() != 0.0


# ---------------------------------------------------------------------- back-propagation by hand
@pytest.mark.parametrize(
    ("covariance", "d", "n_models"),
    [("diag", 1, None), ("full", 3, None), ("full", 2, 4), ("diag", 1, 1)],
)
def test_relu_backprop_by_hand_equals_autograd(covariance, d, n_models):
    torch.manual_seed(2)
    network = MixtureDensityNetwork(
        5, d, n_mix=3, hidden=(16, 16), covariance=covariance, n_models=n_models
    ).double()
    shape = (n_models, 32) if n_models else (32,)
    x, y = torch.randn(*shape, 5, dtype=torch.float64), torch.randn(*shape, d, dtype=torch.float64)
    expected_loss = loop.member_nll(network, x, y)
    expected = torch.autograd.grad(expected_loss.sum(), list(network.parameters()))
    optimizer.FlatGradients(list(network.parameters()), n_models or 1)
    for p in network.parameters():  # stale values must be overwritten, not added to
        p.grad.fill_(7.0)
    loss = ReluBackprop(network.trunk, network.head)(x, y)
    torch.testing.assert_close(loss, expected_loss.detach())
    for p, want in zip(network.parameters(), expected, strict=True):
        torch.testing.assert_close(p.grad, want, rtol=1e-10, atol=1e-12)


def test_training_by_hand_and_through_autograd_agree():
    x, y = linear_data(256, seed=3)

    def fit(loss_fn):
        torch.manual_seed(4)
        network = MixtureDensityNetwork(1, 1, n_mix=2, hidden=(16, 16))
        explicit = (lambda xb, yb: loop.member_nll(network, xb, yb)) if loss_fn else None
        train(
            network,
            x,
            y,
            n_iter=60,
            batch_size=32,
            clip_grad=1.0,
            loss_fn=explicit,
            generator=torch.Generator().manual_seed(5),
        )
        return network

    by_hand, through_autograd = fit(False), fit(True)
    for a, b in zip(by_hand.parameters(), through_autograd.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_adam_matches_torch_fused_adam_with_coupled_l2():
    torch.manual_seed(6)
    network = MixtureDensityNetwork(3, 1, n_mix=2, hidden=(8,))
    twin = MixtureDensityNetwork(3, 1, n_mix=2, hidden=(8,))
    twin.load_state_dict(network.state_dict())
    ours = optimizer.Adam(network, lr=1e-2, l2=1e-2)
    weights = [p for n, p in twin.named_parameters() if n.endswith("weight")]
    biases = [p for n, p in twin.named_parameters() if not n.endswith("weight")]
    reference = torch.optim.Adam(
        [{"params": weights, "weight_decay": 2e-2}, {"params": biases, "weight_decay": 0.0}],
        lr=1e-2,
        fused=True,
    )
    for _ in range(5):
        x, y = torch.randn(16, 3), torch.randn(16, 1)
        for net in (network, twin):
            net.zero_grad()
            (-net(x).log_prob(y).mean()).backward()
        ours.step()
        reference.step()
    assert ours.fallback is None  # the fused kernel ran, not the fallback
    for a, b in zip(network.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


# ---------------------------------------------------------------------- learning-rate schedule
def _learning_rates_seen_by_adam(monkeypatch, net=None, **kwargs) -> list[float]:
    seen = []
    step = optimizer.Adam.step

    def record(self):
        seen.append(self.lr)
        step(self)

    monkeypatch.setattr(optimizer.Adam, "step", record)
    x, y = linear_data(64, 0)
    train(
        net or small_net(),
        x,
        y,
        batch_size=16,
        eval_every=10,
        generator=torch.Generator().manual_seed(0),
        **kwargs,
    )
    monkeypatch.undo()
    return seen


def test_cosine_schedule_lowers_the_rate_along_half_a_cosine(monkeypatch):
    rates = _learning_rates_seen_by_adam(monkeypatch, n_iter=40, lr=0.02, lr_schedule="cosine")
    expected = [0.02 * 0.5 * (1 + math.cos(math.pi * t / 40)) for t in range(40)]
    assert rates == pytest.approx(expected, rel=1e-12)
    assert rates[0] == 0.02 and rates[-1] < 0.02 * 0.01


def test_constant_schedule_keeps_the_rate(monkeypatch):
    assert set(_learning_rates_seen_by_adam(monkeypatch, n_iter=30, lr=0.02)) == {0.02}


def test_cosine_schedule_continues_from_the_halved_rate_after_a_recovery(monkeypatch):
    seen = _learning_rates_seen_by_adam(
        monkeypatch,
        net=InjectNaN(small_net(), bad_calls={15}),
        n_iter=40,
        lr=0.02,
        lr_schedule="cosine",
    )
    assert len(seen) == 40  # the bad step is not taken
    assert seen[20] == pytest.approx(0.01 * 0.5 * (1 + math.cos(math.pi * 20 / 40)))


def test_plateau_schedule_halves_the_rate_after_lr_patience_without_a_gain(monkeypatch):
    x_val, y_val = linear_data(32, 1)
    # A learning rate far too large: the validation NLL stops improving early.
    seen = _learning_rates_seen_by_adam(
        monkeypatch,
        n_iter=200,
        lr=0.5,
        x_val=x_val,
        y_val=y_val,
        lr_schedule="plateau",
        lr_patience=30,
    )
    changes = [t for t in range(1, len(seen)) if seen[t] != seen[t - 1]]
    assert changes, "the rate was never cut"
    assert all(seen[t] == seen[t - 1] / 2 for t in changes)
    # Cuts happen at evaluations (every 10 steps), at least lr_patience steps apart.
    assert all(t % 10 == 0 for t in changes)
    assert all(b - a >= 30 for a, b in itertools.pairwise(changes))


def test_plateau_with_lr_patience_beyond_patience_warns():
    x, y = linear_data(32, 0)
    with pytest.warns(UserWarning, match="never lowers the rate"):
        train(
            small_net(),
            x,
            y,
            n_iter=5,
            x_val=x,
            y_val=y,
            patience=100,
            lr_schedule="plateau",
            lr_patience=100,
        )


def test_unknown_schedule_is_refused():
    x, y = linear_data(32, 0)
    with pytest.raises(ValueError, match="lr_schedule must be one of"):
        train(small_net(), x, y, n_iter=5, lr_schedule="step")


@pytest.mark.parametrize("missing", [False, True])
def test_the_loop_looks_for_missing_targets_once_not_per_minibatch(monkeypatch, missing):
    seen = []
    output_nll = MixtureDensityHead.output_nll

    def spy(self, outputs, y, complete=None):
        seen.append(complete)
        return output_nll(self, outputs, y, complete)

    monkeypatch.setattr(MixtureDensityHead, "output_nll", spy)
    x, y = linear_data(64, 0)
    if missing:
        y[::7] = math.nan
    torch.manual_seed(0)
    net = MixtureDensityNetwork(1, n_targets=1, n_mix=2, hidden=(8,))  # relu: by hand
    train(net, x, y, n_iter=20, batch_size=16, generator=torch.Generator().manual_seed(0))
    assert seen == [not missing] * 20


# ---------------------------------------------------------------------- weight averaging
def _trained_with_recorded_steps(ema_decay, n_models=None, **kwargs):
    """Train 30 steps, recording the trained (not averaged) weights after each step."""
    x, y = linear_data(64, 0)
    net = small_net(n_models=n_models)
    initial = [p.detach().clone() for p in net.parameters()]
    recorded = []

    def record(history):  # callbacks run after the averaged weights are swapped out again
        recorded.append([p.detach().clone() for p in net.parameters()])

    history = train(
        net,
        x,
        y,
        n_iter=30,
        batch_size=16,
        lr=1e-2,
        eval_every=1,
        ema_decay=ema_decay,
        callbacks=[record],
        generator=torch.Generator().manual_seed(0),
        **kwargs,
    )
    return net, initial, recorded, history


def _moving_averages(initial, recorded, decay):
    averages, average = [], initial
    for t, weights in enumerate(recorded, start=1):
        d = min(decay, (1 + t) / (10 + t))
        average = [d * a + (1 - d) * w for a, w in zip(average, weights, strict=True)]
        averages.append(average)
    return averages


@pytest.mark.parametrize("n_models", [None, 3])
def test_weight_averaging_returns_the_moving_average_of_the_trained_weights(n_models):
    decay = 0.8
    net, average, recorded, _ = _trained_with_recorded_steps(decay, n_models)
    average = _moving_averages(average, recorded, decay)[-1]
    for p, a, last in zip(net.parameters(), average, recorded[-1], strict=True):
        torch.testing.assert_close(p.detach(), a)
        assert not torch.allclose(p.detach(), last)  # not the last step's weights


def test_weight_averaging_does_not_change_the_trained_trajectory():
    _, _, plain, _ = _trained_with_recorded_steps(None)
    _, _, averaged, _ = _trained_with_recorded_steps(0.9)
    for a, b in zip(plain, averaged, strict=True):
        for p, q in zip(a, b, strict=True):
            torch.testing.assert_close(p, q, rtol=0, atol=0)


def test_each_member_keeps_the_average_of_its_own_best_step():
    # Twelve noisy points and a wide ReLU net (backpropagated by hand): members overfit
    # and stop at different steps.
    x, y = linear_data(12, seed=3, noise=0.5)
    x_val, y_val = linear_data(200, seed=4, noise=0.5)
    torch.manual_seed(0)
    net = MixtureDensityNetwork(1, n_targets=1, n_mix=2, hidden=(64, 64), n_models=3, epsilon=1e-4)
    initial = [p.detach().clone() for p in net.parameters()]
    recorded = []
    history = train(
        net,
        x,
        y,
        x_val=x_val,
        y_val=y_val,
        n_iter=600,
        batch_size=12,
        lr=2e-2,
        l2=0.0,
        eval_every=1,
        patience=40,
        ema_decay=0.9,
        callbacks=[lambda h: recorded.append([p.detach().clone() for p in net.parameters()])],
        generator=[torch.Generator().manual_seed(e) for e in range(3)],
    )
    averages = _moving_averages(initial, recorded, 0.9)
    best = history.member_best_step
    assert len(set(best)) > 1 and max(best) < history.n_iter
    for e, step in enumerate(best):
        for p, a in zip(net.parameters(), averages[step - 1], strict=True):
            torch.testing.assert_close(p.detach()[e], a[e])
        # Validation scored the average: the member's best NLL is that of its average.
        assert history.member_val_nll[step - 1][e] == min(v[e] for v in history.member_val_nll)


@pytest.mark.parametrize("bad_call", [30, 31])
@pytest.mark.parametrize("where", ["loss", "grad"])
def test_gpu_style_recovery_restarts_the_average_too(monkeypatch, where, bad_call):
    """Without a check per step (as on a GPU), a bad step poisons the trained weights and
    the average until the next evaluation finds it; both restart from the saved average."""
    monkeypatch.setattr(loop, "_checks_each_step", lambda device: False)
    x, y = linear_data(64, seed=0)
    net = InjectNaN(small_net(), bad_calls={bad_call}, where=where)
    history = train(
        net,
        x,
        y,
        n_iter=60,
        batch_size=16,
        lr=1e-2,
        eval_every=30,
        ema_decay=0.9,
        generator=torch.Generator().manual_seed(0),
    )
    assert history.recoveries == 1
    assert history.step == [30, 60] and all(math.isfinite(v) for v in history.train_nll)
    assert all(torch.isfinite(p).all() for p in net.parameters())


def test_zero_decay_is_no_averaging():
    plain, *_ = _trained_with_recorded_steps(None)
    averaged, *_ = _trained_with_recorded_steps(0.0)
    for p, q in zip(plain.parameters(), averaged.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


@pytest.mark.parametrize("decay", [1.0, -0.1])
def test_decay_outside_zero_one_is_refused(decay):
    x, y = linear_data(32, 0)
    with pytest.raises(ValueError, match="ema_decay must be a number >= 0 and < 1 or None"):
        train(small_net(), x, y, n_iter=5, ema_decay=decay)
