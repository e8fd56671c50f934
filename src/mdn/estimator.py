"""``MDN``: a scikit-learn regressor that predicts a Gaussian mixture p(y|x) per row."""

from __future__ import annotations

import copy
import math
import numbers
import os
import warnings
from collections.abc import Iterator, Sequence
from importlib.metadata import version as package_version

import numpy as np
import sklearn
import torch
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.utils import check_random_state
from sklearn.utils.validation import (
    check_array,
    check_consistent_length,
    check_is_fitted,
    validate_data,
)

from mdn import calibration, metrics
from mdn.io import ModelFileError, read_model_file, write_model_file
from mdn.mixture import COVARIANCE_TYPES, GaussianMixture
from mdn.nn import ACTIVATIONS, MixtureDensityNetwork
from mdn.preprocessing import SCALERS, fit_scaling
from mdn.training import LR_SCHEDULES, in_process_group, train
from mdn.transforms import AffineTransform, LogGaussianMixture

__all__ = ["MDN", "REFERENCE", "load"]

#: The reference MDN of the satellite chlorophyll-a retrieval, as ``MDN(**REFERENCE)``: ten
#: members fitted on 75 % subsamples, the median of their estimates, its L2 and variance
#: floor, the full 10,000 iterations at a constant learning rate, keeping the last step's
#: weights, without validation, early stopping, clipping or recalibration.
REFERENCE = {
    "n_mix": 5,
    "hidden": (100,) * 5,
    "activation": "relu",
    "lr": 1e-3,
    "lr_schedule": "constant",
    "ema_decay": None,
    "l2": 1e-3,
    "epsilon": 1e-3,
    "n_iter": 10_000,
    "batch": 128,
    "n_models": 10,
    "bagging": 0.75,
    "combine": "median",
    "validation_fraction": 0.0,
    "patience": None,
    "clip_grad": None,
    "recalibrate": False,
}
POINTS = ("top", "mean", "mode", "median")
COMBINES = ("median", "mixture")
RECALIBRATIONS = ("auto", "scale")  # besides True and False
# Fitted values of the recalibration; the class attributes of the same names mean none.
_RECALIBRATION = ("member_spread_", "component_scale_", "tail_weight_")
TARGET_TRANSFORMS = (None, "log")
# Scikit-learn scalers a model file may name and rebuild; other transformer objects are
# stored as a description only (their fitted scaling is always stored exactly).
_RESTORABLE_SCALERS = {cls.__name__: cls for cls in SCALERS.values()}


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
        Activation of the hidden layers, one of ``mdn.nn.ACTIVATIONS``.
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
        last 100 steps only after iteration 890, and over fewer before. On held-out UCI
        training rows (2 splits) it gave a better NLL on all 9 sets (naval -6.30 -> -6.83,
        energy 0.36 -> 0.29), and a level one on 20 splits of concrete
        (benchmarks/README.md). None: the weights of the last step, as the reference.
    l2 : float, default=1e-4
        L2 penalty ``l2 * sum(W**2)`` on the weight matrices. With the 5-member ensemble,
        1e-4 gave a better held-out NLL than the reference's 1e-3 on the UCI benchmark's
        validation rows (benchmarks/README.md); ``REFERENCE`` keeps 1e-3.
    n_iter : int, default=10_000
        Training iterations (minibatch steps).
    batch : int, default=128
        Rows per minibatch.
    epsilon : float, default=1e-5
        Variance floor of each component, in scaled target units. 1e-5 gave a better
        held-out NLL than 1e-3 on 6 of the UCI benchmark's 9 sets (benchmarks/README.md):
        a coarse floor widens the intervals of nearly deterministic targets.
    scaler_x : str, None or transformer, default="robust"
        Input scaling: "standard", "robust", "minmax", "maxabs", None, or any scikit-learn
        transformer that scales each column affinely.
    scaler_y : str, None or transformer, default="standard"
        Target scaling, same choices; it folds exactly into the predicted mixture.
    target_transform : {None, "log"}, default=None
        "log" fits log(y) (targets must be positive) and predicts a ``LogGaussianMixture``.
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
        weights. Five members gave the best held-out NLL on the UCI benchmark's validation
        rows (benchmarks/README.md), for about 2.5 times the training time of one;
        ``n_models=1`` fits a single network.
    bagging : float or None, default=None
        Share of the training rows each member trains on, drawn without replacement per
        member (the reference ensemble uses 0.75); None: all rows.
    combine : {"median", "mixture"}, default="median"
        How ``predict`` joins the members' point estimates: "median" of the members'
        estimates (the reference behaviour) or the point estimate of the equal-weight
        mixture of the members' mixtures. ``predict_dist``, ``predict_interval``,
        ``log_prob``, ``score`` and ``sample`` always use that mixture.
    recalibrate : {"auto", "scale", True, False}, default="auto"
        After training, fit the predictive mixture to the validation rows by their NLL
        (``mdn.calibration``), with up to three numbers: ``member_spread_`` moves each
        member's mixture towards or away from the ensemble's centre (pooled members that
        are each calibrated are under-confident when their errors are independent),
        ``component_scale_`` multiplies every component's standard deviation, and
        ``tail_weight_`` mixes in a copy of the mixture three times as wide. They change
        ``predict_dist``, ``predict_interval``, ``log_prob``, ``score``, ``sample`` and the
        "mixture" combine, not the members' own estimates. True fits the first two, keeping
        each only where the Bayesian information criterion asks for it. "scale" fits
        ``component_scale_`` alone, pulled towards 1 by a prior
        (``mdn.calibration.SCALE_PRIOR_SD``) the more the fewer the rows (those rows also
        chose the best weights, so they flatter the model), and then ``tail_weight_`` by
        maximum likelihood: on 20 splits of UCI concrete's held-out training rows the tail
        took 2 % of the weight on average, lowered the NLL (2.995 -> 2.979) and raised the
        90 % coverage (87.5 -> 88.4 %); it stayed at or near 0 on yacht and energy. "auto"
        does "scale" below ``mdn.calibration.AUTO_MIN_ROWS`` (500) validation rows and True
        from there: on fewer rows BIC's choice followed their noise (UCI yacht, 22 rows:
        held-out NLL 0.25 -> 0.43), on more it paid (naval, 860 rows: -5.85 -> -6.30). No effect
        without validation rows.
    random_state : int, RandomState or None, default=None
        Seeds the initial weights, the validation split and the minibatch order.
    device : str, default="cpu"
        "cpu", "cuda", "cuda:N", "mps" or "auto" (a GPU if there is one).
    verbose : int, default=1
        0: silent; 1: a progress bar on interactive terminals; 2: also log each evaluation.
    chunk_size : int, default=8192
        Rows per forward pass at prediction time (divided among ensemble members), bounding
        memory for any number of rows.

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

    # No recalibration (``_RECALIBRATION``): also the values of models fitted or pickled
    # before a value existed, and of model files without it.
    member_spread_ = 1.0
    component_scale_ = 1.0
    tail_weight_ = 0.0
    # Models pickled before weight averaging existed were trained without it.
    ema_decay = None

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
        scaler_x="robust",
        scaler_y="standard",
        target_transform: str | None = None,
        clip_grad: float | None = 10.0,
        validation_fraction: float = 0.1,
        patience: int | None = 2000,
        n_models: int = 5,
        bagging: float | None = None,
        combine: str = "median",
        recalibrate: bool | str = "auto",
        random_state=None,
        device: str = "cpu",
        verbose: int = 1,
        chunk_size: int = 8192,
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
        self.clip_grad = clip_grad
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.n_models = n_models
        self.bagging = bagging
        self.combine = combine
        self.recalibrate = recalibrate
        self.random_state = random_state
        self.device = device
        self.verbose = verbose
        self.chunk_size = chunk_size

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.single_output = True
        tags.target_tags.multi_output = True
        tags.target_tags.positive_only = self.target_transform == "log"
        # score is the mean log-likelihood, not R^2, so it need not exceed 0.5.
        tags.regressor_tags.poor_score = True
        return tags

    # ------------------------------------------------------------------ fitting
    def fit(self, X, y) -> MDN:
        """Fit the network to inputs ``X`` (n, p) and targets ``y`` (n,) or (n, D).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            NumPy array, pandas/polars DataFrame or torch tensor.
        y : array-like of shape (n_samples,) or (n_samples, n_targets)

        Returns
        -------
        self
        """
        self._check_params()
        target_names = _column_names(y)
        if y is None:
            raise ValueError("MDN requires y to be passed, but the target y is None")
        X = validate_data(self, _to_numpy(X), dtype=np.float64)
        # NaN targets are missing values: training marginalises them out.
        y = check_array(
            _to_numpy(y),
            ensure_2d=False,
            dtype=np.float64,
            input_name="y",
            ensure_all_finite="allow-nan",
        )
        check_consistent_length(X, y)
        if y.ndim == 2 and y.shape[1] == 0:
            raise ValueError("y has no target columns; pass at least one")
        self.output_1d_ = y.ndim == 1
        y = y.reshape(len(y), -1)
        X, y = _drop_unobserved_rows(X, y)
        self.n_outputs_ = y.shape[1]
        self.target_names_ = target_names
        if self.target_transform == "log":
            if np.any(y <= 0):
                raise ValueError(
                    f"target_transform='log' needs y > 0, but {int(np.sum(y <= 0))} target "
                    f"values are <= 0 (smallest {np.nanmin(y):g}); drop or offset them, or use "
                    "target_transform=None"
                )
            y = np.log(y)
        x_scaling = fit_scaling(self.scaler_x, X, "scaler_x")
        y_scaling = fit_scaling(self.scaler_y, y, "scaler_y")
        self.x_shift_, self.x_scale_ = x_scaling.shift, x_scaling.scale
        self.y_shift_, self.y_scale_ = y_scaling.shift, y_scaling.scale

        seed, split_seed = self._seeds()
        device = _resolve_device(self.device)
        x_all = torch.as_tensor(x_scaling.transform(X), dtype=torch.float32)
        y_all = torch.as_tensor(y_scaling.transform(y), dtype=torch.float32)
        train_rows, val_rows = self._split(len(X), torch.Generator().manual_seed(split_seed))
        x_val = y_val = None
        if val_rows is not None:
            x_val, y_val = x_all[val_rows].to(device), y_all[val_rows].to(device)
        generators = [torch.Generator().manual_seed(seed + e) for e in range(self.n_models)]
        member_rows = self._member_rows(len(train_rows), generators)
        network = self._initial_network(seed).to(device)
        batch, trained = self.batch, network
        if in_process_group():
            batch, generators, trained = _distribute(network, self.batch, generators, seed)
        history = train(
            trained,
            x_all[train_rows].to(device),
            y_all[train_rows].to(device),
            x_val=x_val,
            y_val=y_val,
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
            member_rows=member_rows,
            verbose=self.verbose if _rank() == 0 else 0,
        )
        self.network_ = network
        self._clear_recalibration()
        if self.recalibrate is not False and self.recalibrate != "auto" and x_val is None:
            warnings.warn(
                f"recalibrate={self.recalibrate!r} needs validation rows, and "
                "validation_fraction=0 leaves none: the model is not recalibrated",
                UserWarning,
                stacklevel=2,
            )
        if x_val is not None and self.recalibrate is not False:
            scale_only = self.recalibrate == "scale" or (
                self.recalibrate == "auto" and len(x_val) < calibration.AUTO_MIN_ROWS
            )
            self._fit_recalibration(x_val, y_val, scale_only=scale_only)
        self.history_ = history.as_dict()
        self.n_iter_ = history.n_iter
        return self

    def _fit_recalibration(
        self, x_val: torch.Tensor, y_val: torch.Tensor, *, scale_only: bool
    ) -> None:
        self.network_.eval()
        with torch.no_grad():
            mixture = self.network_(x_val)
        mixture, y_val, members = mixture.to("cpu"), y_val.cpu(), self._n_members > 1
        self.member_spread_, self.component_scale_ = calibration.fit_recalibration(
            mixture,
            y_val,
            members=members,
            scale_prior_sd=calibration.SCALE_PRIOR_SD if scale_only else None,
        )
        if scale_only:
            self.tail_weight_ = calibration.fit_tail_weight(
                mixture, y_val, members=members, component_scale=self.component_scale_
            )

    def _seeds(self) -> tuple[int, int]:
        """The seed of member 0 (member e uses seed + e) and the seed of the validation split.

        An integer ``random_state`` is member 0's seed itself, so that member e of an
        ensemble starts as a single model with ``random_state + e`` would.
        """
        if isinstance(self.random_state, numbers.Integral):
            seed = int(self.random_state)
        else:
            seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        # A seed unrelated to the members': torch and NumPy share the Mersenne twister, so
        # one seed would make the split and the first member's minibatches share draws.
        split_seed = int(np.random.SeedSequence(seed).generate_state(1)[0])
        return seed, split_seed

    def _member_rows(self, n: int, generators: list[torch.Generator]) -> torch.Tensor | None:
        """Training rows of each member (E, m) when bagging, else None (all rows)."""
        if self.bagging is None:
            return None
        m = max(1, round(n * self.bagging))
        return torch.stack([torch.randperm(n, generator=g)[:m] for g in generators])

    def _initial_network(self, seed: int) -> MixtureDensityNetwork:
        """Member e initialised under seed + e, as a single model with that seed would be."""
        members = []
        for e in range(self.n_models):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed + e)
                members.append(self._build_network(single=True))
        return members[0] if self.n_models == 1 else MixtureDensityNetwork.stack(members)

    def _split(self, n: int, generator: torch.Generator):
        if self.validation_fraction == 0:
            return torch.arange(n), None
        n_val = round(n * self.validation_fraction)
        if n_val < 1 or n - n_val < 1:
            warnings.warn(
                f"validation_fraction={self.validation_fraction} leaves no validation or no "
                f"training row out of {n}; training without validation",
                UserWarning,
                stacklevel=3,
            )
            return torch.arange(n), None
        order = torch.randperm(n, generator=generator)
        return order[n_val:], order[:n_val]

    def _build_network(self, single: bool = False) -> MixtureDensityNetwork:
        """The network with fresh weights: a batched ensemble when ``n_models`` > 1, unless
        ``single`` asks for one member."""
        n_models = None if single or self.n_models == 1 else self.n_models
        return MixtureDensityNetwork(
            self.n_features_in_,
            self.n_outputs_,
            n_mix=self.n_mix,
            hidden=tuple(self.hidden),
            activation=self.activation,
            covariance=self.covariance,
            epsilon=self.epsilon,
            n_models=n_models,
        )

    def _check_params(self) -> None:
        def integer(name, low=1, allow_none=False):
            value = getattr(self, name)
            if value is None and allow_none:
                return
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
                raise ValueError(
                    f"{name} must be an integer >= {low}"
                    f"{' or None' if allow_none else ''}, got {value!r}"
                )

        def real(name, low, *, strict=True, high=math.inf, allow_none=False):
            value = getattr(self, name)
            if value is None and allow_none:
                return
            ok = (
                isinstance(value, numbers.Real)
                and not isinstance(value, bool)
                and math.isfinite(value)
                and (value > low if strict else value >= low)
                and value < high
            )
            if not ok:
                bound = f"{'>' if strict else '>='} {low}" + (
                    f" and < {high}" if high < math.inf else ""
                )
                raise ValueError(
                    f"{name} must be a number {bound}"
                    f"{' or None' if allow_none else ''}, got {value!r}"
                )

        def choice(name, options):
            if getattr(self, name) not in options:
                raise ValueError(f"{name} must be one of {options}, got {getattr(self, name)!r}")

        integer("n_mix")
        integer("n_iter")
        integer("batch")
        integer("chunk_size")
        integer("verbose", low=0)
        integer("patience", allow_none=True)
        integer("lr_patience")
        integer("n_models")
        if self.bagging is not None and not (
            isinstance(self.bagging, numbers.Real) and 0 < self.bagging <= 1
        ):
            raise ValueError(
                f"bagging must be a share of the rows in (0, 1] or None, got {self.bagging!r}"
            )
        real("lr", 0)
        real("l2", 0, strict=False)
        real("epsilon", 0)
        real("clip_grad", 0, allow_none=True)
        real("validation_fraction", 0, strict=False, high=1)
        real("ema_decay", 0, strict=False, high=1, allow_none=True)
        choice("covariance", COVARIANCE_TYPES)
        choice("activation", tuple(sorted(ACTIVATIONS)))
        choice("target_transform", TARGET_TRANSFORMS)
        choice("combine", COMBINES)
        choice("lr_schedule", LR_SCHEDULES)
        if not (
            self.recalibrate is True
            or self.recalibrate is False
            or (isinstance(self.recalibrate, str) and self.recalibrate in RECALIBRATIONS)
        ):
            raise ValueError(
                f'recalibrate must be "auto", "scale", True or False, got {self.recalibrate!r}'
            )
        hidden = self.hidden
        if (
            isinstance(hidden, (str, bytes))
            or not isinstance(hidden, Sequence)
            or not all(
                isinstance(h, numbers.Integral) and not isinstance(h, bool) and h > 0
                for h in hidden
            )
        ):
            raise ValueError(
                f"hidden must be a sequence of positive integers such as (100, 100), got {hidden!r}"
            )
        _resolve_device(self.device)

    # ------------------------------------------------------------------ prediction
    def _member_distributions(self, X) -> Iterator[tuple[slice, GaussianMixture]]:
        """Each member's predicted mixture in the user's units, a chunk of rows at a time.

        The mixtures have batch shape (rows,) for a single model and (E, rows) for an
        ensemble; the log transform is not applied yet.
        """
        check_is_fitted(self, "network_")
        # Finiteness is checked chunk by chunk below: checking all of X at once costs
        # temporaries as large as X.
        X = validate_data(
            self, _to_numpy(X), reset=False, dtype=(np.float64, np.float32), ensure_all_finite=False
        )
        device = next(self.network_.parameters()).device
        unscale = AffineTransform(torch.as_tensor(self.y_shift_), torch.as_tensor(self.y_scale_))
        self.network_.eval()
        step = max(1, self.chunk_size // self._n_members)
        for start in range(0, len(X), step):
            rows = slice(start, start + step)
            scaled_x = (X[rows] - self.x_shift_) / self.x_scale_
            if not np.isfinite(scaled_x).all():
                raise ValueError(
                    f"Input X contains NaN or infinity (in rows {start} to "
                    f"{start + len(scaled_x) - 1}); drop or impute those rows"
                )
            x = torch.as_tensor(scaled_x.astype(np.float32))
            with torch.inference_mode():
                scaled = self.network_(x.to(device))
            # float64 from here: user units may be far from 1, and densities are compared
            # against other float64 tools.
            yield rows, unscale(scaled.to(torch.float64))

    def _distributions(self, X) -> Iterator[tuple[slice, GaussianMixture | LogGaussianMixture]]:
        """The predictive distribution in the user's units: the members' mixtures, recalibrated
        (``member_spread_``, ``component_scale_``) and pooled."""
        ensemble = self._n_members > 1
        for rows, mixture in self._member_distributions(X):
            if self._recalibrated:
                mixture = calibration.recalibrate(
                    mixture,
                    self.member_spread_,
                    self.component_scale_,
                    self.tail_weight_,
                    members=ensemble,
                )
            yield rows, self._in_target_space(mixture.pool(0) if ensemble else mixture)

    def _in_target_space(self, mixture: GaussianMixture) -> GaussianMixture | LogGaussianMixture:
        return LogGaussianMixture(mixture) if self.target_transform == "log" else mixture

    @property
    def _recalibrated(self) -> bool:
        return any(getattr(self, name) != getattr(MDN, name) for name in _RECALIBRATION)

    def _clear_recalibration(self) -> None:
        for name in _RECALIBRATION:
            setattr(self, name, getattr(MDN, name))

    @property
    def _n_members(self) -> int:
        check_is_fitted(self, "network_")
        return self.network_.n_models or 1

    def predict(self, X, point: str = "top"):
        """Point estimates, shape (n,) for a 1-D target or (n, D).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        point : {"top", "mean", "mode", "median"}
            "top": mean of the heaviest component (the reference model's estimate; for a
            log target, its median); "mean": mixture mean; "mode": highest-density point;
            "median": median of each target's marginal. An ensemble joins its members as
            ``combine`` says.
        """
        if point not in POINTS:
            raise ValueError(f"point must be one of {POINTS}, got {point!r}")
        if self._n_members > 1 and self.combine == "median":

            def compute(mixture):
                points = getattr(self._in_target_space(mixture), point)()  # [E, rows, D]
                ordered = points.sort(dim=0).values
                middle = (self._n_members - 1) // 2, self._n_members // 2
                return (ordered[middle[0]] + ordered[middle[1]]) / 2  # np.median's convention

            values = self._collect(X, compute, members=True)
        else:
            values = self._collect(X, lambda dist: getattr(dist, point)())
        return self._like_input(values, X)

    def predict_members(self, X, point: str = "top") -> np.ndarray:
        """Each member's point estimate, shape (E, n) for a 1-D target or (E, n, D).

        Their spread across members (e.g. ``predict_members(X).std(axis=0)``) measures the
        epistemic uncertainty that the members' disagreement reveals.
        """
        if point not in POINTS:
            raise ValueError(f"point must be one of {POINTS}, got {point!r}")

        def compute(mixture):
            values = getattr(self._in_target_space(mixture), point)()
            return values if self._n_members > 1 else values.unsqueeze(0)

        return self._collect(X, compute, row_axis=1, members=True)

    @property
    def members_(self) -> list[MDN]:
        """The ensemble's members as single fitted models."""
        check_is_fitted(self, "network_")
        if self._n_members == 1:
            if not self._recalibrated:
                return [self]
            member = copy.copy(self)  # shares the network; only the recalibration differs
            member._clear_recalibration()
            return [member]
        # Members keep the class defaults of the recalibration values: none.
        fitted = {
            k: v
            for k, v in vars(self).items()
            if k.endswith("_") and not k.startswith("_") and k not in ("network_", *_RECALIBRATION)
        }
        members = []
        for e in range(self._n_members):
            seed = self.random_state
            member = clone(self).set_params(
                n_models=1,
                bagging=None,
                random_state=seed + e if isinstance(seed, numbers.Integral) else seed,
            )
            member.__dict__.update(copy.deepcopy(fitted))
            history = member.history_
            if history.get("member_best_step"):
                history["best_step"] = history["member_best_step"][e]
                history["val_nll"] = [values[e] for values in history["member_val_nll"]]
            member.network_ = self.network_.member(e).eval()
            members.append(member)
        return members

    def predict_interval(self, X, coverage: float = 0.9):
        """Central interval of each target's marginal holding ``coverage`` of its mass.

        Returns
        -------
        lower, upper : ndarray of shape (n,) or (n, D)
        """
        if not (isinstance(coverage, numbers.Real) and 0 < coverage < 1):
            raise ValueError(f"coverage must lie strictly between 0 and 1, got {coverage!r}")
        bounds = self._collect(X, lambda dist: torch.stack(dist.interval(coverage)), row_axis=1)
        return self._like_input(bounds[0], X), self._like_input(bounds[1], X)

    def predict_dist(self, X) -> GaussianMixture | LogGaussianMixture:
        """The predicted distribution of every row, in the user's units (float64).

        A ``GaussianMixture`` (target scaling folded in exactly), or a
        ``LogGaussianMixture`` with ``target_transform="log"``. Its components are the
        members' (``n_models * n_mix``), twice as many with a tail (``tail_weight_`` > 0).
        """
        parts = [dist for _, dist in self._distributions(X)]
        return type(parts[0]).cat(parts)

    def sample(self, X, n_samples: int = 1, random_state=None) -> np.ndarray:
        """Draw from p(y|x): shape (n_samples, n) for a 1-D target or (n_samples, n, D)."""
        if (
            isinstance(n_samples, bool)
            or not isinstance(n_samples, numbers.Integral)
            or n_samples < 1
        ):
            raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}")
        seed = int(check_random_state(random_state).randint(np.iinfo(np.int32).max))
        generator = torch.Generator().manual_seed(seed)
        return self._collect(
            X, lambda dist: dist.to("cpu").sample(int(n_samples), generator), row_axis=1
        )

    def log_prob(self, X, y) -> np.ndarray:
        """Log-density of ``y`` under p(y|x), one value per row, in the user's units."""
        y = self._check_targets(X, y)
        out = np.empty(len(y))
        for rows, dist in self._distributions(X):
            out[rows] = dist.log_prob(torch.tensor(y[rows])).cpu().numpy()  # y may be read-only
        return out

    def evaluate(self, X, y, points: Sequence[str] = ("mean", "top")) -> dict[str, float]:
        """Held-out scores: NLL, CRPS, calibration error, 50/80/90/95 % interval coverage
        and RMSE/MAE of the ``points`` estimates (see ``mdn.metrics.report``)."""
        return metrics.evaluate(self, X, self._check_targets(X, y), points)

    def score(self, X, y, sample_weight=None) -> float:
        """Mean log-likelihood of ``y`` given ``X`` (higher is better)."""
        return float(np.average(self.log_prob(X, y), weights=sample_weight))

    def _collect(self, X, compute, row_axis: int = 0, members: bool = False) -> np.ndarray:
        """Apply ``compute`` (mixture -> tensor ending in the target axis) chunk by chunk.

        ``compute`` gets the predictive distribution, or with ``members`` each member's
        mixture before the target transform.
        """
        chunks = self._member_distributions(X) if members else self._distributions(X)
        out = None  # allocated once the first chunk shows the shape: no list of parts
        for rows, dist in chunks:
            part = compute(dist).cpu().numpy()
            if out is None:
                shape = list(part.shape)
                shape[row_axis] = _num_rows(X)
                out = np.empty(shape, dtype=part.dtype)
            out[(slice(None),) * row_axis + (rows,)] = part
        return out[..., 0] if self.output_1d_ else out

    def _like_input(self, values: np.ndarray, X):
        """A pandas Series/DataFrame on X's index when X was a pandas DataFrame."""
        if not type(X).__module__.startswith("pandas"):
            return values
        import pandas as pd

        names = self.target_names_
        if values.ndim == 1:
            return pd.Series(values, index=X.index, name=names[0] if names else None)
        return pd.DataFrame(values, index=X.index, columns=names)

    def _check_targets(self, X, y) -> np.ndarray:
        check_is_fitted(self, "network_")
        y = check_array(
            _to_numpy(y),
            ensure_2d=False,
            dtype=np.float64,
            input_name="y",
            ensure_all_finite="allow-nan",
        )  # NaN: marginalised in log_prob
        if y.ndim == 1 and self.n_outputs_ == 1:
            y = y[:, None]
        if y.ndim != 2 or y.shape[1] != self.n_outputs_:
            raise ValueError(
                f"y must have {self.n_outputs_} target column(s) as at fit time, "
                f"got shape {y.shape}"
            )
        if len(y) != _num_rows(X):
            raise ValueError(f"X and y have different numbers of rows: {_num_rows(X)} and {len(y)}")
        return y

    # ------------------------------------------------------------------ files
    def save(self, path: str | os.PathLike) -> None:
        """Write the fitted model to ``path`` (safetensors with JSON metadata; no pickle).

        The write is atomic: an existing file at ``path`` is replaced only once the new
        one is complete.
        """
        check_is_fitted(self, "network_")
        tensors = {f"network.{k}": v for k, v in self.network_.state_dict().items()}
        for name in ("x_shift_", "x_scale_", "y_shift_", "y_scale_"):
            tensors[name] = torch.as_tensor(getattr(self, name))
        fitted = {
            "n_features_in_": self.n_features_in_,
            "n_outputs_": self.n_outputs_,
            "output_1d_": self.output_1d_,
            "target_names_": self.target_names_,
            "history_": self.history_,
            "n_iter_": self.n_iter_,
            **{name: getattr(self, name) for name in _RECALIBRATION},
        }
        if hasattr(self, "feature_names_in_"):
            fitted["feature_names_in_"] = [str(n) for n in self.feature_names_in_]
        versions = {
            "mdn": package_version("mdn"),
            "torch": torch.__version__,
            "numpy": np.__version__,
            "scikit-learn": sklearn.__version__,
        }
        write_model_file(
            path,
            tensors,
            {
                "params": _params_to_json(self.get_params(deep=False)),
                "fitted": fitted,
                "versions": versions,
            },
        )

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | None = None) -> MDN:
        """Read a model written by ``save``.

        Parameters
        ----------
        path : str or path-like
        device : str, optional
            Where to put the network; defaults to the saved ``device`` when it is present
            on this machine, else the CPU.
        """
        tensors, documents = read_model_file(path)
        try:
            model = cls(**_params_from_json(documents["params"]))
            fitted = documents["fitted"]
            for name, value in fitted.items():
                setattr(model, name, value)
            if "feature_names_in_" in fitted:
                model.feature_names_in_ = np.asarray(fitted["feature_names_in_"], dtype=object)
            for name in ("x_shift_", "x_scale_", "y_shift_", "y_scale_"):
                setattr(model, name, tensors[name].numpy())
            network = model._build_network()
            state = {
                k.removeprefix("network."): v
                for k, v in tensors.items()
                if k.startswith("network.")
            }
            network.load_state_dict(state, strict=True)
        except (KeyError, TypeError, ValueError, RuntimeError) as error:
            raise ModelFileError(
                f"{path} is an mdn file whose contents do not fit together "
                f"({type(error).__name__}: {error})"
            ) from None
        try:
            target = _resolve_device(device or model.device)
        except ValueError:
            target = torch.device("cpu")
        if target.type != "cpu" and not _device_available(target):
            target = torch.device("cpu")
        model.network_ = network.to(target).eval()
        return model


