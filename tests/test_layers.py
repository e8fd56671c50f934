"""The modules' imports point one way: each imports only modules of the layers below its own
(docs/architecture.md draws them). Imports under ``if TYPE_CHECKING:`` do not count."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import mdn

#: Lowest first. A module may import modules of earlier layers only.
LAYERS = [
    [
        "runtime",
        "torch_internals",
        "io",
        "data",
        "preprocessing",
        "plotting",
        "spectral",
        "optics",
        "metrics.points",
        "numpy_solvers",
        "raster.optional",
    ],
    ["params", "fastpath", "numpy_mixture", "sensors"],
    ["mixture_params", "mixture_solvers", "layers", "datasets", "onnx"],
    ["mixture_marginals", "mixture_moments"],
    ["mixture"],
    ["transforms", "calibration", "nn"],
    [
        "metrics.scores",
        "training.history",
        "training.batches",
        "training.ddp",
        "training.optimizer",
        "training.averaging",
        "training.stopping",
    ],
    ["training.checkpoint", "metrics.reports"],
    ["training.loop", "metrics"],
    ["training"],
    ["fitting"],
    ["persistence", "prediction", "baselines"],
    ["onnx_export"],
    ["model_files"],
    ["estimator"],
    [
        "distributed",
        "crossval",
        "figures",
        "raster.bands",
        "raster.cubes",
        "raster.flags",
        "raster.models",
        "raster.metadata",
        "raster.writers",
        "raster.cluster",
    ],
    ["cli.tables", "cli.report", "cli.main", "raster.readers", "raster.pixels"],
    ["cli.settings", "cli.inputs", "raster.predict"],
    ["cli.train", "cli.use", "cli.figure", "cli.export", "cli.scene", "raster"],
    ["cli", "cli.__main__", ""],  # "" is the package itself, mdn/__init__.py
]
ROOT = Path(mdn.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(p for p in parts if p != "__init__")


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # a name inside a module, not a module
        return False


def _imported(path: Path) -> set[str]:
    """The mdn modules that ``path`` imports, anywhere but under ``if TYPE_CHECKING``."""
    found = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "mdn")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "mdn":
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if _is_module(candidate) else node.module)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    return {name.removeprefix("mdn").removeprefix(".") for name in found}


def test_every_module_has_a_layer():
    placed = {name for layer in LAYERS for name in layer}
    modules = {_module_name(path) for path in ROOT.rglob("*.py")}
    assert modules == placed


def test_imports_point_down_the_layers():
    level = {name: i for i, layer in enumerate(LAYERS) for name in layer}
    for path in ROOT.rglob("*.py"):
        name = _module_name(path)
        upward = {m for m in _imported(path) if level[m] >= level[name]}
        assert not upward, f"mdn.{name} imports {sorted(upward)} from its own layer or above"
