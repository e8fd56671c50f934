"""What a training run records, and the error it raises when the loss will not stay finite."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

__all__ = ["History", "TrainingDiverged"]


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
    interrupted : bool
        Whether the fit was interrupted (Ctrl-C) and kept the best weights reached by then.
    """

    step: list[int] = field(default_factory=list)
    train_nll: list[float] = field(default_factory=list)
    val_nll: list[float] = field(default_factory=list)
    best_step: int = 0
    n_iter: int = 0
    recoveries: int = 0
    member_val_nll: list[list[float]] = field(default_factory=list)
    member_best_step: list[int] = field(default_factory=list)
    interrupted: bool = False

    def as_dict(self) -> dict:
        """The record as plain lists and numbers (for JSON and ``MDN.history_``).

        Returns
        -------
        dict
        """
        return dataclasses.asdict(self)
