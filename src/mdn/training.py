"""The fitting loop: minibatch maximum likelihood with Adam, L2, clipping and early stopping."""

from __future__ import annotations

import contextlib
import copy
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

__all__ = ["History", "TrainingDiverged", "train"]

logger = logging.getLogger(__name__)


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
        Mean training NLL over the iterations since the previous evaluation.
    val_nll : list of float
        Validation NLL (empty without validation data).
    best_step : int
        Iteration whose weights were kept (the last one without validation data).
    n_iter : int
        Iterations run (fewer than asked when early stopping fired).
    recoveries : int
        Times a non-finite loss was met and the loop restarted from the last good weights
        at half the learning rate.
    """

    step: list[int] = field(default_factory=list)
    train_nll: list[float] = field(default_factory=list)
    val_nll: list[float] = field(default_factory=list)
    best_step: int = 0
    n_iter: int = 0
    recoveries: int = 0

    def as_dict(self) -> dict:
        return {"step": self.step, "train_nll": self.train_nll, "val_nll": self.val_nll,
                "best_step": self.best_step, "n_iter": self.n_iter,
                "recoveries": self.recoveries}


def _nll(network: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    return -network(x).log_prob(y).mean()


def _optimizer(network: nn.Module, lr: float, l2: float) -> torch.optim.Adam:
    # Coupled L2 as in a loss term l2 * sum(W**2) on the weight matrices (not the biases):
    # Adam's weight_decay adds weight_decay * W to the gradient, the gradient of that term.
    weights = [p for n, p in network.named_parameters() if n.endswith("weight")]
    others = [p for n, p in network.named_parameters() if not n.endswith("weight")]
    groups = [{"params": weights, "weight_decay": 2.0 * l2}, {"params": others, "weight_decay": 0}]
    try:  # the fused kernel is 3x faster on CPU; older torch builds have it for CUDA only
        return torch.optim.Adam(groups, lr=lr, fused=True)
    except RuntimeError:
        return torch.optim.Adam(groups, lr=lr)


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
    l2: float = 1e-3,
    clip_grad: float | None = None,
    patience: int | None = None,
    eval_every: int = 50,
    generator: torch.Generator | None = None,
    verbose: int = 0,
    callbacks: Sequence[Callable[[History], bool | None]] = (),
    max_recoveries: int = 3,
) -> History:
    """Fit ``network`` (inputs -> mixture) by minimising the mean negative log-likelihood.

    Minibatches are slices of a fresh permutation each epoch, drawn with ``generator``
    from tensors already on the network's device. Every ``eval_every`` iterations the
    loop records the training NLL and, given validation data, the validation NLL; the
    weights with the best validation NLL are restored at the end.

    Parameters
    ----------
    network : nn.Module
        Maps a batch of inputs to an object with ``log_prob(y)`` (a ``GaussianMixture``).
    x, y : Tensor
        Training inputs (N, F) and targets (N, D).
    x_val, y_val : Tensor, optional
        Validation data; enables best-weights restore and early stopping.
    n_iter, batch_size, lr : int, int, float
        Iterations (minibatch steps), rows per minibatch, Adam's learning rate.
    l2 : float
        Penalty ``l2 * sum(W**2)`` on every weight matrix.
    clip_grad : float, optional
        Clip the global gradient norm to this value.
    patience : int, optional
        Stop when the validation NLL has not improved for this many iterations.
    eval_every : int
        Iterations between evaluations.
    generator : torch.Generator, optional
        Source of the minibatch order (CPU generator).
    verbose : int
        0: silent; 1: progress bar with the running losses; 2: also log each evaluation.
    callbacks : sequence of callables
        Called with the ``History`` after each evaluation; returning True stops training.
    max_recoveries : int
        Non-finite losses tolerated (each restarts from the last good weights at half the
        learning rate) before ``TrainingDiverged`` is raised.
    """
    n = x.shape[0]
    batch_size = min(batch_size, n)
    validate = x_val is not None and y_val is not None and len(x_val) > 0
    history = History()
    optimizer = _optimizer(network, lr, l2)
    good_state = copy.deepcopy(network.state_dict())
    best_state, best_val = None, math.inf
    order, cursor = torch.randperm(n, generator=generator).to(x.device), 0
    running, running_steps = 0.0, 0
    network.train()
    bar = tqdm(total=n_iter, desc="mdn fit", disable=None if verbose else True, leave=False)
    step = 0
    while step < n_iter:
        if cursor + batch_size > n:
            order, cursor = torch.randperm(n, generator=generator).to(x.device), 0
        index = order[cursor : cursor + batch_size]
        cursor += batch_size
        loss = _nll(network, x[index], y[index])
        optimizer.zero_grad(set_to_none=True)
        loss_value = float(loss.detach())
        if math.isfinite(loss_value):
            loss.backward()
            # With no clipping asked for, an infinite bound still returns the norm to check.
            norm = nn.utils.clip_grad_norm_(network.parameters(), clip_grad or math.inf)
        if not math.isfinite(loss_value) or not bool(torch.isfinite(norm)):
            history.recoveries += 1
            if history.recoveries > max_recoveries:
                bar.close()
                raise TrainingDiverged(
                    f"the training loss became non-finite at iteration {step + 1} and stayed so "
                    f"after {max_recoveries} restarts at lower learning rates; try a smaller lr, "
                    "clip_grad, a larger epsilon, or check the data for extreme values"
                )
            lr = optimizer.param_groups[0]["lr"] / 2
            logger.warning("non-finite loss at iteration %d: restarting from the last good "
                           "weights with lr=%g", step + 1, lr)
            network.load_state_dict(good_state)
            optimizer = _optimizer(network, lr, l2)
            continue
        optimizer.step()
        step += 1
        running += loss_value
        running_steps += 1
        bar.update(1)
        if step % eval_every and step != n_iter:
            continue
        history.step.append(step)
        history.train_nll.append(running / running_steps)
        running, running_steps = 0.0, 0
        good_state = copy.deepcopy(network.state_dict())
        postfix = {"train_nll": f"{history.train_nll[-1]:.4f}"}
        if validate:
            network.eval()
            with torch.no_grad():
                val = float(_nll(network, x_val, y_val))
            network.train()
            history.val_nll.append(val)
            postfix["val_nll"] = f"{val:.4f}"
            if val < best_val:
                best_val, best_state, history.best_step = val, good_state, step
        bar.set_postfix(postfix, refresh=False)
        if verbose >= 2:
            logger.info("iteration %d: %s", step, postfix)
        stop = any(bool(callback(history)) for callback in callbacks)
        if validate and patience is not None and step - history.best_step >= patience:
            logger.info("early stop at iteration %d: no validation gain since iteration %d",
                        step, history.best_step)
            stop = True
        if stop:
            break
    bar.close()
    history.n_iter = step
    if best_state is not None:
        network.load_state_dict(best_state)
    else:
        history.best_step = step
    network.eval()
    return history
