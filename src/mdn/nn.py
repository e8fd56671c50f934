"""PyTorch modules: the mixture density head, the MLP trunk, and the two joined."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from mdn.mixture import COVARIANCE_TYPES, GaussianMixture

__all__ = ["ACTIVATIONS", "MLP", "MixtureDensityHead", "MixtureDensityNetwork"]

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}


class MixtureDensityHead(nn.Module):
    """Maps features to a ``GaussianMixture`` over ``n_targets`` dimensions.

    One linear layer produces, per component, a logit, a mean and the parameters of the
    precision's Cholesky factor ``U``. Its diagonal is ``1 / (softplus(a) + sqrt(epsilon))``,
    so that every component's conditional variances (and hence its marginal variances)
    stay at or above ``epsilon``; the strictly upper part of ``U`` is unconstrained.

    Parameters
    ----------
    in_features : int
        Size of the incoming features.
    n_targets : int
        Target dimension D.
    n_mix : int
        Number of components K.
    covariance : {"full", "diag", "spherical"}
    epsilon : float
        Variance floor of each component, in the units the network sees.

    Examples
    --------
    >>> head = MixtureDensityHead(16, n_targets=2, n_mix=3)
    >>> gm = head(torch.randn(8, 16))
    >>> gm.log_prob(torch.randn(8, 2)).shape
    torch.Size([8])
    """

    def __init__(
        self,
        in_features: int,
        n_targets: int,
        n_mix: int = 5,
        covariance: str = "full",
        epsilon: float = 1e-3,
    ) -> None:
        super().__init__()
        if covariance not in COVARIANCE_TYPES:
            raise ValueError(f"covariance must be one of {COVARIANCE_TYPES}, got {covariance!r}")
        for name, value in (("in_features", in_features), ("n_targets", n_targets),
                            ("n_mix", n_mix)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not (isinstance(epsilon, (int, float)) and epsilon > 0 and math.isfinite(epsilon)):
            raise ValueError(f"epsilon must be a positive number, got {epsilon!r}")
        self.n_targets, self.n_mix, self.covariance, self.epsilon = (
            n_targets, n_mix, covariance, float(epsilon)
        )
        d = n_targets
        self.n_scale = {"full": d * (d + 1) // 2, "diag": d, "spherical": 1}[covariance]
        self.linear = nn.Linear(in_features, n_mix * (1 + d + self.n_scale))
        if covariance == "full":
            # Where the diagonal and then the strict upper triangle go in a flat D*D matrix.
            rows, cols = torch.triu_indices(d, d, offset=1)
            flat = torch.cat([torch.arange(d) * (d + 1), rows * d + cols])
            self.register_buffer("_triu_index", flat, persistent=False)

    def forward(self, features: Tensor) -> GaussianMixture:
        k, d = self.n_mix, self.n_targets
        out = self.linear(features)
        logits, means, raw = out.split([k, k * d, k * self.n_scale], dim=-1)
        means = means.unflatten(-1, (k, d))  # [*B, K, D]
        raw = raw.unflatten(-1, (k, self.n_scale))  # [*B, K, S]
        n_diag = 1 if self.covariance == "spherical" else d
        inv_std = 1.0 / (F.softplus(raw[..., :n_diag]) + math.sqrt(self.epsilon))
        if self.covariance == "full":
            entries = torch.cat([inv_std, raw[..., n_diag:]], dim=-1)  # [*B, K, S]
            flat = entries.new_zeros(*entries.shape[:-1], d * d)
            index = self._triu_index.expand(*entries.shape[:-1], -1)
            prec_chol = flat.scatter(-1, index, entries).unflatten(-1, (d, d))  # [*B, K, D, D]
        elif self.covariance == "diag":
            prec_chol = inv_std  # [*B, K, D]
        else:
            prec_chol = inv_std.squeeze(-1)  # [*B, K]
        return GaussianMixture(logits, means, prec_chol, self.covariance, validate=False)

    def extra_repr(self) -> str:
        return (f"n_targets={self.n_targets}, n_mix={self.n_mix}, "
                f"covariance={self.covariance!r}, epsilon={self.epsilon:g}")


class MLP(nn.Sequential):
    """Fully connected layers, each followed by the activation.

    Parameters
    ----------
    in_features : int
    hidden : sequence of int
        Widths of the hidden layers (empty for none).
    activation : str
        One of ``ACTIVATIONS``.
    """

    def __init__(self, in_features: int, hidden: Sequence[int], activation: str = "relu") -> None:
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}"
            )
        layers: list[nn.Module] = []
        width = in_features
        for size in hidden:
            layers += [nn.Linear(width, size), ACTIVATIONS[activation]()]
            width = size
        super().__init__(*layers)
        self.out_features = width


class MixtureDensityNetwork(nn.Module):
    """An MLP trunk with a ``MixtureDensityHead``: inputs -> ``GaussianMixture``."""

    def __init__(
        self,
        in_features: int,
        n_targets: int,
        n_mix: int = 5,
        hidden: Sequence[int] = (100, 100, 100, 100, 100),
        activation: str = "relu",
        covariance: str = "full",
        epsilon: float = 1e-3,
    ) -> None:
        super().__init__()
        self.trunk = MLP(in_features, hidden, activation)
        self.head = MixtureDensityHead(self.trunk.out_features, n_targets, n_mix, covariance,
                                       epsilon)

    def forward(self, x: Tensor) -> GaussianMixture:
        return self.head(self.trunk(x))
