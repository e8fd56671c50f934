"""Tests of the mixture quantile solver (``mdn.mixture_solvers.marginal_quantile``) and the
intervals built on it, on the mixtures that make a quantile hard: widely separated
components, tiny weights, near-degenerate components, far tails, large offsets, pooled
ensembles, log targets and the marginals of full covariances.

The reference is an independent CDF in NumPy/SciPy: ``ndtr`` summed over components,
computed on the side of the tail (``P(X <= x)`` below the median, ``P(X > x)`` above it)
so that it keeps its relative precision there; roots are found with SciPy's ``brentq``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import optimize, special, stats

from mdn import MDN
from mdn.distributions.mixture import GaussianMixture
from mdn.distributions.solvers import RTOL, marginal_quantile
from mdn.distributions.transforms import LogGaussianMixture

F64 = torch.float64
LEVELS = np.array([1e-12, 1e-9, 5e-4, 0.05, 0.3, 0.5, 0.7, 0.95, 0.9995, 1 - 1e-9])


def tail_probability(x: float, w: np.ndarray, mu: np.ndarray, sd: np.ndarray, q: float) -> float:
    """``P(X <= x)`` for ``q <= 1/2`` and ``P(X > x)`` above, with normalised weights."""
    z = (x - mu) / sd
    w = w / w.sum()
    return float((w * special.ndtr(z if q <= 0.5 else -z)).sum())


def assert_exact(x: float, w: np.ndarray, mu: np.ndarray, sd: np.ndarray, q: float) -> None:
    """``x`` is within 2 ulp of a point where the CDF is ``q``, to ``100 * RTOL`` of the tail
    probability: the iteration's tolerance, with room for the two CDFs' rounding."""
    t, tol = min(q, 1 - q), 100 * RTOL * min(q, 1 - q)
    below, above = x, x
    for _ in range(2):
        below, above = np.nextafter(below, -np.inf), np.nextafter(above, np.inf)
    at_below, at_above = (tail_probability(v, w, mu, sd, q) for v in (below, above))
    if q > 0.5:  # P(X > x) decreases
        at_below, at_above = at_above, at_below
    assert at_below <= t + tol and at_above >= t - tol, (q, x, at_below - t, at_above - t)


def brentq_quantile(w: np.ndarray, mu: np.ndarray, sd: np.ndarray, q: float) -> float:
    """The quantile by brentq on the tail probability, bracketed by component quantiles."""
    lo = float((mu + sd * stats.norm.ppf(q)).min()) - 1.0
    hi = float((mu + sd * stats.norm.ppf(q)).max()) + 1.0
    t = min(q, 1 - q)
    sign = 1.0 if q <= 0.5 else -1.0
    return optimize.brentq(
        lambda x: sign * (tail_probability(x, w, mu, sd, q) - t), lo, hi, xtol=1e-300, rtol=1e-15
    )


def solve(w: np.ndarray, mu: np.ndarray, sd: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """``marginal_quantile`` of one mixture at each level."""
    columns = [torch.tensor(np.repeat(a[:, None], len(levels), 1), dtype=F64) for a in (w, mu, sd)]
    return marginal_quantile(*columns, torch.tensor(levels, dtype=F64)).numpy()


def pooled_ensemble(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """5 members of 5 components each, pooled with equal weights, as MDN predicts."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 2.0, size=(5, 5))
    w = (np.exp(logits) / np.exp(logits).sum(1, keepdims=True)).ravel() / 5
    mu = rng.normal(0.0, 1.0, size=25) + np.repeat(rng.normal(0.0, 0.3, size=5), 5)
    return w, mu, np.exp(rng.normal(-1.0, 0.7, size=25))


HARD = {
    "separated": ([0.3, 0.4, 0.3], [-1e3, 0.0, 1e3], [1.0, 1.0, 1.0]),
    "tiny weights": ([1 - 2e-12, 1e-12, 1e-12], [0.0, 50.0, -50.0], [1.0, 1.0, 1.0]),
    "near-degenerate": ([0.2, 0.5, 0.3], [0.0, 0.5, 3.0], [1e-9, 1.0, 1e-6]),
    "scales 1e-4 to 1e4": ([0.25, 0.25, 0.25, 0.25], [0.0, 1.0, -2.0, 5.0], [1e-4, 1e-1, 1e2, 1e4]),
    "large offset": ([0.5, 0.5], [1e4, 1e4 + 3e-3], [1e-3, 2e-3]),
    "one component": ([1.0], [-3.0], [0.25]),
    "pooled ensemble": pooled_ensemble(0),
}


@pytest.mark.parametrize("name", list(HARD))
def test_hard_mixtures_are_exact_in_probability(name):
    w, mu, sd = (np.asarray(a, dtype=float) for a in HARD[name])
    x = solve(w, mu, sd, LEVELS)
    assert np.all(np.isfinite(x))
    assert np.all(np.diff(x) >= 0)  # quantiles are non-decreasing in the level
    for xi, q in zip(x, LEVELS, strict=True):
        assert_exact(xi, w, mu, sd, q)


@pytest.mark.parametrize("name", list(HARD))
def test_hard_mixtures_match_brentq_where_the_root_is_unique(name):
    w, mu, sd = (np.asarray(a, dtype=float) for a in HARD[name])
    x = solve(w, mu, sd, LEVELS)
    for xi, q in zip(x, LEVELS, strict=True):
        root = brentq_quantile(w, mu, sd, q)
        density = float((w * stats.norm.pdf(root, mu, sd)).sum())
        if density * max(sd) < 1e-12:  # flat CDF (e.g. between separated components)
            continue
        # An error of e in probability moves the root by e / density.
        tol = 1e-13 * (1 + abs(root)) + 1e-12 * min(q, 1 - q) / density
        assert abs(xi - root) <= tol, (q, xi, root)


