"""``mdn export``: a saved model as an ONNX graph, for prediction without PyTorch."""

from __future__ import annotations

import click

from mdn.cli.inputs import load_model
from mdn.cli.tables import check_output_path

__all__ = ["export"]


@click.command()
@click.argument("model_file", metavar="MODEL", type=click.Path())
@click.option("--output", "-o", required=True, type=click.Path(), help="The .onnx file to write.")
def export(model_file, output):
    """Write MODEL as an ONNX graph from raw features to its mixture's parameters.

    The file is verified as every command verifies a model file; one that fails is not
    exported. mdn.onnx.OnnxPredictor reads the graph with NumPy and onnxruntime alone
    (no PyTorch) and predicts as the model does. Needs pip install 'mdn[onnx]'.

    \b
    Example:
      mdn export chl.safetensors -o chl.onnx
    """
    output = check_output_path(output, {".onnx": "onnx"})
    model = load_model(model_file)
    model.export_onnx(output)
    click.echo(f"wrote {output}")
