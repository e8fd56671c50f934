"""Ensembles: BatchedLinear, batched networks, batched training, the MDN's members and pooling.

The central property: member ``e`` of an ensemble is the model that a single network (or a
single ``MDN`` with ``random_state + e``) trained alone would be. Batched matrix products
sum in a different order than ``nn.Linear``'s, so "the same" means equal to float32
rounding accumulated over the training run, not bit for bit (see ``TRAINED_ATOL``).
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.special import logsumexp
from sklearn.exceptions import NotFittedError
from torch import nn
from torch.nn import functional as F

import mdn.estimator.model
import mdn.training.optimizer
from mdn import MDN, GaussianMixture, MixtureDensityNetwork
from mdn.nn import BatchedLinear
from mdn.training import train

# Trained weights of a member and of its plain twin differ by float32 rounding only: the
# batched product (baddbmm) and nn.Linear (addmm) sum in different orders, ~1e-7 relative
# per step. Adam divides each update by the gradient's running size, so where gradients
# are near zero (dead ReLU units) rounding noise becomes full-size steps and the twins
# drift apart chaotically (1e-2 differences after 150 ReLU steps at lr 1e-2 were seen).
# Hence tanh networks and moderate learning rates: their runs here measured largest
# differences of 0.9e-7 to 4.2e-7 (weights of size ~1); 1e-5 leaves room for another
# summation order, while a real difference (another minibatch, clipping scale or
# restored step) is 1e-3 or more.
TRAINED_ATOL, TRAINED_RTOL = 1e-5, 1e-5
# Estimator outputs are in user units after float64 unscaling of float32 network outputs.
OUTPUT_TOL = dict(rtol=1e-5, atol=1e-4)
# Small fast estimator settings; no validation so that member e sees exactly the rows a
# single model with random_state + e would.
SMALL = dict(
    n_mix=3,
    hidden=(16, 16),
    activation="tanh",
    n_iter=150,
    batch=64,
    lr=1e-2,
    verbose=0,
    validation_fraction=0.0,
)


# ---------------------------------------------------------------------- helpers
def regression_data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two inputs, one target with a nonlinear mean and noise."""
    g = torch.Generator().manual_seed(seed)
    x = 2 * torch.rand(n, 2, generator=g) - 1
    y = torch.sin(3 * x[:, :1]) + x[:, 1:] + 0.2 * torch.randn(n, 1, generator=g)
    return x, y


def plain_net(seed: int, **kwargs) -> MixtureDensityNetwork:
    torch.manual_seed(seed)
    kwargs = {"n_mix": 3, "hidden": (16, 16), "activation": "tanh", **kwargs}
    return MixtureDensityNetwork(2, 1, **kwargs)


def generators(seeds) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(s) for s in seeds]


def assert_same_weights(a: nn.Module, b: nn.Module, **tolerance) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        torch.testing.assert_close(sa[key], sb[key], msg=lambda m, k=key: f"{k}: {m}", **tolerance)


def assert_equal_states(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


def random_mixture(batch, k: int, d: int, covariance: str, seed: int) -> GaussianMixture:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(*batch, k, generator=g, dtype=torch.float64)
    means = 2 * torch.randn(*batch, k, d, generator=g, dtype=torch.float64)
    if covariance == "full":
        raw = 0.3 * torch.randn(*batch, k, d, d, generator=g, dtype=torch.float64)
        diagonal = torch.exp(0.3 * torch.randn(*batch, k, d, generator=g, dtype=torch.float64))
        prec_chol = raw.triu(1) + torch.diag_embed(diagonal)
    elif covariance == "diag":
        prec_chol = torch.exp(0.3 * torch.randn(*batch, k, d, generator=g, dtype=torch.float64))
    else:
        prec_chol = torch.exp(0.3 * torch.randn(*batch, k, generator=g, dtype=torch.float64))
    return GaussianMixture(logits, means, prec_chol, covariance)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, size=(300, 2))
    y = np.sin(3 * X[:, 0]) + X[:, 1] + 0.2 * rng.normal(size=300)
    return X, y


