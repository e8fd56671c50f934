"""PyTorch modules: the mixture density head, the MLP trunk and the network joining them."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mdn import GaussianMixture, MixtureDensityHead, MixtureDensityNetwork
from mdn.nn import ACTIVATIONS, MLP

COVARIANCES = ("full", "diag", "spherical")
HEAD_CASES = [(cov, d) for cov in COVARIANCES for d in (1, 3)]


def rebuild_validated(gm: GaussianMixture) -> GaussianMixture:
    return GaussianMixture(
        gm.log_weights, gm.means, gm.precision_cholesky, gm.covariance_type, validate=True
    )


# ---------------------------------------------------------------------- head
@pytest.mark.parametrize(("covariance", "d"), HEAD_CASES)
def test_head_output_shapes(covariance, d):
    torch.manual_seed(0)
    head = MixtureDensityHead(6, n_targets=d, n_mix=4, covariance=covariance)
    n_scale = {"full": d * (d + 1) // 2, "diag": d, "spherical": 1}[covariance]
    assert head.linear.out_features == 4 * (1 + d + n_scale)
    gm = head(torch.randn(10, 6))
    assert isinstance(gm, GaussianMixture)
    assert gm.covariance_type == covariance
    assert gm.batch_shape == (10,) and gm.n_components == 4 and gm.n_dims == d
    assert gm.log_weights.shape == (10, 4)
    assert gm.means.shape == (10, 4, d)
    expected_prec = {"full": (10, 4, d, d), "diag": (10, 4, d), "spherical": (10, 4)}[covariance]
    assert gm.precision_cholesky.shape == expected_prec
    assert gm.log_prob(torch.randn(10, d)).shape == (10,)
    torch.testing.assert_close(gm.weights.sum(-1), torch.ones(10))
    # Extra batch dimensions pass through.
    assert head(torch.randn(2, 5, 6)).batch_shape == (2, 5)


@pytest.mark.parametrize(("covariance", "d"), HEAD_CASES)
@pytest.mark.parametrize("magnitude", [1.0, 1e3])
def test_head_output_passes_validation_and_respects_variance_floor(covariance, d, magnitude):
    torch.manual_seed(1)
    epsilon = 1e-3
    head = MixtureDensityHead(5, n_targets=d, n_mix=3, covariance=covariance, epsilon=epsilon)
    with torch.no_grad():
        gm = head(magnitude * torch.randn(500, 5))
    rebuilt = rebuild_validated(gm)  # raises if a diagonal is <= 0 or U is not triangular
    y = torch.randn(500, d)
    torch.testing.assert_close(rebuilt.log_prob(y), gm.log_prob(y))

    variances = gm.component_covariance_matrices().diagonal(dim1=-2, dim2=-1)
    assert bool(torch.isfinite(variances).all())
    # The floor holds up to float32 rounding of 1 / (1 / sqrt(epsilon))**2 (a few ulps).
    assert float(variances.min()) >= epsilon * (1 - 1e-6), float(variances.min())
    if magnitude > 1:
        # Huge features push many raw scale outputs far negative, right onto the floor.
        assert float(variances.min()) <= epsilon * (1 + 1e-5)


@pytest.mark.parametrize("covariance", COVARIANCES)
def test_head_variance_floor_follows_epsilon(covariance):
    torch.manual_seed(2)
    for epsilon in (1e-6, 0.5):
        head = MixtureDensityHead(4, n_targets=2, n_mix=2, covariance=covariance, epsilon=epsilon)
        with torch.no_grad():
            gm = head(1e3 * torch.randn(300, 4))
        variances = gm.component_covariance_matrices().diagonal(dim1=-2, dim2=-1)
        assert float(variances.min()) >= epsilon * (1 - 1e-6)
        assert float(variances.min()) <= epsilon * (1 + 1e-4)


def test_head_full_variance_floor_with_large_off_diagonal():
    """The unconstrained upper part of U cannot push a marginal variance below epsilon."""
    head = MixtureDensityHead(1, n_targets=3, n_mix=1, covariance="full", epsilon=1e-2)
    with torch.no_grad():
        head.linear.weight.zero_()
        bias = torch.zeros(head.linear.out_features)
        # layout: 1 logit, 3 means, then 3 diagonal raw values and 3 off-diagonal entries
        bias[4:7] = -50.0  # diagonal softplus -> 0: U_ii = 1 / sqrt(epsilon)
        bias[7:10] = 1e3
        head.linear.bias.copy_(bias)
    with torch.no_grad():
        gm = head(torch.zeros(1, 1))
    variances = gm.component_covariance_matrices().diagonal(dim1=-2, dim2=-1)
    assert float(variances.min()) >= 1e-2 * (1 - 1e-6)
    rebuild_validated(gm)


@pytest.mark.parametrize("covariance", COVARIANCES)
def test_head_gradients_reach_every_parameter(covariance):
    torch.manual_seed(3)
    net = MixtureDensityNetwork(3, n_targets=2, n_mix=3, hidden=(8, 8), covariance=covariance)
    loss = -net(torch.randn(32, 3)).log_prob(torch.randn(32, 2)).mean()
    loss.backward()
    params = dict(net.named_parameters())
    assert len(params) == 6  # two hidden layers and the head, weight and bias each
    for name, param in params.items():
        assert param.grad is not None, name
        assert bool(torch.isfinite(param.grad).all()), name
        assert float(param.grad.abs().max()) > 0, name


def test_head_gradient_reaches_every_output_of_the_linear_layer():
    """Every logit, mean and scale output feeds the loss (no slot of the layout is dropped)."""
    torch.manual_seed(4)
    for covariance in COVARIANCES:
        head = MixtureDensityHead(4, n_targets=3, n_mix=2, covariance=covariance)
        loss = -head(torch.randn(64, 4)).log_prob(torch.randn(64, 3)).mean()
        loss.backward()
        assert bool((head.linear.bias.grad.abs() > 0).all()), covariance


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(covariance="weird"),
        dict(n_mix=0),
        dict(n_mix=-1),
        dict(n_mix=2.0),
        dict(epsilon=0.0),
        dict(epsilon=-1e-3),
        dict(epsilon=float("nan")),
        dict(epsilon=float("inf")),
        dict(n_targets=0),
        dict(in_features=0),
    ],
)
def test_head_rejects_invalid_arguments(kwargs):
    args = dict(in_features=4, n_targets=2) | kwargs
    with pytest.raises(ValueError):
        MixtureDensityHead(**args)


def test_head_recovers_correlation_of_2d_noise():
    """A full-covariance head fitted by plain Adam finds a noise correlation of 0.8."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    n, rho = 600, 0.8
    sd = torch.tensor([0.3, 0.5])
    cov = torch.tensor([[sd[0] ** 2, rho * sd[0] * sd[1]], [rho * sd[0] * sd[1], sd[1] ** 2]])
    x = 2 * torch.rand(n, 1, generator=g) - 1
    noise = torch.randn(n, 2, generator=g) @ torch.linalg.cholesky(cov).T
    y = torch.cat([torch.sin(2 * x), 1.5 * x], -1) + noise

    net = nn.Sequential(MLP(1, (16,), "tanh"), MixtureDensityHead(16, 2, n_mix=2))
    optimizer = torch.optim.Adam(net.parameters(), lr=0.02)
    for _ in range(300):
        loss = -net(x).log_prob(y).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    with torch.no_grad():
        gm = net(torch.linspace(-0.8, 0.8, 9).reshape(-1, 1))
        heaviest = gm.weights.argmax(-1)
        comp_cov = gm.component_covariance_matrices()[torch.arange(9), heaviest]
        corr = comp_cov[:, 0, 1] / (comp_cov[:, 0, 0] * comp_cov[:, 1, 1]).sqrt()
        mix_cov = gm.covariance()
        mix_corr = mix_cov[:, 0, 1] / (mix_cov[:, 0, 0] * mix_cov[:, 1, 1]).sqrt()
    assert float((corr.mean() - rho).abs()) < 0.1, corr
    assert float((mix_corr.mean() - rho).abs()) < 0.1, mix_corr
    # The marginal scales come out too (a head that only fits the mean would not).
    std = mix_cov.diagonal(dim1=-2, dim2=-1).sqrt().mean(0)
    torch.testing.assert_close(std, sd, rtol=0.15, atol=0)


