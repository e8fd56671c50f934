"""matplotlib, imported when a figure is drawn and named with its extra where it is missing."""

from __future__ import annotations

from types import ModuleType

__all__ = ["pyplot"]


def pyplot() -> ModuleType:
    """``matplotlib.pyplot``, imported on first use (``import mdn`` stays light).

    Returns
    -------
    module

    Raises
    ------
    ImportError
        Naming the ``plot`` extra, where matplotlib is missing.
    """
    try:
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("plotting needs matplotlib: pip install 'mdn[plot]'") from None
    return plt