@pytest.fixture(scope="module")
def ensemble3(data):
    X, y = data
    return MDN(n_models=3, random_state=7, **SMALL).fit(X, y)


@pytest.fixture(scope="module")
def ensemble4(data):
    X, y = data
    return MDN(n_models=4, random_state=3, **SMALL).fit(X, y)


# ---------------------------------------------------------------------- BatchedLinear
def test_batched_linear_shapes_for_member_and_shared_inputs():
    layer = BatchedLinear(3, 4, 2)
    assert layer(torch.randn(3, 10, 4)).shape == (3, 10, 2)
    assert layer(torch.randn(10, 4)).shape == (3, 10, 2)
    assert layer(torch.randn(3, 5, 6, 4)).shape == (3, 5, 6, 2)  # extra batch dims
    assert layer.weight.shape == (3, 2, 4) and layer.bias.shape == (3, 2)


@pytest.mark.parametrize("shape", [(2, 10, 4), (4, 10, 4), (4,)])
def test_batched_linear_rejects_a_wrong_leading_size(shape):
    layer = BatchedLinear(3, 4, 2)
    with pytest.raises(ValueError, match=r"BatchedLinear\(3 members\) expects input of shape"):
        layer(torch.randn(*shape))


def test_batched_linear_of_one_member_starts_as_nn_linear():
    torch.manual_seed(123)
    linear = nn.Linear(5, 3)
    torch.manual_seed(123)
    batched = BatchedLinear(1, 5, 3)
    assert torch.equal(batched.weight[0], linear.weight)
    assert torch.equal(batched.bias[0], linear.bias)


def test_batched_linear_member_output_is_f_linear_of_its_slice():
    torch.manual_seed(0)
    layer = BatchedLinear(3, 4, 2)
    x = torch.randn(3, 10, 4)
    shared = torch.randn(10, 4)
    out, out_shared = layer(x), layer(shared)
    for e in range(3):
        torch.testing.assert_close(
            out[e], F.linear(x[e], layer.weight[e], layer.bias[e]), rtol=1e-6, atol=1e-6
        )
        torch.testing.assert_close(
            out_shared[e], F.linear(shared, layer.weight[e], layer.bias[e]), rtol=1e-6, atol=1e-6
        )
    # The members really are different layers.
    assert not torch.allclose(out_shared[0], out_shared[1])


# ---------------------------------------------------------------------- batched network
def test_batched_network_forward_shapes():
    net = MixtureDensityNetwork(2, 2, n_mix=3, hidden=(16, 16), n_models=4)
    gm = net(torch.randn(10, 2))
    assert gm.batch_shape == (4, 10)
    assert gm.log_prob(torch.randn(10, 2)).shape == (4, 10)
    assert net(torch.randn(4, 10, 2)).batch_shape == (4, 10)


def test_stack_and_member_round_trip_exactly():
    members = [plain_net(s) for s in (1, 2, 3)]
    ensemble = MixtureDensityNetwork.stack(members)
    assert ensemble.n_models == 3
    for e, member in enumerate(members):
        assert_equal_states(ensemble.member(e), member)
        assert ensemble.member(e).n_models is None
    assert_equal_states(ensemble.member(-1), members[-1])
    # A copy, not a view: changing the ensemble leaves the members alone.
    with torch.no_grad():
        ensemble.head.linear.bias.add_(1.0)
    assert not torch.equal(ensemble.member(0).head.linear.bias, members[0].head.linear.bias)


def test_ensemble_member_densities_equal_the_single_networks():
    members = [plain_net(s, covariance="full") for s in (4, 5, 6)]
    ensemble = MixtureDensityNetwork.stack(members)
    x, y = regression_data(50, seed=0)
    with torch.no_grad():
        gm = ensemble(x)
        for e, member in enumerate(members):
            torch.testing.assert_close(
                gm[e].log_prob(y), member(x).log_prob(y), rtol=1e-5, atol=1e-5
            )
            torch.testing.assert_close(
                gm.log_prob(y)[e], member(x).log_prob(y), rtol=1e-5, atol=1e-5
            )


