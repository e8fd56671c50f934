"""``MDN`` parameters from the command line: ``--set name=value``, ``--params FILE`` (JSON or
TOML) and named presets, every value checked against ``mdn.params`` before any work."""

from __future__ import annotations

import ast
import difflib
import json
import os
import sys
from pathlib import Path

from mdn.estimator.model import MDN, REFERENCE
from mdn.params import PARAMETERS, Sizes, validate

__all__ = ["PRESETS", "parse_assignment", "parse_value", "resolve_params", "variant_params"]

#: Named starting points for ``--variant`` and ``--params``.
PRESETS: dict[str, dict[str, object]] = {"default": {}, "reference": dict(REFERENCE)}
_WORDS = {"none": None, "null": None, "true": True, "false": False}


def parse_value(text: str) -> object:
    """A command-line value as Python: numbers, ``none``, ``true``/``false``, tuples such as
    ``100,100``, lists and strings.

    Parameters
    ----------
    text : str

    Returns
    -------
    object
    """
    stripped = text.strip()
    if stripped.lower() in _WORDS:
        return _WORDS[stripped.lower()]
    try:
        value = ast.literal_eval(stripped)
    except (ValueError, SyntaxError):
        return stripped
    return tuple(value) if isinstance(value, list) else value


def parse_assignment(text: str) -> tuple[str, object]:
    """``name=value`` split and parsed, ``name`` checked to be an ``MDN`` parameter.

    Parameters
    ----------
    text : str

    Returns
    -------
    (str, object)
    """
    name, sep, value = text.partition("=")
    name = name.strip()
    if not sep or not name:
        raise ValueError(f"--set {text!r}: write it as name=value, such as n_mix=3")
    name, value = _checked_name(name), parse_value(value)
    if isinstance(PARAMETERS.get(name), Sizes) and isinstance(value, int):
        value = (value,)  # hidden=64: one layer
    return name, value


def _checked_name(name: str) -> str:
    known = sorted(MDN().get_params(deep=False))
    if name not in known:
        close = difflib.get_close_matches(name, known, n=3)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        raise ValueError(f"{name!r} is not an MDN parameter{hint} (see `mdn fit --help`)")
    return name


def _read_params_file(path: str | os.PathLike) -> dict[str, object]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such parameter file")
    try:
        if path.suffix.lower() == ".toml":
            if sys.version_info >= (3, 11):
                import tomllib
            else:  # pragma: no cover - Python 3.10
                import tomli as tomllib
            params = tomllib.loads(path.read_text())
        else:
            params = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not valid {path.suffix[1:] or 'JSON'}: {error}") from None
    if not isinstance(params, dict):
        raise ValueError(f"{path} must hold a table of parameter names and values")
    return {name: tuple(v) if isinstance(v, list) else v for name, v in params.items()}


def resolve_params(
    assignments: tuple[str, ...] = (),
    params_file: str | os.PathLike | None = None,
    log_target: bool = False,
    nonpositive: str | None = None,
) -> dict[str, object]:
    """The ``MDN`` parameters a command asks for: the file's, then each ``--set``.

    Parameters
    ----------
    assignments : tuple of str
        ``name=value`` texts; later ones win.
    params_file : path-like, optional
        A JSON or TOML table of parameters.
    log_target : bool
        ``--log-target``: ``target_transform="log"``.
    nonpositive : {"raise", "missing"} or None
        ``--nonpositive``: ``nonpositive_targets``.

    Returns
    -------
    dict
        Checked names and values.
    """
    params = _read_params_file(params_file) if params_file is not None else {}
    if log_target:
        params["target_transform"] = "log"
    if nonpositive is not None:
        params["nonpositive_targets"] = nonpositive
    params.update(parse_assignment(text) for text in assignments)
    for name, value in params.items():
        validate(_checked_name(name), value)
    return params


def variant_params(text: str) -> dict[str, object]:
    """A ``--variant``: a preset name and/or ``name=value`` items separated by ``;``, such
    as ``reference``, ``n_mix=3;l2=1e-3`` or ``reference;n_iter=2000``.

    Parameters
    ----------
    text : str

    Returns
    -------
    dict
        Checked names and values.
    """
    params: dict[str, object] = {}
    for item in filter(None, (part.strip() for part in text.split(";"))):
        if "=" not in item:
            if item not in PRESETS:
                raise ValueError(f"--variant: unknown preset {item!r}; known: {', '.join(PRESETS)}")
            params.update(PRESETS[item])
        else:
            params.update([parse_assignment(item)])
    for name, value in params.items():
        validate(name, value)
    return params
