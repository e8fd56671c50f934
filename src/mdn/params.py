"""Every parameter of ``MDN``, ``train`` and the network modules, and every argument of
their methods (``coverage``, ``n_samples``, ``point``, ``chunk_size``...), declared once.

``validate(name, value)`` checks one value against its rule and raises a ``ValueError`` that
names the parameter, what it must be and what it got. ``MDN.fit``, ``train``, the network
modules, ``MDN``'s and ``OnnxPredictor``'s methods and ``GaussianMixture``'s all call it, so
one parameter has one rule and one message wherever it is given. The choices of the string
parameters live here too, so that every layer reads them from one place. The module needs
NumPy alone: the torch-free predictor checks its arguments here too.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "ACTIVATIONS",
    "AUTO_POINTS",
    "COMBINES",
    "COVARIANCE_TYPES",
    "LR_SCHEDULES",
    "NONPOSITIVE_TARGETS",
    "PARAMETERS",
    "POINTS",
    "RECALIBRATIONS",
    "SPECTRAL_FEATURES",
    "TARGET_TRANSFORMS",
    "validate",
    "validate_all",
    "validate_argument",
]

COVARIANCE_TYPES = ("full", "diag", "spherical")
ACTIVATIONS = ("elu", "gelu", "leaky_relu", "relu", "sigmoid", "silu", "softplus", "tanh")
LR_SCHEDULES = ("constant", "cosine", "plateau")
TARGET_TRANSFORMS = (None, "log")
#: What a log target does with values <= 0: refuse them, or treat them as missing.
NONPOSITIVE_TARGETS = ("raise", "missing")
#: The features of reflectance inputs (``mdn.ocean.features``): None keeps them as they are.
SPECTRAL_FEATURES = (None, "log", "shape")
COMBINES = ("median", "mixture")
RECALIBRATIONS = ("auto", "scale", True, False)
POINTS = ("top", "mean", "mode", "median")
#: What ``point="auto"`` means, by target transform: for a log target the median, which
#: minimises the median absolute log error that retrieval papers score (MdSA); otherwise the
#: heaviest component's mean, which stays on a branch of a multimodal target.
AUTO_POINTS = {"log": "median", None: "top"}


@dataclass(frozen=True)
class Integer:
    """An integer (never a bool) of at least ``low``, or None where ``optional``."""

    low: int = 1
    optional: bool = False

    def check(self, name: str, value: object) -> None:
        if value is None and self.optional:
            return
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < self.low:
            raise ValueError(
                f"{name} must be an integer >= {self.low}{' or None' * self.optional}, "
                f"got {value!r}"
            )


@dataclass(frozen=True)
class Real:
    """A finite number above ``low`` (or at it, unless ``strict``) and below ``high``."""

    low: float
    strict: bool = True
    high: float = math.inf
    optional: bool = False

    def check(self, name: str, value: object) -> None:
        if value is None and self.optional:
            return
        ok = (
            isinstance(value, numbers.Real)
            and not isinstance(value, bool)
            and math.isfinite(value)
            and (value > self.low if self.strict else value >= self.low)
            and value < self.high
        )
        if not ok:
            bound = f"{'>' if self.strict else '>='} {self.low}"
            if self.high < math.inf:
                bound += f" and < {self.high}"
            raise ValueError(
                f"{name} must be a number {bound}{' or None' * self.optional}, got {value!r}"
            )


@dataclass(frozen=True)
class Probability:
    """A probability strictly between 0 and 1 (a coverage)."""

    def check(self, name: str, value: object) -> None:
        if getattr(value, "shape", None) == () and not isinstance(value, bool):
            value = value.item() if hasattr(value, "item") else value  # a 0-d array
        if isinstance(value, bool) or not (isinstance(value, numbers.Real) and 0 < value < 1):
            raise ValueError(f"{name} must be a number strictly between 0 and 1, got {value!r}")


@dataclass(frozen=True)
class Share:
    """A share of the rows in (0, 1], or None."""

    def check(self, name: str, value: object) -> None:
        if value is None:
            return
        if isinstance(value, bool) or not (isinstance(value, numbers.Real) and 0 < value <= 1):
            raise ValueError(f"{name} must be a share of the rows in (0, 1] or None, got {value!r}")


@dataclass(frozen=True)
class Choice:
    """One of ``options``; True and False match only themselves, not 1 and 0."""

    options: tuple
    described: str = ""

    def check(self, name: str, value: object) -> None:
        if not any(
            value is option or (isinstance(value, str) and value == option)
            for option in self.options
        ):
            what = self.described or f"one of {self.options}"
            raise ValueError(f"{name} must be {what}, got {value!r}")


@dataclass(frozen=True)
class Sizes:
    """A sequence of positive integers (layer widths)."""

    def check(self, name: str, value: object) -> None:
        if (
            isinstance(value, (str, bytes))
            or not isinstance(value, Sequence)
            or not all(
                isinstance(h, numbers.Integral) and not isinstance(h, bool) and h > 0 for h in value
            )
        ):
            raise ValueError(
                f"{name} must be a sequence of positive integers such as (100, 100), got {value!r}"
            )


@dataclass(frozen=True)
class FilePath:
    """A file name (str or path-like), or None."""

    def check(self, name: str, value: object) -> None:
        if value is not None and not isinstance(value, (str, os.PathLike)):
            raise ValueError(f"{name} must be a file name or None, got {value!r}")


@dataclass(frozen=True)
class Seed:
    """None, an integer, or a NumPy ``RandomState`` (as scikit-learn takes them)."""

    def check(self, name: str, value: object) -> None:
        seeds = (numbers.Integral, np.random.RandomState)
        if value is not None and (isinstance(value, bool) or not isinstance(value, seeds)):
            raise ValueError(f"{name} must be None, an integer or a RandomState, got {value!r}")


@dataclass(frozen=True)
class Device:
    """A torch device name or "auto"."""

    def check(self, name: str, value: object) -> None:
        from mdn.runtime import resolve_device  # torch, imported only where a device is named

        resolve_device(value)


@dataclass(frozen=True)
class Unchecked:
    """Checked where it is used: scalers by ``mdn.estimator.scaling``, seeds by scikit-learn."""

    def check(self, name: str, value: object) -> None:
        return


PARAMETERS: dict[str, object] = {
    # the network
    "n_mix": Integer(),
    "hidden": Sizes(),
    "activation": Choice(ACTIVATIONS),
    "covariance": Choice(COVARIANCE_TYPES),
    "epsilon": Real(0),
    "n_models": Integer(),
    # the loop
    "lr": Real(0),
    "lr_schedule": Choice(LR_SCHEDULES),
    "lr_patience": Integer(),
    "ema_decay": Real(0, strict=False, high=1, optional=True),
    "l2": Real(0, strict=False),
    "n_iter": Integer(),
    "batch": Integer(),
    "clip_grad": Real(0, optional=True),
    "patience": Integer(optional=True),
    "eval_every": Integer(),
    "max_recoveries": Integer(low=0),
    # the estimator
    "scaler_x": Unchecked(),
    "scaler_y": Unchecked(),
    "target_transform": Choice(TARGET_TRANSFORMS),
    "nonpositive_targets": Choice(NONPOSITIVE_TARGETS),
    "spectral_features": Choice(SPECTRAL_FEATURES),
    "validation_fraction": Real(0, strict=False, high=1),
    "bagging": Share(),
    "combine": Choice(COMBINES),
    "point": Choice(("auto", *POINTS)),
    "recalibrate": Choice(RECALIBRATIONS, described='"auto", "scale", True or False'),
    "random_state": Seed(),
    "device": Device(),
    "verbose": Integer(low=0),
    "chunk_size": Integer(),
    "checkpoint": FilePath(),
    "checkpoint_every": Integer(),
    "n_threads": Integer(optional=True),
    # the head's own sizes
    "in_features": Integer(),
    "n_targets": Integer(),
    # arguments of the prediction methods
    "coverage": Probability(),
    "n_samples": Integer(),
    "point_estimate": Choice((None, *POINTS), described=f"one of {POINTS} or None"),
}

#: The names the methods give their arguments where the table's differ: ``predict(X,
#: point=...)`` takes a point estimate or None (the model's), not ``MDN``'s "auto";
#: ``GaussianMixture.sample(n)`` a number of draws; a scene's ``interval`` is a coverage and
#: its ``torch_threads`` a thread count.
METHOD_ALIASES = {
    "point": "point_estimate",
    "n": "n_samples",
    "interval": "coverage",
    "torch_threads": "n_threads",
}

#: ``train``'s names for the estimator's parameters where they differ.
ALIASES = {"batch_size": "batch"}


def validate(name: str, value: object) -> None:
    """Check ``value`` against the rule of parameter ``name``.

    Parameters
    ----------
    name : str
        A key of ``PARAMETERS`` (or of ``ALIASES``).
    value : object

    Raises
    ------
    ValueError
        Naming the parameter, what it must be, and the value it got.
    """
    PARAMETERS[ALIASES.get(name, name)].check(name, value)


def validate_argument(name: str, value: object, label: str | None = None) -> None:
    """Check a method's argument ``value`` against the rule of its name.

    Parameters
    ----------
    name : str
        The argument's name: a key of ``PARAMETERS`` or of ``METHOD_ALIASES``.
    value : object
    label : str, optional
        How the message names the argument where it is not ``name`` (a command-line
        option such as ``--interval``).

    Raises
    ------
    ValueError
        Naming the argument, what it must be, and the value it got.
    """
    PARAMETERS[METHOD_ALIASES.get(name, name)].check(label or name, value)


def validate_all(params: Mapping[str, object]) -> None:
    """``validate`` every item of ``params``.

    Parameters
    ----------
    params : mapping of str to object
        Parameter names (keys of ``PARAMETERS`` or ``ALIASES``) and their values.

    Raises
    ------
    ValueError
        At the first value that breaks its rule.
    """
    for name, value in params.items():
        validate(name, value)
