"""Tests of ``mdn.mixture``: ``GaussianMixture`` and ``precision_cholesky_from_covariance``.

Exactness checks run in float64 against independent references (SciPy, ``torch.distributions``
and NumPy); Monte Carlo checks use a seeded ``torch.Generator`` and tolerances of five standard
errors estimated from the samples themselves.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import optimize, special, stats
from torch import distributions as td

from mdn.distributions.mixture import (
    COVARIANCE_TYPES,
    GaussianMixture,
    precision_cholesky_from_covariance,
)

F64 = torch.float64
N_SE = 5.0  # Monte Carlo tolerance, in standard errors


# ---------------------------------------------------------------------- helpers
def _t(a) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a), dtype=F64)


def make_params(kind: str, batch: tuple[int, ...], k: int, d: int, seed: int):
    """Random valid (weights, means, covariances-in-from_params-shape) as NumPy arrays."""
    rng = np.random.default_rng(seed)
    weights = rng.dirichlet(np.full(k, 2.0), size=batch)  # [*B, K]
    means = rng.normal(0.0, 2.0, size=(*batch, k, d))
    if kind == "full":
        a = rng.normal(size=(*batch, k, d, d))
        jitter = rng.uniform(0.2, 1.0, size=(*batch, k, 1, 1))
        cov = a @ np.swapaxes(a, -1, -2) / d + jitter * np.eye(d)
    elif kind == "diag":
        cov = rng.uniform(0.2, 2.0, size=(*batch, k, d))
    else:
        cov = rng.uniform(0.2, 2.0, size=(*batch, k))
    return weights, means, cov


def full_matrices(kind: str, cov: np.ndarray, d: int) -> np.ndarray:
    """Covariances of any type as (*B, K, D, D) matrices."""
    if kind == "full":
        return cov
    if kind == "diag":
        return cov[..., :, None] * np.eye(d)
    return cov[..., None, None] * np.eye(d)


def make_mixture(kind: str, batch: tuple[int, ...], k: int, d: int, seed: int):
    """A float64 mixture and its parameters (weights, means, (*B, K, D, D) covariances)."""
    weights, means, cov = make_params(kind, batch, k, d, seed)
    gm = GaussianMixture.from_params(_t(weights), _t(means), _t(cov), kind)
    return gm, weights, means, full_matrices(kind, cov, d)


def scipy_component_log_prob(weights, means, covs, y) -> np.ndarray:
    """log w_k + log N(y; mu_k, Sigma_k) with SciPy; y of shape (..., *B, D) -> (..., *B, K)."""
    batch, (k, d) = weights.shape[:-1], means.shape[-2:]
    out = np.empty((*y.shape[:-1], k))
    for idx in np.ndindex(*batch):
        pts = y[(..., *idx, slice(None))]
        for j in range(k):
            mvn = stats.multivariate_normal(means[idx][j], covs[idx][j])
            logpdf = np.reshape(mvn.logpdf(pts.reshape(-1, d)), pts.shape[:-1])
            out[(..., *idx, j)] = np.log(weights[idx][j]) + logpdf
    return out


def scipy_log_prob(weights, means, covs, y) -> np.ndarray:
    return special.logsumexp(scipy_component_log_prob(weights, means, covs, y), axis=-1)


def marginal_std(covs: np.ndarray) -> np.ndarray:
    return np.sqrt(np.diagonal(covs, axis1=-2, axis2=-1))  # [*B, K, D]


def scipy_cdf(weights, means, covs, y) -> np.ndarray:
    """Per-dimension mixture CDF from scipy.stats.norm; y (..., *B, D) -> (..., *B, D)."""
    comp = stats.norm.cdf(y[..., None, :], loc=means, scale=marginal_std(covs))
    return (weights[..., None] * comp).sum(-2)


def scipy_marginal_log_prob(weights, means, covs, y) -> np.ndarray:
    comp = stats.norm.logpdf(y[..., None, :], loc=means, scale=marginal_std(covs))
    return special.logsumexp(np.log(weights)[..., None] + comp, axis=-2)


def points_near(means: np.ndarray, covs: np.ndarray, m: int, seed: int) -> np.ndarray:
    """m points per mixture spread around its components, shape (m, *B, D)."""
    rng = np.random.default_rng(seed)
    batch, (k, d) = means.shape[:-2], means.shape[-2:]
    pick = rng.integers(0, k, size=(m, *batch))
    mu = np.take_along_axis(means[None], pick[..., None, None], axis=-2)[..., 0, :]
    scale = np.sqrt(np.diagonal(covs, axis1=-2, axis2=-1).max(axis=(-2, -1)))  # [*B]
    return mu + 2.0 * scale[..., None] * rng.normal(size=(m, *batch, d))


def torch_reference(weights, means, covs) -> td.MixtureSameFamily:
    return td.MixtureSameFamily(
        td.Categorical(probs=_t(weights)),
        td.MultivariateNormal(_t(means), covariance_matrix=_t(covs)),
    )


def assert_close(actual, expected, rtol=1e-10, atol=1e-10):
    if isinstance(actual, torch.Tensor):
        actual = actual.detach().numpy()
    if isinstance(expected, torch.Tensor):
        expected = expected.detach().numpy()
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


KIND_DIMS = [(kind, d) for kind in COVARIANCE_TYPES for d in (1, 2, 5)]


# ---------------------------------------------------------------------- densities
@pytest.mark.parametrize(("kind", "d"), KIND_DIMS)
def test_log_prob_matches_scipy(kind, d):
    gm, w, mu, cov = make_mixture(kind, (4,), 3, d, seed=10 + d)
    y = points_near(mu, cov, 7, seed=1)
    expected = scipy_log_prob(w, mu, cov, y)
    actual = gm.log_prob(_t(y))
    assert actual.shape == (7, 4)
    assert actual.dtype == F64
    assert_close(actual, expected, rtol=1e-5, atol=1e-9)
    assert_close(
        gm.component_log_prob(_t(y)), scipy_component_log_prob(w, mu, cov, y), rtol=1e-5, atol=1e-9
    )


@pytest.mark.parametrize(("kind", "d"), KIND_DIMS)
def test_log_prob_matches_torch_mixture_same_family(kind, d):
    gm, w, mu, cov = make_mixture(kind, (4,), 3, d, seed=20 + d)
    y = _t(points_near(mu, cov, 7, seed=2))
    expected = torch_reference(w, mu, cov).log_prob(y)
    assert_close(gm.log_prob(y), expected, rtol=1e-5, atol=1e-9)


def test_log_prob_broadcasts_a_single_point_against_the_batch():
    gm, w, mu, cov = make_mixture("full", (4,), 3, 2, seed=3)
    y = np.array([0.3, -0.7])
    expected = scipy_log_prob(w, mu, cov, np.broadcast_to(y, (4, 2)))
    assert_close(gm.log_prob(_t(y)), expected, rtol=1e-10)


def test_responsibilities_are_the_posterior_of_each_component():
    gm, w, mu, cov = make_mixture("full", (4,), 3, 2, seed=4)
    y = points_near(mu, cov, 5, seed=4)
    comp = scipy_component_log_prob(w, mu, cov, y)
    expected = np.exp(comp - special.logsumexp(comp, axis=-1, keepdims=True))
    resp = gm.responsibilities(_t(y))
    assert resp.shape == (5, 4, 3)
    assert_close(resp, expected, atol=1e-10)


@pytest.mark.parametrize("kind", COVARIANCE_TYPES)
def test_cdf_matches_scipy_norm_mixture(kind):
    gm, w, mu, cov = make_mixture(kind, (3,), 3, 2, seed=30)
    y = points_near(mu, cov, 9, seed=5)
    out = gm.cdf(_t(y))
    assert out.shape == y.shape
    assert_close(out, scipy_cdf(w, mu, cov, y), atol=1e-12)


@pytest.mark.parametrize("kind", COVARIANCE_TYPES)
def test_marginal_log_prob_matches_scipy(kind):
    gm, w, mu, cov = make_mixture(kind, (3,), 3, 2, seed=31)
    y = points_near(mu, cov, 9, seed=6)
    out = gm.marginal_log_prob(_t(y))
    assert out.shape == y.shape
    assert_close(out, scipy_marginal_log_prob(w, mu, cov, y), rtol=1e-10, atol=1e-10)


def test_cdf_never_exceeds_one_so_quantile_accepts_it():
    # log_softmax([0, -3, -3]).exp() sums to 1 + 2.2e-16 in float64.
    gm = GaussianMixture(
        _t([[0.0, -3.0, -3.0]]),
        torch.zeros(1, 3, 1, dtype=F64),
        torch.ones(1, 3, 1, dtype=F64),
        "diag",
    )
    p = gm.cdf(_t([[10.0]]))
    assert float(p) <= 1.0
    assert float(gm.quantile(p)) == math.inf


def test_log_prob_rejects_points_of_the_wrong_dimension():
    gm, *_ = make_mixture("diag", (3,), 2, 2, seed=7)
    for bad in (torch.zeros(3, 3, dtype=F64), torch.zeros(3, 1, dtype=F64), torch.tensor(0.0)):
        with pytest.raises(ValueError, match="last dimension of size 2"):
            gm.log_prob(bad)
    with pytest.raises(ValueError, match="last dimension"):
        gm.cdf(torch.zeros(3, 3, dtype=F64))
    with pytest.raises(ValueError, match="last dimension"):
        gm.marginal_log_prob(torch.zeros(3, 1, dtype=F64))


# ---------------------------------------------------------------------- sampling and moments
@pytest.mark.parametrize("kind", COVARIANCE_TYPES)
def test_sample_moments_match_mean_and_covariance(kind):
    gm, *_ = make_mixture(kind, (3,), 3, 3, seed=40)
    n = 100_000
    x = gm.sample(n, generator=gen(0)).numpy()  # [n, 3, 3]
    assert x.shape == (n, 3, 3)
    mean = gm.mean().numpy()
    cov = gm.covariance().numpy()
    # Mean: the standard error of a sample mean is std / sqrt(n).
    se_mean = x.std(axis=0, ddof=1) / math.sqrt(n)
    assert np.all(np.abs(x.mean(axis=0) - mean) < N_SE * se_mean)
    # Covariance: with the true mean, Cov_ij = E[Z_ij] for Z_ij = (x_i - m_i)(x_j - m_j), so
    # the sample mean of Z estimates it with standard error std(Z) / sqrt(n).
    c = x - mean
    z = c[..., :, None] * c[..., None, :]  # [n, B, D, D]
    se_cov = z.std(axis=0, ddof=1) / math.sqrt(n)
    assert np.all(np.abs(z.mean(axis=0) - cov) < N_SE * se_cov)


@pytest.mark.parametrize("kind", COVARIANCE_TYPES)
def test_sample_marginals_follow_the_mixture_cdf(kind):
    gm, w, mu, cov = make_mixture(kind, (2,), 3, 2, seed=41)
    x = gm.sample(20_000, generator=gen(1)).numpy()
    for b in range(2):
        for j in range(2):

            def cdf(v, b=b, j=j):
                pts = np.zeros((v.size, 2, 2))
                pts[:, b, j] = v
                return scipy_cdf(w, mu, cov, pts)[:, b, j]

            assert stats.kstest(x[:, b, j], cdf).pvalue > 1e-4


def test_sample_picks_components_with_their_weights():
    # Components 100 standard deviations apart: each sample's component is unambiguous.
    weights = np.array([[0.2, 0.5, 0.3], [0.6, 0.1, 0.3]])
    means = np.array([[[-100.0], [0.0], [100.0]], [[-100.0], [0.0], [100.0]]])
    gm = GaussianMixture.from_params(_t(weights), _t(means), torch.ones(2, 3, dtype=F64))
    n = 50_000
    x = gm.sample(n, generator=gen(2)).numpy()[..., 0]  # [n, 2]
    counts = np.stack([(x < -50).mean(0), (np.abs(x) < 50).mean(0), (x > 50).mean(0)], -1)
    se = np.sqrt(weights * (1 - weights) / n)
    assert np.all(np.abs(counts - weights) < N_SE * se)


def test_sample_is_reproducible_and_validates_n():
    gm, *_ = make_mixture("full", (3,), 2, 2, seed=42)
    a = gm.sample(5, generator=gen(3))
    b = gm.sample(5, generator=gen(3))
    assert torch.equal(a, b)
    assert gm.sample().shape == (1, 3, 2)
    for bad in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match=r"n must be an integer >= 1"):
            gm.sample(bad)


@pytest.mark.parametrize("kind", COVARIANCE_TYPES)
def test_variance_is_the_diagonal_of_covariance(kind):
    gm, *_ = make_mixture(kind, (4,), 3, 3, seed=43)
    var = gm.variance()
    assert var.shape == (4, 3)
    assert_close(var, torch.diagonal(gm.covariance(), dim1=-2, dim2=-1), rtol=1e-12)


@pytest.mark.parametrize("kind", COVARIANCE_TYPES)
def test_mean_and_covariance_match_the_law_of_total_covariance(kind):
    gm, w, mu, cov = make_mixture(kind, (4,), 3, 3, seed=44)
    mean = np.einsum("bk,bkd->bd", w, mu)
    within = np.einsum("bk,bkij->bij", w, cov)  # E[Sigma_k]
    second = np.einsum("bk,bki,bkj->bij", w, mu, mu)  # E[mu mu^T]
    between = second - mean[:, :, None] * mean[:, None, :]  # Cov[mu]
    assert_close(gm.mean(), mean, rtol=1e-12, atol=1e-12)
    assert gm.covariance().shape == (4, 3, 3)
    assert_close(gm.covariance(), within + between, rtol=1e-10, atol=1e-10)


# ---------------------------------------------------------------------- quantiles
@pytest.mark.parametrize("kind", COVARIANCE_TYPES)
def test_quantile_inverts_cdf(kind):
    gm, _, mu, cov = make_mixture(kind, (3,), 3, 2, seed=50)
    y = _t(points_near(mu, cov, 40, seed=7))
    p = gm.cdf(y)
    inner = (p > 1e-4) & (p < 1 - 1e-4)
    assert inner.float().mean() > 0.5
    back = gm.quantile(p)
    assert back.shape == y.shape
    # The condition number of the inverse is 1 / density: allow cdf rounding over it.
    density = gm.marginal_log_prob(y).exp()
    tol = 1e-9 * (1 + y.abs()) + 1e-13 / density
    assert bool(((back - y).abs() <= tol)[inner].all())


@pytest.mark.parametrize("kind", COVARIANCE_TYPES)
def test_cdf_of_quantile_is_the_level(kind):
    gm, *_ = make_mixture(kind, (3,), 3, 2, seed=51)
    levels = torch.tensor([1e-9, 1e-4, 0.01, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99, 1 - 1e-4], dtype=F64)
    q = levels.reshape(-1, 1, 1).expand(-1, 3, 2)
    x = gm.quantile(q)
    assert torch.isfinite(x).all()
    assert_close(gm.cdf(x), q, atol=1e-12)


def test_quantile_matches_brentq_on_the_scipy_cdf():
    kind = "full"
    gm, w, mu, cov = make_mixture(kind, (3,), 3, 2, seed=52)
    levels = [0.001, 0.05, 0.25, 0.5, 0.75, 0.95, 0.999]
    got = gm.quantile(_t(levels).reshape(-1, 1, 1)).numpy()
    std = marginal_std(cov)
    for b in range(3):
        for j in range(2):

            def cdf(v, b=b, j=j):
                return float((w[b] * stats.norm.cdf(v, mu[b, :, j], std[b, :, j])).sum())

            for i, level in enumerate(levels):
                root = optimize.brentq(
                    lambda v, level=level, cdf=cdf: cdf(v) - level, -100.0, 100.0, xtol=1e-14
                )
                assert got[i, b, j] == pytest.approx(root, abs=1e-9)


def test_quantile_of_a_single_gaussian_is_the_normal_ppf():
    gm = GaussianMixture.from_params(_t([[1.0]]), _t([[[1.5, -2.0]]]), _t([[[4.0, 0.25]]]))
    q = np.array([1e-6, 0.2, 0.5, 0.975])
    expected = stats.norm.ppf(q[:, None, None], loc=[1.5, -2.0], scale=[2.0, 0.5])
    assert_close(gm.quantile(_t(q).reshape(-1, 1, 1)), expected, rtol=1e-12, atol=1e-12)
    assert_close(gm.median(), [[1.5, -2.0]], atol=1e-12)


def test_interval_holds_its_coverage_of_samples():
    gm, *_ = make_mixture("full", (3,), 3, 2, seed=53)
    lo, hi = gm.interval(0.9)
    assert lo.shape == hi.shape == (3, 2)
    assert_close(lo, gm.quantile(0.05), atol=1e-12)
    assert_close(hi, gm.quantile(0.95), atol=1e-12)
    n = 50_000
    x = gm.sample(n, generator=gen(4))
    inside = ((x >= lo) & (x <= hi)).double().mean(0).numpy()
    below = (x < lo).double().mean(0).numpy()
    assert np.all(np.abs(inside - 0.9) < N_SE * math.sqrt(0.9 * 0.1 / n))
    assert np.all(np.abs(below - 0.05) < N_SE * math.sqrt(0.05 * 0.95 / n))


@pytest.mark.parametrize("coverage", [0.0, 1.0, -0.5, 1.5])
def test_interval_rejects_coverage_outside_the_open_unit_interval(coverage):
    gm, *_ = make_mixture("diag", (2,), 2, 1, seed=54)
    with pytest.raises(ValueError, match="coverage"):
        gm.interval(coverage)


def test_quantile_at_zero_and_one_is_infinite():
    gm, *_ = make_mixture("diag", (3,), 2, 2, seed=55)
    assert torch.equal(gm.quantile(0.0), torch.full((3, 2), -math.inf, dtype=F64))
    assert torch.equal(gm.quantile(1.0), torch.full((3, 2), math.inf, dtype=F64))
    mixed = gm.quantile(_t([0.0, 0.5, 1.0]).reshape(3, 1, 1))
    assert torch.all(mixed[0] == -math.inf)
    assert torch.all(mixed[2] == math.inf)
    assert torch.isfinite(mixed[1]).all()
    assert_close(mixed[1], gm.median(), atol=1e-12)


@pytest.mark.parametrize(
    "q", [-0.1, 1.1, math.nan, -math.inf, torch.tensor([0.5, 2.0], dtype=F64).reshape(2, 1, 1)]
)
def test_quantile_rejects_levels_outside_the_unit_interval(q):
    gm, *_ = make_mixture("diag", (3,), 2, 2, seed=56)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        gm.quantile(q)


def test_quantile_broadcasts_levels_against_the_batch():
    gm, *_ = make_mixture("spherical", (4,), 3, 2, seed=57)
    levels = [0.1, 0.5, 0.8]
    out = gm.quantile(_t(levels).reshape(3, 1, 1))
    assert out.shape == (3, 4, 2)
    for i, level in enumerate(levels):
        assert_close(out[i], gm.quantile(level), atol=1e-12)
    assert gm.quantile(0.3).shape == (4, 2)
    # Elementwise levels of the full (*B, D) shape.
    q = torch.rand(4, 2, generator=gen(5), dtype=F64)
    elementwise = gm.quantile(q)
    assert_close(gm.cdf(elementwise), q, atol=1e-12)


# ---------------------------------------------------------------------- marginals
@pytest.mark.parametrize("kind", COVARIANCE_TYPES)
@pytest.mark.parametrize("dims", [[3, 0], [1, 2, 4], [-1], 2, [4, 3, 2, 1, 0]])
def test_marginal_log_prob_matches_scipy_on_the_sub_covariance(kind, dims):
    d = 5
    gm, w, mu, cov = make_mixture(kind, (3,), 3, d, seed=60)
    index = [dims] if isinstance(dims, int) else [i % d for i in dims]
    sub = gm.marginal(dims)
    assert sub.n_dims == len(index)
    assert sub.covariance_type == kind
    sub_mu = mu[..., index]
    sub_cov = cov[..., index, :][..., :, index]
    y = points_near(sub_mu, sub_cov, 6, seed=8)
    assert_close(sub.log_prob(_t(y)), scipy_log_prob(w, sub_mu, sub_cov, y), rtol=1e-5, atol=1e-9)
    assert_close(sub.weights, w, atol=1e-12)


def test_one_dimensional_marginal_agrees_with_marginal_log_prob():
    gm, _, mu, cov = make_mixture("full", (3,), 3, 3, seed=61)
    y = _t(points_near(mu, cov, 5, seed=9))
    for j in range(3):
        assert_close(
            gm.marginal(j).log_prob(y[..., j : j + 1]),
            gm.marginal_log_prob(y)[..., j],
            rtol=1e-10,
            atol=1e-10,
        )


@pytest.mark.parametrize("dims", [[1, 1], [0, -3], [3], [-4], [0, 5], []])
def test_marginal_rejects_repeated_or_out_of_range_dims(dims):
    gm, *_ = make_mixture("full", (2,), 2, 3, seed=62)
    with pytest.raises(IndexError):
        gm.marginal(dims)


# ---------------------------------------------------------------------- mode and top
@pytest.mark.parametrize("kind", COVARIANCE_TYPES)
def test_mode_of_a_single_gaussian_is_its_mean(kind):
    gm, _, mu, _ = make_mixture(kind, (3,), 1, 3, seed=70)
    assert_close(gm.mode(), mu[:, 0], atol=1e-10)


def test_mode_of_a_bimodal_mixture_is_the_heavier_peak():
    # Equal variances, so the heavier component has the higher peak; the first mixture's
    # heavier component comes second, the second mixture's comes first.
    weights = np.array([[0.3, 0.7], [0.65, 0.35]])
    means = np.array([[[-3.0], [4.0]], [[-2.0], [5.0]]])
    var = np.array([[1.0, 1.0], [0.5, 0.5]])
    gm = GaussianMixture.from_params(_t(weights), _t(means), _t(var))
    mode = gm.mode().numpy()
    grid = np.linspace(-10.0, 10.0, 200_001)  # step 1e-4
    for b in range(2):
        density = sum(
            weights[b, k] * stats.norm.pdf(grid, means[b, k, 0], np.sqrt(var[b, k]))
            for k in range(2)
        )
        assert mode[b, 0] == pytest.approx(grid[np.argmax(density)], abs=2e-4)
    assert mode[0, 0] == pytest.approx(4.0, abs=1e-3)
    assert mode[1, 0] == pytest.approx(-2.0, abs=1e-3)


@pytest.mark.parametrize("kind", COVARIANCE_TYPES)
@pytest.mark.parametrize("d", [1, 2])
def test_mode_density_beats_the_means_and_a_grid(kind, d):
    gm, _, mu, cov = make_mixture(kind, (4,), 3, d, seed=71 + d)
    mode = gm.mode()
    assert mode.shape == (4, d)
    at_mode = gm.log_prob(mode).numpy()  # [4]
    at_means = gm.log_prob(_t(np.moveaxis(mu, -2, 0))).numpy()  # [K, 4]
    assert np.all(at_mode >= at_means.max(0) - 1e-12)
    # A dense grid over each mixture's range (log_prob itself is checked against SciPy above).
    for b in range(4):
        lo = (mu[b] - 4 * marginal_std(cov)[b]).min(0)
        hi = (mu[b] + 4 * marginal_std(cov)[b]).max(0)
        axes = [np.linspace(lo[j], hi[j], 2001 if d == 1 else 121) for j in range(d)]
        grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, d)
        on_grid = gm[b].log_prob(_t(grid)).numpy()
        assert at_mode[b] >= on_grid.max() - 1e-9


@pytest.mark.parametrize("kind", COVARIANCE_TYPES)
def test_mode_is_a_stationary_point_of_the_density(kind):
    gm, _, _, cov = make_mixture(kind, (4,), 3, 3, seed=73)
    y = gm.mode().clone().requires_grad_(True)
    gm.log_prob(y).sum().backward()
    # Gradient in units of the smallest component standard deviation.
    scale = _t(marginal_std(cov).min(-2))
    assert float((y.grad * scale).abs().max()) < 1e-4


def test_top_is_the_mean_of_the_heaviest_component():
    w, mu, cov = make_params("full", (2, 3), 4, 2, seed=74)
    gm = GaussianMixture.from_params(_t(w), _t(mu), _t(cov))
    heaviest = w.argmax(-1)
    expected = np.take_along_axis(mu, heaviest[..., None, None], axis=-2)[..., 0, :]
    assert gm.top().shape == (2, 3, 2)
    assert_close(gm.top(), expected, atol=0)
    assert not np.array_equal(heaviest, np.zeros_like(heaviest))


# ---------------------------------------------------------------------- construction
@pytest.mark.parametrize(("kind", "d"), [(k, d) for k in COVARIANCE_TYPES for d in (1, 2, 3)])
def test_from_params_round_trips_and_infers_the_covariance_type(kind, d):
    w, mu, cov = make_params(kind, (4,), 3, d, seed=80 + d)
    gm = GaussianMixture.from_params(_t(w), _t(mu), _t(cov))
    assert gm.covariance_type == kind
    assert (gm.batch_shape, gm.n_components, gm.n_dims) == ((4,), 3, d)
    assert gm.dtype == F64
    assert_close(gm.weights, w, rtol=1e-12, atol=1e-15)
    assert_close(gm.means, mu, atol=0)
    assert gm.covariances.shape == cov.shape
    assert_close(gm.covariances, cov, rtol=1e-10, atol=1e-12)
    assert_close(
        gm.component_covariance_matrices(), full_matrices(kind, cov, d), rtol=1e-10, atol=1e-12
    )
    explicit = GaussianMixture.from_params(_t(w), _t(mu), _t(cov), covariance=kind)
    assert explicit.covariance_type == kind
    assert_close(explicit.covariances, cov, rtol=1e-10, atol=1e-12)


def test_from_params_infers_the_type_in_one_dimension_from_the_rank():
    w = np.array([[0.4, 0.6]])
    mu = np.array([[[0.0], [1.0]]])
    for cov, kind in (
        ([[[[2.0]], [[3.0]]]], "full"),
        ([[[2.0], [3.0]]], "diag"),
        ([[2.0, 3.0]], "spherical"),
    ):
        gm = GaussianMixture.from_params(_t(w), _t(mu), _t(cov))
        assert gm.covariance_type == kind
        assert_close(gm.covariances, np.array(cov), rtol=1e-12)
        # All three describe the same distribution.
        assert_close(
            gm.log_prob(_t([[0.5]])),
            scipy_log_prob(w, mu, np.array([[[[2.0]], [[3.0]]]]), np.array([[0.5]])),
            rtol=1e-12,
        )


def test_from_params_accepts_array_likes_and_integer_means():
    gm = GaussianMixture.from_params([[0.5, 0.5]], [[[0], [2]]], [[1.0, 1.0]])
    assert gm.dtype == torch.get_default_dtype()
    assert gm.covariance_type == "spherical"
    assert_close(gm.mean(), [[1.0]], atol=1e-6)


@pytest.mark.parametrize(
    ("weights", "means", "cov", "kind", "message"),
    [
        ([[0.5, 0.5]], [[[0.0], [1.0]]], [[1.0, 1.0, 1.0]], None, "fit none of the covariance"),
        ([[0.5, 0.5]], [[[0.0], [1.0]]], [[[1.0], [1.0]]], "full", "full covariances must have"),
        ([[0.5, 0.5]], [[[0.0], [1.0]]], [[1.0, 1.0]], "diag", "diag covariances must have"),
        ([[0.5, 0.5]], [[[0.0], [1.0]]], [[1.0, 1.0]], "tied", "covariance must be one of"),
        ([[0.3, 0.3, 0.4]], [[[0.0], [1.0]]], [[1.0, 1.0]], None, "weights must have shape"),
        ([0.5, 0.5], [[[0.0], [1.0]]], [[1.0, 1.0]], None, "weights must have shape"),
        ([[0.5, 0.6]], [[[0.0], [1.0]]], [[1.0, 1.0]], None, "sum to 1"),
        ([[0.2, 0.2]], [[[0.0], [1.0]]], [[1.0, 1.0]], None, "sum to 1"),
        ([[-0.5, 1.5]], [[[0.0], [1.0]]], [[1.0, 1.0]], None, "non-negative"),
        ([[math.nan, 1.0]], [[[0.0], [1.0]]], [[1.0, 1.0]], None, "finite"),
        ([[0.5, 0.5]], [[[0.0], [1.0]]], [[0.0, 1.0]], None, "spherical variances must be"),
        ([[0.5, 0.5]], [[[0.0], [1.0]]], [[-1.0, 1.0]], None, "spherical variances must be"),
        ([[0.5, 0.5]], [[[0.0], [1.0]]], [[[1.0], [0.0]]], None, "diag variances must be"),
        ([[0.5, 0.5]], [[[0.0], [1.0]]], [[[1.0], [-2.0]]], None, "diag variances must be"),
        ([[0.5, 0.5]], [[[0.0], [1.0]]], [[[1.0], [math.inf]]], None, "diag variances must"),
        ([[0.5, 0.5]], [[[0.0], [1.0]]], [[[[1.0]], [[-1.0]]]], None, "positive-definite"),
        ([[1.0]], [[[0.0, 0.0]]], [[[[1.0, 2.0], [2.0, 1.0]]]], None, "positive-definite"),
        ([[1.0]], [[[0.0, 0.0]]], [[[[1.0, 1.0], [1.0, 1.0]]]], None, "positive-definite"),
        ([0.5, 0.5], [0.0, 1.0], [1.0, 1.0], None, "means must have shape"),
    ],
)
def test_from_params_rejects_bad_inputs(weights, means, cov, kind, message):
    with pytest.raises(ValueError, match=message):
        GaussianMixture.from_params(_t(weights), _t(means), _t(cov), kind)


def test_from_params_rejects_non_symmetric_covariances():
    cov = _t([[[[1.0, 0.0], [0.9, 1.0]]]])
    with pytest.raises(ValueError, match="symmetric"):
        GaussianMixture.from_params(_t([[1.0]]), torch.zeros(1, 1, 2, dtype=F64), cov)


def _valid_raw(kind: str, d: int = 2):
    logits = torch.zeros(3, 2, dtype=F64)
    means = torch.zeros(3, 2, d, dtype=F64)
    shape = {"full": (3, 2, d, d), "diag": (3, 2, d), "spherical": (3, 2)}[kind]
    prec = torch.ones(shape, dtype=F64)
    if kind == "full":
        prec = torch.eye(d, dtype=F64).expand(shape).clone()
    return logits, means, prec


@pytest.mark.parametrize("kind", COVARIANCE_TYPES)
def test_constructor_accepts_valid_raw_parameters(kind):
    logits, means, prec = _valid_raw(kind)
    gm = GaussianMixture(logits, means, prec, kind)
    assert_close(gm.weights, torch.full((3, 2), 0.5, dtype=F64), atol=1e-15)
    assert_close(
        gm.component_covariance_matrices(), torch.eye(2, dtype=F64).expand(3, 2, 2, 2), atol=1e-15
    )


@pytest.mark.parametrize("kind", COVARIANCE_TYPES)
def test_constructor_rejects_wrong_shapes(kind):
    logits, means, prec = _valid_raw(kind)
    with pytest.raises(ValueError, match="logits must have shape"):
        GaussianMixture(logits[:, :1], means, prec, kind)
    with pytest.raises(ValueError, match="precision_cholesky must have shape"):
        GaussianMixture(logits, means, prec[..., :1], kind)
    with pytest.raises(ValueError, match="precision_cholesky must have shape"):
        GaussianMixture(logits, means, prec[:2], kind)
    with pytest.raises(ValueError, match="means must have shape"):
        GaussianMixture(logits[0, 0], means[0, 0], prec[0, 0], kind)


def test_constructor_rejects_non_tensors():
    logits, means, prec = _valid_raw("diag")
    with pytest.raises(TypeError, match=r"logits must be a torch\.Tensor"):
        GaussianMixture(logits.tolist(), means, prec, "diag")
    with pytest.raises(TypeError, match="must all be torch or all NumPy"):
        GaussianMixture(logits, means.numpy(), prec, "diag")
    with pytest.raises(TypeError, match=r"precision_cholesky must be a torch\.Tensor"):
        GaussianMixture(logits, means, 1.0, "diag")
    with pytest.raises(TypeError, match="floating-point"):
        GaussianMixture(logits, means.long(), prec, "diag")


def test_constructor_rejects_invalid_precision_cholesky():
    logits, means, prec = _valid_raw("full")
    lower = prec.clone()
    lower[1, 0, 1, 0] = 0.3
    with pytest.raises(ValueError, match="upper-triangular"):
        GaussianMixture(logits, means, lower, "full")
    upper = prec.clone()
    upper[1, 0, 0, 1] = 0.3  # upper-triangular entries are allowed
    GaussianMixture(logits, means, upper, "full")
    for kind in COVARIANCE_TYPES:
        logits, means, prec = _valid_raw(kind)
        for value in (0.0, -1.0):
            bad = prec.clone()
            if kind == "full":
                bad[2, 1, 1, 1] = value
            else:
                bad[2, 1] = value
            with pytest.raises(ValueError, match="diagonal of precision_cholesky must be positive"):
                GaussianMixture(logits, means, bad, kind)
        bad = prec.clone()
        bad.view(-1)[0] = math.nan
        with pytest.raises(ValueError, match="finite"):
            GaussianMixture(logits, means, bad, kind)
    logits, means, prec = _valid_raw("diag")
    means[0, 0, 0] = math.inf
    with pytest.raises(ValueError, match="finite"):
        GaussianMixture(logits, means, prec, "diag")


def test_constructor_rejects_unknown_covariance_type():
    logits, means, prec = _valid_raw("diag")
    with pytest.raises(ValueError, match="covariance must be one of"):
        GaussianMixture(logits, means, prec, "tied")


def test_constructor_normalises_logits():
    logits = _t([[1.0, 2.0, 3.0]])
    gm = GaussianMixture(
        logits, torch.zeros(1, 3, 1, dtype=F64), torch.ones(1, 3, dtype=F64), "spherical"
    )
    assert_close(gm.weights, special.softmax([[1.0, 2.0, 3.0]], axis=-1), rtol=1e-12)
    assert_close(gm.log_weights.exp().sum(-1), [1.0], rtol=1e-12)


def test_precision_cholesky_from_covariance_is_the_upper_factor_of_the_precision():
    _, _, cov = make_params("full", (4,), 3, 3, seed=85)
    u = precision_cholesky_from_covariance(_t(cov)).numpy()
    assert np.array_equal(u, np.triu(u))
    assert np.all(np.diagonal(u, axis1=-2, axis2=-1) > 0)
    assert_close(u @ np.swapaxes(u, -1, -2), np.linalg.inv(cov), rtol=1e-9, atol=1e-9)
    # The scikit-learn convention: U = inverse(L).T with L the lower Cholesky factor.
    assert_close(
        u, np.swapaxes(np.linalg.inv(np.linalg.cholesky(cov)), -1, -2), rtol=1e-9, atol=1e-9
    )
    with pytest.raises(ValueError, match="positive-definite"):
        precision_cholesky_from_covariance(_t([[1.0, 2.0], [2.0, 1.0]]))


# ---------------------------------------------------------------------- indexing and batches
def test_integer_slice_and_tensor_indexing():
    gm, w, mu, cov = make_mixture("full", (5,), 3, 2, seed=90)
    y = _t(points_near(mu, cov, 4, seed=10))  # [4, 5, 2]
    full = gm.log_prob(y)
    assert len(gm) == 5

    one = gm[2]
    assert one.batch_shape == ()
    assert one.covariance_type == "full"
    assert_close(one.log_prob(y[:, 2]), full[:, 2], rtol=1e-12)
    assert_close(one.means, mu[2], atol=0)
    assert_close(gm[-1].weights, w[-1], rtol=1e-12)
    with pytest.raises(TypeError):
        len(one)
    with pytest.raises(IndexError):
        one[0]

    part = gm[1:4]
    assert part.batch_shape == (3,)
    assert len(part) == 3
    assert_close(part.log_prob(y[:, 1:4]), full[:, 1:4], rtol=1e-12)

    index = torch.tensor([4, 0, 4])
    picked = gm[index]
    assert picked.batch_shape == (3,)
    assert_close(picked.log_prob(y[:, index]), full[:, index], rtol=1e-12)
    assert_close(picked.covariances, cov[[4, 0, 4]], rtol=1e-10, atol=1e-12)

    mask = torch.tensor([True, False, True, False, True])
    assert_close(gm[mask].mean(), gm.mean()[mask], atol=0)


@pytest.mark.parametrize("key", [Ellipsis, (Ellipsis, 0), (0, Ellipsis), None, (0, 1)])
def test_indexing_rejects_ellipsis_none_and_too_many_indices(key):
    gm, *_ = make_mixture("diag", (5,), 3, 2, seed=91)
    with pytest.raises(IndexError):
        gm[key]


def test_cat_concatenates_along_the_batch():
    gm, _, mu, cov = make_mixture("full", (5,), 3, 2, seed=92)
    joined = GaussianMixture.cat([gm[:2], gm[2:3], gm[3:]])
    assert joined.batch_shape == (5,)
    assert joined.covariance_type == "full"
    y = _t(points_near(mu, cov, 4, seed=11))
    assert_close(joined.log_prob(y), gm.log_prob(y), rtol=1e-12)
    assert_close(joined.weights, gm.weights, rtol=1e-12)
    assert_close(joined.covariances, gm.covariances, rtol=1e-12)


def test_cat_rejects_mismatched_mixtures():
    full, *_ = make_mixture("full", (2,), 3, 2, seed=93)
    diag, *_ = make_mixture("diag", (2,), 3, 2, seed=93)
    fewer, *_ = make_mixture("full", (2,), 2, 2, seed=93)
    wider, *_ = make_mixture("full", (2,), 3, 3, seed=93)
    for other in (diag, fewer, wider):
        with pytest.raises(ValueError, match="cat needs mixtures of one covariance type"):
            GaussianMixture.cat([full, other])
    with pytest.raises(ValueError, match="at least one"):
        GaussianMixture.cat([])


def test_cat_rejects_mixtures_without_a_batch_dimension():
    gm, *_ = make_mixture("spherical", (2,), 2, 1, seed=94)
    with pytest.raises((ValueError, IndexError, TypeError)):
        GaussianMixture.cat([gm[0], gm[1]])


def test_to_casts_every_parameter():
    gm, w, mu, cov = make_mixture("full", (3,), 3, 2, seed=95)
    single = gm.to(torch.float32)
    assert single.dtype == torch.float32
    for tensor in (single.log_weights, single.means, single.precision_cholesky):
        assert tensor.dtype == torch.float32
    assert single.covariance_type == "full"
    y = points_near(mu, cov, 4, seed=12)
    out = single.log_prob(torch.as_tensor(y, dtype=torch.float32))
    assert out.dtype == torch.float32
    assert_close(out.double(), scipy_log_prob(w, mu, cov, y), rtol=1e-4, atol=1e-4)
    assert single.sample(3, generator=gen(6)).dtype == torch.float32
    assert single.to(F64).dtype == F64


@pytest.mark.parametrize("kind", COVARIANCE_TYPES)
def test_two_dimensional_batch(kind):
    d = 2
    w, mu, cov = make_params(kind, (2, 3), 3, d, seed=96)
    gm = GaussianMixture.from_params(_t(w), _t(mu), _t(cov))
    flat = GaussianMixture.from_params(
        _t(w.reshape(6, 3)), _t(mu.reshape(6, 3, d)), _t(cov.reshape(6, *cov.shape[2:]))
    )
    covs = full_matrices(kind, cov, d)
    assert gm.batch_shape == (2, 3)
    assert len(gm) == 2

    y = points_near(mu, covs, 5, seed=13)  # [5, 2, 3, D]
    out = gm.log_prob(_t(y))
    assert out.shape == (5, 2, 3)
    assert_close(out, scipy_log_prob(w, mu, covs, y), rtol=1e-5, atol=1e-9)
    assert_close(out.reshape(5, 6), flat.log_prob(_t(y.reshape(5, 6, d))), rtol=1e-12)

    assert gm.mean().shape == (2, 3, d)
    assert_close(gm.mean(), np.einsum("abk,abkd->abd", w, mu), rtol=1e-12, atol=1e-12)
    assert gm.covariance().shape == (2, 3, d, d)
    assert gm.mode().shape == (2, 3, d)
    assert_close(gm.mode().reshape(6, d), flat.mode(), atol=1e-12)

    assert gm.quantile(0.3).shape == (2, 3, d)
    q = gm.quantile(_t([0.1, 0.5, 0.9]).reshape(3, 1, 1, 1))
    assert q.shape == (3, 2, 3, d)
    assert_close(
        q.reshape(3, 6, d), flat.quantile(_t([0.1, 0.5, 0.9]).reshape(3, 1, 1)), atol=1e-10
    )
    lo, hi = gm.interval(0.8)
    assert lo.shape == hi.shape == (2, 3, d)
    assert bool((lo < hi).all())

    cell = gm[1, 2]
    assert cell.batch_shape == ()
    assert_close(cell.mean(), gm.mean()[1, 2], atol=0)
    assert gm[:, 1].batch_shape == (2,)

    # Sampling keeps each cell's draws with its own mixture.
    n = 20_000
    x = gm.sample(n, generator=gen(7)).numpy()
    assert x.shape == (n, 2, 3, d)
    se = x.std(axis=0, ddof=1) / math.sqrt(n)
    assert np.all(np.abs(x.mean(0) - gm.mean().numpy()) < N_SE * se)


def test_repr_names_the_shape_and_type():
    gm, *_ = make_mixture("diag", (4,), 3, 2, seed=97)
    assert (
        repr(gm) == "GaussianMixture(batch_shape=(4,), n_components=3, n_dims=2, covariance='diag')"
    )


# ---------------------------------------------------------------------- property tests
def _floats(lo: float, hi: float):
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False)


@st.composite
def mixtures_and_points(draw):
    kind = draw(st.sampled_from(COVARIANCE_TYPES))
    n, k, d, m = (draw(st.integers(1, 3)) for _ in range(4))
    logits = draw(hnp.arrays(np.float64, (n, k), elements=_floats(-5, 5)))
    means = draw(hnp.arrays(np.float64, (n, k, d), elements=_floats(-10, 10)))
    if kind == "full":
        diagonal = draw(hnp.arrays(np.float64, (n, k, d), elements=_floats(0.1, 5)))
        off = draw(hnp.arrays(np.float64, (n, k, d, d), elements=_floats(-2, 2)))
        prec = np.triu(off, 1) + diagonal[..., None] * np.eye(d)
    elif kind == "diag":
        prec = draw(hnp.arrays(np.float64, (n, k, d), elements=_floats(0.1, 5)))
    else:
        prec = draw(hnp.arrays(np.float64, (n, k), elements=_floats(0.1, 5)))
    y = draw(hnp.arrays(np.float64, (m, n, d), elements=_floats(-20, 20)))
    gm = GaussianMixture(_t(logits), _t(means), _t(prec), kind)
    return gm, y


PROPERTY_SETTINGS = settings(max_examples=25, deadline=None, derandomize=True, database=None)


@PROPERTY_SETTINGS
@given(mixtures_and_points())
def test_property_log_prob_is_finite_and_sums_the_components(case):
    gm, y = case
    comp = gm.component_log_prob(_t(y)).numpy()  # [m, n, K]
    out = gm.log_prob(_t(y)).numpy()
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out, special.logsumexp(comp, axis=-1), rtol=1e-12, atol=1e-12)
    # Each component against SciPy, with the covariance rebuilt from the precision factor.
    u = gm.precision_cholesky.numpy()
    if gm.covariance_type == "full":
        cov = np.linalg.inv(u @ np.swapaxes(u, -1, -2))
    else:
        cov = full_matrices(gm.covariance_type, 1.0 / u**2, gm.n_dims)
    w = gm.weights.numpy()
    np.testing.assert_allclose(
        comp, scipy_component_log_prob(w, gm.means.numpy(), cov, y), rtol=1e-6, atol=1e-6
    )
    resp = gm.responsibilities(_t(y)).numpy()
    assert np.all(resp >= 0)
    np.testing.assert_allclose(resp.sum(-1), 1.0, rtol=1e-12)


@PROPERTY_SETTINGS
@given(mixtures_and_points())
def test_property_cdf_is_a_non_decreasing_probability(case):
    gm, y = case
    ys = np.sort(np.concatenate([y, y + 0.5, np.full_like(y[:1], -1e3), y[:1] + 1e3]), axis=0)
    p = gm.cdf(_t(ys)).numpy()
    assert np.all((p >= 0) & (p <= 1))
    assert np.all(np.diff(p, axis=0) >= -1e-15)
    q = gm.quantile(_t(np.linspace(0.01, 0.99, 5)).reshape(5, 1, 1))
    np.testing.assert_allclose(
        gm.cdf(q).numpy(),
        np.broadcast_to(np.linspace(0.01, 0.99, 5)[:, None, None], q.shape),
        atol=1e-10,
    )


@PROPERTY_SETTINGS
@given(mixtures_and_points())
def test_property_covariance_is_symmetric_positive_semidefinite(case):
    gm, _ = case
    cov = gm.covariance().numpy()
    np.testing.assert_allclose(cov, np.swapaxes(cov, -1, -2), rtol=1e-12, atol=1e-12)
    eig = np.linalg.eigvalsh(cov)
    assert np.all(eig >= -1e-10 * np.abs(eig).max(-1, keepdims=True))
    np.testing.assert_allclose(
        np.diagonal(cov, axis1=-2, axis2=-1), gm.variance().numpy(), rtol=1e-10
    )