def test_stack_rejects_mixed_or_batched_networks():
    with pytest.raises(ValueError, match="same configuration"):
        MixtureDensityNetwork.stack([plain_net(0), plain_net(1, hidden=(16,))])
    with pytest.raises(ValueError, match="same configuration"):
        MixtureDensityNetwork.stack([plain_net(0), plain_net(1, covariance="diag")])
    with pytest.raises(ValueError, match="single networks"):
        MixtureDensityNetwork.stack([MixtureDensityNetwork(2, 1, hidden=(4,), n_models=2)])
    with pytest.raises(ValueError):
        MixtureDensityNetwork.stack([])


def test_member_needs_a_batched_network_and_a_valid_index():
    with pytest.raises(ValueError, match="batched network"):
        plain_net(0).member(0)
    ensemble = MixtureDensityNetwork(2, 1, hidden=(4,), n_models=2)
    for index in (2, -3):
        with pytest.raises(IndexError):
            ensemble.member(index)


# ---------------------------------------------------------------------- batched training
TRAIN = dict(n_iter=300, batch_size=64, lr=5e-3, clip_grad=1.0, eval_every=25)


def test_batched_training_equals_sequential_training():
    x, y = regression_data(300, seed=0)
    x_val, y_val = regression_data(100, seed=1)
    seeds = [10, 11, 12]
    # patience is on but longer than the run: it must not stop any member. (A member that
    # runs out of patience while others go on: see the test below.)
    settings = dict(TRAIN, x_val=x_val, y_val=y_val, patience=1000)
    ensemble = MixtureDensityNetwork.stack([plain_net(s) for s in seeds])
    history = train(ensemble, x, y, generator=generators(seeds), **settings)
    plain_best = []
    for e, seed in enumerate(seeds):
        single = plain_net(seed)
        single_history = train(
            single, x, y, generator=torch.Generator().manual_seed(seed), **settings
        )
        plain_best.append(single_history.best_step)
        assert_same_weights(ensemble.member(e), single, rtol=TRAINED_RTOL, atol=TRAINED_ATOL)
        np.testing.assert_allclose(
            [v[e] for v in history.member_val_nll], single_history.val_nll, rtol=1e-4, atol=1e-4
        )
    assert history.member_best_step == plain_best
    # The restore really is per member: the members kept weights of different iterations,
    # and at least one of them not the last one.
    assert len(set(plain_best)) > 1 and min(plain_best) < TRAIN["n_iter"]
    assert history.best_step == max(plain_best)
    np.testing.assert_allclose(history.val_nll, np.mean(history.member_val_nll, axis=1), rtol=1e-6)


def test_batched_training_with_member_rows_equals_training_on_the_subsample():
    x, y = regression_data(300, seed=2)
    seeds = [20, 21]
    rows = torch.stack([torch.randperm(300, generator=g)[:200] for g in generators([0, 1])])
    ensemble = MixtureDensityNetwork.stack([plain_net(s) for s in seeds])
    settings = dict(TRAIN, n_iter=150)
    train(ensemble, x, y, generator=generators(seeds), member_rows=rows, **settings)
    for e, seed in enumerate(seeds):
        single = plain_net(seed)
        train(
            single,
            x,
            y,
            generator=torch.Generator().manual_seed(seed),
            member_rows=rows[e : e + 1],
            **settings,
        )
        assert_same_weights(ensemble.member(e), single, rtol=TRAINED_RTOL, atol=TRAINED_ATOL)
        # member_rows of one plain network is the same as passing its rows only.
        alone = plain_net(seed)
        train(
            alone, x[rows[e]], y[rows[e]], generator=torch.Generator().manual_seed(seed), **settings
        )
        assert_same_weights(alone, single, rtol=0, atol=0)


