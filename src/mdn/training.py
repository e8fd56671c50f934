"""The fitting loop: minibatch maximum likelihood with Adam, L2, clipping and early stopping."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import logging
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from mdn.nn import MixtureDensityNetwork

__all__ = ["LR_SCHEDULES", "History", "TrainingDiverged", "train"]

logger = logging.getLogger(__name__)

LR_SCHEDULES = ("constant", "cosine", "plateau")


class TrainingDiverged(FloatingPointError):
    """The loss or its gradient stayed non-finite even after the learning rate was lowered."""


@dataclass
class History:
    """What the loop recorded, one entry per evaluation.

    Attributes
    ----------
    step : list of int
        Iterations done at each evaluation.
    train_nll : list of float
        Mean training NLL over the iterations since the previous evaluation (averaged over
        the members of an ensemble).
    val_nll : list of float
        Validation NLL (empty without validation data; averaged over members).
    best_step : int
        Iteration whose weights were kept (the last one without validation data; for an
        ensemble, the latest of the members' best iterations).
    n_iter : int
        Iterations run (fewer than asked when early stopping fired).
    recoveries : int
        Times a non-finite loss was met and the loop restarted from the last good weights
        at half the learning rate.
    member_val_nll : list of list of float
        For an ensemble, each member's validation NLL at each evaluation.
    member_best_step : list of int
        For an ensemble, the iteration whose weights each member kept.
    """

    step: list[int] = field(default_factory=list)
    train_nll: list[float] = field(default_factory=list)
    val_nll: list[float] = field(default_factory=list)
    best_step: int = 0
    n_iter: int = 0
    recoveries: int = 0
    member_val_nll: list[list[float]] = field(default_factory=list)
    member_best_step: list[int] = field(default_factory=list)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def _member_nll(network: nn.Module, x: Tensor, y: Tensor, complete: bool | None = None) -> Tensor:
    """Mean NLL of each member over its rows: shape (E,) for an ensemble, () otherwise.

    ``complete``: whether ``y`` is known to hold no NaN (None: look).
    """
    module = getattr(network, "module", network)
    if isinstance(module, MixtureDensityNetwork):
        return network(x, y, complete).mean(-1)  # the fused loss
    return -network(x).log_prob(y).mean(-1)


class _Adam:
    """Adam with the L2 penalty coupled into the gradient, one fused kernel call per group
    (per group and member while ensemble members have different learning rates).

    The same arithmetic as ``torch.optim.Adam(fused=True)`` (a test checks they agree), whose
    ``step`` spends ~150 us per call on Python bookkeeping: 18% of a step of the reference
    network on a CPU. Devices or builds without the fused kernel use ``torch.optim.Adam``.
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
        if not _fused_adam_available(first.device, first.dtype):
            self.fallback = torch.optim.Adam(
                [{"params": params, "weight_decay": decay} for params, decay in self.groups]
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
        """One learning rate, or one per ensemble member (the first axis of every parameter)."""
        rates = [lr] if isinstance(lr, (int, float)) else list(lr)
        self.lr = rates[0] if len(set(rates)) == 1 else None
        self.member_lr = rates
        if self.fallback is not None:
            for group in self.fallback.param_groups:
                group["lr"] = 1.0 if self.lr is None else self.lr

    @torch.no_grad()
    def step(self) -> None:
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
        torch._fused_adam_(
            params,
            grads,
            exp_avg,
            exp_avg_sq,
            [],
            [self.steps] * len(params),
            lr=lr,
            beta1=0.9,
            beta2=0.999,
            weight_decay=decay,
            eps=1e-8,
            amsgrad=False,
            maximize=False,
        )

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


@functools.cache
def _fused_adam_available(device: torch.device, dtype: torch.dtype) -> bool:
    probe = [torch.zeros(1, device=device, dtype=dtype) for _ in range(4)]
    try:
        torch._fused_adam_(
            [probe[0]],
            [probe[1]],
            [probe[2]],
            [probe[3]],
            [],
            [torch.ones((), device=device)],
            lr=1e-3,
            beta1=0.9,
            beta2=0.999,
            weight_decay=0.0,
            eps=1e-8,
            amsgrad=False,
            maximize=False,
        )
    except (AttributeError, RuntimeError, NotImplementedError):
        return False
    return True


class _ReluBackprop:
    """Per-member mean NLL of a ReLU ``MixtureDensityNetwork``, its gradients written by hand.

    The trunk and the head's linear layer run forward without autograd; autograd only
    differentiates the loss with respect to the head's outputs, and the layers are then
    back-propagated with one matrix product per weight and input gradient and one sum per
    bias gradient, written straight into the parameters' ``.grad`` (``out=``: nothing to
    zero or accumulate). On a CPU, where a step of the reference network is mostly
    per-operation overhead, this and the tensors looked up once here save 15% of a step
    (1.26 -> 1.07 ms for the reference network).
    Equal to autograd's gradients (tested).
    """

    def __init__(self, network: MixtureDensityNetwork) -> None:
        layers = [m for m in network.trunk if not isinstance(m, nn.ReLU)] + [network.head.linear]
        self.head = network.head
        batched = network.n_models is not None
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
                    grad = torch.ops.aten.threshold_backward(
                        self.matmul(grad, weight), inputs[i], 0
                    )
        return member_loss.detach()


class _WeightAverage:
    """An exponential moving average of the weights (Polyak averaging).

    The optimiser keeps stepping the trained weights; the average is what validation
    scores, what the best weights keep and what training returns. Its decay warms up as
    ``min(decay, (1 + t) / (10 + t))`` so that the first steps do not tie the average to
    the initial weights.
    """

    def __init__(self, parameters: Sequence[Tensor], decay: float) -> None:
        # Detached views stay valid: parameters are only ever updated in place.
        self.weights = [p.detach() for p in parameters]
        self.trained = [w.clone() for w in self.weights]  # holds them while the average is in
        self.decay = decay
        self.reset()

    def reset(self) -> None:
        """Start the average afresh from the current weights."""
        self.average = [w.clone() for w in self.weights]
        self.steps = 0

    def update(self) -> None:
        self.steps += 1
        decay = min(self.decay, (1 + self.steps) / (10 + self.steps))
        torch._foreach_lerp_(self.average, self.weights, 1.0 - decay)

    @contextlib.contextmanager
    def swapped_in(self):
        """The averaged weights in the network for the duration of the block."""
        torch._foreach_copy_(self.trained, self.weights)
        torch._foreach_copy_(self.weights, self.average)
        try:
            yield
        finally:
            torch._foreach_copy_(self.weights, self.trained)


def _checks_each_step(device: torch.device) -> bool:
    """Whether the loop may sync the host after each step to look for non-finite values."""
    return device.type == "cpu"


def _hand_backprop_applies(network: nn.Module) -> bool:
    return (
        isinstance(network, MixtureDensityNetwork)
        and network.config["activation"] == "relu"
        and all(p.requires_grad for p in network.parameters())
    )


class _FlatGradients:
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
        self.buffer.zero_()

    def norms(self) -> Tensor:
        """Gradient norm of each member, shape (E,)."""
        if self.n_models == 1:
            return torch.linalg.vector_norm(self.buffer).reshape(1)
        squares = torch.stack([block.square().sum(1) for block in self.blocks])  # [P, E]
        return squares.sum(0).sqrt()

    def clip_(self, max_norm: float, norms: Tensor) -> None:
        scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)  # [E]
        if self.n_models == 1:
            self.buffer.mul_(scale)
        else:
            for block in self.blocks:
                block.mul_(scale.unsqueeze(1))


def in_process_group() -> bool:
    """Whether this process is part of an initialised ``torch.distributed`` process group."""
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def _all_processes_agree(flag: bool, device: torch.device) -> bool:
    """``flag`` and-ed over the processes of a distributed run (itself otherwise)."""
    if not in_process_group():
        return flag
    value = torch.tensor([float(flag)], device=device)
    torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.MIN)
    return bool(value.item() > 0)


