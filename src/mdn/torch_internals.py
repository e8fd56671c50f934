"""Every private torch call that mdn makes, each probed once and with a public fallback.

Private functions may change or vanish in any torch release. Each one is tried on small
tensors the first time it is needed; if the probe raises anything at all (a missing
function, a renamed keyword, an unsupported device), mdn uses the public equivalent from
then on, which gives the same numbers, only more slowly. Nothing else in mdn calls a
private torch function.

- ``torch._fused_adam_``: the whole Adam update of a list of parameters in one kernel,
  without ``torch.optim.Adam.step``'s Python bookkeeping (``mdn.training.optimizer``).
- ``torch.ops.aten.threshold_backward``: the ReLU backward in one kernel, for the
  hand-written backward pass (``mdn.nn.fastpath``).
- ``torch._foreach_lerp_`` and ``torch._foreach_copy_``: one call for every tensor of a
  list, for weight averaging (``mdn.training.averaging``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torch import Tensor

__all__ = [
    "ADAM_BETAS",
    "ADAM_EPS",
    "foreach_copy_",
    "foreach_lerp_",
    "fused_adam_",
    "fused_adam_available",
    "relu_backward_kernel",
]

ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8


def _probe(call: Callable[[], object]) -> bool:
    try:
        call()
    except Exception:  # any failure at all means: use the public path
        return False
    return True


def fused_adam_(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avg: list[Tensor],
    exp_avg_sq: list[Tensor],
    step: Tensor,
    lr: float,
    weight_decay: float,
) -> None:
    """One Adam step (coupled weight decay, no amsgrad) of ``params``, in place.

    Only to be called where ``fused_adam_available`` said yes; ``step`` is the shared
    step counter, incremented by the caller.

    Parameters
    ----------
    params, grads, exp_avg, exp_avg_sq : sequence of Tensor
        The parameters, their gradients and Adam's first and second moments, matching.
    step : Tensor of shape ()
        The step count after this step.
    lr : float
    weight_decay : float
        Coupled L2: ``weight_decay * param`` is added to each gradient.
    """
    torch._fused_adam_(
        params,
        grads,
        exp_avg,
        exp_avg_sq,
        [],
        [step] * len(params),
        lr=lr,
        beta1=ADAM_BETAS[0],
        beta2=ADAM_BETAS[1],
        weight_decay=weight_decay,
        eps=ADAM_EPS,
        amsgrad=False,
        maximize=False,
    )


@functools.cache
def fused_adam_available(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether ``fused_adam_`` runs for parameters on ``device`` of ``dtype``.

    Parameters
    ----------
    device : torch.device
    dtype : torch.dtype

    Returns
    -------
    bool
    """
    probe = [torch.zeros(1, device=device, dtype=dtype) for _ in range(4)]
    step = torch.ones((), device=device)
    return _probe(
        lambda: fused_adam_([probe[0]], [probe[1]], [probe[2]], [probe[3]], step, 1e-3, 0.0)
    )


@functools.cache
def relu_backward_kernel() -> Callable[[Tensor, Tensor], Tensor]:
    """The gradient through a ReLU, ``(grad, inputs) -> grad where inputs > 0, else 0``:
    one kernel call where torch has it, for loops to look up once.

    Returns
    -------
    callable
        ``(grad, inputs) -> Tensor``; ``inputs`` may be the ReLU's input or its output.
    """
    ones = torch.ones(2)
    if _probe(lambda: torch.ops.aten.threshold_backward(ones, ones, 0)):
        return functools.partial(torch.ops.aten.threshold_backward, threshold=0)
    return lambda grad, inputs: torch.where(inputs > 0, grad, 0.0)


@functools.cache
def _foreach_works() -> bool:
    a, b = [torch.zeros(2)], [torch.ones(2)]
    return _probe(lambda: (torch._foreach_lerp_(a, b, 0.5), torch._foreach_copy_(a, b)))


def foreach_lerp_(targets: list[Tensor], ends: list[Tensor], weight: float) -> None:
    """``target.lerp_(end, weight)`` for every pair, in one call where torch allows.

    Parameters
    ----------
    targets, ends : list of Tensor
    weight : float
    """
    if _foreach_works():
        torch._foreach_lerp_(targets, ends, weight)
        return
    for target, end in zip(targets, ends, strict=True):
        target.lerp_(end, weight)


def foreach_copy_(targets: list[Tensor], sources: list[Tensor]) -> None:
    """``target.copy_(source)`` for every pair, in one call where torch allows.

    Parameters
    ----------
    targets, sources : list of Tensor
    """
    if _foreach_works():
        torch._foreach_copy_(targets, sources)
        return
    for target, source in zip(targets, sources, strict=True):
        target.copy_(source)
