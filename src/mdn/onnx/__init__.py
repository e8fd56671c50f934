"""Predictions from an exported ``MDN`` with NumPy and onnxruntime alone: no torch."""

from mdn.onnx.predictor import (
    FORMAT_VERSION,
    INPUT,
    MEMBER_OUTPUTS,
    OUTPUTS,
    POINTS,
    OnnxPredictor,
)

__all__ = ["FORMAT_VERSION", "INPUT", "MEMBER_OUTPUTS", "OUTPUTS", "POINTS", "OnnxPredictor"]
