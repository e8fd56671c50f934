"""Gaussian mixtures: the distribution an MDN predicts, its transforms and its recalibration."""
