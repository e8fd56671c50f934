"""Minibatches drawn from tensors: each member's own permutation of its own rows, each epoch."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["Minibatches"]


class Minibatches:
    """Slices of a fresh permutation of each member's rows per epoch (no DataLoader).

    Parameters
    ----------
    x, y : Tensor
        Inputs (N, F) and targets (N, D), on the device the network trains on.
    member_rows : Tensor of shape (E, m), optional
        Rows each member draws from (bagging); all rows by default.
    generator : torch.Generator or sequence of them, optional
        One CPU generator per member (or one for all; None: torch's global one).
    batch_size : int
        Rows per member and minibatch (at most m).
    n_models : int
        Members E.
    ensemble : bool
        Whether batches keep a leading member axis: (E, batch, F) instead of (batch, F).
    """

    def __init__(
        self,
        x: Tensor,
        y: Tensor,
        member_rows: Tensor | None,
        generator: torch.Generator | Sequence[torch.Generator] | None,
        batch_size: int,
        n_models: int,
        ensemble: bool,
    ) -> None:
        if member_rows is None:
            member_rows = torch.arange(x.shape[0]).expand(n_models, -1)
        member_rows = member_rows.to(x.device)
        if member_rows.dim() != 2 or member_rows.shape[0] != n_models:
            raise ValueError(
                f"member_rows must have shape ({n_models}, m), got {tuple(member_rows.shape)}"
            )
        if generator is None or isinstance(generator, torch.Generator):
            generators = [generator] * n_models
        else:
            generators = list(generator)
        if len(generators) != n_models:
            raise ValueError(
                f"{n_models} members need {n_models} generators, got {len(generators)}"
            )
        self.x, self.y, self.rows, self.generators = x, y, member_rows, generators
        self.size = min(batch_size, member_rows.shape[1])
        self.ensemble = ensemble
        self.order, self.cursor = None, 0

    def shuffle(self) -> None:
        """Start an epoch: a fresh permutation of each member's rows."""
        m = self.rows.shape[1]
        perms = torch.stack([torch.randperm(m, generator=g) for g in self.generators])
        self.order, self.cursor = self.rows.gather(1, perms.to(self.rows.device)), 0  # [E, m]

    def state_dict(self) -> dict[str, object]:
        """The epoch's order, the position in it and every generator's state.

        Returns
        -------
        dict
        """
        generators = [None if g is None else g.get_state() for g in self.generators]
        return {"order": self.order.clone(), "cursor": self.cursor, "generators": generators}

    def load_state_dict(self, state: dict[str, object]) -> None:
        """Restore a state of ``state_dict``.

        Parameters
        ----------
        state : dict
        """
        self.order, self.cursor = state["order"].to(self.rows.device), state["cursor"]
        for generator, value in zip(self.generators, state["generators"], strict=True):
            if generator is not None:
                generator.set_state(value.cpu())

    def next(self) -> tuple[Tensor, Tensor]:
        """The next minibatch of inputs and targets.

        Returns
        -------
        xb, yb : Tensor
            (batch, F) and (batch, D), or (E, batch, F) and (E, batch, D) for an ensemble.
        """
        if self.cursor + self.size > self.rows.shape[1]:
            self.shuffle()
        index = self.order[:, self.cursor : self.cursor + self.size]  # [E, batch]
        self.cursor += self.size
        rows = index.reshape(-1)
        # index_select is several times faster than advanced indexing for small batches.
        xb, yb = self.x.index_select(0, rows), self.y.index_select(0, rows)
        if self.ensemble:
            xb, yb = xb.unflatten(0, index.shape), yb.unflatten(0, index.shape)
        return xb, yb
