"""Where the arithmetic runs: choosing a device, flushing denormal numbers on CPUs, threads,
and the allocator's hold on the pages of large buffers."""

from __future__ import annotations

import contextlib
import inspect
import os
import threading
from collections.abc import Iterator

import numpy as np
import torch

__all__ = [
    "denormals_flushed",
    "device_available",
    "intra_op_threads",
    "outside_mdn_stacklevel",
    "resolve_device",
    "settle_allocator",
]


def resolve_device(spec: str | torch.device) -> torch.device:
    """The torch device that ``spec`` names; "auto" picks a GPU where there is one.

    Parameters
    ----------
    spec : str or torch.device
        "cpu", "cuda", "cuda:N", "mps", "auto" or a ``torch.device``.

    Returns
    -------
    torch.device

    Raises
    ------
    ValueError
        If ``spec`` names no device.
    """
    if isinstance(spec, torch.device):
        return spec
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        return torch.device(spec)
    except (RuntimeError, TypeError):
        raise ValueError(
            f"device must be 'cpu', 'cuda', 'cuda:N', 'mps' or 'auto', got {spec!r}"
        ) from None


def device_available(device: torch.device) -> bool:
    """Whether ``device`` exists on this machine.

    Parameters
    ----------
    device : torch.device

    Returns
    -------
    bool
    """
    if device.type == "cuda":
        return torch.cuda.is_available() and (device.index or 0) < torch.cuda.device_count()
    if device.type == "mps":
        return torch.backends.mps.is_available()
    return device.type == "cpu"


# How many denormals_flushed blocks each thread is inside (the flag is per thread).
_depth = threading.local()


@contextlib.contextmanager
def denormals_flushed() -> Iterator[None]:
    """Flush float denormals to zero for the duration, then turn flushing off again.

    L2 shrinks unused weights into the denormal range, and mixture tails reach it in
    prediction; x86 arithmetic on denormals is about ten times slower
    (benchmarks/README.md). Flushing them to zero changes no result measurably. Blocks may
    nest (a prediction inside a training callback): flushing stops when the outermost one
    ends. Usable as a decorator too.

    Yields
    ------
    None
    """
    depth = getattr(_depth, "value", 0)
    flushes = torch.set_flush_denormal(True) if depth == 0 else False
    _depth.value = depth + 1
    try:
        yield
    finally:
        _depth.value = depth
        if flushes:
            torch.set_flush_denormal(False)


@contextlib.contextmanager
def intra_op_threads(n_threads: int | None) -> Iterator[None]:
    """Run the block with torch's intra-op thread count at ``n_threads`` (None: as it is).

    torch's count belongs to the calling thread (OpenMP and MKL keep it per thread), so
    fits running in other threads keep theirs, and the caller gets its own back afterwards.

    Parameters
    ----------
    n_threads : int or None

    Yields
    ------
    None
    """
    before = torch.get_num_threads()
    if n_threads is not None:
        torch.set_num_threads(n_threads)
    try:
        yield
    finally:
        if n_threads is not None:
            torch.set_num_threads(before)


#: Large enough to raise glibc's threshold above any buffer of a prediction chunk (a layer's
#: output for 8192 rows is 3.3 MB), small enough to stay under its ceiling (32 MB).
_SETTLING_BYTES = 16 * 2**20


def settle_allocator() -> None:
    """Let glibc's malloc keep the pages of large buffers between one chunk and the next.

    glibc serves blocks above a threshold (128 KB at first) with fresh pages and returns
    them on free; it raises the threshold to the size of such a block when one is freed (up
    to 32 MB), but where it has not yet, every chunk of a prediction faults in its buffers'
    pages anew: ``MDN.predict`` ran 1.3-1.8x slower in about half of the processes here, at
    random (benchmarks/README.md). Allocating and freeing one 16 MB block (its pages never
    touched) raises the threshold as the first large free would. Elsewhere than on glibc it
    is one allocation.

    Returns
    -------
    None
    """
    np.empty(_SETTLING_BYTES, dtype=np.uint8)  # freed at once


def outside_mdn_stacklevel() -> int:
    """The ``stacklevel`` of ``warnings.warn`` that points at the first caller outside mdn.

    For warnings raised deep inside a prediction (through generators and decorators, whose
    depth varies with the path), so that the user sees the line of their own call.

    Returns
    -------
    int
    """
    inside = (os.path.dirname(os.path.abspath(__file__)), os.path.abspath(contextlib.__file__))
    frame, level = inspect.currentframe().f_back, 1  # the function that will warn
    # mdn's frames, and contextlib's (the decorators that flush denormals wrap the methods)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(inside):
        frame, level = frame.f_back, level + 1
    return level
