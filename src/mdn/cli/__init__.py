"""The ``mdn`` command (``mdn --help``). Each command lives in its own module and is added to
the group here; a new command adds one line below."""

from mdn.cli.export import export
from mdn.cli.figure import plot
from mdn.cli.main import main
from mdn.cli.scene import predict_scene
from mdn.cli.train import cv, fit
from mdn.cli.use import evaluate, info, predict

for _command in (fit, predict, evaluate, cv, plot, info):
    main.add_command(_command)
main.add_command(export)
main.add_command(predict_scene)

__all__ = ["main"]
