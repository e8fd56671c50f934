"""Predictions from an exported ``MDN`` with NumPy and onnxruntime alone: no torch.

``OnnxPredictor`` reads a graph that ``MDN.export_onnx`` wrote (``mdn.onnx.graph`` says what
it holds) and predicts as the model does.
"""

from mdn.onnx.graph import FORMAT_VERSION, INPUT, MEMBER_OUTPUTS, OUTPUTS
from mdn.onnx.predictor import OnnxPredictor
from mdn.params import POINTS

__all__ = ["FORMAT_VERSION", "INPUT", "MEMBER_OUTPUTS", "OUTPUTS", "POINTS", "OnnxPredictor"]