def test_head_extra_repr():
    head = MixtureDensityHead(3, n_targets=2, n_mix=4, covariance="diag", epsilon=1e-4)
    text = repr(head)
    assert "n_targets=2" in text and "n_mix=4" in text and "'diag'" in text
    assert "epsilon=0.0001" in text


# ---------------------------------------------------------------------- MLP and network
def test_mlp_layers_and_widths():
    mlp = MLP(5, (7, 11, 3), activation="tanh")
    linears = [m for m in mlp if isinstance(m, nn.Linear)]
    assert len(mlp) == 6 and len(linears) == 3
    assert [(m.in_features, m.out_features) for m in linears] == [(5, 7), (7, 11), (11, 3)]
    assert all(isinstance(m, nn.Tanh) for m in list(mlp)[1::2])
    assert mlp.out_features == 3
    assert mlp(torch.randn(4, 5)).shape == (4, 3)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_mlp_accepts_every_named_activation(activation):
    mlp = MLP(2, (4,), activation=activation)
    assert isinstance(mlp[1], ACTIVATIONS[activation])


def test_mlp_rejects_unknown_activation():
    with pytest.raises(ValueError, match="activation"):
        MLP(3, (4,), activation="swishy")


def test_mlp_without_hidden_layers_is_identity():
    mlp = MLP(4, ())
    assert len(mlp) == 0 and mlp.out_features == 4
    x = torch.randn(6, 4)
    assert torch.equal(mlp(x), x)