def test_clipping_is_per_member():
    # A clip that binds: with a shared norm, every member's step would change.
    x, y = regression_data(200, seed=3)
    seeds = [30, 31, 32]
    settings = dict(TRAIN, n_iter=100, clip_grad=0.05)
    ensemble = MixtureDensityNetwork.stack([plain_net(s) for s in seeds])
    train(ensemble, x, y, generator=generators(seeds), **settings)
    for e, seed in enumerate(seeds):
        single = plain_net(seed)
        train(single, x, y, generator=torch.Generator().manual_seed(seed), **settings)
        assert_same_weights(ensemble.member(e), single, rtol=TRAINED_RTOL, atol=TRAINED_ATOL)


@pytest.fixture(scope="module")
def patience_runs():
    """A batched run and its members' plain runs where patience stops members at different
    iterations (alone, the members stop at 250, 250 and 150)."""
    x, y = regression_data(300, seed=0)
    x_val, y_val = regression_data(100, seed=1)
    seeds = [10, 11, 12]
    settings = dict(TRAIN, n_iter=400, x_val=x_val, y_val=y_val, patience=25)
    ensemble = MixtureDensityNetwork.stack([plain_net(s) for s in seeds])
    history = train(ensemble, x, y, generator=generators(seeds), **settings)
    singles, histories = [], []
    for seed in seeds:
        singles.append(plain_net(seed))
        histories.append(
            train(singles[-1], x, y, generator=torch.Generator().manual_seed(seed), **settings)
        )
    return ensemble, history, singles, histories


def test_training_goes_on_while_any_member_has_patience(patience_runs):
    _, history, _, histories = patience_runs
    stopped = [h.n_iter for h in histories]
    assert max(stopped) < 400 and len(set(stopped)) > 1  # patience fired, at different steps
    # Until its own early stop, each member runs exactly as alone.
    assert history.n_iter >= max(stopped)
    for e, single_history in enumerate(histories):
        evaluations = len(single_history.val_nll)
        np.testing.assert_allclose(
            [v[e] for v in history.member_val_nll[:evaluations]],
            single_history.val_nll,
            rtol=1e-4,
            atol=1e-4,
        )
        assert history.member_best_step[e] == single_history.best_step


def test_member_out_of_patience_keeps_the_weights_it_would_have_alone(patience_runs):
    ensemble, history, singles, histories = patience_runs
    for e, single in enumerate(singles):
        assert_same_weights(ensemble.member(e), single, rtol=TRAINED_RTOL, atol=TRAINED_ATOL)
    assert history.member_best_step == [h.best_step for h in histories]
    assert history.n_iter == max(h.n_iter for h in histories)


@pytest.fixture(scope="module")
def plateau_runs():
    """A batched run with the "plateau" schedule and its members' plain runs, recording the
    learning rates each run set."""
    x, y = regression_data(300, seed=0)
    x_val, y_val = regression_data(100, seed=1)
    seeds = [10, 11, 12]
    settings = dict(
        TRAIN, n_iter=300, x_val=x_val, y_val=y_val, lr_schedule="plateau", lr_patience=25
    )
    rates = []
    set_lr = mdn.training.optimizer.Adam.set_lr

    def record(self, lr):
        rates.append(lr)
        set_lr(self, lr)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(mdn.training.optimizer.Adam, "set_lr", record)
        ensemble = MixtureDensityNetwork.stack([plain_net(s) for s in seeds])
        train(ensemble, x, y, generator=generators(seeds), **settings)
        ensemble_rates = rates[-1]
        singles, single_rates = [], []
        for seed in seeds:
            singles.append(plain_net(seed))
            train(singles[-1], x, y, generator=torch.Generator().manual_seed(seed), **settings)
            single_rates.append(rates[-1][0])
    return ensemble, ensemble_rates, singles, single_rates, (x, y, seeds, settings)


def test_plateau_schedule_halves_each_members_rate_as_alone(plateau_runs):
    ensemble, ensemble_rates, singles, single_rates, _ = plateau_runs
    assert ensemble_rates == single_rates
    assert len(set(single_rates)) > 1 and max(single_rates) < TRAIN["lr"]  # cut, unequally
    for e, single in enumerate(singles):
        assert_same_weights(ensemble.member(e), single, rtol=TRAINED_RTOL, atol=TRAINED_ATOL)


