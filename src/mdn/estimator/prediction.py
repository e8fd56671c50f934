"""How a fitted ``MDN`` predicts: the network runs on a bounded number of rows at a time
(``chunk_size``), and each chunk's mixture is turned into what a prediction method asked
for. ``MixturePredictorMixin`` holds ``MDN``'s prediction methods."""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from numpy.typing import ArrayLike
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_array, check_is_fitted

from mdn import metrics
from mdn.distributions import calibration
from mdn.distributions.mixture import GaussianMixture
from mdn.distributions.transforms import AffineTransform, LogGaussianMixture
from mdn.estimator.data import check_scaled, like_input, num_rows, to_numpy, validated_x
from mdn.estimator.fitting import recalibrated, single_members
from mdn.params import AUTO_POINTS, POINTS
from mdn.runtime import denormals_flushed

if TYPE_CHECKING:
    import pandas as pd

    from mdn.estimator.model import MDN

    #: A prediction in the form of the input: pandas on X's index for a DataFrame.
    Predictions = np.ndarray | pd.Series | pd.DataFrame

__all__ = [
    "MixturePredictorMixin",
    "collect",
    "distributions",
    "in_target_space",
    "median_of_members",
    "member_distributions",
    "predictive",
]

Distribution = GaussianMixture | LogGaussianMixture


