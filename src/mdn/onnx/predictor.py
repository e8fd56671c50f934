"""Predictions from an exported ``MDN`` with NumPy and onnxruntime alone: no torch.

``MDN.export_onnx(path)`` (``mdn export MODEL -o model.onnx`` on the command line) writes a
graph from raw features to the mixture's parameters (``mdn.onnx.graph``);
``OnnxPredictor(path)`` runs it a chunk of rows at a time and does the mixture maths with
``mdn.distributions`` on NumPy arrays (the same code that ``MDN`` runs on torch tensors),
giving what ``MDN``'s methods give. This module imports neither torch, scikit-learn nor
SciPy, so it runs in a lean container or on a Dask worker with ``pip install numpy
onnxruntime array-api-compat``.

Examples
--------
>>> from mdn.onnx.predictor import OnnxPredictor  # doctest: +SKIP
>>> predictor = OnnxPredictor("model.onnx")  # doctest: +SKIP
>>> predictor.predict(X), predictor.predict_interval(X, coverage=0.9)  # doctest: +SKIP
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator

import numpy as np

from mdn.distributions.mixture import GaussianMixture
from mdn.distributions.transforms import LogGaussianMixture
from mdn.ocean.units import unit_factor, unit_warning
from mdn.onnx.graph import INPUT, NOVELTY, member_mixture, predictive_mixture, read_metadata
from mdn.params import validate, validate_argument

__all__ = ["OnnxPredictor"]

Mixture = GaussianMixture | LogGaussianMixture


class OnnxPredictor:
    """A fitted ``MDN`` exported to ONNX, predicting with onnxruntime and NumPy.

    Its methods take and return what ``MDN``'s do (NumPy arrays, or pandas on X's index
    when X is a pandas DataFrame) and agree with them to floating-point precision, except
    ``sample``, whose draws come from NumPy's generator instead of torch's.

    Parameters
    ----------
    path : str or path-like
        A file written by ``MDN.export_onnx``.
    chunk_size : int, default=8192
        Rows per run of the graph (divided among ensemble members, as in ``MDN``), bounding
        memory for any number of rows.
    n_threads : int or None, default=None
        onnxruntime's intra-op threads; None lets it choose (one per physical core).

    Attributes
    ----------
    metadata : dict
        The file's metadata, decoded: names, sizes, covariance type, target transform,
        recalibration values, the mdn version that wrote it.
    n_features_in_, n_outputs_ : int
    feature_names_in_ : ndarray of str
        Present when the model was fitted on named columns.
    target_names_ : list of str or None
    target_transform : str or None
    combine : str
    n_models : int
    """

    def __init__(
        self, path: str | os.PathLike, *, chunk_size: int = 8192, n_threads: int | None = None
    ) -> None:
        try:
            import onnxruntime
        except ImportError:
            raise ImportError(
                "OnnxPredictor needs onnxruntime: pip install 'mdn[onnx]' (or onnxruntime)"
            ) from None
        validate("chunk_size", chunk_size)
        validate("n_threads", n_threads)
        options = onnxruntime.SessionOptions()
        if n_threads is not None:
            options.intra_op_num_threads = int(n_threads)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no ONNX file at {path}")
        try:
            self._session = onnxruntime.InferenceSession(
                os.fspath(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:  # onnxruntime's own types, whatever the damage
            raise ValueError(f"{path} is not an ONNX file onnxruntime can read: {error}") from None
        self.metadata = read_metadata(path, self._session.get_modelmeta().custom_metadata_map)
        meta = self.metadata
        self.chunk_size = int(chunk_size)
        self.n_features_in_, self.n_outputs_ = meta["n_features"], meta["n_targets"]
        if meta["feature_names"] is not None:
            self.feature_names_in_ = np.asarray(meta["feature_names"], dtype=object)
        self.target_names_, self.output_1d_ = meta["target_names"], meta["output_1d"]
        self.target_transform, self.combine = meta["target_transform"], meta["combine"]
        self.n_models = meta["n_models"]

    def _point(self, point: str | None) -> str:
        """``point``, or the model's default where it is None."""
        validate_argument("point", point)
        return self.metadata.get("point", "top") if point is None else point

    def __repr__(self) -> str:
        meta = self.metadata
        return (
            f"OnnxPredictor(n_features={meta['n_features']}, n_targets={meta['n_targets']}, "
            f"covariance={meta['covariance']!r}, n_models={meta['n_models']}, "
            f"target_transform={meta['target_transform']!r})"
        )

    # ------------------------------------------------------------------ running the graph
    def _chunks(self, X: object) -> Iterator[tuple[slice, dict[str, np.ndarray]]]:
        """The graph's outputs a chunk of rows at a time."""
        X = self._features(X)
        step = max(1, self.chunk_size // self.n_models)
        medians = self.metadata.get("input_medians")
        factor = None if medians is None else unit_factor(X[:step], np.asarray(medians))
        if factor is not None:  # the unit guard, as MDN's
            warnings.warn(unit_warning(factor), UserWarning, stacklevel=4)
        for start in range(0, len(X), step):
            rows = slice(start, start + step)
            outputs = self._session.run(None, {INPUT: X[rows]})
            names = [o.name for o in self._session.get_outputs()]
            yield rows, dict(zip(names, outputs, strict=True))

    def _in_target_space(self, mixture: GaussianMixture) -> Mixture:
        return LogGaussianMixture(mixture) if self.target_transform == "log" else mixture

    def _distribution(self, outputs: dict[str, np.ndarray]) -> Mixture:
        return self._in_target_space(predictive_mixture(outputs, self.metadata))

    def _members(self, outputs: dict[str, np.ndarray]) -> Mixture:
        return self._in_target_space(member_mixture(outputs, self.metadata))

    def _collect(self, X: object, compute, row_axis: int = 0, members: bool = False) -> np.ndarray:
        """``compute`` (mixture -> array ending in the target axis) chunk by chunk, joined
        along ``row_axis``; the target axis dropped for a 1-D target, as ``MDN`` does."""
        out = None
        n = _num_rows(X)
        for rows, outputs in self._chunks(X):
            part = compute(self._members(outputs) if members else self._distribution(outputs))
            if out is None:
                shape = list(part.shape)
                shape[row_axis] = n
                out = np.empty(shape, dtype=part.dtype)
            out[(slice(None),) * row_axis + (rows,)] = part
        return out[..., 0] if self.output_1d_ else out

    # ------------------------------------------------------------------ predictions
    def predict(self, X: object, point: str | None = None) -> object:
        """Point estimates, as ``MDN.predict``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        point : {"top", "mean", "mode", "median"}, optional
            An ensemble joins its members as the model's ``combine`` says. Default: the
            model's, as ``MDN.predict`` ("median" for a log target, else "top").

        Returns
        -------
        ndarray of shape (n,) or (n, D), or pandas on X's index for a DataFrame
        """
        point = self._point(point)
        if self.n_models > 1 and self.combine == "median":
            values = self._collect(
                X, lambda m: np.median(getattr(m, point)(), axis=0), members=True
            )
        else:
            values = self._collect(X, lambda dist: getattr(dist, point)())
        return _like_input(values, X, self.target_names_)

    def predict_members(self, X: object, point: str | None = None) -> np.ndarray:
        """Each member's point estimate, as ``MDN.predict_members``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        point : {"top", "mean", "mode", "median"}, optional
            Default: the model's.

        Returns
        -------
        ndarray of shape (E, n) or (E, n, D)
        """
        point = self._point(point)
        return self._collect(X, lambda m: getattr(m, point)(), row_axis=1, members=True)

    def predict_interval(self, X: object, coverage: float = 0.9) -> tuple[object, object]:
        """Central interval of each target's marginal, as ``MDN.predict_interval``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        coverage : float
            Strictly between 0 and 1.

        Returns
        -------
        lower, upper : ndarray of shape (n,) or (n, D)
            pandas on X's index for a DataFrame.
        """
        validate_argument("coverage", coverage)
        bounds = self._collect(X, lambda dist: np.stack(dist.interval(coverage)), row_axis=1)
        names = self.target_names_
        return _like_input(bounds[0], X, names), _like_input(bounds[1], X, names)

    def predict_dist(self, X: object) -> Mixture:
        """The predicted distribution of every row in the user's units.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        GaussianMixture or LogGaussianMixture
            Of NumPy arrays, batch shape (n,); a ``LogGaussianMixture`` for a log target.
        """
        parts = [self._distribution(outputs) for _, outputs in self._chunks(X)]
        return type(parts[0]).cat(parts)

    def log_prob(self, X: object, y: object) -> np.ndarray:
        """Log-density of ``y`` under p(y|x), as ``MDN.log_prob``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
            NaN marks a missing value: the density is then the marginal's.

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        y = self._targets(X, y)
        out = np.empty(len(y))
        for rows, outputs in self._chunks(X):
            out[rows] = self._distribution(outputs).log_prob(y[rows])
        return out

    def novelty(self, X: object) -> np.ndarray:
        """How far each row lies from the training inputs, as ``MDN.novelty``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,)
            Rows above ``metadata["novelty_threshold"]`` are novel.
        """
        if self.metadata.get("novelty_threshold") is None:
            raise ValueError(
                "this graph has no novelty score: export it again from a model fitted by an "
                "mdn with novelty scores"
            )
        out = np.empty(_num_rows(X))
        for rows, outputs in self._chunks(X):
            out[rows] = outputs[NOVELTY]
        return out

    def sample(
        self, X: object, n_samples: int = 1, random_state: int | np.random.Generator | None = None
    ) -> np.ndarray:
        """Draw from p(y|x) with NumPy's generator.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        n_samples : int
            Draws per row.
        random_state : int, numpy.random.Generator or None

        Returns
        -------
        ndarray of shape (n_samples, n) or (n_samples, n, D)
        """
        validate_argument("n_samples", n_samples)
        rng = np.random.default_rng(random_state)
        return self._collect(X, lambda dist: dist.sample(int(n_samples), rng), row_axis=1)

    # ------------------------------------------------------------------ input checks
    def _features(self, X: object) -> np.ndarray:
        names = getattr(self, "feature_names_in_", None)
        columns = getattr(X, "columns", None)
        if names is not None and columns is not None and [str(c) for c in columns] != list(names):
            raise ValueError(
                f"X's columns {[str(c) for c in columns]} are not the features the model was "
                f"fitted on, {list(names)}: select and order them as at fit time"
            )
        try:
            X = np.asarray(X, dtype=np.float64)
        except (TypeError, ValueError) as error:
            raise ValueError(f"X must hold numbers only ({error})") from None
        if X.ndim != 2 or X.shape[1] != self.n_features_in_ or len(X) == 0:
            hint = "; reshape one feature with X.reshape(-1, 1)" if X.ndim == 1 else ""
            raise ValueError(
                f"X must have shape (n_rows, {self.n_features_in_}) with at least one row, got "
                f"{X.shape}{hint}"
            )
        bad = ~np.isfinite(X)
        if bad.any():
            row, column = np.argwhere(bad)[0]
            raise ValueError(
                f"X holds {X[row, column]} at row {row}, column {column}: predictions need "
                "finite inputs (drop or fill those rows)"
            )
        return np.ascontiguousarray(X)

    def _targets(self, X: object, y: object) -> np.ndarray:
        if y is None:
            raise ValueError("y is None; pass the targets whose density to evaluate")
        try:
            y = np.asarray(y, dtype=np.float64)
        except (TypeError, ValueError) as error:
            raise ValueError(f"y must hold numbers only ({error})") from None
        if y.ndim == 1 and self.n_outputs_ == 1:
            y = y[:, None]
        if y.ndim != 2 or y.shape[1] != self.n_outputs_:
            raise ValueError(
                f"y must have {self.n_outputs_} target column(s) as at fit time, got shape "
                f"{y.shape}"
            )
        if np.isinf(y).any():
            raise ValueError("y holds infinity; mark a missing target with NaN")
        if len(y) != _num_rows(X):
            raise ValueError(f"X and y have different numbers of rows: {_num_rows(X)} and {len(y)}")
        return y


def _num_rows(data: object) -> int:
    return data.shape[0] if hasattr(data, "shape") else len(data)


def _like_input(values: np.ndarray, X: object, names: list[str] | None) -> object:
    """pandas on X's index when X is a pandas DataFrame (as ``MDN`` returns), else values."""
    if not type(X).__module__.startswith("pandas"):
        return values
    import pandas as pd

    if values.ndim == 1:
        return pd.Series(values, index=X.index, name=names[0] if names else None)
    return pd.DataFrame(values, index=X.index, columns=names)
