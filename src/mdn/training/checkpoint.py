"""Checkpoints of a training run: everything the loop holds, written atomically at
evaluations, so that a fit started again with the same checkpoint resumes where the last one
was written and ends with the model an uninterrupted fit gives, to the bit.

A checkpoint is a model file (``mdn.io``: safetensors, checksummed) holding the trained and
averaged weights, the optimiser's moments, each member's best weights and record, the
weights of the last evaluation, the minibatch order, every generator's state, the step and
the history. Its ``fingerprint`` says which fit it belongs to (the caller hashes the data
and the settings); a checkpoint of another fit is not resumed from.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from torch import Tensor

from mdn.tensor_files import ModelFileError, read_model_file, write_model_file
from mdn.training.history import History

if TYPE_CHECKING:
    from mdn.training.loop import _Run

__all__ = ["Checkpoint"]


@dataclass(frozen=True)
class Checkpoint:
    """Where and how often a run writes its checkpoint, and which fit it belongs to.

    Parameters
    ----------
    path : str or path-like
        The checkpoint file; resumed from when it exists and belongs to this fit.
    every : int
        Iterations between checkpoints (written at the next evaluation).
    fingerprint : str
        Identifies the fit: the same data and settings give the same fingerprint.
    """

    path: str | os.PathLike
    every: int
    fingerprint: str

    def save(self, run: _Run) -> None:
        """Write the state of ``run`` (at an evaluation) to ``path``, atomically.

        Parameters
        ----------
        run : _Run
        """
        tensors, documents = _state(run)
        documents["fingerprint"] = self.fingerprint
        write_model_file(self.path, tensors, {"checkpoint": documents})

    def resume(self, run: _Run) -> bool:
        """Restore ``run`` from ``path`` where it holds a checkpoint of this fit.

        Parameters
        ----------
        run : _Run
            Just built, before its first step.

        Returns
        -------
        bool
            Whether the run was restored.
        """
        if not Path(self.path).is_file():
            return False
        try:
            tensors, documents = read_model_file(self.path)
            state = documents["checkpoint"]
            belongs = state["fingerprint"] == self.fingerprint
        except (ModelFileError, KeyError, TypeError) as error:
            warnings.warn(f"{self.path} is not a readable checkpoint ({error}); starting afresh",
                          UserWarning, stacklevel=4)  # fmt: skip
            return False
        if not belongs:
            warnings.warn(
                f"{self.path} is the checkpoint of another fit (other data or settings): "
                "starting afresh, and overwriting it",
                UserWarning,
                stacklevel=4,
            )
            return False
        _restore(run, tensors, state)
        return True


def _prefixed(prefix: str, state: dict[str, Tensor]) -> dict[str, Tensor]:
    return {f"{prefix}.{k}": v.detach().clone() for k, v in state.items()}


def _unprefixed(prefix: str, tensors: dict[str, Tensor]) -> dict[str, Tensor]:
    return {
        k.removeprefix(f"{prefix}."): v for k, v in tensors.items() if k.startswith(prefix + ".")
    }


def _optimizer_tensors(run: _Run) -> list[Tensor]:
    """The optimiser's state, as a flat list of the tensors it updates in place."""
    optimizer = run.optimizer
    if optimizer.fallback is None:
        moments = [t for exp_avg, exp_avg_sq in optimizer.moments for t in (*exp_avg, *exp_avg_sq)]
        return [*moments, optimizer.steps]
    params = [p for group in optimizer.fallback.param_groups for p in group["params"]]
    state = optimizer.fallback.state
    if not state:  # no step taken yet
        return []
    return [state[p][key] for p in params for key in ("exp_avg", "exp_avg_sq", "step")]


def _state(run: _Run) -> tuple[dict[str, Tensor], dict[str, object]]:
    tensors = _prefixed("weights", run.module.state_dict())
    tensors |= _prefixed("good", run.good_state)
    if run.best.state is not None:
        tensors |= _prefixed("best", run.best.state)
    for name in ("val", "step", "stopped", "last_cut"):
        tensors[f"record.{name}"] = getattr(run.best, name).clone()
    tensors |= {f"optimizer.{i}": t.detach().clone() for i, t in enumerate(_optimizer_tensors(run))}
    if run.averaging:
        tensors |= {f"average.{i}": t.clone() for i, t in enumerate(run.averaging.average)}
    tensors["batches.order"] = run.batches.order.clone()
    for e, generator in enumerate(run.batches.generators):
        if generator is not None:
            tensors[f"generator.{e}"] = generator.get_state()
    documents = {
        "step": run.step,
        "rates": run.rates,
        "history": run.history.as_dict(),
        "cursor": run.batches.cursor,
        "average_steps": run.averaging.steps if run.averaging else 0,
        "optimizer_started": bool(_optimizer_tensors(run)),
    }
    return tensors, documents


def _restore(run: _Run, tensors: dict[str, Tensor], state: dict) -> None:
    # Generator states and the members' records live on the CPU; the rest with the network.
    on_cpu = ("generator.", "record.")
    tensors = {k: v if k.startswith(on_cpu) else v.to(run.device) for k, v in tensors.items()}
    run.step = state["step"]
    run.rates = list(state["rates"])
    run.history = History(**state["history"])
    run.module.load_state_dict(_unprefixed("weights", tensors))
    run.good_state = _unprefixed("good", tensors)
    best = _unprefixed("best", tensors)
    run.best.state = best or None
    for name in ("val", "step", "stopped", "last_cut"):
        setattr(run.best, name, tensors[f"record.{name}"].clone())
    run.optimizer.set_lr(run.rates)
    _restore_optimizer(run, tensors, state["optimizer_started"])
    if run.averaging:
        for i, average in enumerate(run.averaging.average):
            average.copy_(tensors[f"average.{i}"])
        run.averaging.steps = state["average_steps"]
    run.batches.order, run.batches.cursor = tensors["batches.order"], state["cursor"]
    for e, generator in enumerate(run.batches.generators):
        if generator is not None:
            generator.set_state(tensors[f"generator.{e}"])
    run.bar.update(run.step)


def _restore_optimizer(run: _Run, tensors: dict[str, Tensor], started: bool) -> None:
    optimizer = run.optimizer
    if not started:
        return
    if optimizer.fallback is not None:
        params = [p for group in optimizer.fallback.param_groups for p in group["params"]]
        for i, p in enumerate(params):
            optimizer.fallback.state[p] = {
                key: tensors[f"optimizer.{3 * i + j}"].clone()
                for j, key in enumerate(("exp_avg", "exp_avg_sq", "step"))
            }
        return
    for i, target in enumerate(_optimizer_tensors(run)):
        target.copy_(tensors[f"optimizer.{i}"])