def load(path: str | os.PathLike, device: str | None = None) -> MDN:
    """Read a model written by ``MDN.save`` (same as ``MDN.load``)."""
    return MDN.load(path, device=device)


# ---------------------------------------------------------------------- helpers
def _resolve_device(spec) -> torch.device:
    if isinstance(spec, torch.device):
        return spec
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(spec)
    except (RuntimeError, TypeError):
        raise ValueError(
            f"device must be 'cpu', 'cuda', 'cuda:N', 'mps' or 'auto', got {spec!r}"
        ) from None
    return device


def _drop_unobserved_rows(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop, with a warning, the rows whose targets are all missing (NaN)."""
    unobserved = np.isnan(y).all(axis=1)
    never = np.flatnonzero(np.isnan(y).all(axis=0))
    if len(never):
        raise ValueError(
            f"target column(s) {never.tolist()} have no observed value (all NaN); drop them"
        )
    if unobserved.any():
        warnings.warn(
            f"{int(unobserved.sum())} of {len(y)} rows have every target missing "
            "(NaN) and were dropped",
            UserWarning,
            stacklevel=3,
        )
    return X[~unobserved], y[~unobserved]


def _rank() -> int:
    return torch.distributed.get_rank() if in_process_group() else 0


def _distribute(
    network: MixtureDensityNetwork, batch: int, generators: list[torch.Generator], seed: int
):
    """What a fit inside a ``torch.distributed`` process group changes.

    Every process holds all rows and the same initial weights; each draws its own share of
    every minibatch (``batch // world_size`` rows, from its own stream), and
    DistributedDataParallel averages the gradients, so one step sees ``batch`` rows in all
    as in a single-process fit.
    """
    from torch.nn.parallel import DistributedDataParallel

    world, rank = torch.distributed.get_world_size(), torch.distributed.get_rank()
    if batch < world:
        raise ValueError(
            f"batch={batch} cannot be shared among {world} processes; use batch >= {world}"
        )
    if rank:
        generators = [
            torch.Generator().manual_seed(
                int(np.random.SeedSequence([seed, e, rank]).generate_state(1)[0])
            )
            for e in range(len(generators))
        ]
    device = next(network.parameters()).device
    wrapped = DistributedDataParallel(
        network, device_ids=[device] if device.type == "cuda" else None
    )
    return batch // world, generators, wrapped


def _device_available(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_available() and (device.index or 0) < torch.cuda.device_count()
    if device.type == "mps":
        return torch.backends.mps.is_available()
    return device.type == "cpu"


def _to_numpy(data):
    """Torch tensors to NumPy; everything else passes to scikit-learn's validation."""
    if isinstance(data, torch.Tensor):
        return data.detach().cpu().numpy()
    return data


def _num_rows(data) -> int:
    if hasattr(data, "shape"):
        return data.shape[0]
    if hasattr(data, "__len__"):
        return len(data)
    return np.asarray(data).shape[0]  # array-likes with only __array__


def _column_names(y) -> list[str] | None:
    if hasattr(y, "columns"):
        return [str(c) for c in y.columns]
    name = getattr(y, "name", None)
    return None if name is None or isinstance(y, np.ndarray) else [str(name)]


def _params_to_json(params: dict) -> dict:
    out = {}
    for key, value in params.items():
        if isinstance(value, tuple):
            value = list(value)
        elif isinstance(value, np.random.RandomState):
            value = None
        elif type(value).__name__ in _RESTORABLE_SCALERS:
            value = {
                "scaler": type(value).__name__,
                "params": {
                    k: list(v) if isinstance(v, tuple) else v for k, v in value.get_params().items()
                },
            }
        elif not (value is None or isinstance(value, (str, bool, int, float))):
            value = {"description": repr(value)}
        out[key] = value
    return out


def _params_from_json(params: dict) -> dict:
    out = dict(params)
    # Files written before weight averaging existed describe models trained without it.
    out.setdefault("ema_decay", None)
    out["hidden"] = tuple(out["hidden"])
    for key in ("scaler_x", "scaler_y"):
        value = out.get(key)
        if isinstance(value, dict) and value.get("scaler") in _RESTORABLE_SCALERS:
            kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in value["params"].items()}
            out[key] = _RESTORABLE_SCALERS[value["scaler"]](**kwargs)
        elif isinstance(value, dict):
            warnings.warn(
                f"{key} was the object {value.get('description')}, which a model file cannot "
                "rebuild; its fitted scaling is restored exactly, but set "
                f"{key} again before refitting",
                UserWarning,
                stacklevel=3,
            )
            out[key] = value.get("description")
    return out