def test_per_member_rates_without_the_fused_kernel(plateau_runs, monkeypatch):
    ensemble, _, _, _, (x, y, seeds, settings) = plateau_runs
    monkeypatch.setattr(mdn.training.optimizer, "fused_adam_available", lambda device, dtype: False)
    fallback = MixtureDensityNetwork.stack([plain_net(s) for s in seeds])
    train(fallback, x, y, generator=generators(seeds), **settings)
    assert_same_weights(fallback, ensemble, rtol=TRAINED_RTOL, atol=TRAINED_ATOL)


def test_batched_network_of_one_member_trains_as_the_plain_network():
    x, y = regression_data(300, seed=4)
    x_val, y_val = regression_data(100, seed=5)
    settings = dict(TRAIN, x_val=x_val, y_val=y_val, patience=1000)
    single = plain_net(40)
    batched = MixtureDensityNetwork.stack([plain_net(40)])
    assert batched.n_models == 1
    single_history = train(single, x, y, generator=torch.Generator().manual_seed(40), **settings)
    history = train(batched, x, y, generator=torch.Generator().manual_seed(40), **settings)
    assert_same_weights(batched.member(0), single, rtol=TRAINED_RTOL, atol=TRAINED_ATOL)
    assert history.member_best_step == [single_history.best_step]
    assert history.best_step == single_history.best_step
    np.testing.assert_allclose(history.val_nll, single_history.val_nll, rtol=1e-4, atol=1e-4)
    with torch.no_grad():
        torch.testing.assert_close(
            batched(x).log_prob(y)[0], single(x).log_prob(y), rtol=1e-4, atol=1e-4
        )


def test_train_checks_generators_and_member_rows_against_the_ensemble():
    x, y = regression_data(50, seed=0)
    ensemble = MixtureDensityNetwork.stack([plain_net(s) for s in (0, 1)])
    with pytest.raises(ValueError, match="2 generators"):
        train(ensemble, x, y, n_iter=1, generator=generators([0, 1, 2]))
    with pytest.raises(ValueError, match="member_rows"):
        train(ensemble, x, y, n_iter=1, member_rows=torch.arange(50)[None])