def test_network_wires_trunk_into_head():
    torch.manual_seed(5)
    net = MixtureDensityNetwork(
        3, n_targets=2, n_mix=4, hidden=(9, 6), activation="elu", covariance="diag", epsilon=1e-2
    )
    assert net.trunk.out_features == 6
    assert net.head.linear.in_features == 6
    assert (net.head.n_mix, net.head.n_targets, net.head.covariance, net.head.epsilon) == (
        4,
        2,
        "diag",
        1e-2,
    )
    x = torch.randn(8, 3)
    gm = net(x)
    assert gm.batch_shape == (8,) and gm.n_components == 4 and gm.n_dims == 2
    torch.testing.assert_close(
        gm.log_prob(torch.zeros(8, 2)), net.head(net.trunk(x)).log_prob(torch.zeros(8, 2))
    )
    direct = MixtureDensityNetwork(3, n_targets=1, hidden=())
    assert direct.head.linear.in_features == 3


# ---------------------------------------------------------------------- the fused training loss
@pytest.mark.parametrize(
    ("covariance", "d"),
    [
        ("diag", 1),
        ("diag", 3),
        ("spherical", 1),
        ("spherical", 3),
        ("full", 1),
        ("full", 2),
        ("full", 4),
    ],
)
@pytest.mark.parametrize("n_models", [None, 3])
def test_fused_nll_and_its_gradient_equal_the_mixture_path(covariance, d, n_models):
    torch.manual_seed(0)
    head = MixtureDensityHead(6, d, n_mix=4, covariance=covariance, n_models=n_models).double()
    with torch.no_grad():  # spread the outputs so that components and correlations matter
        for p in head.parameters():
            p.mul_(3.0)
    features = torch.randn(3 if n_models else 1, 9, 6, dtype=torch.float64).squeeze(0)
    y = torch.randn(*features.shape[:-1], d, dtype=torch.float64)
    fused = head.nll(features, y)
    reference = -head(features).log_prob(y)
    torch.testing.assert_close(fused, reference, rtol=1e-12, atol=1e-12)
    fused_grads = torch.autograd.grad(fused.sum(), list(head.parameters()))
    reference_grads = torch.autograd.grad(reference.sum(), list(head.parameters()))
    for got, want in zip(fused_grads, reference_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-10)
    # and the closed-form backward against finite differences
    assert torch.autograd.gradcheck(lambda f: head.nll(f, y), (features.clone().requires_grad_(),))


def test_network_forward_with_targets_is_the_nll():
    torch.manual_seed(1)
    network = MixtureDensityNetwork(4, 2, n_mix=3, hidden=(8,))
    x, y = torch.randn(5, 4), torch.randn(5, 2)
    torch.testing.assert_close(network(x, y), -network(x).log_prob(y))
