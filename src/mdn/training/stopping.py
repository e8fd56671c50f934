"""Each member's best validation NLL, the weights it had then, its patience and its rate cuts."""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["BestWeights"]


class BestWeights:
    """The validation record of every member of a (possibly batched) network.

    A member out of patience has stopped, as it would have alone: the steps that the
    others still take cannot replace its best weights.

    Parameters
    ----------
    n_models : int
        Members E (1 for a single network).
    ensemble : bool
        Whether the state dicts have a leading member axis.
    """

    def __init__(self, n_models: int, ensemble: bool) -> None:
        self.ensemble = ensemble
        self.state: dict[str, Tensor] | None = None
        self.val = torch.full((n_models,), math.inf)
        self.step = torch.zeros(n_models, dtype=torch.long)
        self.stopped = torch.zeros(n_models, dtype=torch.bool)  # members out of patience
        self.last_cut = torch.zeros(n_models, dtype=torch.long)  # when "plateau" last cut

    def state_dict(self) -> dict[str, object]:
        """Each member's record (best NLL, its step, whether stopped, the last rate cut) and
        the best weights (None before any).

        Returns
        -------
        dict
        """
        record = {
            name: getattr(self, name).clone() for name in ("val", "step", "stopped", "last_cut")
        }
        weights = None if self.state is None else {k: v.clone() for k, v in self.state.items()}
        return {**record, "weights": weights}

    def load_state_dict(self, state: dict[str, object]) -> None:
        """Restore a state of ``state_dict``.

        Parameters
        ----------
        state : dict
        """
        for name in ("val", "step", "stopped", "last_cut"):
            setattr(self, name, state[name].cpu().clone())
        self.state = state["weights"] or None

    def update(self, val: Tensor, step: int, state: dict[str, Tensor]) -> None:
        """Keep the weights ``state`` of the members whose validation NLL ``val`` improved.

        Parameters
        ----------
        val : Tensor of shape (E,)
        step : int
        state : dict of str to Tensor
            The weights that were scored (not copied: pass a copy).
        """
        improved = (val < self.val) & ~self.stopped  # [E]
        if not bool(improved.any()):
            return
        self.val = torch.where(improved, val, self.val)
        self.step[improved] = step
        if self.state is None or not self.ensemble:
            self.state = state
            return
        for key, value in state.items():
            self.state[key][improved.to(value.device)] = value[improved.to(value.device)]

    def stop_stalled(self, step: int, patience: int) -> None:
        """Stop the members without a gain for ``patience`` iterations.

        Parameters
        ----------
        step : int
            The current iteration.
        patience : int
        """
        self.stopped |= step - self.step >= patience

    def plateau_cuts(self, step: int, lr_patience: int) -> list[bool] | None:
        """Which members' learning rates to halve now (None: none).

        A member's rate is halved when it has had no validation gain for ``lr_patience``
        iterations since its best step or its last cut, whichever came later.

        Parameters
        ----------
        step : int
            The current iteration (recorded as the cut's).
        lr_patience : int

        Returns
        -------
        list of bool or None
            One flag per member, or None where no member's rate is cut.
        """
        cut = (step - torch.maximum(self.step, self.last_cut) >= lr_patience) & ~self.stopped
        if not bool(cut.any()):
            return None
        self.last_cut[cut] = step
        return cut.tolist()
