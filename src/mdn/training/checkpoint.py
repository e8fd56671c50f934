"""Checkpoints of a training run: its whole state, written atomically at evaluations, so that a
fit started again with the same checkpoint resumes where the last one was written and ends
with the model an uninterrupted fit gives, to the bit.

The checkpoint does not know what a run holds: the run hands it a state (``state_dict``: a
tree of dicts and lists whose leaves are tensors or JSON values, each part of the run
contributing its own) and takes it back (``load_state_dict``). The file is a model file
(``mdn.tensor_files``: safetensors, checksummed): the tensors by their path in the tree, the
rest of the tree as JSON with a marker where each tensor was. Its ``fingerprint`` says which
fit it belongs to (the caller hashes the data and the settings); a checkpoint of another fit
is not resumed from.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from torch import Tensor

from mdn.tensor_files import ModelFileError, read_model_file, write_model_file

__all__ = ["Checkpoint"]

#: The key of the JSON object that stands for a tensor in the stored tree.
_TENSOR = "__tensor__"


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

    def save(self, state: Mapping[str, object]) -> None:
        """Write a run's ``state`` to ``path``, atomically.

        Parameters
        ----------
        state : mapping
            A tree of dicts and lists whose leaves are tensors or JSON values.
        """
        tensors: dict[str, Tensor] = {}
        tree = _stored(state, "", tensors)
        documents = {"state": tree, "fingerprint": self.fingerprint}
        write_model_file(self.path, tensors, {"checkpoint": documents})

    def load(self) -> dict[str, object] | None:
        """The state in ``path``, where it holds a checkpoint of this fit.

        Returns
        -------
        dict or None
            The tree ``save`` was given (tensors on the CPU); None, with a warning, where
            the file belongs to another fit or cannot be read, and without one where there
            is no file.
        """
        if not Path(self.path).is_file():
            return None
        try:
            tensors, documents = read_model_file(self.path)
            stored = documents["checkpoint"]
            belongs = stored["fingerprint"] == self.fingerprint
            state = _restored(stored["state"], tensors)
        except (ModelFileError, KeyError, TypeError) as error:
            warnings.warn(
                f"{self.path} is not a readable checkpoint ({error}); starting afresh",
                UserWarning,
                stacklevel=4,  # the caller of train
            )
            return None
        if not belongs:
            warnings.warn(
                f"{self.path} is the checkpoint of another fit (other data or settings): "
                "starting afresh, and overwriting it",
                UserWarning,
                stacklevel=4,  # the caller of train
            )
            return None
        return state


def _stored(node: object, path: str, tensors: dict[str, Tensor]) -> object:
    """``node`` with each tensor moved into ``tensors`` under its path and replaced by a
    marker that names it."""
    if isinstance(node, Tensor):
        tensors[path] = node.detach().clone()
        return {_TENSOR: path}
    if isinstance(node, Mapping):
        return {str(key): _stored(value, f"{path}/{key}", tensors) for key, value in node.items()}
    if isinstance(node, (list, tuple)):
        return [_stored(value, f"{path}/{i}", tensors) for i, value in enumerate(node)]
    return node


def _restored(node: object, tensors: Mapping[str, Tensor]) -> object:
    """The tree ``_stored`` made, with the tensors put back."""
    if isinstance(node, dict):
        if set(node) == {_TENSOR}:
            return tensors[node[_TENSOR]]
        return {key: _restored(value, tensors) for key, value in node.items()}
    if isinstance(node, list):
        return [_restored(value, tensors) for value in node]
    return node
