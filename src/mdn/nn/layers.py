"""Linear layers, single and batched over ensemble members, and the MLP trunk built of them;
their initialisation, from torch's global generator or from one given."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn import init

from mdn.params import validate

__all__ = ["ACTIVATIONS", "MLP", "BatchedLinear", "check_n_models", "linear", "reset_linears"]


#: The activations by name (``mdn.params.ACTIVATIONS`` lists the same names).
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "softplus": nn.Softplus,
}


class BatchedLinear(nn.Module):
    """``n_models`` independent linear layers applied in one batched matrix product.

    Member ``e`` maps ``x[e]`` to ``x[e] @ weight[e].T + bias[e]``; the weights have the
    shapes of ``nn.Linear``'s with a leading ``n_models`` axis, so member ``e``'s slice of a
    state dict loads into an ``nn.Linear`` and back.

    Parameters
    ----------
    n_models : int
        Number of members E.
    in_features, out_features : int

    Examples
    --------
    >>> layer = BatchedLinear(3, 4, 2)
    >>> layer(torch.randn(3, 10, 4)).shape  # one batch of 10 rows per member
    torch.Size([3, 10, 2])
    >>> layer(torch.randn(10, 4)).shape  # the same rows for every member
    torch.Size([3, 10, 2])
    """

    def __init__(self, n_models: int, in_features: int, out_features: int) -> None:
        super().__init__()
        self.n_models, self.in_features, self.out_features = n_models, in_features, out_features
        self.weight = nn.Parameter(torch.empty(n_models, out_features, in_features))
        self.bias = nn.Parameter(torch.empty(n_models, out_features))
        self.reset_parameters()

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        # nn.Linear's default, U(-1/sqrt(in), 1/sqrt(in)) for weights and biases, drawn in
        # the same order.
        bound = 1.0 / math.sqrt(self.in_features) if self.in_features else 0.0
        with torch.no_grad():
            self.weight.uniform_(-bound, bound, generator=generator)
            self.bias.uniform_(-bound, bound, generator=generator)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() < 2 or (x.dim() > 2 and x.shape[0] != self.n_models):
            raise ValueError(
                f"BatchedLinear({self.n_models} members) expects input of shape "
                f"({self.n_models}, *B, {self.in_features}) or (*B, "
                f"{self.in_features}), got {tuple(x.shape)}"
            )
        if x.dim() == 2:
            x = x.expand(self.n_models, *x.shape)
        rows = x.reshape(self.n_models, -1, self.in_features)  # [E, N, in]
        out = torch.baddbmm(self.bias.unsqueeze(1), rows, self.weight.mT)  # [E, N, out]
        return out.reshape(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return (
            f"n_models={self.n_models}, in_features={self.in_features}, "
            f"out_features={self.out_features}"
        )


def reset_linear(layer: nn.Linear, generator: torch.Generator) -> None:
    """``nn.Linear``'s own initialisation, with its draws taken from ``generator``."""
    init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
    bound = 1.0 / math.sqrt(layer.in_features) if layer.in_features else 0.0
    init.uniform_(layer.bias, -bound, bound, generator=generator)


def linear(in_features: int, out_features: int, n_models: int | None) -> nn.Module:
    """An ``nn.Linear``, or a ``BatchedLinear`` of ``n_models`` members.

    Parameters
    ----------
    in_features, out_features : int
    n_models : int or None

    Returns
    -------
    nn.Module
    """
    if n_models is None:
        return nn.Linear(in_features, out_features)
    return BatchedLinear(n_models, in_features, out_features)


def check_n_models(n_models: int | None) -> None:
    """Refuse an ``n_models`` that is neither None nor a positive integer.

    Parameters
    ----------
    n_models : int or None
    """
    if n_models is not None:
        validate("n_models", n_models)


class MLP(nn.Sequential):
    """Fully connected layers, each followed by the activation.

    Parameters
    ----------
    in_features : int
    hidden : sequence of int
        Widths of the hidden layers (empty for none).
    activation : str
        One of ``ACTIVATIONS``.
    n_models : int, optional
        Make every layer a ``BatchedLinear`` of this many members.
    """

    def __init__(
        self,
        in_features: int,
        hidden: Sequence[int],
        activation: str = "relu",
        n_models: int | None = None,
    ) -> None:
        check_n_models(n_models)
        validate("activation", activation)
        layers: list[nn.Module] = []
        width = in_features
        for size in hidden:
            layers += [linear(width, size, n_models), ACTIVATIONS[activation]()]
            width = size
        super().__init__(*layers)
        self.out_features = width


def reset_linears(module: nn.Module, generator: torch.Generator) -> None:
    """Initialise every linear layer of ``module`` as its constructor does, in the order it
    built them, with the draws taken from ``generator``.

    Parameters
    ----------
    module : nn.Module
    generator : torch.Generator
    """
    for layer in module.modules():
        if isinstance(layer, BatchedLinear):
            layer.reset_parameters(generator)
        elif isinstance(layer, nn.Linear):
            reset_linear(layer, generator)