def _process_mean(values: Tensor) -> Tensor:
    """``values`` averaged over the processes of a distributed run, so that all of them take
    the same early-stopping decisions even where their arithmetic differs in the last bit."""
    if not in_process_group():
        return values
    values = values.clone()
    torch.distributed.all_reduce(values)
    return values / torch.distributed.get_world_size()


def _epoch_order(rows: Tensor, generators: Sequence[torch.Generator]) -> Tensor:
    """A fresh permutation of each member's rows, shape (E, m)."""
    m = rows.shape[1]
    perms = torch.stack([torch.randperm(m, generator=g) for g in generators])
    return rows.gather(1, perms.to(rows.device))


@contextlib.contextmanager
def _denormals_flushed():
    """Flush float denormals to zero for the duration, then turn flushing off again.

    L2 shrinks unused weights into the denormal range, where x86 arithmetic is ~10x slower
    (measured: 1.9 -> 17 ms per step after 3,000 iterations of the reference network).
    Flushing them to zero changes nothing measurable.
    """
    flushes = torch.set_flush_denormal(True)
    try:
        yield
    finally:
        if flushes:
            torch.set_flush_denormal(False)


@_denormals_flushed()
def train(
    network: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    x_val: Tensor | None = None,
    y_val: Tensor | None = None,
    n_iter: int = 10_000,
    batch_size: int = 128,
    lr: float = 1e-3,
    lr_schedule: str = "constant",
    lr_patience: int = 500,
    ema_decay: float | None = None,
    l2: float = 1e-3,
    clip_grad: float | None = None,
    patience: int | None = None,
    eval_every: int = 50,
    generator: torch.Generator | Sequence[torch.Generator] | None = None,
    member_rows: Tensor | None = None,
    loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None,
    verbose: int = 0,
    callbacks: Sequence[Callable[[History], bool | None]] = (),
    max_recoveries: int = 3,
) -> History:
    """Fit ``network`` (inputs -> mixture) by minimising the mean negative log-likelihood.

    Minibatches are slices of a fresh permutation each epoch, drawn with ``generator``
    from tensors already on the network's device. Every ``eval_every`` iterations the
    loop records the training NLL and, given validation data, the validation NLL; the
    weights with the best validation NLL are restored at the end.

    A batched ensemble (a network with ``n_models = E``, see ``MixtureDensityNetwork``)
    trains as E independent members in one loop: each draws its own minibatches (from its
    own ``member_rows``, with its own generator), is clipped by its own gradient norm, keeps
    its own best weights and stops improving on its own; the loop ends when every member
    has run out of patience.

    Parameters
    ----------
    network : nn.Module
        Maps a batch of inputs to an object with ``log_prob(y)`` (a ``GaussianMixture``);
        may be wrapped in ``DistributedDataParallel``.
    x, y : Tensor
        Training inputs (N, F) and targets (N, D).
    x_val, y_val : Tensor, optional
        Validation data; enables best-weights restore and early stopping.
    n_iter, batch_size, lr : int, int, float
        Iterations (minibatch steps), rows per minibatch, Adam's learning rate.
    lr_schedule : {"constant", "cosine", "plateau"}
        "cosine" lowers the learning rate from ``lr`` to 0 along half a cosine over the
        ``n_iter`` iterations (Loshchilov & Hutter 2017, without restarts). "plateau"
        halves a member's learning rate each time its validation NLL has not improved for
        ``lr_patience`` iterations (as ``torch.optim.lr_scheduler.ReduceLROnPlateau``, per
        member); without validation data it keeps the rate constant.
    lr_patience : int
        Iterations without a validation gain before "plateau" halves the rate.
    ema_decay : float in [0, 1), optional
        Keep an exponential moving average of the weights with decay
        ``min(ema_decay, (1 + t) / (10 + t))`` at iteration t (Polyak averaging; 0.99
        averages over about the last 100 steps once t > 890). Validation, the best
        weights, the recovery point and the returned network then use the averaged
        weights, which are less noisy than the last step's; the optimiser keeps stepping
        the trained ones.
    l2 : float
        Penalty ``l2 * sum(W**2)`` on every weight matrix.
    clip_grad : float, optional
        Clip the gradient norm (of each member) to this value.
    patience : int, optional
        Stop when the validation NLL has not improved for this many iterations.
    eval_every : int
        Iterations between evaluations.
    generator : torch.Generator or sequence of them, optional
        Source of the minibatch order (CPU generators), one per ensemble member.
    member_rows : Tensor of shape (E, m), optional
        Rows of ``x`` each member trains on (bagging); all rows by default.
    loss_fn : callable, optional
        ``(x, y) -> per-member mean NLL``; a compiled version of the network's loss. The
        default evaluates ``network`` eagerly.
    verbose : int
        0: silent; 1: progress bar with the running losses; 2: also log each evaluation.
    callbacks : sequence of callables
        Called with the ``History`` after each evaluation; returning True stops training.
        The network then holds the trained weights (not the average that was scored).
    max_recoveries : int
        Non-finite losses tolerated (each restarts from the last good weights at half the
        learning rate) before ``TrainingDiverged`` is raised.
    """
    if lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {lr_schedule!r}")
    if ema_decay is not None and not 0 <= ema_decay < 1:
        raise ValueError(f"ema_decay must be in [0, 1) or None, got {ema_decay!r}")
    if lr_schedule == "plateau" and patience is not None and lr_patience >= patience:
        warnings.warn(
            f"lr_schedule='plateau' never lowers the rate when lr_patience "
            f"({lr_patience}) >= patience ({patience}): members stop first; "
            "choose a smaller lr_patience",
            UserWarning,
            stacklevel=2,
        )
    module = getattr(network, "module", network)  # the network inside a DDP wrapper
    n_models = getattr(module, "n_models", None)
    ensemble = n_models is not None
    n_models = n_models or 1
    if member_rows is None:
        member_rows = torch.arange(x.shape[0]).expand(n_models, -1)
    member_rows = member_rows.to(x.device)
    if member_rows.dim() != 2 or member_rows.shape[0] != n_models:
        raise ValueError(
            f"member_rows must have shape ({n_models}, m), got {tuple(member_rows.shape)}"
        )
    generators = (
        [generator] * n_models
        if generator is None or isinstance(generator, torch.Generator)
        else list(generator)
    )
    if len(generators) != n_models:
        raise ValueError(f"{n_models} members need {n_models} generators, got {len(generators)}")
    # Inside DistributedDataParallel gradients must flow through autograd (its hooks
    # average them), and a custom loss_fn is differentiated as given.
    by_hand = loss_fn is None and network is module and _hand_backprop_applies(module)
    # Whether targets are missing is looked up once here, not per minibatch (on a GPU each
    # look would be a sync).
    complete = not bool(torch.isnan(y).any())
    loss_fn = loss_fn or (lambda xb, yb: _member_nll(network, xb, yb, complete))
    n = member_rows.shape[1]
    batch_size = min(batch_size, n)
    validate = x_val is not None and y_val is not None and len(x_val) > 0
    # Syncing the host on every step stalls a GPU; there, non-finite values are looked for
    # once per evaluation, and the weights saved at the previous one are restored.
    check_each_step = _checks_each_step(x.device)
    history = History()
    rates = [lr] * n_models  # each member's rate before the schedule's factor
    last_cut = torch.zeros(n_models, dtype=torch.long)  # when "plateau" last halved it
    optimizer = _Adam(module, rates, l2)
    gradients = _FlatGradients(list(module.parameters()), n_models)
    by_hand = _ReluBackprop(module) if by_hand else None  # after the gradients exist
    averaging = (
        _WeightAverage(list(module.parameters()), ema_decay) if ema_decay is not None else None
    )
    scored = averaging.swapped_in if averaging else contextlib.nullcontext
    good_state = copy.deepcopy(module.state_dict())
    best_state, best_val = None, torch.full((n_models,), math.inf)
    best_step = torch.zeros(n_models, dtype=torch.long)
    stopped = torch.zeros(n_models, dtype=torch.bool)  # members out of patience
    order, cursor = _epoch_order(member_rows, generators), 0
    running, running_steps = torch.zeros((), device=x.device), 0
    network.train()
    bar = tqdm(total=n_iter, desc="mdn fit", disable=None if verbose else True, leave=False)
    step = 0
    while step < n_iter:
        if cursor + batch_size > n:
            order, cursor = _epoch_order(member_rows, generators), 0
        index = order[:, cursor : cursor + batch_size]  # [E, batch]
        cursor += batch_size
        rows = index.reshape(-1)
        # index_select is several times faster than advanced indexing for small batches.
        xb, yb = x.index_select(0, rows), y.index_select(0, rows)
        if ensemble:
            xb, yb = xb.unflatten(0, index.shape), yb.unflatten(0, index.shape)
        if by_hand:  # every gradient is overwritten: no zeroing needed
            loss = by_hand(xb, yb, complete).sum()
        else:
            loss = loss_fn(xb, yb).sum()  # the members' mean NLLs, summed: members stay apart
            gradients.zero_()
            loss.backward()
        norms = gradients.norms()
        # One check for both: a sum with a non-finite term is non-finite (norms are >= 0).
        finite = not check_each_step or _all_processes_agree(
            bool(torch.isfinite(loss.detach() + norms.sum())), x.device
        )
        if finite:
            if clip_grad is not None:
                gradients.clip_(clip_grad, norms)
            if lr_schedule == "cosine":
                factor = 0.5 * (1.0 + math.cos(math.pi * step / n_iter))
                optimizer.set_lr([rate * factor for rate in rates])
            optimizer.step()
            if averaging:
                averaging.update()
            step += 1
            if check_each_step:
                running += loss.detach() / n_models
            else:  # a non-finite gradient must show at the evaluation too (0 * inf is NaN)
                running += (loss.detach() + 0 * norms.sum()) / n_models
            running_steps += 1
            bar.update(1)
            if step % eval_every and step != n_iter:
                continue
            mean_loss = float(running) / running_steps
            finite = math.isfinite(mean_loss)
        if not finite:
            history.recoveries += 1
            if history.recoveries > max_recoveries:
                bar.close()
                raise TrainingDiverged(
                    f"the training loss became non-finite at iteration {step + 1} and stayed so "
                    f"after {max_recoveries} restarts at lower learning rates; try a smaller lr, "
                    "clip_grad, a larger epsilon, or check the data for extreme values"
                )
            rates = [rate / 2 for rate in rates]
            logger.warning(
                "non-finite loss at iteration %d: restarting from the last good weights with lr=%s",
                step + 1,
                ", ".join(f"{r:g}" for r in rates),
            )
            module.load_state_dict(good_state)
            optimizer = _Adam(module, rates, l2)
            if averaging:
                averaging.reset()
            if not check_each_step:  # the steps since the last evaluation are undone
                step = history.step[-1] if history.step else 0
                bar.reset(total=n_iter)
                bar.update(step)
            running, running_steps = torch.zeros((), device=x.device), 0
            continue
        history.step.append(step)
        history.train_nll.append(mean_loss)
        running, running_steps = torch.zeros((), device=x.device), 0
        postfix = {"train_nll": f"{mean_loss:.4f}"}
        with torch.no_grad(), scored():
            good_state = copy.deepcopy(module.state_dict())
            if validate:
                network.eval()
                val = _process_mean(_member_nll(network, x_val, y_val).reshape(n_models)).cpu()
                network.train()
        if validate:
            history.val_nll.append(float(val.mean()))
            if ensemble:
                history.member_val_nll.append(val.tolist())
            postfix["val_nll"] = f"{history.val_nll[-1]:.4f}"
            # A member out of patience has stopped, as it would have alone: the steps the
            # others still take cannot replace its best weights.
            improved = (val < best_val) & ~stopped  # [E]
            if bool(improved.any()):
                best_val = torch.where(improved, val, best_val)
                best_step[improved] = step
                best_state = _keep_improved(best_state, good_state, improved, ensemble)
            if lr_schedule == "plateau":
                cut = (step - torch.maximum(best_step, last_cut) >= lr_patience) & ~stopped
                if bool(cut.any()):
                    last_cut[cut] = step
                    rates = [
                        rate / 2 if c else rate for rate, c in zip(rates, cut.tolist(), strict=True)
                    ]
                    optimizer.set_lr(rates)
        bar.set_postfix(postfix, refresh=False)
        if verbose >= 2:
            logger.info("iteration %d: %s", step, postfix)
        stop = any(bool(callback(history)) for callback in callbacks)
        if validate and patience is not None:
            stopped |= step - best_step >= patience
        if bool(stopped.all()):
            logger.info(
                "early stop at iteration %d: no validation gain since iteration %d",
                step,
                int(best_step.max()),
            )
            stop = True
        if not _all_processes_agree(not stop, x.device):  # any process stopping stops all
            break
    bar.close()
    history.n_iter = step
    if best_state is None:
        best_step[:] = step
        best_state = good_state if averaging else None  # the average at the last evaluation
    if best_state is not None:
        module.load_state_dict(best_state)
    history.best_step = int(best_step.max())
    if ensemble:
        history.member_best_step = best_step.tolist()
    network.eval()
    return history


def _keep_improved(
    best: dict[str, Tensor] | None, current: dict[str, Tensor], improved: Tensor, ensemble: bool
) -> dict[str, Tensor]:
    """``best`` with the members that ``improved`` replaced by their ``current`` weights."""
    if best is None or not ensemble:
        return current
    for key, value in current.items():
        best[key][improved.to(value.device)] = value[improved.to(value.device)]
    return best
