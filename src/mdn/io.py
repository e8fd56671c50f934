"""Model files: tensors in safetensors, everything else as JSON in its metadata. No pickle.

A file holds named tensors plus string metadata with the keys ``format`` (``"mdn-model"``),
``format_version`` and JSON documents chosen by the caller. Writes go to a temporary file
in the target's folder, are flushed to disk, then renamed over the target, so an existing
model is never left half-written.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as dump_tensors

__all__ = ["FORMAT", "FORMAT_VERSION", "ModelFileError", "read_model_file", "write_model_file"]

FORMAT = "mdn-model"
FORMAT_VERSION = 1


class ModelFileError(ValueError):
    """A file that is not a readable mdn model file."""


def write_model_file(
    path: str | os.PathLike, tensors: dict[str, torch.Tensor], documents: dict[str, object]
) -> Path:
    """Write ``tensors`` and the JSON-serialisable ``documents`` to ``path`` atomically.

    Parameters
    ----------
    path : str or path-like
        The file to write (replaced if it exists).
    tensors : dict of str to Tensor
        Stored on the CPU, contiguous.
    documents : dict of str to object
        Each value is stored as JSON under its key in the metadata.

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; give a file name such as model.safetensors")
    metadata = {"format": FORMAT, "format_version": str(FORMAT_VERSION)}
    for key, value in documents.items():
        metadata[key] = json.dumps(value)
    payload = dump_tensors({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, metadata)
    folder = path.parent if str(path.parent) else Path(".")
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(payload)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def read_model_file(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, object]]:
    """Read a file written by ``write_model_file``.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    tensors : dict of str to Tensor
    documents : dict of str to the decoded JSON documents

    Raises
    ------
    FileNotFoundError
        If there is no such file.
    ModelFileError
        If the file is truncated, corrupt, not safetensors, not an mdn model, or written
        by a newer format version.
    """
    path = Path(path)
    data = path.read_bytes()
    what = f"{path} is not an mdn model file"
    if len(data) < 8:
        raise ModelFileError(f"{what}: it is {len(data)} bytes long (empty or truncated)")
    (header_size,) = struct.unpack("<Q", data[:8])
    if header_size > len(data) - 8:
        raise ModelFileError(
            f"{what}: its header claims {header_size} bytes but the file "
            f"has {len(data) - 8} (truncated, or not a safetensors file)"
        )
    try:
        header = json.loads(data[8 : 8 + header_size])
        metadata = header.get("__metadata__") or {}
    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError) as error:
        raise ModelFileError(f"{what}: its header is not safetensors JSON ({error})") from None
    if metadata.get("format") != FORMAT:
        raise ModelFileError(
            f"{what}: it holds no '{FORMAT}' metadata (a safetensors file from another program?)"
        )
    try:
        version = int(metadata["format_version"])
    except (KeyError, ValueError):
        raise ModelFileError(f"{what}: its format_version is missing or not a number") from None
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{path} uses model format {version}, newer than this mdn "
            f"reads ({FORMAT_VERSION}); upgrade mdn to load it"
        )
    try:
        tensors = load_tensors(data)
        documents = {
            k: json.loads(v) for k, v in metadata.items() if k not in ("format", "format_version")
        }
    except Exception as error:  # safetensors raises its own error types on corrupt data
        raise ModelFileError(f"{path} is a damaged mdn model file: {error}") from None
    return tensors, documents
