"""The fitting loop: minibatch maximum likelihood with Adam, L2, clipping and early stopping.

``train`` is short: ``_Run`` holds one run's state and its pieces (a step, an evaluation, a
recovery from a non-finite loss, the end); minibatches, the optimiser, weight averaging,
the best weights and the distributed helpers have modules of their own beside this one.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from mdn.nn.network import MixtureDensityNetwork
from mdn.params import validate_all
from mdn.runtime import denormals_flushed
from mdn.training.averaging import WeightAverage
from mdn.training.batches import Minibatches
from mdn.training.checkpoint import Checkpoint
from mdn.training.ddp import all_processes_agree, process_mean
from mdn.training.history import History, TrainingDiverged
from mdn.training.optimizer import Adam, FlatGradients
from mdn.training.stopping import BestWeights

__all__ = ["member_nll", "train"]

logger = logging.getLogger(__name__)


def member_nll(network: nn.Module, x: Tensor, y: Tensor, complete: bool | None = None) -> Tensor:
    """Mean NLL of each member over its rows: shape (E,) for an ensemble, () otherwise.

    Parameters
    ----------
    network : nn.Module
        A ``MixtureDensityNetwork`` (its fused loss), possibly inside a DDP wrapper, or any
        module mapping inputs to an object with ``log_prob``.
    x, y : Tensor
    complete : bool, optional
        Whether ``y`` is known to hold no NaN (None: look).

    Returns
    -------
    Tensor
    """
    module = getattr(network, "module", network)
    if isinstance(module, MixtureDensityNetwork):
        return network(x, y, complete).mean(-1)  # the fused loss
    return -network(x).log_prob(y).mean(-1)


def _checks_each_step(device: torch.device) -> bool:
    """Whether the loop may sync the host after each step to look for non-finite values."""
    return device.type == "cpu"


@dataclass(frozen=True)
class _Settings:
    """The numbers of a run, validated by ``mdn.params``."""

    n_iter: int
    batch_size: int
    lr: float
    lr_schedule: str
    lr_patience: int
    ema_decay: float | None
    l2: float
    clip_grad: float | None
    patience: int | None
    eval_every: int
    verbose: int
    max_recoveries: int

    def __post_init__(self) -> None:
        validate_all(vars(self))
        if self.lr_schedule == "plateau" and self.patience is not None:
            if self.lr_patience >= self.patience:
                warnings.warn(
                    f"lr_schedule='plateau' never lowers the rate when lr_patience "
                    f"({self.lr_patience}) >= patience ({self.patience}): members stop first; "
                    "choose a smaller lr_patience",
                    UserWarning,
                    stacklevel=4,  # the caller of train
                )


@denormals_flushed()
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
    checkpoint: Checkpoint | None = None,
) -> History:
    """Fit ``network`` (inputs -> mixture) by minimising the mean negative log-likelihood.

    Minibatches are slices of a fresh permutation each epoch, drawn with ``generator``.
    Every ``eval_every`` iterations the loop records the training and validation NLL; the
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
        ``min(ema_decay, (1 + t) / (10 + t))`` at iteration t (Polyak averaging). Validation,
        the best weights, the recovery point and the returned network use the average; the
        optimiser keeps stepping the trained weights.
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
    checkpoint : Checkpoint, optional
        Write the run's state to ``checkpoint.path`` every ``checkpoint.every`` iterations
        (at evaluations), and resume from it where it holds this fit's state: the result
        is then that of an uninterrupted run, to the bit.

    Returns
    -------
    History
    """
    arguments = locals()  # train's arguments by name: the settings among them
    settings = _Settings(**{f.name: arguments[f.name] for f in dataclasses.fields(_Settings)})
    run = _Run(network, x, y, x_val, y_val, settings, generator, member_rows, loss_fn)
    return run.run(callbacks, checkpoint)


class _Run:
    """The state of one call of ``train`` and the pieces its loop is made of."""

    def __init__(
        self, network, x, y, x_val, y_val, settings: _Settings, generator, member_rows, loss_fn
    ) -> None:
        self.network, self.settings = network, settings
        self.module = module = getattr(network, "module", network)  # inside a DDP wrapper
        self.ensemble = getattr(module, "n_models", None) is not None
        self.n_models = getattr(module, "n_models", None) or 1
        self.batches = Minibatches(
            x, y, member_rows, generator, settings.batch_size, self.n_models, self.ensemble
        )
        self.device = x.device
        self.x_val, self.y_val = x_val, y_val
        self.validate = x_val is not None and y_val is not None and len(x_val) > 0
        # Syncing the host on every step stalls a GPU; there, non-finite values are looked
        # for once per evaluation, and the weights saved at the previous one are restored.
        self.check_each_step = _checks_each_step(x.device)
        # Whether targets are missing is looked up once here, not per minibatch (on a GPU
        # each look would be a sync).
        self.complete = not bool(torch.isnan(y).any())
        self.loss_fn = loss_fn or (lambda xb, yb: member_nll(network, xb, yb, self.complete))
        self.history = History()
        self.rates = [settings.lr] * self.n_models  # each member's rate before the schedule
        self.optimizer = Adam(module, self.rates, settings.l2)
        self.gradients = FlatGradients(list(module.parameters()), self.n_models)
        # Inside DistributedDataParallel gradients must flow through autograd (its hooks
        # average them), and a custom loss_fn is differentiated as given.
        self.by_hand = None
        if loss_fn is None and network is module and isinstance(module, MixtureDensityNetwork):
            self.by_hand = module.hand_backprop()  # after the gradients exist
        self.averaging = None
        if settings.ema_decay is not None:
            self.averaging = WeightAverage(list(module.parameters()), settings.ema_decay)
        self.good_state = copy.deepcopy(module.state_dict())
        self.best = BestWeights(self.n_models, self.ensemble)
        self.batches.shuffle()
        self.step = 0
        self._reset_window()
        network.train()
        self.bar = tqdm(
            total=settings.n_iter,
            desc="mdn fit",
            leave=False,
            disable=None if settings.verbose else True,
        )

    def run(self, callbacks, checkpoint: Checkpoint | None) -> History:
        """Step until ``n_iter`` iterations or a stop, evaluating and checkpointing on the way;
        resumed first from ``checkpoint`` where it holds this fit's state."""
        state = checkpoint.load() if checkpoint is not None else None
        if state is not None:
            self.load_state_dict(state)
        saved_at, n_iter = self.step, self.settings.n_iter
        try:
            while self.step < n_iter:
                if not self.take_step():
                    self.recover()
                elif self.step % self.settings.eval_every == 0 or self.step == n_iter:
                    mean_loss = self.window_loss()
                    if not math.isfinite(mean_loss):
                        self.recover()
                    elif self.evaluate(mean_loss, callbacks):
                        break
                    elif checkpoint is not None and self.step - saved_at >= checkpoint.every:
                        checkpoint.save(self.state_dict())
                        saved_at = self.step
        except KeyboardInterrupt:  # Ctrl-C: end cleanly with what the fit has reached
            self.history.interrupted = True
        finally:
            self.bar.close()
        return self.finish()

    def state_dict(self) -> dict[str, object]:
        """The run's whole state at an evaluation (where the running loss window is empty):
        each part's own ``state_dict``, the weights, the step, the rates and the record."""
        return {
            "step": self.step,
            "rates": self.rates,
            "history": self.history.as_dict(),
            "weights": self.module.state_dict(),
            "good": self.good_state,
            "best": self.best.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "averaging": self.averaging.state_dict() if self.averaging else None,
            "batches": self.batches.state_dict(),
        }

    def load_state_dict(self, state: dict[str, object]) -> None:
        """Restore a state of ``state_dict``, just after the run was built: its next step is
        the one the run that saved it took."""

        def on_device(tensors: dict[str, Tensor]) -> dict[str, Tensor]:
            return {k: v.to(self.device) for k, v in tensors.items()}

        self.step, self.rates = state["step"], list(state["rates"])
        self.history = History(**state["history"])
        self.module.load_state_dict(state["weights"])
        self.good_state = on_device(state["good"])
        best = dict(state["best"])
        best["weights"] = best["weights"] and on_device(best["weights"])
        self.best.load_state_dict(best)
        self.optimizer.load_state_dict(state["optimizer"])
        if self.averaging:
            self.averaging.load_state_dict(state["averaging"])
        self.batches.load_state_dict(state["batches"])
        self.bar.update(self.step)

    def _reset_window(self) -> None:
        self.running, self.running_steps = torch.zeros((), device=self.device), 0

    def _scored(self):
        """The weights to score: the average where there is one."""
        return self.averaging.swapped_in() if self.averaging else contextlib.nullcontext()

    def take_step(self) -> bool:
        """One optimiser step on one minibatch per member; False if the loss was not finite
        (or a component's covariance could not be factorised, which is as bad)."""
        settings = self.settings
        xb, yb = self.batches.next()
        try:
            loss = self._loss_and_gradients(xb, yb)
        except torch.linalg.LinAlgError:
            return False
        norms = self.gradients.norms()
        # One check for both: a sum with a non-finite term is non-finite (norms are >= 0).
        if self.check_each_step and not all_processes_agree(
            bool(torch.isfinite(loss.detach() + norms.sum())), self.device
        ):
            return False
        if settings.clip_grad is not None:
            self.gradients.clip_(settings.clip_grad, norms)
        if settings.lr_schedule == "cosine":
            factor = 0.5 * (1.0 + math.cos(math.pi * self.step / settings.n_iter))
            self.optimizer.set_lr([rate * factor for rate in self.rates])
        self.optimizer.step()
        if self.averaging:
            self.averaging.update()
        self.step += 1
        if self.check_each_step:
            self.running += loss.detach() / self.n_models
        else:  # a non-finite gradient must show at the evaluation too (0 * inf is NaN)
            self.running += (loss.detach() + 0 * norms.sum()) / self.n_models
        self.running_steps += 1
        self.bar.update(1)
        return True

    def _loss_and_gradients(self, xb: Tensor, yb: Tensor) -> Tensor:
        if self.by_hand:  # every gradient is overwritten: no zeroing needed
            return self.by_hand(xb, yb, self.complete).sum()
        loss = self.loss_fn(xb, yb).sum()  # the members' mean NLLs summed: they stay apart
        self.gradients.zero_()
        loss.backward()
        return loss

    def window_loss(self) -> float:
        """Mean training NLL since the last evaluation."""
        return float(self.running) / self.running_steps

    def recover(self) -> None:
        """Restart from the last good weights at half the learning rate, or give up."""
        self.history.recoveries += 1
        if self.history.recoveries > self.settings.max_recoveries:
            raise TrainingDiverged(
                f"the training loss became non-finite at iteration {self.step + 1} and stayed "
                f"so after {self.settings.max_recoveries} restarts at lower learning rates; "
                "try a smaller lr, clip_grad, a larger epsilon, covariance='diag' (full "
                "covariances can become singular), or check the data for extreme values"
            )
        self.rates = [rate / 2 for rate in self.rates]
        logger.warning(
            "non-finite loss at iteration %d: restarting from the last good weights with lr=%s",
            self.step + 1,
            ", ".join(f"{r:g}" for r in self.rates),
        )
        self.module.load_state_dict(self.good_state)
        self.optimizer = Adam(self.module, self.rates, self.settings.l2)
        if self.averaging:
            self.averaging.reset()
        if not self.check_each_step:  # the steps since the last evaluation are undone
            self.step = self.history.step[-1] if self.history.step else 0
            self.bar.reset(total=self.settings.n_iter)
            self.bar.update(self.step)
        self._reset_window()

    def evaluate(self, mean_loss: float, callbacks) -> bool:
        """Record, score the validation rows, keep the best weights; True to stop."""
        history, settings = self.history, self.settings
        history.step.append(self.step)
        history.train_nll.append(mean_loss)
        self._reset_window()
        postfix = {"train_nll": f"{mean_loss:.4f}"}
        with torch.no_grad(), self._scored():
            self.good_state = copy.deepcopy(self.module.state_dict())
            if self.validate:
                self.network.eval()
                val = process_mean(self._validation_nll()).cpu()
                self.network.train()
        if self.validate:
            self._record_validation(val, postfix)
        self.bar.set_postfix(postfix, refresh=False)
        if settings.verbose >= 2:
            logger.info("iteration %d: %s", self.step, postfix)
        stop = any(bool(callback(history)) for callback in callbacks)
        if self.validate and settings.patience is not None:
            self.best.stop_stalled(self.step, settings.patience)
        if bool(self.best.stopped.all()):
            logger.info(
                "early stop at iteration %d: no validation gain since iteration %d",
                self.step,
                int(self.best.step.max()),
            )
            stop = True
        return not all_processes_agree(not stop, self.device)  # any process stopping stops all

    def _validation_nll(self) -> Tensor:
        """Each member's validation NLL; infinite where a component's covariance could not be
        factorised (such weights are never the best)."""
        try:
            return member_nll(self.network, self.x_val, self.y_val).reshape(self.n_models)
        except torch.linalg.LinAlgError:
            return torch.full((self.n_models,), math.inf, device=self.device)

    def _record_validation(self, val: Tensor, postfix: dict[str, str]) -> None:
        self.history.val_nll.append(float(val.mean()))
        if self.ensemble:
            self.history.member_val_nll.append(val.tolist())
        postfix["val_nll"] = f"{self.history.val_nll[-1]:.4f}"
        self.best.update(val, self.step, self.good_state)
        if self.settings.lr_schedule == "plateau":
            cuts = self.best.plateau_cuts(self.step, self.settings.lr_patience)
            if cuts:
                self.rates = [r / 2 if c else r for r, c in zip(self.rates, cuts, strict=True)]
                self.optimizer.set_lr(self.rates)

    def finish(self) -> History:
        """Load the weights to keep and complete the record."""
        history, best = self.history, self.best
        history.n_iter = self.step
        if history.interrupted:
            # The weights may be halfway through a step: keep those of an evaluation.
            if best.state is None:
                best.step[:] = history.step[-1] if history.step else 0
                best.state = self.good_state
            warnings.warn(
                f"training interrupted at iteration {self.step} of {self.settings.n_iter}: "
                f"keeping the weights of iteration {int(best.step.max())}",
                UserWarning,
                stacklevel=4,  # the caller of train
            )
        elif best.state is None:
            best.step[:] = self.step
            # Without validation: the average at the last evaluation, or the last weights.
            best.state = self.good_state if self.averaging else None
        if best.state is not None:
            self.module.load_state_dict(best.state)
        history.best_step = int(best.step.max())
        if self.ensemble:
            history.member_best_step = best.step.tolist()
        self.network.eval()
        return history
