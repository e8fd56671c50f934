"""Target transforms: the affine fold into a GaussianMixture and the log-normal mixture."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats
from scipy.special import logsumexp

from mdn import AffineTransform, GaussianMixture, LogGaussianMixture

DTYPE = torch.float64


def random_mixture(
    covariance: str,
    d: int,
    k: int = 3,
    batch: int = 2,
    seed: int = 0,
    spread: float = 1.0,
    var_scale: float = 1.0,
) -> GaussianMixture:
    """A float64 mixture of ``k`` components over ``d`` dimensions with batch shape (batch,)."""
    g = torch.Generator().manual_seed(seed)
    weights = torch.rand(batch, k, generator=g, dtype=DTYPE) + 0.2
    weights = weights / weights.sum(-1, keepdim=True)
    means = spread * torch.randn(batch, k, d, generator=g, dtype=DTYPE)
    if covariance == "full":
        a = torch.randn(batch, k, d, d, generator=g, dtype=DTYPE)
        cov = var_scale * (a @ a.mT / d + 0.3 * torch.eye(d, dtype=DTYPE))
    elif covariance == "diag":
        cov = var_scale * (0.2 + torch.rand(batch, k, d, generator=g, dtype=DTYPE))
    else:
        cov = var_scale * (0.2 + torch.rand(batch, k, generator=g, dtype=DTYPE))
    return GaussianMixture.from_params(weights, means, cov, covariance)


def rebuild_validated(gm: GaussianMixture) -> GaussianMixture:
    return GaussianMixture(
        gm.log_weights, gm.means, gm.precision_cholesky, gm.covariance_type, validate=True
    )


# ====================================================================== AffineTransform
SCALES = {
    1: [[2.5], [-0.3]],
    3: [[2.0, 0.5, 3.0], [1.5, -0.7, 4.0], [-1.0, -2.0, 0.25]],
}
AFFINE_CASES = [
    (cov, d, scale) for cov in ("full", "diag", "spherical") for d in (1, 3) for scale in SCALES[d]
]


@pytest.mark.parametrize(("covariance", "d", "scale"), AFFINE_CASES)
def test_affine_fold_is_exact(covariance, d, scale):
    base = random_mixture(covariance, d, seed=d)
    loc = torch.linspace(-1.0, 2.0, d, dtype=DTYPE)
    scale = torch.tensor(scale, dtype=DTYPE)
    transform = AffineTransform(loc, scale)
    folded = transform(base)

    z = torch.randn(50, 2, d, generator=torch.Generator().manual_seed(1), dtype=DTYPE)
    y = loc + scale * z
    expected = base.log_prob(z) - scale.abs().log().sum()
    torch.testing.assert_close(folded.log_prob(y), expected, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(transform.log_abs_det_jacobian(), scale.abs().log().sum())

    torch.testing.assert_close(folded.mean(), loc + scale * base.mean())
    s = torch.diag(scale)
    torch.testing.assert_close(folded.covariance(), s @ base.covariance() @ s)
    torch.testing.assert_close(folded.weights, base.weights)

    # The folded parameters satisfy the constructor's own checks (positive diagonal, ...).
    rebuilt = rebuild_validated(folded)
    torch.testing.assert_close(rebuilt.log_prob(y), folded.log_prob(y))
    if covariance == "full":
        assert bool((folded.precision_cholesky.diagonal(dim1=-2, dim2=-1) > 0).all())


@pytest.mark.parametrize("d", [1, 3])
def test_affine_fold_matches_sampling_through_the_map(d):
    """Samples of the folded mixture and mapped samples of the base share their moments."""
    base = random_mixture("full", d, k=2, batch=1, seed=5)
    loc = torch.full((d,), 3.0, dtype=DTYPE)
    scale = torch.tensor([-2.0, 0.5, 1.0][:d], dtype=DTYPE)
    folded = AffineTransform(loc, scale)(base)
    g = torch.Generator().manual_seed(0)
    mapped = loc + scale * base.sample(20000, generator=g)
    n = mapped.shape[0]
    se = mapped.std(0) / math.sqrt(n)
    assert bool(((mapped.mean(0) - folded.mean()).abs() <= 5 * se).all())


def test_spherical_stays_spherical_under_isotropic_scale():
    base = random_mixture("spherical", 3)
    for scale in ([2.0, 2.0, 2.0], [-2.0, 2.0, -2.0]):
        transform = AffineTransform(torch.zeros(3, dtype=DTYPE), torch.tensor(scale, dtype=DTYPE))
        folded = transform(base)
        assert folded.covariance_type == "spherical"
        assert folded.precision_cholesky.shape == base.precision_cholesky.shape
        torch.testing.assert_close(folded.covariances, 4.0 * base.covariances)


def test_spherical_becomes_diag_under_anisotropic_scale():
    base = random_mixture("spherical", 3)
    scale = torch.tensor([1.0, -3.0, 0.5], dtype=DTYPE)
    folded = AffineTransform(torch.zeros(3, dtype=DTYPE), scale)(base)
    assert folded.covariance_type == "diag"
    assert folded.precision_cholesky.shape == base.means.shape
    torch.testing.assert_close(folded.covariances, base.covariances.unsqueeze(-1) * scale**2)
    rebuild_validated(folded)


def test_affine_transform_casts_to_the_mixture_dtype():
    base = random_mixture("diag", 2)
    folded = AffineTransform(torch.tensor([1.0, 2.0]), torch.tensor([3.0, -1.0]))(base)
    assert folded.dtype == torch.float64
    assert folded.precision_cholesky.dtype == torch.float64


@pytest.mark.parametrize(
    ("loc", "scale"),
    [
        ([0.0, 0.0], [1.0, 0.0]),  # zero scale
        ([0.0, 0.0], [1.0]),  # shape mismatch
        ([0.0], [1.0, 2.0]),  # shape mismatch
        ([[0.0, 0.0]], [[1.0, 1.0]]),  # not vectors
        (0.0, 1.0),  # scalars
        ([math.nan, 0.0], [1.0, 1.0]),
        ([0.0, math.inf], [1.0, 1.0]),
        ([0.0, 0.0], [1.0, math.inf]),
        ([0.0, 0.0], [math.nan, 1.0]),
    ],
)
def test_affine_transform_rejects_bad_arguments(loc, scale):
    with pytest.raises(ValueError):
        AffineTransform(torch.tensor(loc), torch.tensor(scale))


@pytest.mark.parametrize("covariance", ["full", "diag", "spherical"])
def test_affine_transform_rejects_dimension_mismatch(covariance):
    transform = AffineTransform(torch.zeros(2), torch.ones(2))
    with pytest.raises(ValueError, match="dimensions"):
        transform(random_mixture(covariance, 3))


# ====================================================================== LogGaussianMixture
def lognormal_1d(mu: float, sigma: float) -> LogGaussianMixture:
    base = GaussianMixture.from_params(
        torch.ones(1, 1, dtype=DTYPE),
        torch.tensor([[[mu]]], dtype=DTYPE),
        torch.tensor([[sigma**2]], dtype=DTYPE),
    )
    return LogGaussianMixture(base)


def test_log_prob_matches_scipy_lognorm_single_component():
    mu, sigma = 0.4, 0.7
    lgm = lognormal_1d(mu, sigma)
    y = np.linspace(0.01, 8.0, 200)
    got = lgm.log_prob(torch.tensor(y).reshape(-1, 1, 1)).reshape(-1).numpy()
    np.testing.assert_allclose(
        got, stats.lognorm(s=sigma, scale=np.exp(mu)).logpdf(y), rtol=1e-10, atol=1e-10
    )


def test_log_prob_matches_scipy_lognorm_mixture_1d():
    weights, mus, sigmas = np.array([0.3, 0.7]), np.array([-0.5, 1.0]), np.array([0.4, 0.9])
    base = GaussianMixture.from_params(
        torch.tensor(weights)[None],
        torch.tensor(mus).reshape(1, 2, 1),
        torch.tensor(sigmas**2)[None],
    )
    y = np.linspace(0.02, 12.0, 300)
    got = LogGaussianMixture(base).log_prob(torch.tensor(y).reshape(-1, 1, 1)).reshape(-1)
    pdfs = [
        w * stats.lognorm(s=s, scale=np.exp(m)).pdf(y)
        for w, m, s in zip(weights, mus, sigmas, strict=True)
    ]
    np.testing.assert_allclose(got.numpy(), np.log(sum(pdfs)), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("covariance", ["full", "diag", "spherical"])
def test_log_prob_matches_scipy_2d(covariance):
    base = random_mixture(covariance, 2, k=2, batch=2, seed=3, spread=0.5, var_scale=0.3)
    lgm = LogGaussianMixture(base)
    g = torch.Generator().manual_seed(4)
    y = torch.exp(0.8 * torch.randn(40, 2, 2, generator=g, dtype=DTYPE))
    got = lgm.log_prob(y).numpy()  # (40, 2)

    weights = base.weights.numpy()
    means = base.means.numpy()
    covs = base.component_covariance_matrices().numpy()
    log_y = np.log(y.numpy())
    for b in range(2):
        comps = [
            np.log(weights[b, k])
            + stats.multivariate_normal(means[b, k], covs[b, k]).logpdf(log_y[:, b])
            for k in range(2)
        ]
        expected = logsumexp(np.stack(comps), axis=0) - log_y[:, b].sum(-1)
        np.testing.assert_allclose(got[:, b], expected, rtol=1e-10, atol=1e-10)


def test_log_prob_is_minus_inf_outside_the_positive_orthant():
    lgm = LogGaussianMixture(random_mixture("full", 2, k=2, batch=1))
    y = torch.tensor(
        [[[0.0, 1.0]], [[1.0, -2.0]], [[-1.0, -1.0]], [[0.0, 0.0]], [[1.0, 1.0]]], dtype=DTYPE
    )
    out = lgm.log_prob(y)
    assert out.shape == (5, 1)
    assert bool((out[:4] == -math.inf).all())
    assert bool(torch.isfinite(out[4]).all())
    cdf = lgm.cdf(y)
    assert bool((cdf[0, 0, 0] == 0) & (cdf[1, 0, 1] == 0) & (cdf[2] == 0).all())
    assert bool(((cdf[4] > 0) & (cdf[4] < 1)).all())


def test_log_prob_minus_inf_1d():
    lgm = lognormal_1d(0.0, 1.0)
    out = lgm.log_prob(torch.tensor([[[-1.0]], [[0.0]], [[1e-300]], [[1.0]]], dtype=DTYPE))
    assert out[0].item() == -math.inf and out[1].item() == -math.inf
    assert math.isfinite(out[3].item())


@pytest.mark.parametrize("covariance", ["full", "diag"])
def test_log_prob_with_missing_entries_is_the_observed_marginal(covariance):
    lgm = LogGaussianMixture(random_mixture(covariance, 2, k=2, batch=1, seed=5))
    y = torch.tensor([[[1.5, math.nan]], [[math.nan, 0.7]], [[math.nan, -1.0]]], dtype=DTYPE)
    out = lgm.log_prob(y)[:, 0]
    for row, dim in ((0, 0), (1, 1)):
        value = y[row, :, dim : dim + 1]
        expected = lgm.marginal(dim).log_prob(value)[0]
        assert float(out[row]) == pytest.approx(float(expected), abs=1e-12)
    assert float(out[2]) == -math.inf  # an observed entry <= 0 still has density 0


def test_samples_are_exp_of_base_samples_and_positive():
    base = random_mixture("full", 2, k=3, batch=4, seed=7)
    lgm = LogGaussianMixture(base)
    s = lgm.sample(500, generator=torch.Generator().manual_seed(11))
    z = base.sample(500, generator=torch.Generator().manual_seed(11))
    assert s.shape == (500, 4, 2)
    torch.testing.assert_close(s, z.exp())
    assert bool((s > 0).all())


def test_mean_and_variance_closed_form_single_lognormal():
    mu, sigma = 0.3, 0.6
    lgm = lognormal_1d(mu, sigma)
    mean = math.exp(mu + sigma**2 / 2)
    var = (math.exp(sigma**2) - 1) * math.exp(2 * mu + sigma**2)
    assert lgm.mean().item() == pytest.approx(mean, rel=1e-12)
    assert lgm.covariance().item() == pytest.approx(var, rel=1e-10)
    assert lgm.variance().item() == pytest.approx(var, rel=1e-10)
    dist = stats.lognorm(s=sigma, scale=math.exp(mu))
    assert lgm.mean().item() == pytest.approx(dist.mean(), rel=1e-12)
    assert lgm.variance().item() == pytest.approx(dist.var(), rel=1e-10)


@pytest.mark.parametrize("covariance", ["full", "diag", "spherical"])
def test_mean_and_covariance_match_monte_carlo(covariance):
    base = random_mixture(covariance, 2, k=2, batch=2, seed=13, spread=0.5, var_scale=0.15)
    lgm = LogGaussianMixture(base)
    n = 200_000
    y = lgm.sample(n, generator=torch.Generator().manual_seed(0))  # (n, 2, 2)
    mc_mean = y.mean(0)
    se_mean = y.std(0) / math.sqrt(n)
    assert bool(((mc_mean - lgm.mean()).abs() <= 5 * se_mean).all()), (mc_mean, lgm.mean())

    centred = y - mc_mean
    products = centred.unsqueeze(-1) * centred.unsqueeze(-2)  # (n, 2, 2, 2)
    mc_cov = products.mean(0)
    se_cov = products.std(0) / math.sqrt(n)
    assert bool(((mc_cov - lgm.covariance()).abs() <= 5 * se_cov).all()), (mc_cov, lgm.covariance())
    torch.testing.assert_close(lgm.variance(), lgm.covariance().diagonal(dim1=-2, dim2=-1))


def test_mode_single_lognormal_1d():
    for mu, sigma in [(0.0, 1.0), (1.2, 0.3), (-0.5, 0.8)]:
        assert lognormal_1d(mu, sigma).mode().item() == pytest.approx(
            math.exp(mu - sigma**2), rel=1e-6
        )


@pytest.mark.parametrize("covariance", ["full", "diag", "spherical"])
def test_mode_single_lognormal_2d(covariance):
    base = random_mixture(covariance, 2, k=1, batch=3, seed=17, var_scale=0.5)
    expected = (base.means[:, 0] - base.component_covariance_matrices()[:, 0].sum(-1)).exp()
    torch.testing.assert_close(LogGaussianMixture(base).mode(), expected, rtol=1e-6, atol=0)


def test_mode_single_lognormal_2d_full_explicit():
    mu = torch.tensor([0.5, -0.2], dtype=DTYPE)
    cov = torch.tensor([[0.4, 0.25], [0.25, 0.3]], dtype=DTYPE)
    base = GaussianMixture.from_params(
        torch.ones(1, 1, dtype=DTYPE), mu.reshape(1, 1, 2), cov.reshape(1, 1, 2, 2)
    )
    mode = LogGaussianMixture(base).mode()[0]
    torch.testing.assert_close(
        mode, torch.exp(mu - cov @ torch.ones(2, dtype=DTYPE)), rtol=1e-6, atol=0
    )
    # Cross-check numerically: the gradient of the log-density vanishes at the mode.
    point = mode.clone().requires_grad_(True)
    LogGaussianMixture(base).log_prob(point.reshape(1, 2)).sum().backward()
    assert float(point.grad.abs().max()) < 1e-5


def test_mode_of_mixture_beats_a_dense_grid_1d():
    base = GaussianMixture.from_params(
        torch.tensor([[0.35, 0.65], [0.5, 0.5]], dtype=DTYPE),
        torch.tensor([[[0.0], [1.5]], [[-1.0], [0.8]]], dtype=DTYPE),
        torch.tensor([[0.3, 0.05], [0.6, 0.2]], dtype=DTYPE),
    )
    lgm = LogGaussianMixture(base)
    mode = lgm.mode()  # (2, 1)
    grid = torch.linspace(1e-3, 10.0, 100_001, dtype=DTYPE).reshape(-1, 1, 1)
    grid_best = lgm.log_prob(grid).amax(0)
    at_mode = lgm.log_prob(mode)
    assert bool((at_mode >= grid_best - 1e-7).all()), (at_mode, grid_best)


def test_mode_of_mixture_beats_a_dense_grid_2d():
    weights = torch.tensor([[0.4, 0.6]], dtype=DTYPE)
    means = torch.tensor([[[0.0, 0.2], [1.0, 0.8]]], dtype=DTYPE)
    covs = torch.tensor([[[[0.2, 0.1], [0.1, 0.3]], [[0.1, -0.05], [-0.05, 0.15]]]], dtype=DTYPE)
    lgm = LogGaussianMixture(GaussianMixture.from_params(weights, means, covs))
    mode = lgm.mode()
    axis = torch.linspace(1e-3, 6.0, 601, dtype=DTYPE)
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 1, 2)
    grid_best = lgm.log_prob(grid).max()
    assert float(lgm.log_prob(mode)) >= float(grid_best) - 1e-7
    # The mode is not the exp of the base mode (the Jacobian shifts it towards 0).
    assert not torch.allclose(mode, lgm.base.mode().exp(), rtol=1e-3)


def test_quantiles_are_exp_of_base_quantiles():
    base = random_mixture("full", 2, k=3, batch=3, seed=19, var_scale=0.5)
    lgm = LogGaussianMixture(base)
    levels = torch.tensor([0.01, 0.2, 0.5, 0.8, 0.99], dtype=DTYPE).reshape(-1, 1, 1)
    q = lgm.quantile(levels)
    assert q.shape == (5, 3, 2)
    torch.testing.assert_close(q, base.quantile(levels).exp())
    torch.testing.assert_close(lgm.cdf(q), levels.expand(5, 3, 2), rtol=0, atol=1e-9)
    torch.testing.assert_close(lgm.median(), base.median().exp())
    lo, hi = lgm.interval(0.8)
    base_lo, base_hi = base.interval(0.8)
    torch.testing.assert_close(lo, base_lo.exp())
    torch.testing.assert_close(hi, base_hi.exp())
    torch.testing.assert_close(
        lgm.cdf(hi) - lgm.cdf(lo), torch.full_like(lo, 0.8), rtol=0, atol=1e-9
    )
    assert bool((lo > 0).all()) and bool((lo < hi).all())


def test_quantile_matches_scipy_lognorm():
    mu, sigma = 0.2, 0.5
    lgm = lognormal_1d(mu, sigma)
    levels = np.array([0.05, 0.3, 0.5, 0.9])
    got = lgm.quantile(torch.tensor(levels).reshape(-1, 1, 1)).reshape(-1).numpy()
    np.testing.assert_allclose(
        got, stats.lognorm(s=sigma, scale=math.exp(mu)).ppf(levels), rtol=1e-9
    )
    assert lgm.median().item() == pytest.approx(math.exp(mu), rel=1e-10)


def test_marginal_is_the_lognormal_of_the_base_marginal():
    mu = torch.tensor([0.5, -0.2], dtype=DTYPE)
    cov = torch.tensor([[0.4, 0.25], [0.25, 0.3]], dtype=DTYPE)
    lgm = LogGaussianMixture(
        GaussianMixture.from_params(
            torch.ones(1, 1, dtype=DTYPE), mu.reshape(1, 1, 2), cov.reshape(1, 1, 2, 2)
        )
    )
    marginal = lgm.marginal(1)
    assert isinstance(marginal, LogGaussianMixture)
    assert marginal.n_dims == 1
    y = np.linspace(0.05, 4.0, 50)
    got = marginal.log_prob(torch.tensor(y).reshape(-1, 1, 1)).reshape(-1).numpy()
    expected = stats.lognorm(s=math.sqrt(0.3), scale=math.exp(-0.2)).logpdf(y)
    np.testing.assert_allclose(got, expected, rtol=1e-10)
    torch.testing.assert_close(lgm.marginal([1, 0]).mean(), lgm.mean().flip(-1))


def test_indexing_len_and_cat():
    base = random_mixture("diag", 2, k=2, batch=5, seed=23)
    lgm = LogGaussianMixture(base)
    assert len(lgm) == 5
    assert lgm.batch_shape == (5,) and lgm.n_components == 2 and lgm.n_dims == 2
    assert lgm.dtype == torch.float64
    y = torch.exp(torch.randn(7, 5, 2, generator=torch.Generator().manual_seed(0), dtype=DTYPE))
    full = lgm.log_prob(y)

    part = lgm[1:4]
    assert isinstance(part, LogGaussianMixture) and len(part) == 3
    torch.testing.assert_close(part.log_prob(y[:, 1:4]), full[:, 1:4])
    single = lgm[2]
    assert single.batch_shape == ()
    torch.testing.assert_close(single.log_prob(y[:, 2]), full[:, 2])
    torch.testing.assert_close(single.mean(), lgm.mean()[2])

    joined = LogGaussianMixture.cat([lgm[:2], lgm[2:]])
    assert isinstance(joined, LogGaussianMixture) and len(joined) == 5
    torch.testing.assert_close(joined.log_prob(y), full)
    torch.testing.assert_close(joined.mean(), lgm.mean())
    torch.testing.assert_close(lgm.weights, base.weights)
    assert lgm.to(torch.float32).dtype == torch.float32
    assert "LogGaussianMixture" in repr(lgm)


def test_quantile_endpoints_are_zero_and_infinity():
    lgm = lognormal_1d(0.3, 0.5)
    q = lgm.quantile(torch.tensor([0.0, 1.0], dtype=DTYPE).reshape(2, 1, 1)).reshape(-1)
    assert q[0].item() == 0.0 and q[1].item() == math.inf


def test_unbatched_mixtures():
    base = GaussianMixture.from_params(
        torch.tensor([0.4, 0.6], dtype=DTYPE),
        torch.tensor([[0.0, 1.0], [1.0, -1.0]], dtype=DTYPE),
        torch.tensor([0.5, 0.2], dtype=DTYPE),
    )
    folded = AffineTransform(torch.tensor([1.0, 2.0]), torch.tensor([2.0, -1.0]))(base)
    assert folded.batch_shape == () and folded.covariance_type == "diag"
    point = torch.tensor([0.5, 0.5], dtype=DTYPE)
    expected = base.log_prob(torch.tensor([-0.25, 1.5], dtype=DTYPE)) - math.log(2.0)
    torch.testing.assert_close(folded.log_prob(point), expected)
    lgm = LogGaussianMixture(base)
    assert lgm.mean().shape == (2,) and lgm.mode().shape == (2,)
    with pytest.raises(TypeError):
        len(lgm)
