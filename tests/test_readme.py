"""The README's Python examples run as written (with training cut short)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

import mdn

README = Path(__file__).parents[1] / "README.md"


class QuickMDN(mdn.MDN):
    """``MDN`` with at most 60 iterations: the examples' results are not what is tested."""

    def fit(self, X, y, groups=None):
        self.n_iter = min(self.n_iter, 60)
        return super().fit(X, y, groups=groups)


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_the_readme_has_python_examples():
    assert len(python_blocks()) >= 4


#: Examples of optional features, by a word they use, and the packages their extra installs:
#: skipped where those are missing (the version-floor run installs no extras).
OPTIONAL = {"onnx": ("onnx", "onnxruntime", "onnxscript"), "raster": ("xarray", "dask")}


def _runnable(block: str) -> bool:
    return all(
        all(importlib.util.find_spec(package) for package in packages)
        for word, packages in OPTIONAL.items()
        if word in block
    )


def test_the_readme_examples_run_in_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the tour saves a model file
    monkeypatch.setattr(mdn, "MDN", QuickMDN)
    namespace: dict = {}
    for block in filter(_runnable, python_blocks()):
        try:
            exec(compile(block, str(README), "exec"), namespace)
        except Exception as error:
            pytest.fail(f"README example failed ({type(error).__name__}: {error}):\n{block}")
    assert (tmp_path / "model.safetensors").is_file()
