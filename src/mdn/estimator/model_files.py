"""The fitted model's files: ``save`` and ``load`` (safetensors with JSON metadata,
``mdn.persistence``) and ``export_onnx`` (``mdn.onnx_export``), as a mixin of ``MDN``."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from sklearn.utils.validation import check_is_fitted

from mdn.estimator.model_file import read_model, write_model

if TYPE_CHECKING:
    from mdn.estimator.model import MDN

__all__ = ["ModelFilesMixin"]


class ModelFilesMixin:
    """``save``, ``load`` and ``export_onnx`` for ``MDN``."""

    def save(self, path: str | os.PathLike) -> None:
        """Write the fitted model to ``path`` (safetensors with JSON metadata; no pickle).

        The write is atomic: an existing file at ``path`` is replaced only once the new
        one is complete.

        Parameters
        ----------
        path : str or path-like
        """
        check_is_fitted(self, "network_")
        write_model(self, path)

    def export_onnx(self, path: str | os.PathLike) -> None:
        """Write the fitted model as an ONNX graph from raw features to its mixture's
        parameters, for ``mdn.onnx.OnnxPredictor`` (NumPy and onnxruntime, no PyTorch).

        See ``mdn.onnx_export`` for the graph's outputs and metadata. Needs the extra
        ``mdn[onnx]``.

        Parameters
        ----------
        path : str or path-like
            The ``.onnx`` file to write (atomically).
        """
        from mdn.estimator.onnx_export import (
            export_onnx,  # the optional onnx packages load only here
        )

        export_onnx(self, path)

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | None = None) -> MDN:
        """Read a model written by ``save``.

        Parameters
        ----------
        path : str or path-like
        device : str, optional
            Where to put the network; defaults to the saved ``device`` when it is present
            on this machine, else the CPU.

        Returns
        -------
        MDN
        """
        return read_model(cls, path, device)
