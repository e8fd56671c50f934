"""The scikit-learn estimator ``MDN``: its parameters, fit, predictions and files."""

from mdn.estimator.model import MDN, REFERENCE, load

__all__ = ["MDN", "REFERENCE", "load"]
