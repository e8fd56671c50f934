"""Model files: tensors in safetensors, everything else as JSON in its metadata. No pickle.

A file holds named tensors plus string metadata with the keys ``format`` (``"mdn-model"``),
``format_version``, ``checksum`` and JSON documents chosen by the caller. mdn writes the
safetensors layout itself, with sorted names and keys, so that the same contents always
give the same bytes; any safetensors reader can read it. The checksum (SHA-256 over every
tensor's name, dtype, shape and bytes and over every metadata entry) is checked on read,
before any tensor is built, as are the header's sizes against the file's. Writes go to a
temporary file in the target's folder, are flushed to disk, then renamed over the target,
so an existing model is never left half-written; the temporary file is removed on any
failure.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import struct
import tempfile
import warnings
from pathlib import Path

import torch
from safetensors.torch import load as load_tensors

__all__ = ["FORMAT", "FORMAT_VERSION", "ModelFileError", "read_model_file", "write_model_file"]

FORMAT = "mdn-model"
#: 1: no checksum (mdn before verified files); 2: sorted, checksummed.
FORMAT_VERSION = 2
_RESERVED = ("format", "format_version", "checksum")
_DTYPES = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}
_ITEMSIZE = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
             "U8": 1, "BOOL": 1}  # fmt: skip


class ModelFileError(ValueError):
    """A file that is not a readable, intact mdn model file."""


def write_model_file(
    path: str | os.PathLike, tensors: dict[str, torch.Tensor], documents: dict[str, object]
) -> Path:
    """Write ``tensors`` and the JSON-serialisable ``documents`` to ``path`` atomically.

    Parameters
    ----------
    path : str or path-like
        The file to write (replaced if it exists).
    tensors : dict of str to Tensor
        Stored from the CPU, contiguous, little-endian.
    documents : dict of str to object
        Each value is stored as JSON (keys sorted) under its key in the metadata.

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; give a file name such as model.safetensors")
    if any(key in _RESERVED for key in documents):
        raise ValueError(f"documents may not use the reserved keys {_RESERVED}")
    metadata = {"format": FORMAT, "format_version": str(FORMAT_VERSION)}
    for key, value in documents.items():
        metadata[key] = json.dumps(value, sort_keys=True)
    blobs = {name: _tensor_bytes(tensor) for name, tensor in tensors.items()}
    metadata["checksum"] = _checksum(blobs, metadata)
    _replace_atomically(path, _serialise(blobs, metadata))
    return path


def _tensor_bytes(tensor: torch.Tensor) -> tuple[str, list[int], bytes]:
    tensor = tensor.detach().cpu().contiguous()
    if tensor.dtype not in _DTYPES:
        raise TypeError(f"model files hold no tensors of dtype {tensor.dtype}")
    raw = tensor.reshape(-1).view(torch.uint8).numpy().tobytes()
    return _DTYPES[tensor.dtype], list(tensor.shape), raw


def _checksum(
    blobs: dict[str, tuple[str, list[int], bytes | memoryview]], metadata: dict[str, str]
) -> str:
    digest = hashlib.sha256()

    def feed(text: str) -> None:  # length-prefixed, so that no two contents share a stream
        encoded = text.encode()
        digest.update(struct.pack("<Q", len(encoded)) + encoded)

    for name in sorted(blobs):
        dtype, shape, raw = blobs[name]
        feed(name)
        feed(f"{dtype}{shape}")
        digest.update(struct.pack("<Q", len(raw)))
        digest.update(raw)
    for key in sorted(k for k in metadata if k != "checksum"):
        feed(key)
        feed(metadata[key])
    return "sha256:" + digest.hexdigest()


def _serialise(blobs: dict[str, tuple[str, list[int], bytes]], metadata: dict[str, str]) -> bytes:
    """The safetensors layout: header size, JSON header (sorted, padded to 8), data."""
    header: dict[str, object] = {"__metadata__": metadata}
    offset = 0
    for name in sorted(blobs):
        dtype, shape, raw = blobs[name]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    data = b"".join(blobs[name][2] for name in sorted(blobs))
    return struct.pack("<Q", len(text)) + text + data


def _replace_atomically(path: Path, payload: bytes) -> None:
    folder = path.parent if str(path.parent) else Path(".")
    try:
        handle, temporary = tempfile.mkstemp(
            prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=folder
        )
    except OSError as error:
        raise OSError(error.errno, f"cannot write {path}: {error.strerror}") from None
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(payload)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
        _remove_orphans(folder, path.name)
    except BaseException as error:
        Path(temporary).unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise OSError(error.errno, f"cannot write {path}: {error.strerror or error}") from None
        raise


