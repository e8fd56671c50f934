"""The measured fast path of training: fused mixture NLLs and a hand-written backward pass.

On a CPU a training step of the reference network is dominated by per-operation overhead,
not arithmetic. ``DiagonalMixtureNLL`` and ``FullMixtureNLL`` compute the mixture NLL from
the head's raw outputs as one autograd Function each, with a closed-form gradient;
``ReluBackprop`` back-propagates a ReLU ``MixtureDensityNetwork`` by hand. Both give the
same values and gradients as the general path through ``GaussianMixture`` and autograd
(tested); benchmarks/README.md has the measured step times.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from mdn.torch_internals import relu_backward_kernel

__all__ = ["DiagonalMixtureNLL", "FullMixtureNLL", "ReluBackprop"]

_LOG_2PI = math.log(2.0 * math.pi)


def _log_normaliser(joint: Tensor, logits: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Log-sum-exps over components of ``joint`` and of ``logits``, as one reduction.

    Returns the per-row NLL term ``lse(logits) - lse(joint)`` and, for the backward pass, the
    shifted exponentials [2, *B, K] and their sums [2, *B].
    """
    both = torch.stack([joint, logits])  # [2, *B, K]
    top = both.amax(-1, keepdim=True)
    shifted = (both - top).exp()
    total = shifted.sum(-1)  # [2, *B]
    log_sums = total.log() + top.squeeze(-1)
    return log_sums[1] - log_sums[0], shifted, total


