"""Polyak averaging: an exponential moving average of the weights, swapped in to be scored."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

from torch import Tensor

from mdn.torch_internals import foreach_copy_, foreach_lerp_

__all__ = ["WeightAverage"]


class WeightAverage:
    """An exponential moving average of the weights (Polyak averaging).

    The optimiser keeps stepping the trained weights; the average is what validation
    scores, what the best weights keep and what training returns. Its decay warms up as
    ``min(decay, (1 + t) / (10 + t))`` so that the first steps do not tie the average to
    the initial weights. Weights are swapped in place, so that views of the parameters held
    elsewhere (the optimiser's, the hand-written backward pass's) stay valid.

    Parameters
    ----------
    parameters : sequence of Tensor
        The network's parameters, updated in place by the optimiser.
    decay : float
        In [0, 1).
    """

    def __init__(self, parameters: Sequence[Tensor], decay: float) -> None:
        self.weights = [p.detach() for p in parameters]
        self.trained = [w.clone() for w in self.weights]  # holds them while the average is in
        self.decay = decay
        self.reset()

    def reset(self) -> None:
        """Start the average afresh from the current weights."""
        self.average = [w.clone() for w in self.weights]
        self.steps = 0

    def update(self) -> None:
        """Move the average towards the current weights (once per optimiser step)."""
        self.steps += 1
        decay = min(self.decay, (1 + self.steps) / (10 + self.steps))
        foreach_lerp_(self.average, self.weights, 1.0 - decay)

    def state_dict(self) -> dict[str, object]:
        """The average and its number of steps (the decay's warm-up).

        Returns
        -------
        dict
        """
        return {"average": [a.clone() for a in self.average], "steps": self.steps}

    def load_state_dict(self, state: dict[str, object]) -> None:
        """Restore a state of ``state_dict``, in place.

        Parameters
        ----------
        state : dict
        """
        for average, value in zip(self.average, state["average"], strict=True):
            average.copy_(value)
        self.steps = state["steps"]

    @contextlib.contextmanager
    def swapped_in(self) -> Iterator[None]:
        """The averaged weights in the network for the duration of the block.

        The trained weights are put back when the block ends, also on an error.

        Yields
        ------
        None
        """
        foreach_copy_(self.trained, self.weights)
        foreach_copy_(self.weights, self.average)
        try:
            yield
        finally:
            foreach_copy_(self.weights, self.trained)