def _remove_orphans(folder: Path, name: str) -> None:
    """Remove the temporary files of earlier writes of ``name`` whose process died mid-write
    (a kill leaves no chance to clean up): their names carry the writer's process id."""
    for orphan in folder.glob(f".{name}.*.tmp"):
        pid = orphan.name[len(name) + 2 :].split(".", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            orphan.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists, but belongs to someone else
        return True
    return True


def read_model_file(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, object]]:
    """Read a file written by ``write_model_file``, checking it is intact first.

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
        If the file is truncated, damaged (its checksum does not match), not safetensors,
        not an mdn model, or written by a newer format version.
    """
    path = Path(path)
    data = path.read_bytes()
    header, metadata = _header(path, data)
    entries = _checked_entries(path, header, len(data) - 8 - _header_size(data))
    version = _format_version(path, metadata)
    buffer = memoryview(data)[8 + _header_size(data) :]
    if version >= 2:
        blobs = {
            n: (e["dtype"], e["shape"], buffer[slice(*e["data_offsets"])])
            for n, e in entries.items()
        }
        if metadata.get("checksum") != _checksum(blobs, metadata):
            raise ModelFileError(
                f"{path} is damaged: its checksum does not match its contents (a changed or "
                "corrupted file); use an intact copy"
            )
    else:
        warnings.warn(
            f"{path} was written by an earlier mdn (format {version}) without a checksum: it "
            "cannot be checked for damage; save it again to add one",
            UserWarning,
            stacklevel=4,
        )
    try:
        tensors = load_tensors(data)
        documents = {k: json.loads(v) for k, v in metadata.items() if k not in _RESERVED}
    except RecursionError:
        raise ModelFileError(
            f"{path} is not an mdn model file: its metadata nests too deeply"
        ) from None
    except Exception as error:  # safetensors raises its own error types on corrupt data
        raise ModelFileError(f"{path} is a damaged mdn model file: {error}") from None
    return tensors, documents


def _header_size(data: bytes) -> int:
    return struct.unpack("<Q", data[:8])[0]


def _header(path: Path, data: bytes) -> tuple[dict, dict]:
    what = f"{path} is not an mdn model file"
    if len(data) < 8:
        raise ModelFileError(f"{what}: it is {len(data)} bytes long (empty or truncated)")
    size = _header_size(data)
    if size > len(data) - 8:
        raise ModelFileError(
            f"{what}: its header claims {size} bytes but the file "
            f"has {len(data) - 8} (truncated, or not a safetensors file)"
        )
    try:
        header = json.loads(data[8 : 8 + size])
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise ModelFileError(f"{what}: its header is not safetensors JSON ({error})") from None
    metadata = header.get("__metadata__", {}) if isinstance(header, dict) else None
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise ModelFileError(f"{what}: its header holds no safetensors metadata of strings")
    if metadata.get("format") != FORMAT:
        raise ModelFileError(
            f"{what}: it holds no '{FORMAT}' metadata (a safetensors file from another program?)"
        )
    return header, metadata


def _format_version(path: Path, metadata: dict[str, str]) -> int:
    try:
        version = int(metadata["format_version"])
    except (KeyError, ValueError):
        raise ModelFileError(
            f"{path} is not an mdn model file: its format_version is missing or not a number"
        ) from None
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{path} uses model format {version}, newer than this mdn "
            f"reads ({FORMAT_VERSION}); upgrade mdn to load it"
        )
    if version < 1:
        raise ModelFileError(f"{path} is not an mdn model file: format_version {version}")
    return version


def _checked_entries(path: Path, header: dict, buffer_size: int) -> dict[str, dict]:
    """The header's tensor entries, each checked against the bytes the file really holds."""
    entries = {k: v for k, v in header.items() if k != "__metadata__"}
    for name, entry in entries.items():
        try:
            dtype, shape, (start, end) = entry["dtype"], entry["shape"], entry["data_offsets"]
            ok = (
                dtype in _ITEMSIZE
                and all(isinstance(n, int) and n >= 0 for n in (*shape, start, end))
                and start <= end <= buffer_size
                and end - start == math.prod(shape) * _ITEMSIZE[dtype]
            )
        except (TypeError, KeyError, ValueError):
            ok = False
        if not ok:
            raise ModelFileError(
                f"{path} is a damaged mdn model file: the entry of tensor {name!r} does not "
                "match the bytes in the file"
            )
    return entries