class DiagonalMixtureNLL(torch.autograd.Function):
    """NLL of a mixture with axis-aligned components, from the head's raw outputs.

    Standard deviations are ``softplus(raw) + floor``; ``raw`` has one entry per dimension
    (diag) or one per component (spherical). The backward pass is the closed form
    dNLL/dlogit = softmax(logit) - r, dNLL/dmean = -r z / s, dNLL/ds = r (1 - z^2) / s,
    with r the posterior responsibilities and z the standardised residuals.

    Written for speed on small batches, where each kernel launch costs more than its
    arithmetic: inputs are made contiguous first (softplus on a strided view is 4x
    slower), and the two log-sum-exps over components (of the weights and of the joint)
    are one stacked reduction, as ``log_softmax`` over a short last axis is slow on CPU.
    """

    @staticmethod
    def forward(ctx, logits, means, raw, y, floor):  # [*B, K], [*B, K, D], [*B, K, S], [*B, D]
        logits, means, raw = logits.contiguous(), means.contiguous(), raw.contiguous()
        d = means.shape[-1]
        std = F.softplus(raw) + floor  # [*B, K, S]
        z = (y.unsqueeze(-2) - means) / std  # [*B, K, D]
        log_norm = std.log().sum(-1) * (d // std.shape[-1])  # [*B, K]: S = D or 1
        joint = logits - log_norm - 0.5 * z.square().sum(-1)  # [*B, K], up to a constant
        nll, shifted, total = _log_normaliser(joint, logits)
        ctx.save_for_backward(raw, std, z, shifted, total)
        return nll + 0.5 * d * _LOG_2PI

    @staticmethod
    def backward(ctx, grad):  # grad: [*B]
        raw, std, z, shifted, total = ctx.saved_tensors
        posterior = shifted * (grad / total).unsqueeze(-1)  # [2, *B, K]: r and softmax(logits)
        r = posterior[0]
        grad_logits = posterior[1] - r
        r = r.unsqueeze(-1)
        grad_means = -r * z / std
        if std.shape[-1] == z.shape[-1]:
            grad_std = r * (1.0 - z.square()) / std
        else:  # spherical: one deviation shared by the D dimensions
            grad_std = r * (z.shape[-1] - z.square().sum(-1, keepdim=True)) / std
        return grad_logits, grad_means, grad_std * torch.sigmoid(raw), None, None


class FullMixtureNLL(torch.autograd.Function):
    """NLL of a mixture with full covariances, from the head's raw outputs.

    ``raw`` holds per component the D diagonal entries (``U_ii = 1 / (softplus + floor)``)
    and then the strictly upper entries of the precision's Cholesky factor ``U``. With
    ``d = y - mean`` and ``z = U^T d``: dNLL/dU_ij = r d_i z_j (minus r / U_ii on the
    diagonal) and dNLL/dmean = -r U z, r being the posterior responsibilities.
    """

    @staticmethod
    def forward(ctx, logits, means, raw, y, floor, triu_index):
        # logits [*B, K], means [*B, K, D], raw [*B, K, S], y [*B, D], triu_index [S]
        logits, means, raw = logits.contiguous(), means.contiguous(), raw.contiguous()
        d = means.shape[-1]
        diag = 1.0 / (F.softplus(raw[..., :d]) + floor)  # [*B, K, D]
        entries = torch.cat([diag, raw[..., d:]], dim=-1)
        u = entries.new_zeros(*entries.shape[:-1], d * d)
        u = u.index_copy_(-1, triu_index, entries).unflatten(-1, (d, d))  # [*B, K, D, D]
        diff = y.unsqueeze(-2) - means  # [*B, K, D]
        z = (u * diff.unsqueeze(-1)).sum(-2)  # [*B, K, D] = U^T diff
        joint = logits + diag.log().sum(-1) - 0.5 * z.square().sum(-1)
        nll, shifted, total = _log_normaliser(joint, logits)
        ctx.save_for_backward(raw, diag, u, diff, z, shifted, total, triu_index)
        return nll + 0.5 * d * _LOG_2PI

    @staticmethod
    def backward(ctx, grad):
        raw, diag, u, diff, z, shifted, total, triu_index = ctx.saved_tensors
        d = diag.shape[-1]
        posterior = shifted * (grad / total).unsqueeze(-1)  # [2, *B, K]
        r = posterior[0]
        grad_logits = posterior[1] - r
        r = r.unsqueeze(-1)  # [*B, K, 1]
        grad_means = -r * (u * z.unsqueeze(-2)).sum(-1)  # -r U z
        grad_u = (r.unsqueeze(-1) * diff.unsqueeze(-1) * z.unsqueeze(-2)).flatten(-2)
        grad_entries = grad_u.index_select(-1, triu_index)  # [*B, K, S]
        grad_diag = grad_entries[..., :d] - r / diag
        grad_raw = torch.cat(
            [grad_diag * -diag.square() * torch.sigmoid(raw[..., :d]), grad_entries[..., d:]],
            dim=-1,
        )
        return grad_logits, grad_means, grad_raw, None, None, None


class ReluBackprop:
    """Per-member mean NLL of a ReLU ``MixtureDensityNetwork``, its gradients written by hand.

    The trunk and the head's linear layer run forward without autograd; autograd only
    differentiates the loss with respect to the head's outputs, and the layers are then
    back-propagated with one matrix product per weight and input gradient and one sum per
    bias gradient, written straight into the parameters' ``.grad`` (``out=``: nothing to
    zero or accumulate). Equal to autograd's gradients (tested).
    ``MixtureDensityNetwork.hand_backprop`` builds one where it applies.

    Parameters
    ----------
    trunk : nn.Sequential
        Linear (or ``BatchedLinear``) layers, each followed by an ``nn.ReLU``.
    head : MixtureDensityHead
        Its ``linear`` layer and ``output_nll`` end the network.
    """

    def __init__(self, trunk: nn.Sequential, head: nn.Module) -> None:
        layers = [m for m in trunk if not isinstance(m, nn.ReLU)] + [head.linear]
        self.head = head
        batched = head.n_models is not None
        # Views stay valid: the optimiser and load_state_dict update parameters in place.
        self.layers = [
            (
                layer.bias.unsqueeze(1) if batched else layer.bias,
                layer.weight.mT,
                layer.weight,
                layer.weight.grad,
                layer.bias.grad,
            )
            for layer in layers
        ]
        self.relu_backward = relu_backward_kernel()
        self.affine = torch.baddbmm if batched else torch.addmm
        self.matmul = torch.bmm if batched else torch.mm
        self.row_axis = 1 if batched else 0

    def __call__(self, x: Tensor, y: Tensor, complete: bool | None = None) -> Tensor:
        with torch.no_grad():
            inputs, h = [], x  # the input of each layer
            for bias, weight_t, *_ in self.layers:
                inputs.append(h)
                h = self.affine(bias, h, weight_t)
                if len(inputs) < len(self.layers):
                    h.relu_()
        outputs = h.requires_grad_()
        member_loss = self.head.output_nll(outputs, y, complete).mean(-1)  # [E] or []
        (grad,) = torch.autograd.grad(member_loss.sum(), outputs)
        with torch.no_grad():
            for i in range(len(self.layers) - 1, -1, -1):
                _, _, weight, weight_grad, bias_grad = self.layers[i]
                self.matmul(grad.mT, inputs[i], out=weight_grad)
                torch.sum(grad, self.row_axis, out=bias_grad)
                if i:
                    grad = self.relu_backward(self.matmul(grad, weight), inputs[i])
        return member_loss.detach()
