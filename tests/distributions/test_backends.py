"""One source for the mixture maths, two array libraries: every public method of
``GaussianMixture``, ``LogGaussianMixture`` and ``AffineTransform`` gives the same numbers on
torch tensors (what ``MDN`` runs) and on NumPy arrays (what the torch-free ``OnnxPredictor``
runs), on the same parameters and points. The NumPy side computes the normal CDF and its
inverse itself (no SciPy), to about 1e-13 relative, so the two agree to 1e-9 or better.
"""

from __future__ import annotations

import inspect
import subprocess
import sys

import numpy as np
import pytest
import torch

from mdn.distributions.mixture import GaussianMixture
from mdn.distributions.transforms import AffineTransform, LogGaussianMixture

KINDS = ("full", "diag", "spherical")


def _parameters(kind: str, d: int, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Logits, means and precision factors of a batch (3, 2) of 4-component mixtures, with
    components far apart and close together, wide and narrow."""
    rng = np.random.default_rng(seed)
    batch, k = (3, 2), 4
    logits = rng.normal(size=(*batch, k))
    means = rng.normal(scale=2.0, size=(*batch, k, d))
    if kind == "full":
        factor = np.triu(rng.normal(scale=0.4, size=(*batch, k, d, d)), 1)
        factor += np.eye(d) * rng.uniform(0.5, 3.0, size=(*batch, k, d))[..., None]
    elif kind == "diag":
        factor = rng.uniform(0.5, 3.0, size=(*batch, k, d))
    else:
        factor = rng.uniform(0.5, 3.0, size=(*batch, k))
    return logits, means, factor


def _pair(kind: str, d: int) -> tuple[GaussianMixture, GaussianMixture]:
    arrays = _parameters(kind, d)
    torch_mixture = GaussianMixture(*(torch.tensor(a) for a in arrays), kind)
    numpy_mixture = GaussianMixture(*arrays, kind)
    return torch_mixture, numpy_mixture


def _points(d: int, missing: bool = False) -> np.ndarray:
    points = np.random.default_rng(1).normal(scale=2.0, size=(5, 3, 2, d))
    if missing and d > 1:
        points[0, 0, 0, 0] = np.nan  # one coordinate of one point
        points[1, 1, 1, :] = np.nan  # every coordinate of another
    return points


def _as(mixture: object, values: np.ndarray) -> object:
    means = getattr(mixture, "base", mixture).means
    return torch.tensor(values) if isinstance(means, torch.Tensor) else values


#: Every public method of a mixture, called the same way on both libraries: name -> call.
GAUSSIAN_CALLS = {
    "component_log_prob": lambda m: m.component_log_prob(_as(m, _points(m.n_dims, True))),
    "log_prob": lambda m: m.log_prob(_as(m, _points(m.n_dims, True))),
    "responsibilities": lambda m: m.responsibilities(_as(m, _points(m.n_dims))),
    "sample": lambda m: None,  # different generators: compared in distribution below
    "mean": lambda m: m.mean(),
    "covariance": lambda m: m.covariance(),
    "variance": lambda m: m.variance(),
    "top": lambda m: m.top(),
    "mode": lambda m: m.mode(),
    "marginal": lambda m: m.marginal([m.n_dims - 1, 0] if m.n_dims > 1 else 0).log_prob(
        _as(m, _points(m.n_dims)[..., [m.n_dims - 1, 0][: m.n_dims]])
    ),
    "cdf": lambda m: m.cdf(_as(m, _points(m.n_dims))),
    "marginal_log_prob": lambda m: m.marginal_log_prob(_as(m, _points(m.n_dims))),
    "quantile": lambda m: m.quantile(
        _as(m, np.array([1e-9, 0.02, 0.5, 0.9, 1.0]).reshape(5, 1, 1, 1))
    ),
    "median": lambda m: m.median(),
    "interval": lambda m: m.interval(0.8),
    "component_covariance_matrices": lambda m: m.component_covariance_matrices(),
    "cat": lambda m: type(m).cat([m, m[1:]]).mean(),
    "pool": lambda m: m.pool(1).log_prob(_as(m, _points(m.n_dims)[:, :, 0])),
    "replace": lambda m: m.replace(means=m.means + 1.0).mean(),
    "to": lambda m: None,  # torch only: moves tensors
    "from_params": lambda m: None,  # builds torch tensors from any array-like
}
LOG_CALLS = {
    "log_prob": lambda m: m.log_prob(_as(m, np.exp(_points(m.n_dims, True)))),
    "cdf": lambda m: m.cdf(_as(m, np.exp(_points(m.n_dims)))),
    "sample": lambda m: None,
    "mean": lambda m: m.mean(),
    "covariance": lambda m: m.covariance(),
    "variance": lambda m: m.variance(),
    "top": lambda m: m.top(),
    "mode": lambda m: m.mode(),
    "marginal": lambda m: m.marginal(0).mean(),
    "quantile": lambda m: m.quantile(0.3),
    "median": lambda m: m.median(),
    "interval": lambda m: m.interval(0.9),
    "cat": lambda m: type(m).cat([m, m]).median(),
    "to": lambda m: None,
}


def _public(cls: type) -> set[str]:
    return {
        name
        for name, member in vars(cls).items()
        if not name.startswith("_")
        and (inspect.isfunction(member) or isinstance(member, (staticmethod, classmethod)))
    }


def test_every_public_method_is_compared():
    assert _public(GaussianMixture) == set(GAUSSIAN_CALLS)
    assert _public(LogGaussianMixture) == set(LOG_CALLS)


#: The mode's fixed point stops once no point moves by 1e-6 of a component's spread: the
#: two libraries' last iterates agree to that, not to rounding.
TOLERANCES = {"mode": {"rtol": 1e-6, "atol": 1e-6}}


def _same(got: object, want: object, name: str) -> None:
    got = got if isinstance(got, tuple) else (got,)
    want = want if isinstance(want, tuple) else (want,)
    tolerance = TOLERANCES.get(name, {"rtol": 1e-9, "atol": 1e-12})
    for g, w in zip(got, want, strict=True):
        assert isinstance(w, np.ndarray), f"{name} on NumPy arrays returned {type(w).__name__}"
        np.testing.assert_allclose(g.numpy(), w, **tolerance, err_msg=name)


@pytest.mark.parametrize("d", [1, 3])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", sorted(GAUSSIAN_CALLS))
def test_a_gaussian_mixture_gives_the_same_numbers_on_both_libraries(kind, d, name):
    torch_mixture, numpy_mixture = _pair(kind, d)
    want = GAUSSIAN_CALLS[name](numpy_mixture)
    if want is not None:
        _same(GAUSSIAN_CALLS[name](torch_mixture), want, name)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", sorted(LOG_CALLS))
def test_a_log_mixture_gives_the_same_numbers_on_both_libraries(kind, name):
    torch_mixture, numpy_mixture = (LogGaussianMixture(m) for m in _pair(kind, 2))
    want = LOG_CALLS[name](numpy_mixture)
    if want is not None:
        _same(LOG_CALLS[name](torch_mixture), want, name)


@pytest.mark.parametrize("kind", KINDS)
def test_samples_follow_the_same_distribution_on_both_libraries(kind):
    """Draws come from each library's own generator; their share below each marginal's
    median is 1/2 on both, within 4.5 standard errors."""
    torch_mixture, numpy_mixture = _pair(kind, 2)
    n = 20_000
    draws = {
        "torch": torch_mixture.sample(n, torch.Generator().manual_seed(0)).numpy(),
        "numpy": numpy_mixture.sample(n, np.random.default_rng(0)),
    }
    median = numpy_mixture.median()
    for library, values in draws.items():
        assert values.shape == (n, 3, 2, 2), library
        share = (values < median).mean(0)
        assert np.abs(share - 0.5).max() < 4.5 * np.sqrt(0.25 / n), library


@pytest.mark.parametrize("kind", KINDS)
def test_an_affine_transform_folds_in_the_same_way_on_both_libraries(kind):
    torch_mixture, numpy_mixture = _pair(kind, 3)
    loc, scale = np.array([1.0, -2.0, 0.5]), np.array([2.0, -0.5, 3.0])  # anisotropic, a flip
    transform = AffineTransform(loc, scale)
    got, want = transform(torch_mixture), transform(numpy_mixture)
    assert got.covariance_type == want.covariance_type == transform.covariance_after(kind)
    for name in ("log_weights", "means", "precision_cholesky"):
        np.testing.assert_allclose(getattr(got, name).numpy(), getattr(want, name), rtol=1e-12)
    assert float(transform.log_abs_det_jacobian()) == pytest.approx(np.log(3.0))


def test_numpy_mixtures_import_no_torch():
    code = (
        "import sys, numpy as np\n"
        "from mdn.distributions.mixture import GaussianMixture\n"
        "from mdn.distributions.transforms import LogGaussianMixture\n"
        "m = LogGaussianMixture(GaussianMixture(np.zeros((2, 3)), np.zeros((2, 3, 1)),"
        " np.ones((2, 3, 1, 1)), 'full'))\n"
        "m.interval(0.9); m.mode(); m.sample(3, np.random.default_rng(0))\n"
        "print(sorted(n for n in sys.modules if n.split('.')[0] in ('torch', 'scipy')))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"


def test_mixed_libraries_and_to_are_refused():
    torch_mixture, numpy_mixture = _pair("diag", 2)
    with pytest.raises(TypeError, match="must all be torch or all NumPy"):
        GaussianMixture(
            numpy_mixture.log_weights, torch_mixture.means, torch_mixture.precision_cholesky
        )
    with pytest.raises(TypeError, match="to\\(\\) moves torch tensors"):
        numpy_mixture.to(torch.float32)


def test_numpy_mixtures_sample_from_seeds_and_torch_ones_from_generators_only():
    torch_mixture, numpy_mixture = _pair("full", 2)
    np.testing.assert_array_equal(numpy_mixture.sample(3, 0), numpy_mixture.sample(3, 0))
    assert numpy_mixture.sample(3).shape == (3, 3, 2, 2)  # fresh entropy
    with pytest.raises(TypeError, match=r"torch\.Generator or None"):
        torch_mixture.sample(3, np.random.default_rng(0))


def test_numpy_kernels_keep_a_float32_mixture_in_float32():
    arrays = [a.astype(np.float32) for a in _parameters("diag", 2)]
    mixture = GaussianMixture(*arrays, "diag")
    points = _points(2).astype(np.float32)
    for values in (mixture.cdf(points), mixture.log_prob(points), mixture.quantile(0.3)):
        assert values.dtype == np.float32


@pytest.mark.parametrize("library", ["torch", "numpy"])
def test_diagonal_covariances_are_zero_off_the_diagonal_even_for_infinite_variances(library):
    std = np.array([[[1e20, 1.0]]], dtype=np.float32)  # float32: the variance overflows
    arrays = (np.zeros((1, 1), np.float32), np.zeros((1, 1, 2), np.float32), 1.0 / std)
    if library == "torch":
        arrays = tuple(torch.tensor(a) for a in arrays)
    with np.errstate(over="ignore"):  # NumPy says so where float32 overflows; torch does not
        matrices = np.asarray(GaussianMixture(*arrays, "diag").component_covariance_matrices())
    assert matrices[0, 0, 0, 1] == matrices[0, 0, 1, 0] == 0.0
    assert np.isinf(matrices[0, 0, 0, 0])


@pytest.mark.parametrize("coverage", [torch.tensor(0.8), np.array(0.8), np.float32(0.8)])
def test_a_coverage_may_be_a_zero_dimensional_array(coverage):
    torch_mixture, _ = _pair("diag", 2)
    lower = torch_mixture.interval(coverage)[0]
    np.testing.assert_allclose(lower.numpy(), torch_mixture.interval(0.8)[0].numpy(), rtol=1e-6)