def test_random_adversarial_mixtures_converge_within_the_component_quantiles():
    rng = np.random.default_rng(3)
    k, m = 7, 400
    w = rng.dirichlet(np.full(k, 0.2), size=m).T  # many near-zero weights
    mu = rng.normal(0.0, 1.0, size=(k, m)) * 10.0 ** rng.integers(-3, 7, size=(k, m))
    sd = 10.0 ** rng.uniform(-8, 4, size=(k, m))
    q = rng.choice(LEVELS, size=m)
    x = marginal_quantile(*(torch.tensor(a, dtype=F64) for a in (w, mu, sd, q)), max_iter=200)
    x = x.numpy()
    component_q = mu + sd * stats.norm.ppf(q)
    assert np.all((x >= component_q.min(0)) & (x <= component_q.max(0)))
    for j in range(m):
        assert_exact(x[j], w[:, j], mu[:, j], sd[:, j], q[j])


def test_weights_are_normalised_as_float32_networks_need():
    w, mu, sd = pooled_ensemble(1)
    x = solve(w * (1 - 9e-8), mu, sd, LEVELS)  # float32 softmax: sums to 1 - 9e-8
    for xi, q in zip(x, LEVELS, strict=True):
        assert_exact(xi, w, mu, sd, q)


@pytest.mark.parametrize("threads", [1, 2])
def test_each_result_is_independent_of_the_batch_to_the_last_bit(threads):
    rng = np.random.default_rng(4)
    k, m = 25, 1400  # 35,000 entries: torch splits an operation between 2 threads
    w = torch.tensor(rng.dirichlet(np.ones(k), size=m).T)
    mu, sd = (
        torch.tensor(rng.normal(size=(k, m))),
        torch.tensor(np.exp(rng.normal(-1, 0.5, (k, m)))),
    )
    q = torch.tensor(rng.uniform(0.01, 0.99, size=m))
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        whole = marginal_quantile(w, mu, sd, q)
        for start, stop in [(0, 1), (3, 10), (5, 69), (7, 700), (1, 1400)]:
            part = marginal_quantile(
                w[:, start:stop], mu[:, start:stop], sd[:, start:stop], q[start:stop]
            )
            assert torch.equal(part, whole[start:stop]), (start, stop)
        order = torch.randperm(m, generator=torch.Generator().manual_seed(0))
        shuffled = marginal_quantile(w[:, order], mu[:, order], sd[:, order], q[order])
        assert torch.equal(shuffled, whole[order])
    finally:
        torch.set_num_threads(before)


def test_a_log_mixture_interval_is_exp_of_the_base_interval_and_exact():
    w, mu, sd = pooled_ensemble(2)
    base = GaussianMixture.from_params(
        torch.tensor(w[None]), torch.tensor(mu[None, :, None]), torch.tensor(sd[None] ** 2)
    )  # spherical
    lower, upper = LogGaussianMixture(base).interval(0.999)
    base_lower, base_upper = base.interval(0.999)
    assert torch.equal(lower, base_lower.exp()) and torch.equal(upper, base_upper.exp())
    for bound, q in ((lower, 0.0005), (upper, 0.9995)):
        # exp and log round-trip to 1 ulp; an ulp of log(y) moves the CDF by far less.
        t = tail_probability(math.log(float(bound)), w, mu, sd, q)
        assert abs(t - 0.0005) <= 1e-13


def test_each_marginal_of_a_full_covariance_mixture():
    rng = np.random.default_rng(5)
    k, d = 4, 3
    a = rng.normal(size=(2, k, d, d))
    cov = a @ np.swapaxes(a, -1, -2) + 0.1 * np.eye(d)
    w = rng.dirichlet(np.ones(k), size=2)
    mu = rng.normal(0.0, 2.0, size=(2, k, d))
    gm = GaussianMixture.from_params(torch.tensor(w), torch.tensor(mu), torch.tensor(cov), "full")
    levels = torch.tensor([0.001, 0.05, 0.5, 0.95, 0.999], dtype=F64).reshape(-1, 1, 1)
    x = gm.quantile(levels).numpy()  # [5, 2, d]
    for b in range(2):
        for j in range(d):
            sd = np.sqrt(cov[b, :, j, j])
            for i, q in enumerate(levels.ravel().tolist()):
                root = brentq_quantile(w[b], mu[b, :, j], sd, q)
                assert x[i, b, j] == pytest.approx(root, abs=1e-12 * (1 + abs(root)))


def test_predict_interval_is_exact_for_a_log_target_ensemble():
    rng = np.random.default_rng(6)
    X = rng.uniform(0.5, 2.0, size=(300, 2))
    y = np.exp(X[:, 0] - X[:, 1] + 0.3 * rng.normal(size=300))
    model = MDN(
        n_mix=3,
        hidden=(16,),
        n_iter=50,
        n_models=2,
        target_transform="log",
        verbose=0,
        random_state=0,
    ).fit(X, y)
    lower, upper = model.predict_interval(X[:40], coverage=0.9)
    base = model.predict_dist(X[:40]).base
    w, mu = base.weights.numpy(), base.means.numpy()[..., 0]
    sd = np.sqrt(base.component_covariance_matrices().numpy()[..., 0, 0])
    for i in range(40):
        for bound, q in ((lower[i], 0.05), (upper[i], 0.95)):
            assert abs(tail_probability(math.log(bound), w[i], mu[i], sd[i], q) - 0.05) <= 1e-13
