"""PyTorch modules: the mixture density head, the MLP trunk, and the two joined."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from mdn.distributions.mixture import GaussianMixture
from mdn.nn.fastpath import DiagonalMixtureNLL, FullMixtureNLL, ReluBackprop
from mdn.nn.layers import ACTIVATIONS, MLP, BatchedLinear, check_n_models, linear, reset_linears
from mdn.params import validate_all

__all__ = ["ACTIVATIONS", "MLP", "BatchedLinear", "MixtureDensityHead", "MixtureDensityNetwork"]


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
    n_models : int, optional
        Make the head a batch of this many independent heads (see ``BatchedLinear``): the
        features are (E, *B, F) or shared (*B, F), and the mixture's batch shape is (E, *B).

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
        n_models: int | None = None,
    ) -> None:
        super().__init__()
        check_n_models(n_models)
        validate_all(
            {
                "covariance": covariance,
                "in_features": in_features,
                "n_targets": n_targets,
                "n_mix": n_mix,
                "epsilon": epsilon,
            }
        )
        self.n_targets, self.n_mix, self.covariance, self.epsilon = (
            n_targets,
            n_mix,
            covariance,
            float(epsilon),
        )
        d = n_targets
        self.n_scale = {"full": d * (d + 1) // 2, "diag": d, "spherical": 1}[covariance]
        self.n_models = n_models
        self.linear = linear(in_features, n_mix * (1 + d + self.n_scale), n_models)
        if covariance == "full":
            self.register_buffer("_triu_index", self._flat_triu_index(), persistent=False)

    def _flat_triu_index(self) -> Tensor:
        """Where the diagonal and then the strict upper triangle go in a flat D*D matrix."""
        d = self.n_targets
        rows, cols = torch.triu_indices(d, d, offset=1, device="cpu")
        return torch.cat([torch.arange(d, device="cpu") * (d + 1), rows * d + cols])

    def forward(self, features: Tensor) -> GaussianMixture:
        return self.mixture(self.linear(features))

    def mixture(self, outputs: Tensor) -> GaussianMixture:
        """The mixture that the outputs of ``self.linear`` stand for.

        Parameters
        ----------
        outputs : Tensor of shape (*B, K * (1 + D + S))
            Logits, means and scale parameters of every component, S per component.

        Returns
        -------
        GaussianMixture
            Batch shape ``B``.
        """
        k, d = self.n_mix, self.n_targets
        logits, means, raw = outputs.split([k, k * d, k * self.n_scale], dim=-1)
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

    def nll(self, features: Tensor, y: Tensor, complete: bool | None = None) -> Tensor:
        """Negative log-likelihood of targets ``y`` (*B, D), one value per row (*B).

        Equal to ``-self(features).log_prob(y)``. For diagonal and spherical components
        (and full ones in one dimension, the same parametrisation) it runs as one fused
        function with a closed-form gradient: the loss of a training step costs about half
        the time of the general path, whose many small operations dominate it on a CPU.

        Parameters
        ----------
        features : Tensor of shape (*B, in_features)
        y : Tensor of shape (*B, D)
            NaN entries are missing and marginalised out.
        complete : bool, optional
            Whether ``y`` is known to hold no NaN (see ``output_nll``).

        Returns
        -------
        Tensor of shape (*B)
        """
        return self.output_nll(self.linear(features), y, complete)

    def output_nll(self, outputs: Tensor, y: Tensor, complete: bool | None = None) -> Tensor:
        """``nll`` from the outputs of ``self.linear``.

        NaN targets count as missing and are marginalised out (through the general mixture
        path: the fused functions assume complete rows). ``complete=True`` or ``False``
        says whether ``y`` holds NaN; None looks, which costs a device sync on a GPU, so the
        training loop looks once for all its minibatches.

        Parameters
        ----------
        outputs : Tensor of shape (*B, K * (1 + D + S))
            What ``self.linear`` returned (see ``mixture``).
        y : Tensor of shape (*B, D)
        complete : bool, optional

        Returns
        -------
        Tensor of shape (*B)
            The negative log-likelihood of each row.
        """
        if complete is None:
            complete = not bool(torch.isnan(y).any())
        if not complete:
            return -self.mixture(outputs).log_prob(y)
        k = self.n_mix
        logits, means, raw = outputs.split([k, k * self.n_targets, k * self.n_scale], dim=-1)
        means, raw = means.unflatten(-1, (k, self.n_targets)), raw.unflatten(-1, (k, self.n_scale))
        if self.covariance == "full" and self.n_targets > 1:
            return FullMixtureNLL.apply(
                logits, means, raw, y, math.sqrt(self.epsilon), self._triu_index
            )
        return DiagonalMixtureNLL.apply(logits, means, raw, y, math.sqrt(self.epsilon))

    def extra_repr(self) -> str:
        return (
            f"n_targets={self.n_targets}, n_mix={self.n_mix}, "
            f"covariance={self.covariance!r}, epsilon={self.epsilon:g}"
            + (f", n_models={self.n_models}" if self.n_models is not None else "")
        )


class MixtureDensityNetwork(nn.Module):
    """An MLP trunk with a ``MixtureDensityHead``: inputs -> ``GaussianMixture``.

    With ``n_models=E`` it is an ensemble of E independent networks evaluated as one
    (batched matrix products over weights with a leading E axis): inputs (E, N, F), or
    (N, F) shared by all members, give a mixture of batch shape (E, N). ``stack`` builds one
    from single networks and ``member`` takes one out again.

    Examples
    --------
    >>> ensemble = MixtureDensityNetwork(3, 1, hidden=(16,), n_models=4)
    >>> ensemble(torch.randn(10, 3)).batch_shape
    torch.Size([4, 10])
    >>> ensemble.member(0)(torch.randn(10, 3)).batch_shape
    torch.Size([10])
    """

    def __init__(
        self,
        in_features: int,
        n_targets: int,
        n_mix: int = 5,
        hidden: Sequence[int] = (100, 100, 100, 100, 100),
        activation: str = "relu",
        covariance: str = "full",
        epsilon: float = 1e-3,
        n_models: int | None = None,
    ) -> None:
        super().__init__()
        self.config = {
            "in_features": in_features,
            "n_targets": n_targets,
            "n_mix": n_mix,
            "hidden": tuple(hidden),
            "activation": activation,
            "covariance": covariance,
            "epsilon": epsilon,
        }
        self.n_models = n_models
        self.trunk = MLP(in_features, hidden, activation, n_models)
        self.head = MixtureDensityHead(
            self.trunk.out_features, n_targets, n_mix, covariance, epsilon, n_models
        )

    def forward(
        self, x: Tensor, y: Tensor | None = None, complete: bool | None = None
    ) -> GaussianMixture | Tensor:
        """The predicted mixtures; given targets ``y``, their negative log-likelihood instead.

        The second form is the training loss (see ``MixtureDensityHead.nll``, also for
        ``complete``); it goes through ``forward`` so that wrappers such as
        DistributedDataParallel see it.
        """
        features = self.trunk(x)
        return self.head(features) if y is None else self.head.nll(features, y, complete)

    @classmethod
    def stack(cls, members: Sequence[MixtureDensityNetwork]) -> MixtureDensityNetwork:
        """One batched network whose member ``e`` is a copy of ``members[e]``.

        Parameters
        ----------
        members : sequence of MixtureDensityNetwork
            Single networks (``n_models=None``) of one configuration.

        Returns
        -------
        MixtureDensityNetwork
            With ``n_models=len(members)``, on the device of the first member.
        """
        if not members or any(
            m.n_models is not None or m.config != members[0].config for m in members
        ):
            raise ValueError("stack needs one or more single networks of the same configuration")
        ensemble = cls.empty(**members[0].config, n_models=len(members))
        states = [m.state_dict() for m in members]
        ensemble.load_state_dict({k: torch.stack([s[k] for s in states]) for k in states[0]})
        return ensemble.to(next(members[0].parameters()).device)

    @classmethod
    def empty(cls, *args: object, **kwargs: object) -> MixtureDensityNetwork:
        """A network on the CPU whose weights are yet to be set (from a state dict): nothing
        is drawn, and torch's global generator is not touched.

        Parameters
        ----------
        *args, **kwargs
            The constructor's arguments.

        Returns
        -------
        MixtureDensityNetwork
        """
        with torch.device("meta"):  # shapes only: nothing drawn, nothing allocated
            network = cls(*args, **kwargs)
        network = network.to_empty(device="cpu")
        if hasattr(network.head, "_triu_index"):
            network.head._triu_index = network.head._flat_triu_index()
        return network

    @classmethod
    def seeded(
        cls, generator: torch.Generator, *args: object, **kwargs: object
    ) -> MixtureDensityNetwork:
        """A network on the CPU whose initial weights come from ``generator`` alone.

        The weights are those that ``torch.manual_seed(s)`` followed by ``cls(...)`` gives
        for a ``generator`` seeded with ``s``, but torch's global generator is neither read
        nor changed: fits in other threads cannot alter them, nor they those fits.

        Parameters
        ----------
        generator : torch.Generator
            A CPU generator, consumed in the order the layers are built.
        *args, **kwargs
            The constructor's arguments.

        Returns
        -------
        MixtureDensityNetwork
        """
        network = cls.empty(*args, **kwargs)
        reset_linears(network, generator)
        return network

    def hand_backprop(self) -> ReluBackprop | None:
        """The hand-written backward pass of this network, where it applies.

        Returns
        -------
        ReluBackprop or None
            A callable ``(x, y, complete) -> per-member mean NLL`` that also writes every
            parameter's ``.grad``, for ReLU networks whose parameters all train and already
            have their gradient tensors; None otherwise (use autograd).
        """
        trains = all(p.requires_grad and p.grad is not None for p in self.parameters())
        if self.config["activation"] != "relu" or not trains:
            return None
        return ReluBackprop(self.trunk, self.head)

    def member(self, index: int) -> MixtureDensityNetwork:
        """A single network holding a copy of member ``index``'s weights.

        Parameters
        ----------
        index : int
            A member, counted from the end where negative.

        Returns
        -------
        MixtureDensityNetwork
            With ``n_models=None``, on this network's device.
        """
        if self.n_models is None:
            raise ValueError("member() needs a batched network (built with n_models)")
        if not -self.n_models <= index < self.n_models:
            raise IndexError(f"member {index} of an ensemble of {self.n_models}")
        single = type(self).empty(**self.config)
        single.load_state_dict({k: v[index] for k, v in self.state_dict().items()})
        return single.to(next(self.parameters()).device)