def member_distributions(model: MDN, X: ArrayLike) -> Iterator[tuple[slice, GaussianMixture]]:
    """Each member's predicted mixture in the user's units, a chunk of rows at a time.

    The mixtures have batch shape (rows,) for a single model and (E, rows) for an
    ensemble; the log transform is not applied yet.

    Parameters
    ----------
    model : MDN
        Fitted.
    X : array-like of shape (n, p)

    Yields
    ------
    rows : slice
    mixture : GaussianMixture
    """
    check_is_fitted(model, "network_")
    # Finiteness is checked chunk by chunk below: checking all of X at once costs
    # temporaries as large as X.
    X = validated_x(model, X, reset=False, dtype=(np.float64, np.float32))
    network = model.network_
    device = next(network.parameters()).device
    unscale = AffineTransform(torch.as_tensor(model.y_shift_), torch.as_tensor(model.y_scale_))
    network.eval()
    step = max(1, model.chunk_size // (network.n_models or 1))
    for start in range(0, len(X), step):
        rows = slice(start, start + step)
        scaled_x = (X[rows] - model.x_shift_) / model.x_scale_
        check_scaled(scaled_x, "X", first_row=start)
        x = torch.as_tensor(scaled_x.astype(np.float32))
        with torch.inference_mode():
            scaled = network(x.to(device))
        # float64 from here: user units may be far from 1, and densities are compared
        # against other float64 tools.
        yield rows, unscale(scaled.to(torch.float64))


def distributions(model: MDN, X: ArrayLike) -> Iterator[tuple[slice, Distribution]]:
    """The predictive distribution in the user's units, a chunk of rows at a time: the
    members' mixtures, recalibrated and pooled.

    Parameters
    ----------
    model : MDN
    X : array-like of shape (n, p)

    Yields
    ------
    rows : slice
    distribution : GaussianMixture or LogGaussianMixture
    """
    check_is_fitted(model, "network_")
    for rows, mixture in member_distributions(model, X):
        yield rows, in_target_space(model, predictive(model, mixture)[1])


def predictive(model: MDN, members: GaussianMixture) -> tuple[GaussianMixture, GaussianMixture]:
    """A chunk's members' mixtures with the model's fitted recalibration, and the predictive
    mixture they make in the user's units (their equal-weight pool for an ensemble), before
    the target transform is undone (``in_target_space``).

    Parameters
    ----------
    model : MDN
        Fitted.
    members : GaussianMixture
        Of ``member_distributions``: batch (E, rows) for an ensemble, (rows,) otherwise.

    Returns
    -------
    recalibrated : GaussianMixture
    pooled : GaussianMixture
    """
    ensemble = (model.network_.n_models or 1) > 1
    if recalibrated(model):
        members = calibration.recalibrate(members, model.member_spread_, model.component_scale_,
                                          model.tail_weight_, members=ensemble)  # fmt: skip
    return members, members.pool(0) if ensemble else members


def median_of_members(model: MDN, mixture: GaussianMixture, point: str) -> torch.Tensor:
    """The median over members of each member's ``point`` estimate, in the user's units.

    Parameters
    ----------
    model : MDN
    mixture : GaussianMixture
        The members' mixtures, batch shape (E, rows).
    point : str
        A ``GaussianMixture`` method returning one point per row.

    Returns
    -------
    Tensor of shape (rows, D)
    """
    points = getattr(in_target_space(model, mixture), point)()  # [E, rows, D]
    ordered = points.sort(dim=0).values
    n_members = len(points)
    middle = (n_members - 1) // 2, n_members // 2
    return (ordered[middle[0]] + ordered[middle[1]]) / 2  # np.median's convention


def in_target_space(model: MDN, mixture: GaussianMixture) -> Distribution:
    """``mixture`` pushed through the inverse of the model's target transform.

    Parameters
    ----------
    model : MDN
    mixture : GaussianMixture
        In the user's units before the target transform is undone.

    Returns
    -------
    GaussianMixture or LogGaussianMixture
        ``mixture`` itself, or a ``LogGaussianMixture`` of it for a log target.
    """
    return LogGaussianMixture(mixture) if model.target_transform == "log" else mixture


def collect(
    model: MDN,
    X: ArrayLike,
    compute: Callable[[Distribution], torch.Tensor],
    row_axis: int = 0,
    members: bool = False,
) -> np.ndarray:
    """Apply ``compute`` (distribution -> tensor ending in the target axis) chunk by chunk.

    Parameters
    ----------
    model : MDN
    X : array-like of shape (n, p)
    compute : callable
        Gets the predictive distribution of a chunk, or with ``members`` each member's
        mixture before the target transform.
    row_axis : int
        The axis of ``compute``'s result that runs over rows.
    members : bool

    Returns
    -------
    ndarray
        The chunks' results joined along ``row_axis``; the target axis is dropped for a
        model fitted on a 1-D target.
    """
    chunks = member_distributions(model, X) if members else distributions(model, X)
    out = None  # allocated once the first chunk shows the shape: no list of parts
    for rows, dist in chunks:
        part = compute(dist).cpu().numpy()
        if out is None:
            shape = list(part.shape)
            shape[row_axis] = num_rows(X)
            out = np.empty(shape, dtype=part.dtype)
        out[(slice(None),) * row_axis + (rows,)] = part
    return out[..., 0] if model.output_1d_ else out


def resolved_point(model: MDN, point: str | None) -> str:
    """``point``, or the model's default where it is None (its ``point`` parameter, with
    "auto" read from ``AUTO_POINTS`` by the target transform).

    Parameters
    ----------
    model : MDN
    point : str or None

    Returns
    -------
    str
        One of ``POINTS``.
    """
    if point is None:
        point = getattr(model, "point", "auto")
        if point == "auto":
            point = AUTO_POINTS[model.target_transform]
    if point not in POINTS:
        raise ValueError(f"point must be one of {POINTS}, got {point!r}")
    return point


class MixturePredictorMixin:
    """The prediction methods of ``MDN``: point estimates, intervals, the predicted
    distribution, samples, densities and scores, all chunk by chunk through the functions
    above, with denormal numbers flushed."""

    @property
    def _n_members(self) -> int:
        check_is_fitted(self, "network_")
        return self.network_.n_models or 1

    @denormals_flushed()
    def predict(self, X: ArrayLike, point: str | None = None) -> Predictions:
        """Point estimates, shape (n,) for a 1-D target or (n, D).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        point : {"top", "mean", "mode", "median"}, optional
            "top": mean of the heaviest component (the reference model's estimate; for a
            log target, its median); "mean": mixture mean; "mode": highest-density point;
            "median": median of each target's marginal. An ensemble joins its members as
            ``combine`` says. Default: the model's ``point`` ("median" for a log target,
            else "top").

        Returns
        -------
        ndarray, or a pandas Series/DataFrame on X's index when X is a pandas DataFrame
        """
        point = resolved_point(self, point)
        if self._n_members > 1 and self.combine == "median":
            values = collect(self, X, lambda mixture: median_of_members(self, mixture, point),
                             members=True)  # fmt: skip
        else:
            values = collect(self, X, lambda dist: getattr(dist, point)())
        return like_input(values, X, self.target_names_)

    @denormals_flushed()
    def predict_members(self, X: ArrayLike, point: str | None = None) -> np.ndarray:
        """Each member's point estimate, shape (E, n) for a 1-D target or (E, n, D).

        Their spread across members (e.g. ``predict_members(X).std(axis=0)``) measures the
        epistemic uncertainty that the members' disagreement reveals.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        point : {"top", "mean", "mode", "median"}, optional
            Default: the model's ``point``.

        Returns
        -------
        ndarray
        """
        point = resolved_point(self, point)

        def compute(mixture: GaussianMixture) -> torch.Tensor:
            values = getattr(in_target_space(self, mixture), point)()
            return values if self._n_members > 1 else values.unsqueeze(0)

        return collect(self, X, compute, row_axis=1, members=True)

    @property
    def members_(self) -> list[MDN]:
        """The ensemble's members as single fitted models, without recalibration."""
        check_is_fitted(self, "network_")
        return single_members(self)

    @denormals_flushed()
    def predict_interval(
        self, X: ArrayLike, coverage: float = 0.9
    ) -> tuple[Predictions, Predictions]:
        """Central interval of each target's marginal holding ``coverage`` of its mass.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        coverage : float
            Strictly between 0 and 1.

        Returns
        -------
        lower, upper : ndarray of shape (n,) or (n, D)
            Exact quantiles of the predicted mixture (pandas on X's index for a DataFrame).
        """
        if not (isinstance(coverage, numbers.Real) and 0 < coverage < 1):
            raise ValueError(f"coverage must lie strictly between 0 and 1, got {coverage!r}")
        bounds = collect(self, X, lambda dist: torch.stack(dist.interval(coverage)), row_axis=1)
        names = self.target_names_
        return like_input(bounds[0], X, names), like_input(bounds[1], X, names)

    @denormals_flushed()
    def predict_dist(self, X: ArrayLike) -> GaussianMixture | LogGaussianMixture:
        """The predicted distribution of every row, in the user's units (float64).

        Its components are the members' (``n_models * n_mix``), twice as many with a tail
        (``tail_weight_`` > 0).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        GaussianMixture or LogGaussianMixture
            Batch shape (n,); the target scaling is folded in exactly, and a log target
            gives a ``LogGaussianMixture``.
        """
        parts = [dist for _, dist in distributions(self, X)]
        return type(parts[0]).cat(parts)

    @denormals_flushed()
    def sample(
        self,
        X: ArrayLike,
        n_samples: int = 1,
        random_state: int | np.random.RandomState | None = None,
    ) -> np.ndarray:
        """Draw from p(y|x).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        n_samples : int
            Draws per row.
        random_state : int, RandomState or None

        Returns
        -------
        ndarray of shape (n_samples, n) for a 1-D target or (n_samples, n, D)
        """
        if (
            isinstance(n_samples, bool)
            or not isinstance(n_samples, numbers.Integral)
            or n_samples < 1
        ):
            raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}")
        seed = int(check_random_state(random_state).randint(np.iinfo(np.int32).max))
        generator = torch.Generator().manual_seed(seed)
        return collect(
            self, X, lambda dist: dist.to("cpu").sample(int(n_samples), generator), row_axis=1
        )

    @denormals_flushed()
    def log_prob(self, X: ArrayLike, y: ArrayLike) -> np.ndarray:
        """Log-density of ``y`` under p(y|x), one value per row, in the user's units.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
            NaN marks a missing value: the density is then the marginal's.

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        y = self._check_targets(X, y)
        out = np.empty(len(y))
        for rows, dist in distributions(self, X):
            out[rows] = dist.log_prob(torch.tensor(y[rows])).cpu().numpy()  # y may be read-only
        return out

    def evaluate(
        self, X: ArrayLike, y: ArrayLike, points: Sequence[str] = ("mean", "top")
    ) -> dict[str, float]:
        """Held-out scores (see ``mdn.metrics.report``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
        points : sequence of str
            Point estimates whose RMSE and MAE to report.

        Returns
        -------
        dict of str to float
            NLL, CRPS, calibration error, 50/80/90/95 % interval coverage and the RMSE/MAE
            of each point estimate.
        """
        return metrics.evaluate(self, X, self._check_targets(X, y), points)

    def score(self, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None = None) -> float:
        """Mean log-likelihood of ``y`` given ``X`` (higher is better).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
        sample_weight : array-like of shape (n_samples,), optional

        Returns
        -------
        float
        """
        log_prob = self.log_prob(X, y)
        if sample_weight is not None and np.shape(sample_weight) != log_prob.shape:
            raise ValueError(
                f"sample_weight must hold one weight per row ({len(log_prob)}), got shape "
                f"{np.shape(sample_weight)}"
            )
        return float(np.average(log_prob, weights=sample_weight))

    def _check_targets(self, X: ArrayLike, y: ArrayLike) -> np.ndarray:
        check_is_fitted(self, "network_")
        if y is None:
            raise ValueError("y is None; pass the targets whose density to evaluate")
        y = check_array(to_numpy(y), ensure_2d=False, dtype=np.float64, input_name="y",
                        ensure_all_finite="allow-nan")  # fmt: skip
        if y.ndim == 1 and self.n_outputs_ == 1:
            y = y[:, None]
        if y.ndim != 2 or y.shape[1] != self.n_outputs_:
            raise ValueError(
                f"y must have {self.n_outputs_} target column(s) as at fit time, got shape "
                f"{y.shape}"
            )
        if len(y) != num_rows(X):
            raise ValueError(f"X and y have different numbers of rows: {num_rows(X)} and {len(y)}")
        return y
