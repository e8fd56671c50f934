"""Adam with coupled L2 in one fused kernel call, and the gradients as one flat buffer."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from mdn.torch_internals import ADAM_BETAS, ADAM_EPS, fused_adam_, fused_adam_available

__all__ = ["Adam", "FlatGradients"]


class Adam:
    """Adam with the L2 penalty coupled into the gradient, one fused kernel call per group
    (per group and member while ensemble members have different learning rates).

    The same arithmetic as ``torch.optim.Adam(fused=True)`` (a test checks they agree),
    without its ``step``'s Python bookkeeping, a sizeable share of a small network's step on
    a CPU (benchmarks/README.md). Where the fused kernel does not run
    (``mdn.torch_internals``), ``torch.optim.Adam`` does the work.

    Parameters
    ----------
    network : nn.Module
        Its parameters that require gradients are optimised; those named ``*weight`` get
        the L2 penalty.
    lr : float or sequence of float
        One learning rate, or one per ensemble member.
    l2 : float
        Penalty ``l2 * sum(W**2)`` on the weight matrices.
    """

    def __init__(self, network: nn.Module, lr: float | Sequence[float], l2: float) -> None:
        named = [(n, p) for n, p in network.named_parameters() if p.requires_grad]
        # Coupled L2 as in a loss term l2 * sum(W**2) on the weight matrices (not the
        # biases): Adam's weight_decay adds weight_decay * W, the gradient of that term.
        self.groups = [
            ([p for n, p in named if n.endswith("weight")], 2.0 * l2),
            ([p for n, p in named if not n.endswith("weight")], 0.0),
        ]
        self.groups = [(params, decay) for params, decay in self.groups if params]
        first = named[0][1]
        self.fallback = None
        if not fused_adam_available(first.device, first.dtype):
            self.fallback = torch.optim.Adam(
                [{"params": params, "weight_decay": decay} for params, decay in self.groups],
                betas=ADAM_BETAS,
                eps=ADAM_EPS,
            )
        self.set_lr(lr)
        if self.fallback is not None:
            return
        self._slices = {}
        self.moments = [
            ([torch.zeros_like(p) for p in params], [torch.zeros_like(p) for p in params])
            for params, _ in self.groups
        ]
        self.steps = torch.zeros((), dtype=torch.float32, device=first.device)

    def set_lr(self, lr: float | Sequence[float]) -> None:
        """Set one learning rate, or one per ensemble member (the first axis of every parameter).

        Parameters
        ----------
        lr : float or sequence of float
        """
        rates = [lr] if isinstance(lr, (int, float)) else list(lr)
        self.lr = rates[0] if len(set(rates)) == 1 else None
        self.member_lr = rates
        if self.fallback is not None:
            for group in self.fallback.param_groups:
                group["lr"] = 1.0 if self.lr is None else self.lr

    def state_dict(self) -> dict[str, object]:
        """The optimiser's state: Adam's moments and step count, and the learning rates.

        Returns
        -------
        dict
            ``"tensors"``: the tensors the optimiser updates in place (none before its first
            step), ``"lr"``: each member's rate.
        """
        return {
            "tensors": [t.detach().clone() for t in self._state_tensors()],
            "lr": list(self.member_lr),
        }

    def load_state_dict(self, state: dict[str, object]) -> None:
        """Restore a state of ``state_dict``, in place (views of it held elsewhere stay valid).

        Parameters
        ----------
        state : dict
            As ``state_dict`` returns it, for an optimiser of the same parameters.
        """
        self.set_lr(state["lr"])
        tensors = state["tensors"]
        if not tensors:
            return
        if self.fallback is not None:
            # torch's own loader puts the moments beside each parameter (a checkpoint's
            # tensors come from the CPU) and leaves the step count where torch keeps it.
            stored = self.fallback.state_dict()
            keys = ("exp_avg", "exp_avg_sq", "step")
            stored["state"] = {
                i: {key: tensors[3 * i + j] for j, key in enumerate(keys)}
                for i in range(len(tensors) // 3)
            }
            self.fallback.load_state_dict(stored)
            return
        for target, value in zip(self._state_tensors(), tensors, strict=True):
            target.copy_(value)

    def _state_tensors(self) -> list[Tensor]:
        """The state as a flat list of the tensors the optimiser updates in place."""
        if self.fallback is None:
            moments = [t for exp_avg, exp_avg_sq in self.moments for t in (*exp_avg, *exp_avg_sq)]
            return [*moments, self.steps]
        params = [p for group in self.fallback.param_groups for p in group["params"]]
        state = self.fallback.state
        if not state:  # no step taken yet
            return []
        return [state[p][key] for p in params for key in ("exp_avg", "exp_avg_sq", "step")]

    @torch.no_grad()
    def step(self) -> None:
        """Update every parameter from its ``.grad``."""
        if self.fallback is not None:
            self._fallback_step()
            return
        self.steps.add_(1)
        for (params, decay), (exp_avg, exp_avg_sq) in zip(self.groups, self.moments, strict=True):
            if self.lr is not None:
                self._fused(params, exp_avg, exp_avg_sq, [p.grad for p in params], decay, self.lr)
                continue
            for lr, member in zip(
                self.member_lr, self._member_slices(params, exp_avg, exp_avg_sq), strict=True
            ):
                self._fused(*member, decay, lr)

    def _member_slices(self, params, exp_avg, exp_avg_sq) -> list[tuple[list[Tensor], ...]]:
        """Per member: its slices of the parameters, moments and gradients.

        Built once per group and reused (the tensors are updated in place, so the views stay
        valid); rebuilt if a gradient tensor was replaced since.
        """
        grads, slices = self._slices.get(id(params), ((), None))
        if slices is None or any(p.grad is not g for p, g in zip(params, grads, strict=True)):
            grads = [p.grad for p in params]
            slices = [
                (
                    [p[e] for p in params],
                    [m[e] for m in exp_avg],
                    [v[e] for v in exp_avg_sq],
                    [g[e] for g in grads],
                )
                for e in range(len(self.member_lr))
            ]
            self._slices[id(params)] = (grads, slices)
        return slices

    def _fused(self, params, exp_avg, exp_avg_sq, grads, decay, lr) -> None:
        fused_adam_(params, grads, exp_avg, exp_avg_sq, self.steps, lr, decay)

    def _fallback_step(self) -> None:
        if self.lr is not None:
            self.fallback.step()
            return
        # Adam's step is lr times a direction that does not depend on lr: take it at lr=1
        # and scale each member's share.
        params = [p for params, _ in self.groups for p in params]
        before = [p.detach().clone() for p in params]
        self.fallback.step()
        rates = torch.tensor(self.member_lr, dtype=params[0].dtype, device=params[0].device)
        for p, old in zip(params, before, strict=True):
            p.copy_(torch.lerp(old, p, rates.view(-1, *[1] * (p.dim() - 1))))


class FlatGradients:
    """Every gradient as a view of one buffer, zeroed in one operation.

    Autograd accumulates into an existing ``.grad`` in place, so the views stay put across
    steps; this hoists the per-step allocation of the gradients and lets the global norm
    of a single network be one reduction. Norms and clipping are per ensemble member, so
    that members train exactly as they would alone.
    """

    def __init__(self, parameters: Sequence[Tensor], n_models: int) -> None:
        parameters = [p for p in parameters if p.requires_grad]
        first = parameters[0]
        self.n_models = n_models
        self.buffer = torch.zeros(
            sum(p.numel() for p in parameters), dtype=first.dtype, device=first.device
        )
        self.blocks, offset = [], 0
        for p in parameters:
            p.grad = self.buffer[offset : offset + p.numel()].view_as(p)
            self.blocks.append(p.grad.view(n_models, -1))  # [E, size of one member]
            offset += p.numel()

    def zero_(self) -> None:
        """Zero every gradient in one operation."""
        self.buffer.zero_()

    def norms(self) -> Tensor:
        """Gradient norm of each member.

        Returns
        -------
        Tensor of shape (E,)
        """
        if self.n_models == 1:
            return torch.linalg.vector_norm(self.buffer).reshape(1)
        squares = torch.stack([block.square().sum(1) for block in self.blocks])  # [P, E]
        return squares.sum(0).sqrt()

    def clip_(self, max_norm: float, norms: Tensor) -> None:
        """Scale each member's gradients down to a norm of at most ``max_norm``, in place.

        Parameters
        ----------
        max_norm : float
        norms : Tensor of shape (E,)
            The members' gradient norms, as ``norms`` returns them.
        """
        scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)  # [E]
        if self.n_models == 1:
            self.buffer.mul_(scale)
        else:
            for block in self.blocks:
                block.mul_(scale.unsqueeze(1))
