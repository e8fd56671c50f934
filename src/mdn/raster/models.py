"""The model a scene's blocks are predicted with, loaded once per process.

A scene's tasks carry a ``ModelSource``: the model file's path and SHA-256, nothing more.
The first task a process runs loads the file into a small per-process cache, keyed by that
checksum; the others find it there. A thread pool shares one copy; each worker process of a
``dask.distributed`` cluster loads its own, once, from the path (which every worker must
see). A fitted ``MDN`` that was never saved travels inside its source instead, as the model
its saved bytes rebuild (a snapshot: refitting the object later changes nothing), which
dask sends to each worker once, as one piece of data that the tasks depend on.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from mdn.estimator.model import MDN

__all__ = ["CACHE_SIZE", "ModelSource", "file_sha256", "model_source"]

#: Models kept per process; the least recently used one goes first.
CACHE_SIZE = 4

_CACHE: OrderedDict[str, MDN] = OrderedDict()
_LOCK = threading.Lock()


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes, in hexadecimal (what ``sha256sum`` prints).

    Parameters
    ----------
    path : path-like

    Returns
    -------
    str
    """
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class ModelSource:
    """Where a process finds the model: a file and its checksum, or the model itself.

    Parameters
    ----------
    path : str or None
        The model file; None for a model that was never saved.
    sha256 : str
        The checksum of the file's bytes (for an unsaved model: of the bytes ``save`` writes).
    model : MDN or None
        The model itself when there is no file.
    """

    path: str | None
    sha256: str
    model: MDN | None = field(default=None, repr=False, compare=False)

    def __dask_tokenize__(self) -> tuple[str, str]:
        """The same model file gives the same dask key.

        Returns
        -------
        tuple of str
        """
        return ("mdn.raster.ModelSource", self.sha256)

    def load(self) -> MDN:
        """The model, from this process's cache or loaded into it.

        Returns
        -------
        MDN

        Raises
        ------
        ValueError
            When the file no longer has the checksum it had when the prediction was set up.
        """
        with _LOCK:  # one load per process, even when several threads ask at once
            model = _CACHE.get(self.sha256)
            if model is None:
                model = self.model if self.model is not None else self._read()
                _CACHE[self.sha256] = model
                while len(_CACHE) > CACHE_SIZE:
                    _CACHE.popitem(last=False)
            _CACHE.move_to_end(self.sha256)
        return model

    def _read(self) -> MDN:
        found = file_sha256(self.path)
        if found != self.sha256:
            raise ValueError(
                f"the model file {self.path} changed after the prediction was set up "
                f"(SHA-256 {found[:12]}..., expected {self.sha256[:12]}...); run it again"
            )
        return MDN.load(self.path)


def model_source(model: MDN | str | os.PathLike) -> tuple[ModelSource, MDN]:
    """The source of ``model`` for a scene's tasks, and the model for this process.

    Parameters
    ----------
    model : MDN or path-like
        A fitted model or its file.

    Returns
    -------
    source : ModelSource
    model : MDN
        Loaded (and cached) when a path was given.
    """
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such model file")
        source = ModelSource(str(path.resolve()), file_sha256(path))
        return source, source.load()
    if not isinstance(model, MDN):
        raise TypeError(f"model must be a fitted MDN or a model file, not {type(model).__name__}")
    with tempfile.TemporaryDirectory() as folder:  # the bytes `save` writes give the checksum
        saved = Path(folder) / "model.safetensors"
        model.save(saved)
        # The model rebuilt from the hashed bytes, not the caller's object: a refit of that
        # object must not change what this checksum (or a lazy prediction) stands for.
        source = ModelSource(None, file_sha256(saved), MDN.load(saved))
    return source, source.load()
