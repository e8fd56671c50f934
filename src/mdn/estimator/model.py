"""``MDN``: a scikit-learn regressor that predicts a Gaussian mixture p(y|x) per row.

The estimator ties the layers together, and its methods are short calls of the functions
beside it: ``fit`` validates the parameters (``mdn.params``), prepares the data once and
splits and seeds (``mdn.estimator.fitting``), runs ``mdn.training.train`` and recalibrates;
the prediction methods run the network chunk by chunk (``mdn.estimator.prediction``);
``save``, ``load`` and ``export_onnx`` map the model to its files
(``mdn.estimator.model_file``, ``mdn.estimator.onnx_export``). Those functions take a
``FittedModel`` (``mdn.estimator.fitted``) and return values: only ``MDN`` sets its fitted
attributes.
"""

from __future__ import annotations

import copy
import numbers
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from mdn import metrics
from mdn.distributions import calibration
from mdn.distributions.mixture import GaussianMixture
from mdn.distributions.transforms import LogGaussianMixture
from mdn.estimator.data import like_input, num_rows, scored_targets, validated_x
from mdn.estimator.fitted import NO_RECALIBRATION
from mdn.estimator.fitting import (
    TrainingData,
    checkpoint_for,
    fit_recalibration,
    initial_network,
    member_rows,
    network_config,
    prepare_training_data,
    recalibrated,
    seeds,
    split_groups,
    split_rows,
    warn_if_worse_than_constant,
)
from mdn.estimator.model_file import read_model, write_model
from mdn.estimator.novelty import fit_input_density
from mdn.estimator.prediction import (
    collect,
    distributions,
    in_target_space,
    median_of_members,
    n_members,
    novelty_scores,
    resolved_point,
)
from mdn.estimator.reference import REFERENCE
from mdn.nn.network import MixtureDensityNetwork
from mdn.params import validate_all, validate_argument
from mdn.runtime import denormals_flushed, device_available, intra_op_threads, resolve_device
from mdn.training import History, train
from mdn.training.ddp import distribute, in_process_group, rank

if TYPE_CHECKING:
    import pandas as pd

    #: A prediction in the form of the input: pandas on X's index for a DataFrame.
    Predictions = np.ndarray | pd.Series | pd.DataFrame

__all__ = ["MDN", "REFERENCE", "load"]