# ---------------------------------------------------------------------- the estimator
def test_ensemble_members_equal_single_models_with_consecutive_seeds(data, ensemble3):
    X, y = data
    members = ensemble3.members_
    points = ensemble3.predict_members(X)
    assert len(members) == 3 and points.shape == (3, len(X))
    for e, member in enumerate(members):
        single = MDN(random_state=7 + e, n_models=1, **SMALL).fit(X, y)
        assert single.network_.n_models is None and member.network_.n_models is None
        assert_same_weights(member.network_, single.network_, rtol=TRAINED_RTOL, atol=TRAINED_ATOL)
        np.testing.assert_allclose(member.log_prob(X, y), single.log_prob(X, y), **OUTPUT_TOL)
        np.testing.assert_allclose(points[e], single.predict(X), **OUTPUT_TOL)
        np.testing.assert_allclose(member.predict(X), points[e], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(
            member.predict_dist(X).log_prob(torch.as_tensor(y)[:, None]).numpy(),
            single.predict_dist(X).log_prob(torch.as_tensor(y)[:, None]).numpy(),
            **OUTPUT_TOL,
        )
        assert member.n_models == 1 and member.n_iter_ == ensemble3.n_iter_


def test_members_with_a_shared_validation_split_differ(data):
    X, y = data
    model = MDN(n_models=3, random_state=1, **dict(SMALL, validation_fraction=0.2)).fit(X, y)
    history = model.history_
    assert len(history["member_best_step"]) == 3
    assert all(len(values) == 3 for values in history["member_val_nll"])
    members = model.members_
    for e, member in enumerate(members):
        assert member.history_["best_step"] == history["member_best_step"][e]
        assert member.history_["val_nll"] == [v[e] for v in history["member_val_nll"]]
    log_probs = np.stack([m.log_prob(X, y) for m in members])
    for a in range(3):
        for b in range(a + 1, 3):
            assert np.abs(log_probs[a] - log_probs[b]).max() > 1e-3


def test_bagging_gives_each_member_its_own_subsample(data, monkeypatch):
    X, y = data
    seen = {}

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return train(*args, **kwargs)

    monkeypatch.setattr(mdn.estimator.model, "train", spy)
    model = MDN(n_models=3, random_state=2, bagging=0.75, **SMALL).fit(X, y)
    rows = seen["member_rows"]
    assert rows.shape == (3, 225)  # round(0.75 * 300) rows per member
    for e in range(3):
        assert len(torch.unique(rows[e])) == 225  # without replacement
        assert int(rows[e].min()) >= 0 and int(rows[e].max()) < len(X)
    assert not torch.equal(rows[0], rows[1]) and not torch.equal(rows[1], rows[2])
    log_probs = np.stack([m.log_prob(X, y) for m in model.members_])
    assert np.abs(log_probs[0] - log_probs[1]).max() > 1e-3
    assert np.abs(log_probs[1] - log_probs[2]).max() > 1e-3
    # Bagging changed what the members learnt, not just their order of rows.
    unbagged = MDN(n_models=3, random_state=2, **SMALL).fit(X, y)
    assert np.abs(unbagged.predict_members(X) - model.predict_members(X)).max() > 1e-3


def test_single_model_has_itself_as_its_only_member(data):
    X, y = data
    model = MDN(random_state=0, n_models=1, **dict(SMALL, n_iter=20)).fit(X, y)
    assert model.members_ == [model] and model.members_[0] is model
    assert model.predict_members(X).shape == (1, len(X))
    np.testing.assert_array_equal(model.predict_members(X)[0], model.predict(X))


# ---------------------------------------------------------------------- combining members
def test_mixture_log_prob_is_the_log_mean_of_member_densities(data, ensemble3):
    X, y = data
    member_log_probs = np.stack([m.log_prob(X, y) for m in ensemble3.members_])
    expected = logsumexp(member_log_probs, axis=0) - math.log(3)
    np.testing.assert_allclose(ensemble3.log_prob(X, y), expected, rtol=1e-10, atol=1e-10)
    assert ensemble3.score(X, y) == pytest.approx(expected.mean(), rel=1e-10)
    dist = ensemble3.predict_dist(X)
    assert dist.batch_shape == (len(X),) and dist.n_components == 3 * SMALL["n_mix"]


def test_interval_and_sample_of_the_pooled_mixture(data, ensemble3):
    X, _ = data
    lower, upper = ensemble3.predict_interval(X, coverage=0.8)
    assert lower.shape == upper.shape == (len(X),)
    assert np.all(lower < upper)
    # The pooled CDF is the mean of the members' CDFs: its quantiles lie between theirs.
    bounds = np.stack([m.predict_interval(X, coverage=0.8) for m in ensemble3.members_])
    assert np.all(lower >= bounds[:, 0].min(0) - 1e-6)
    assert np.all(lower <= bounds[:, 0].max(0) + 1e-6)
    assert np.all(upper >= bounds[:, 1].min(0) - 1e-6)
    assert np.all(upper <= bounds[:, 1].max(0) + 1e-6)
    draws = ensemble3.sample(X[:20], n_samples=5, random_state=0)
    assert draws.shape == (5, 20) and np.isfinite(draws).all()
    np.testing.assert_array_equal(draws, ensemble3.sample(X[:20], n_samples=5, random_state=0))


@pytest.mark.parametrize("fixture", ["ensemble3", "ensemble4"])
@pytest.mark.parametrize("point", ["top", "mean", "median"])
def test_median_combine_is_numpys_median_of_members(data, fixture, point, request):
    X, _ = data
    model = request.getfixturevalue(fixture)
    assert model.combine == "median"
    members = model.predict_members(X[:60], point=point)
    assert members.shape == (model.n_models, 60)
    np.testing.assert_allclose(
        model.predict(X[:60], point=point), np.median(members, axis=0), rtol=1e-12, atol=1e-12
    )


def test_mixture_combine_mean_is_the_mean_of_member_means(data, ensemble4):
    X, _ = data
    model = copy.deepcopy(ensemble4).set_params(combine="mixture")
    expected = model.predict_members(X, point="mean").mean(0)
    np.testing.assert_allclose(model.predict(X, point="mean"), expected, rtol=1e-10, atol=1e-10)
    # The pooled "top" is one member's heaviest component, so not the median of the members.
    assert not np.allclose(model.predict(X), ensemble4.predict(X))


def test_members_differ_and_their_spread_is_positive(data, ensemble3):
    X, _ = data
    points = ensemble3.predict_members(X)
    spread = points.std(axis=0)
    assert spread.shape == (len(X),) and np.all(spread > 0)
    states = [m.network_.state_dict() for m in ensemble3.members_]
    for a, b in ((0, 1), (1, 2), (0, 2)):
        assert not torch.allclose(states[a]["head.linear.weight"], states[b]["head.linear.weight"])


def test_chunked_prediction_of_an_ensemble_matches_one_chunk(data, ensemble3):
    X, y = data
    chunked = copy.deepcopy(ensemble3).set_params(chunk_size=7)  # 2 rows per member chunk
    # Float32 products of another shape round differently (1e-6 differences were seen).
    tolerance = dict(rtol=2e-5, atol=2e-5)
    np.testing.assert_allclose(
        chunked.predict(X, point="mean"), ensemble3.predict(X, point="mean"), **tolerance
    )
    np.testing.assert_allclose(
        chunked.predict_members(X, point="mean"),
        ensemble3.predict_members(X, point="mean"),
        **tolerance,
    )
    np.testing.assert_allclose(chunked.log_prob(X, y), ensemble3.log_prob(X, y), **tolerance)


# ---------------------------------------------------------------------- files
def assert_round_trip(model: MDN, loaded: MDN, X, y) -> None:
    assert loaded.n_models == model.n_models and loaded.network_.n_models == model.n_models
    assert_equal_states(loaded.network_, model.network_)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    np.testing.assert_array_equal(loaded.predict_members(X), model.predict_members(X))
    np.testing.assert_array_equal(loaded.log_prob(X, y), model.log_prob(X, y))
    np.testing.assert_array_equal(loaded.predict_interval(X)[0], model.predict_interval(X)[0])
    assert loaded.history_ == model.history_
    for a, b in zip(loaded.members_, model.members_, strict=True):
        np.testing.assert_array_equal(a.log_prob(X, y), b.log_prob(X, y))


def test_save_load_round_trips_an_ensemble(data, ensemble3, tmp_path):
    X, y = data
    ensemble3.save(tmp_path / "ensemble.mdn")
    assert_round_trip(ensemble3, MDN.load(tmp_path / "ensemble.mdn"), X, y)


def test_save_load_round_trips_a_log_target_full_covariance_ensemble(tmp_path):
    rng = np.random.default_rng(1)
    X = rng.uniform(-1, 1, size=(200, 2))
    y = np.exp(
        np.column_stack(
            [X[:, 0] + 0.1 * rng.normal(size=200), X[:, 0] * X[:, 1] + 0.1 * rng.normal(size=200)]
        )
    )
    params = dict(
        SMALL,
        n_iter=80,
        covariance="full",
        target_transform="log",
        validation_fraction=0.2,
        bagging=0.75,
    )
    model = MDN(n_models=3, random_state=5, **params).fit(X, y)
    assert model.predict_members(X).shape == (3, 200, 2)
    assert model.predict(X).shape == (200, 2)
    assert model.sample(X, n_samples=4, random_state=0).shape == (4, 200, 2)
    np.testing.assert_allclose(
        model.predict(X), np.median(model.predict_members(X), axis=0), rtol=1e-12
    )
    model.save(tmp_path / "log.mdn")
    assert_round_trip(model, MDN.load(tmp_path / "log.mdn"), X, y)


# ---------------------------------------------------------------------- GaussianMixture.pool
@pytest.mark.parametrize("covariance", ["full", "diag", "spherical"])
def test_pool_is_the_log_mean_of_member_densities(covariance):
    gm = random_mixture((4, 6), k=3, d=2, covariance=covariance, seed=0)  # batch (E, N)
    y = torch.randn(6, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    pooled = gm.pool(0)
    assert pooled.batch_shape == (6,) and pooled.n_components == 12
    assert pooled.covariance_type == covariance
    expected = torch.logsumexp(gm.log_prob(y), dim=0) - math.log(4)
    torch.testing.assert_close(pooled.log_prob(y), expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(pooled.weights.sum(-1), torch.ones(6, dtype=torch.float64))
    torch.testing.assert_close(pooled.mean(), gm.mean().mean(0))


@pytest.mark.parametrize("covariance", ["full", "diag", "spherical"])
@pytest.mark.parametrize("dim", [1, -2])
def test_pool_along_a_later_batch_dimension(covariance, dim):
    gm = random_mixture((2, 5, 3), k=2, d=2, covariance=covariance, seed=2)  # pool the 5
    y = torch.randn(2, 1, 3, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    pooled = gm.pool(dim)
    assert pooled.batch_shape == (2, 3) and pooled.n_components == 10
    expected = torch.logsumexp(gm.log_prob(y), dim=1) - math.log(5)
    torch.testing.assert_close(pooled.log_prob(y[:, 0]), expected, rtol=1e-12, atol=1e-12)


def test_pool_rejects_a_dimension_outside_the_batch():
    gm = random_mixture((4, 6), k=2, d=1, covariance="diag", seed=0)
    for dim in (2, -3):
        with pytest.raises(IndexError, match="batch dimension"):
            gm.pool(dim)


# ---------------------------------------------------------------------- parameters
@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("n_models", 0),
        ("n_models", 1.5),
        ("n_models", True),
        ("n_models", -2),
        ("bagging", 0),
        ("bagging", 1.5),
        ("bagging", "a"),
        ("bagging", -0.5),
        ("combine", "mean"),
    ],
)
def test_invalid_ensemble_parameters_are_named(data, name, value):
    X, y = data
    with pytest.raises(ValueError, match=name):
        MDN(**{name: value}, **dict(SMALL, n_iter=1)).fit(X[:20], y[:20])


def test_members_and_predict_members_need_a_fitted_model(data):
    X, _ = data
    model = MDN(n_models=3, **SMALL)
    with pytest.raises(NotFittedError):
        model.members_  # noqa: B018 (a property)
    with pytest.raises(NotFittedError):
        model.predict_members(X)


def test_ensemble_with_pandas_inputs(data):
    X, y = data
    index = pd.RangeIndex(1000, 1000 + len(X))
    frame = pd.DataFrame(X, columns=["a", "b"], index=index)
    target = pd.Series(y, index=index, name="chl")
    model = MDN(n_models=2, random_state=0, **dict(SMALL, n_iter=50)).fit(frame, target)
    prediction = model.predict(frame)
    assert isinstance(prediction, pd.Series)
    assert prediction.index.equals(index) and prediction.name == "chl"
    np.testing.assert_allclose(
        prediction.to_numpy(), np.median(model.predict_members(frame), axis=0), rtol=1e-12
    )
    lower, upper = model.predict_interval(frame)
    assert isinstance(lower, pd.Series) and lower.index.equals(index)
    assert isinstance(upper, pd.Series) and (upper > lower).all()
    assert model.predict_members(frame).shape == (2, len(X))
    assert list(model.members_[1].feature_names_in_) == ["a", "b"]
    np.testing.assert_array_equal(model.log_prob(frame, target), model.log_prob(frame, y))
