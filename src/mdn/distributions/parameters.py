"""What users give a ``GaussianMixture``, checked and turned into its parameters.

``check_parameters`` and ``precision_cholesky_from_covariance`` take torch tensors or NumPy
arrays; ``parameters_from_covariances`` (behind ``GaussianMixture.from_params``) builds torch
tensors from any array-like, and imports torch only when called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from array_api_compat import device

from mdn.distributions.kernels import kernels_for
from mdn.params import validate

if TYPE_CHECKING:
    from torch import Tensor

__all__ = ["check_parameters", "parameters_from_covariances", "precision_cholesky_from_covariance"]


def precision_cholesky_from_covariance(covariance: Any) -> Any:
    """Upper-triangular ``U`` with ``U @ U.mT == inverse(covariance)``.

    Parameters
    ----------
    covariance : Tensor or ndarray of shape (..., D, D)
        Symmetric positive-definite matrices.

    Returns
    -------
    Tensor or ndarray of shape (..., D, D)
        ``U = inverse(L).mT`` where ``L`` is the lower Cholesky factor of ``covariance``
        (the convention of scikit-learn's ``GaussianMixture.precisions_cholesky_``).
    """
    kernels = kernels_for(covariance)
    xp = kernels.xp
    chol, failed = kernels.cholesky_ex(covariance)
    if failed:
        raise ValueError(
            "covariance matrices must be symmetric positive-definite; "
            f"{failed} of them are not (check for zero or negative variances "
            "and for correlations of magnitude >= 1)"
        )
    eye = xp.eye(covariance.shape[-1], dtype=covariance.dtype, device=device(covariance))
    inverse = kernels.solve_triangular(chol, xp.broadcast_to(eye, chol.shape), upper=False)
    return xp.matrix_transpose(inverse)


def parameters_from_covariances(
    weights: Tensor, means: Tensor, covariances: Tensor, covariance: str | None
) -> tuple[Tensor, Tensor, Tensor, str]:
    """Log-weights, means, precision Cholesky factors and type from weights and covariances.

    Parameters
    ----------
    weights, means, covariances : array-like
        As ``GaussianMixture.from_params`` takes them.
    covariance : {"full", "diag", "spherical"} or None
        None infers the type from the shape of ``covariances``.

    Returns
    -------
    log_weights, means, precision_cholesky : Tensor
    covariance : str

    Raises
    ------
    ValueError
        Naming the shape or value that is wrong.
    """
    import torch

    means = torch.as_tensor(means)
    if not means.is_floating_point():
        means = means.to(torch.get_default_dtype())
    weights = torch.as_tensor(weights, dtype=means.dtype, device=means.device)
    covariances = torch.as_tensor(covariances, dtype=means.dtype, device=means.device)
    if means.ndim < 2:
        raise ValueError(f"means must have shape (*B, K, D), got {tuple(means.shape)}")
    lead = means.shape[:-1]  # (*B, K)
    shapes = {
        "full": (*lead, means.shape[-1], means.shape[-1]),
        "diag": tuple(means.shape),
        "spherical": tuple(lead),
    }
    if covariance is None:
        covariance = next((t for t, s in shapes.items() if tuple(covariances.shape) == s), None)
        if covariance is None:
            raise ValueError(
                f"covariances of shape {tuple(covariances.shape)} fit none of the covariance "
                f"types for means of shape {tuple(means.shape)}: expected {shapes['full']} "
                f"(full), {shapes['diag']} (diag) or {shapes['spherical']} (spherical)"
            )
    validate("covariance", covariance)
    if tuple(covariances.shape) != shapes[covariance]:
        raise ValueError(
            f"{covariance} covariances must have shape {shapes[covariance]} for means of "
            f"shape {tuple(means.shape)}, got {tuple(covariances.shape)}"
        )
    if tuple(weights.shape) != tuple(lead):
        raise ValueError(
            f"weights must have shape {tuple(lead)} (batch and components of the means), "
            f"got {tuple(weights.shape)}"
        )
    if bool((weights < 0).any()) or not bool(torch.isfinite(weights).all()):
        raise ValueError("weights must be finite and non-negative")
    sums = weights.sum(-1)
    if not torch.allclose(sums, torch.ones_like(sums), atol=1e-4):
        raise ValueError(
            "weights must sum to 1 over the components (last axis); got sums between "
            f"{float(sums.min()):.6g} and {float(sums.max()):.6g}: divide them by their sum"
        )
    if covariance == "full":
        tolerance = 1e-6 * float(covariances.abs().amax()) if covariances.numel() else 0.0
        if not torch.allclose(covariances, covariances.mT, rtol=0.0, atol=tolerance):
            raise ValueError(
                "full covariance matrices must be symmetric (covariances[..., "
                "i, j] == covariances[..., j, i])"
            )
        precision_cholesky = precision_cholesky_from_covariance(covariances)
    else:
        if not bool((covariances > 0).all()) or not bool(torch.isfinite(covariances).all()):
            raise ValueError(f"{covariance} variances must be finite and positive")
        precision_cholesky = covariances.rsqrt()
    return weights.log(), means, precision_cholesky, covariance


def check_parameters(logits: Any, means: Any, prec_chol: Any, covariance: str) -> None:
    """Check the parameters ``GaussianMixture`` is built from: types, shapes and values.

    Parameters
    ----------
    logits : Tensor or ndarray of shape (*B, K)
    means : Tensor or ndarray of shape (*B, K, D)
    prec_chol : Tensor or ndarray
        The precision Cholesky factors in the shape of ``covariance``'s type (see
        ``GaussianMixture``).
    covariance : {"full", "diag", "spherical"}

    Raises
    ------
    TypeError
        If a parameter is not a floating-point torch tensor or NumPy array, or they are not
        all of one library.
    ValueError
        If a shape does not fit, a value is not finite, the diagonal of ``prec_chol`` is
        not positive, or a full ``prec_chol`` is not upper-triangular.
    """
    libraries = set()
    for name, value in (("logits", logits), ("means", means), ("precision_cholesky", prec_chol)):
        try:
            kernels = kernels_for(value)
        except TypeError:
            raise TypeError(
                f"{name} must be a torch.Tensor or a NumPy array, got {type(value).__name__}"
            ) from None
        if not kernels.xp.isdtype(value.dtype, "real floating"):
            raise TypeError(f"{name} must be a floating-point tensor, got {value.dtype}")
        libraries.add(kernels.name)
    if len(libraries) > 1:
        raise TypeError("logits, means and precision_cholesky must all be torch or all NumPy")
    xp = kernels.xp
    if means.ndim < 2:
        raise ValueError(f"means must have shape (*B, K, D), got {tuple(means.shape)}")
    lead, d = tuple(means.shape[:-1]), means.shape[-1]
    if tuple(logits.shape) != lead:
        raise ValueError(
            f"logits must have shape {lead} to match means of shape {tuple(means.shape)}, "
            f"got {tuple(logits.shape)}"
        )
    expected = {"full": (*lead, d, d), "diag": (*lead, d), "spherical": lead}[covariance]
    if tuple(prec_chol.shape) != expected:
        raise ValueError(
            f"{covariance} precision_cholesky must have shape {expected} for means of shape "
            f"{tuple(means.shape)}, got {tuple(prec_chol.shape)}"
        )
    if not bool(xp.all(xp.isfinite(means))) or not bool(xp.all(xp.isfinite(prec_chol))):
        raise ValueError("means and precision_cholesky must be finite")
    diagonal = xp.linalg.diagonal(prec_chol) if covariance == "full" else prec_chol
    if not bool(xp.all(diagonal > 0)):
        raise ValueError("the diagonal of precision_cholesky must be positive")
    if covariance == "full" and bool(xp.any(xp.tril(prec_chol, k=-1) != 0)):
        raise ValueError("full precision_cholesky must be upper-triangular")