class MDN(RegressorMixin, BaseEstimator):
    """Mixture density network: a neural network whose output is a Gaussian mixture p(y|x).

    The architecture and optimiser start from the reference MDN used for satellite
    chlorophyll-a retrieval (5 components, 5 x 100 ReLU layers, Adam at 1e-3, 10,000
    iterations of 128 rows); the ensemble size, L2 and training protections were chosen on
    held-out training rows of the UCI benchmark. ``MDN(**mdn.REFERENCE)`` is the reference
    model itself.

    Parameters
    ----------
    n_mix : int, default=5
        Number of mixture components K.
    hidden : tuple of int, default=(100, 100, 100, 100, 100)
        Widths of the hidden layers.
    activation : str, default="relu"
        Activation of the hidden layers, one of ``mdn.params.ACTIVATIONS``.
    covariance : {"full", "diag", "spherical"}, default="full"
        Covariance type of each component (matters for 2-D and wider targets).
    lr : float, default=1e-3
        Adam learning rate.
    lr_schedule : {"constant", "cosine", "plateau"}, default="constant"
        "cosine" lowers the learning rate from ``lr`` to 0 along half a cosine over
        ``n_iter`` iterations; "plateau" halves a member's learning rate whenever its
        validation NLL has not improved for ``lr_patience`` iterations (constant without
        validation rows).
    lr_patience : int, default=500
        Iterations without a validation gain before "plateau" halves the rate.
    ema_decay : float or None, default=0.99
        Keep an exponential moving average of the weights with this decay per iteration, in
        [0, 1) (Polyak averaging): validation, early stopping and the fitted model use the
        averaged weights, which carry less of the optimiser's step-to-step noise. The decay
        warms up as ``min(ema_decay, (1 + t) / (10 + t))``, so 0.99 averages over about the
        last 100 steps only after iteration 890, and over fewer before. 0.99 was chosen on
        held-out UCI training rows (benchmarks/README.md). None: the weights of the last
        step, as the reference.
    l2 : float, default=1e-4
        L2 penalty ``l2 * sum(W**2)`` on the weight matrices. 1e-4 was chosen with the
        5-member ensemble on the UCI benchmark's validation rows (benchmarks/README.md);
        ``REFERENCE`` keeps 1e-3.
    n_iter : int, default=10_000
        Training iterations (minibatch steps).
    batch : int, default=128
        Rows per minibatch.
    epsilon : float, default=1e-5
        Variance floor of each component, in scaled target units. A coarse floor widens
        the intervals of nearly deterministic targets; 1e-5 was chosen on the UCI
        benchmark's validation rows (benchmarks/README.md).
    scaler_x : str, None or transformer, default="robust"
        Input scaling: "standard", "robust", "minmax", "maxabs", None, or any scikit-learn
        transformer that scales each column affinely.
    scaler_y : str, None or transformer, default="standard"
        Target scaling, same choices; it folds exactly into the predicted mixture.
    target_transform : {None, "log"}, default=None
        "log" fits log(y) (targets must be positive) and predicts a ``LogGaussianMixture``.
    nonpositive_targets : {"raise", "missing"}, default="raise"
        What a log target does with values <= 0 (a value below a detection limit recorded
        as 0, say): "raise" refuses them, naming each column, its count and its first rows;
        "missing" treats them as missing values (marginalised out, as NaN is), with a warning
        that counts them per column. No effect without ``target_transform="log"``.
    spectral_features : {None, "log", "shape"}, default=None
        For inputs that are reflectance spectra (sr^-1): the features the network sees
        (``mdn.ocean.features``). "log": each band's log-reflectance; "shape": each band's
        log-reflectance less the log of the visible bands' sum, and that log-sum, so that
        the spectrum's shape and its level are apart. Applied wherever the model predicts
        (``predict``, scenes, the ONNX graph); reflectance at or below 1e-5 is raised to it
        first. None: the inputs as they are (for tables that are not spectra).
    clip_grad : float or None, default=10.0
        Clip the global gradient norm to this value.
    validation_fraction : float, default=0.1
        Share of the rows held out to pick the best weights and stop early; 0 turns
        validation off (the final weights are kept: the final average, with ``ema_decay``).
    patience : int or None, default=2000
        Stop when the validation NLL has not improved for this many iterations; None trains
        all ``n_iter`` iterations and still restores the best weights.
    n_models : int, default=5
        Ensemble size E. The members train together as one batched network, each from its
        own initialisation (seed ``random_state + e`` for an integer ``random_state``), on its
        own minibatches and, with ``bagging``, its own subsample; each keeps its own best
        weights. Five were chosen on the UCI benchmark's validation rows
        (benchmarks/README.md); ``n_models=1`` fits a single network.
    bagging : float or None, default=None
        Share of the training rows each member trains on, drawn without replacement per
        member (the reference ensemble uses 0.75); None: all rows.
    combine : {"median", "mixture"}, default="median"
        How ``predict`` joins the members' point estimates: "median" of the members'
        estimates (the reference behaviour) or the point estimate of the equal-weight
        mixture of the members' mixtures. ``predict_dist``, ``predict_interval``,
        ``log_prob``, ``score`` and ``sample`` always use that mixture.
    point : {"auto", "top", "mean", "mode", "median"}, default="auto"
        The point estimate ``predict`` gives when its ``point`` is not given (see
        ``predict``). "auto": "median" for ``target_transform="log"`` (it minimises the median
        absolute log error: on held-out NOMAD chlorophyll-a training rows, MdSA 41.2 % against
        42.2 % for "top"), else "top".
    recalibrate : {"auto", "scale", True, False}, default="auto"
        After training, fit the predictive mixture to the validation rows by their NLL
        (``mdn.distributions.calibration``), with up to three numbers: ``member_spread_`` moves each
        member's mixture towards or away from the ensemble's centre (pooled members that
        are each calibrated are under-confident when their errors are independent),
        ``component_scale_`` multiplies every component's standard deviation, and
        ``tail_weight_`` mixes in a copy of the mixture three times as wide. They change
        ``predict_dist``, ``predict_interval``, ``log_prob``, ``score``, ``sample`` and the
        "mixture" combine, not the members' own estimates. True fits the first two, keeping
        each only where the Bayesian information criterion asks for it. "scale" fits
        ``component_scale_`` alone, pulled towards 1 by a prior (``SCALE_PRIOR_SD`` of
        ``mdn.distributions.calibration``) the more the fewer the rows (those rows also
        chose the best weights, so they flatter the model), and then ``tail_weight_`` by
        maximum likelihood. "auto" does "scale" below ``AUTO_MIN_ROWS`` (500) validation
        rows and True from there: on fewer rows BIC's choice followed their
        noise (benchmarks/README.md). No effect without validation rows.
    random_state : int, RandomState or None, default=None
        Seeds the initial weights, the validation split and the minibatch order.
    device : str, default="cpu"
        "cpu", "cuda", "cuda:N", "mps" or "auto" (a GPU if there is one).
    verbose : int, default=1
        0: silent; 1: a progress bar on interactive terminals; 2: also log each evaluation.
    chunk_size : int, default=8192
        Rows per forward pass at prediction time (divided among ensemble members), bounding
        memory for any number of rows.
    checkpoint : str, path-like or None, default=None
        A file to which ``fit`` writes the training state every ``checkpoint_every``
        iterations. A fit started again with the same data, parameters and checkpoint (after
        a crash, a kill, Ctrl-C) resumes from it, and ends with the model an uninterrupted
        fit gives, to the bit; a checkpoint of another fit is overwritten, with a warning.
        ``fit`` deletes it once training is complete.
    checkpoint_every : int, default=500
        Iterations between checkpoints (written at the next evaluation).
    n_threads : int or None, default=1
        torch's intra-op threads for the training steps (restored afterwards; threads of
        their own for fits in other threads). A step of 128 rows is mostly per-operation
        overhead, which more threads make slower (benchmarks/README.md); None keeps torch's
        setting. Prediction uses torch's setting.

    Attributes
    ----------
    network_ : MixtureDensityNetwork
        The fitted network (scaled inputs -> mixture over scaled targets).
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Present when X had string column names.
    n_outputs_ : int
        Target dimension D.
    target_names_ : list of str or None
        Target column names when y was a pandas Series or DataFrame.
    x_shift_, x_scale_, y_shift_, y_scale_ : ndarray
        Fitted affine scalings, ``z = (v - shift) / scale``.
    history_ : dict
        Training record: ``step``, ``train_nll``, ``val_nll`` (scaled units), ``best_step``;
        for ensembles also ``member_val_nll`` and ``member_best_step``.
    n_iter_ : int
        Iterations run.
    validation_rows_ : ndarray or None
        The rows of the data, as passed to ``fit``, held out for validation (whole groups
        where ``fit`` was given groups), None without validation. Not saved in model files.
    member_spread_, component_scale_, tail_weight_ : float
        The recalibration fitted on the validation rows (1.0, 1.0 and 0.0: none).
    members_ : list of MDN
        The ensemble's members as single fitted models (a list of one for ``n_models=1``),
        without recalibration.

    Examples
    --------
    >>> from mdn import MDN
    >>> from mdn.datasets import make_inverted_sine
    >>> X, y = make_inverted_sine(1000, random_state=0)
    >>> model = MDN(n_iter=500, random_state=0, verbose=0).fit(X, y)
    >>> model.predict(X[:3]).shape
    (3,)
    >>> lower, upper = model.predict_interval(X[:3], coverage=0.9)
    """

    def __init__(
        self,
        n_mix: int = 5,
        *,
        hidden: Sequence[int] = (100, 100, 100, 100, 100),
        activation: str = "relu",
        covariance: str = "full",
        lr: float = 1e-3,
        lr_schedule: str = "constant",
        lr_patience: int = 500,
        ema_decay: float | None = 0.99,
        l2: float = 1e-4,
        n_iter: int = 10_000,
        batch: int = 128,
        epsilon: float = 1e-5,
        scaler_x: object = "robust",
        scaler_y: object = "standard",
        target_transform: str | None = None,
        nonpositive_targets: str = "raise",
        spectral_features: str | None = None,
        clip_grad: float | None = 10.0,
        validation_fraction: float = 0.1,
        patience: int | None = 2000,
        n_models: int = 5,
        bagging: float | None = None,
        combine: str = "median",
        point: str = "auto",
        recalibrate: bool | str = "auto",
        random_state: int | np.random.RandomState | None = None,
        device: str = "cpu",
        verbose: int = 1,
        chunk_size: int = 8192,
        checkpoint: str | os.PathLike | None = None,
        checkpoint_every: int = 500,
        n_threads: int | None = 1,
    ) -> None:
        self.n_mix = n_mix
        self.hidden = hidden
        self.activation = activation
        self.covariance = covariance
        self.lr = lr
        self.lr_schedule = lr_schedule
        self.lr_patience = lr_patience
        self.ema_decay = ema_decay
        self.l2 = l2
        self.n_iter = n_iter
        self.batch = batch
        self.epsilon = epsilon
        self.scaler_x = scaler_x
        self.scaler_y = scaler_y
        self.target_transform = target_transform
        self.nonpositive_targets = nonpositive_targets
        self.spectral_features = spectral_features
        self.clip_grad = clip_grad
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.n_models = n_models
        self.bagging = bagging
        self.combine = combine
        self.point = point
        self.recalibrate = recalibrate
        self.random_state = random_state
        self.device = device
        self.verbose = verbose
        self.chunk_size = chunk_size
        self.checkpoint = checkpoint
        self.checkpoint_every = checkpoint_every
        self.n_threads = n_threads

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.single_output = True
        tags.target_tags.multi_output = True
        tags.target_tags.positive_only = self.target_transform == "log"
        # score is the mean log-likelihood, not R^2, so it need not exceed 0.5.
        tags.regressor_tags.poor_score = True
        return tags

    # ------------------------------------------------------------------ fitting
    def fit(self, X, y, groups=None) -> MDN:
        """Fit the network to inputs ``X`` (n, p) and targets ``y`` (n,) or (n, D).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            NumPy array, pandas/polars DataFrame or torch tensor.
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
            NaN marks a missing target value (marginalised out in training).
        groups : array-like of shape (n_samples,), optional
            A label per row: the water body, campaign or contributing dataset it came from.
            The validation rows (``validation_fraction`` of them, for early stopping and
            recalibration) are then whole groups, so that the best weights and the
            intervals are chosen for groups the model has not seen rather than for rows
            like its training rows.

        Returns
        -------
        MDN
            The fitted estimator itself.
        """
        params = self.get_params(deep=False)
        validate_all(params)
        X = validated_x(self, X, reset=True, dtype=np.float64)
        data = self._prepared(X, y, params, groups)
        seed, split_seed = seeds(self.random_state)
        device = resolve_device(self.device)
        if not device_available(device):
            raise ValueError(f"device={self.device!r}: this machine has no {device}; use 'cpu'")
        split_generator = torch.Generator().manual_seed(split_seed)
        if data.groups is None:
            train_rows, val_rows = split_rows(
                len(data.X), self.validation_fraction, split_generator
            )
        else:
            train_rows, val_rows = split_groups(data.groups, self.validation_fraction,
                                                split_generator)  # fmt: skip
        x_val = y_val = None
        if val_rows is not None:
            x_val, y_val = data.x_scaled[val_rows].to(device), data.y_scaled[val_rows].to(device)
        generators = [torch.Generator().manual_seed(seed + e) for e in range(self.n_models)]
        config = network_config(params, self.n_features_in_, self.n_outputs_, single=True)
        network = initial_network(
            lambda generator: MixtureDensityNetwork.seeded(generator, **config),
            self.n_models,
            seed,
        ).to(device)
        history = self._train(network, data, train_rows, (x_val, y_val), generators, seed)
        self.network_ = network
        self.validation_rows_ = None if val_rows is None else data.rows[val_rows.numpy()]
        warn_if_worse_than_constant(history, data.y_scaled[train_rows], y_val, self.epsilon)
        self._recalibrate(x_val, y_val)
        self.input_density_ = fit_input_density(data.x_scaled[train_rows].double().numpy(), seed)
        self.history_ = history.as_dict()
        self.n_iter_ = history.n_iter
        if self.checkpoint is not None and not history.interrupted:
            Path(self.checkpoint).unlink(missing_ok=True)  # a finished fit needs none
        return self

    def _prepared(
        self, X: np.ndarray, y: ArrayLike, params: dict, groups: ArrayLike | None
    ) -> TrainingData:
        """The data prepared for training (``fitting.prepare_training_data``), with the fitted
        values that describe it set."""
        names = getattr(self, "feature_names_in_", None)
        data = prepare_training_data(X, y, params, groups, names)
        self.output_1d_, self.n_outputs_ = data.output_1d, data.y.shape[1]
        self.target_names_ = data.target_names
        self.x_shift_, self.x_scale_ = data.x_scaling.shift, data.x_scaling.scale
        self.input_medians_ = data.input_medians
        self.y_shift_, self.y_scale_ = data.y_scaling.shift, data.y_scaling.scale
        return data

    def _train(
        self,
        network: MixtureDensityNetwork,
        data: TrainingData,
        train_rows: torch.Tensor,
        validation: tuple[torch.Tensor | None, torch.Tensor | None],
        generators: list[torch.Generator],
        seed: int,
    ) -> History:
        """Run ``train`` on the training rows, with the fit's threads, members and checkpoint."""
        device = next(network.parameters()).device
        rows = member_rows(len(train_rows), self.bagging, generators)
        batch, trained = self.batch, network
        if in_process_group():
            batch, generators, trained = distribute(network, self.batch, generators, seed)
        x_train, y_train = (
            data.x_scaled[train_rows].to(device),
            data.y_scaled[train_rows].to(device),
        )
        with intra_op_threads(self.n_threads):
            return train(
                trained,
                x_train,
                y_train,
                x_val=validation[0],
                y_val=validation[1],
                n_iter=self.n_iter,
                batch_size=batch,
                lr=self.lr,
                lr_schedule=self.lr_schedule,
                lr_patience=self.lr_patience,
                ema_decay=self.ema_decay,
                l2=self.l2,
                clip_grad=self.clip_grad,
                patience=self.patience,
                generator=generators[0] if self.n_models == 1 else generators,
                member_rows=rows,
                verbose=self.verbose if rank() == 0 else 0,
                checkpoint=checkpoint_for(self.get_params(deep=False), data.X, data.y, data.groups),
            )

    def _recalibrate(self, x_val: torch.Tensor | None, y_val: torch.Tensor | None) -> None:
        """Set the recalibration values, fitted on the validation rows where asked for."""
        self.__dict__.update(NO_RECALIBRATION)
        if self.recalibrate is not False and self.recalibrate != "auto" and x_val is None:
            warnings.warn(
                f"recalibrate={self.recalibrate!r} needs validation rows, and "
                "validation_fraction=0 leaves none: the model is not recalibrated",
                UserWarning,
                stacklevel=3,
            )
        if x_val is not None and self.recalibrate is not False:
            scale_only = self.recalibrate == "scale" or (
                self.recalibrate == "auto" and len(x_val) < calibration.AUTO_MIN_ROWS
            )
            self.__dict__.update(fit_recalibration(self.network_, x_val, y_val, scale_only))

    # ------------------------------------------------------------------ predicting
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
        if n_members(self) > 1 and self.combine == "median":
            values = collect(
                self, X, lambda mixture: median_of_members(self, mixture, point), members=True
            )
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
            return values if n_members(self) > 1 else values.unsqueeze(0)

        return collect(self, X, compute, row_axis=1, members=True)

    @property
    def members_(self) -> list[MDN]:
        """The ensemble's members as single fitted models, without recalibration.

        Member e of an ensemble fitted with an integer ``random_state`` gets ``random_state +
        e``, the seed of the single model it trained as; its history is its own. A single
        network's list holds the model itself (or a copy without its recalibration).
        """
        check_is_fitted(self, "network_")
        if n_members(self) == 1:
            if not recalibrated(self):
                return [self]
            member = copy.copy(self)  # shares the network; only the recalibration differs
            member.__dict__.update(NO_RECALIBRATION)
            return [member]
        fitted = {
            k: v
            for k, v in vars(self).items()
            if k.endswith("_") and not k.startswith("_") and k != "network_"
        }
        return [self._member(e, fitted) for e in range(n_members(self))]

    def _member(self, e: int, fitted: dict[str, object]) -> MDN:
        seed = self.random_state
        member = clone(self).set_params(
            n_models=1,
            bagging=None,
            random_state=seed + e if isinstance(seed, numbers.Integral) else seed,
        )
        member.__dict__.update(copy.deepcopy(fitted), **NO_RECALIBRATION)
        history = member.history_
        if history.get("member_best_step"):
            history["best_step"] = history["member_best_step"][e]
            history["val_nll"] = [values[e] for values in history["member_val_nll"]]
        member.network_ = self.network_.member(e).eval()
        return member

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
        validate_argument("coverage", coverage)
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

    def novelty(self, X: ArrayLike) -> np.ndarray:
        """How far each row lies from the training inputs: a score to flag rows the model
        has not learnt about, where its predictions and intervals are least to be trusted.

        The score is ``-log p(x)`` of the row's features (as the network sees them) under a
        Gaussian mixture fitted to the training rows' (``mdn.estimator.novelty``); rows above
        ``novelty_threshold_`` (which 99 % of the training rows stay below) are novel.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        return novelty_scores(self, X)

    @property
    def novelty_threshold_(self) -> float:
        """The novelty score that 99 % of the training rows stay below (see ``novelty``)."""
        check_is_fitted(self, "input_density_")
        return self.input_density_.threshold

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
        validate_argument("n_samples", n_samples)
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
        y = self._scored_targets(X, y)
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
        return metrics.evaluate(self, X, self._scored_targets(X, y), points)

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

    def _scored_targets(self, X: ArrayLike, y: ArrayLike) -> np.ndarray:
        check_is_fitted(self, "network_")
        return scored_targets(y, self.n_outputs_, num_rows(X))

    # ------------------------------------------------------------------ files
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

        See ``mdn.onnx.graph`` for the graph's outputs and metadata. Needs the extra
        ``mdn[onnx]``.

        Parameters
        ----------
        path : str or path-like
            The ``.onnx`` file to write (atomically).
        """
        from mdn.estimator.onnx_export import export_onnx  # the onnx packages load only here

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
        stored = read_model(path, cls().get_params(deep=False), device)
        model = cls(**stored.params)
        model.__dict__.update(stored.fitted)
        model.network_ = stored.network
        return model


def load(path: str | os.PathLike, device: str | None = None) -> MDN:
    """Read a model written by ``MDN.save`` (same as ``MDN.load``).

    Parameters
    ----------
    path : str or path-like
    device : str, optional

    Returns
    -------
    MDN
    """
    return MDN.load(path, device=device)
