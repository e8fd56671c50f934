"""Every public function and method is typed and has numpydoc Parameters and Returns."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import mdn

#: Methods whose contract is their base class's (torch's, scikit-learn's, Python's).
INHERITED_CONTRACTS = {"forward", "extra_repr", "backward", "reset_parameters"}


def _public_modules():
    for info in pkgutil.walk_packages(mdn.__path__, "mdn."):
        if info.name == "mdn.distributed" or not info.name.split(".")[-1].startswith("_"):
            yield importlib.import_module(info.name)


def _public_callables():
    seen = set()
    for module in _public_modules():
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name)
            if inspect.isfunction(obj) and obj.__module__ == module.__name__:
                yield f"{module.__name__}.{name}", obj
            elif inspect.isclass(obj) and obj.__module__ == module.__name__ and obj not in seen:
                seen.add(obj)
                for attr, member in vars(obj).items():
                    if attr.startswith("_") or attr in INHERITED_CONTRACTS:
                        continue
                    function = (
                        member.__func__
                        if isinstance(member, (classmethod, staticmethod))
                        else member
                    )
                    if inspect.isfunction(function):
                        yield f"{module.__name__}.{name}.{attr}", function


CALLABLES = dict(_public_callables())


def test_the_walk_finds_the_api():
    assert "mdn.estimator.model.MDN.fit" in CALLABLES and "mdn.training.loop.train" in CALLABLES
    assert "mdn.distributions.mixture.GaussianMixture.quantile" in CALLABLES


@pytest.mark.parametrize("name", sorted(CALLABLES))
def test_public_callable_is_typed_and_documented(name):
    function = CALLABLES[name]
    signature = inspect.signature(function)
    doc = inspect.getdoc(function) or ""
    assert doc, f"{name} has no docstring"
    arguments = [p for p in signature.parameters if p not in ("self", "cls")]
    if arguments:
        assert "Parameters\n----------" in doc, f"{name}: no Parameters section"
        for argument in arguments:
            assert argument in doc.split("Parameters\n----------")[1], f"{name}: {argument}"
    annotations = function.__annotations__
    assert "return" in annotations, f"{name}: no return annotation"
    if annotations["return"] not in (None, "None"):
        assert "Returns\n-------" in doc or "Yields\n------" in doc, f"{name}: no Returns"
