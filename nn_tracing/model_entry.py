"""Which model a run trains: a built-in name or an entry point, its keyword arguments, and the
allow-list that decides which entry points may ever be imported.

A model is named by ``TrainConfig.model``: ``"mlp"`` or ``"cnn"`` (built in), or an entry point
``package.module:factory``. A factory is called with keywords only::

    factory(input_shape=(64,), n_classes=10, **model_kwargs) -> torch.nn.Module

``input_shape`` is the shape of one sample as the model receives it: ``(n_features,)`` for
tabular data, ``(channels, height, width)`` for an image dataset (``digits``: ``(1, 8, 8)``);
``n_classes`` is the number of logits the model must return.

**A trace names code.** Reading, uploading or loading a trace never imports anything: the name
is only text. An entry point is imported by :func:`load_factory`, and only when

* the server's owner allowed it: the environment variable ``NN_TRACING_MODELS`` holds
  comma-separated patterns (``mypkg.models:*``, ``mypkg.models:make_net``; shell-style
  wildcards, matched against the whole entry point), empty by default — or
* the caller is the user's own command: ``nn-tracing train --model ...`` trains what its user
  asks, and a Python script may say so with ``with trusted_models(): ...``.

The app (training form, pages that rebuild a model) and :func:`nn_tracing.models.model_from_trace`
never trust: they need the allow-list. An allowed module is looked up on ``sys.path`` and then in
the working directory of the process (the folder the app was started from), so a model in the
user's project is found when the app runs from there. Nothing here imports torch.
"""

from __future__ import annotations

import contextlib
import contextvars
import fnmatch
import importlib
import json
import math
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from typing import Any

__all__ = [
    "BUILTIN_MODELS",
    "CNN_DEFAULTS",
    "ENV_VAR",
    "MAX_KWARGS",
    "EntryPointRefused",
    "allowed_patterns",
    "check_allowed",
    "check_model_kwargs",
    "check_model_name",
    "cnn_options",
    "is_builtin",
    "is_entry_point_allowed",
    "load_factory",
    "trusted_models",
]

#: The models nn_tracing builds itself (no import of user code).
BUILTIN_MODELS: tuple[str, ...] = ("mlp", "cnn")
#: The environment variable that lists the entry points a server may import.
ENV_VAR = "NN_TRACING_MODELS"
#: Bounds on ``model_kwargs``: keys, list items, characters of a string, of the whole JSON.
MAX_KWARGS = 32
MAX_LIST_ITEMS = 64
MAX_STRING = 200
MAX_KWARGS_JSON = 4096
MAX_ENTRY_POINT = 200
#: Keywords nn_tracing passes itself.
RESERVED_KWARGS = ("input_shape", "n_classes")

_IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*"
_ENTRY_POINT = re.compile(rf"^{_IDENTIFIER}(\.{_IDENTIFIER})*:{_IDENTIFIER}(\.{_IDENTIFIER})*$")
_trusted: contextvars.ContextVar[bool] = contextvars.ContextVar("nn_tracing_trusted", default=False)


class EntryPointRefused(ValueError):
    """An entry point that this process may not import (the message says how to allow it)."""


def is_builtin(name: str) -> bool:
    """Whether ``name`` is a built-in model (``mlp``, ``cnn``)."""
    return name in BUILTIN_MODELS


def check_model_name(name: Any) -> str:
    """``name`` if it is a built-in model or a well-formed entry point, else ``ValueError``.

    Only the text is checked; nothing is imported.
    """
    if not isinstance(name, str):
        raise ValueError(f"must be a string: {', '.join(BUILTIN_MODELS)} or package.module:factory")
    if is_builtin(name):
        return name
    if len(name) > MAX_ENTRY_POINT or not _ENTRY_POINT.match(name):
        raise ValueError(
            f"unknown model; choose {', '.join(BUILTIN_MODELS)} or an entry point "
            "package.module:factory (letters, digits and _, dotted names)"
        )
    if any(part.startswith("__") for part in re.split(r"[.:]", name)):
        raise ValueError("an entry point may not name dunder (__x__) modules or attributes")
    return name


def _check_value(key: str, value: Any, nested: bool = False) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if abs(value) > 2**53:
            raise ValueError(f"{key}: the integer {value} is too large")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{key}: numbers must be finite")
        return value
    if isinstance(value, str):
        if len(value) > MAX_STRING:
            raise ValueError(f"{key}: strings may have at most {MAX_STRING} characters")
        return value
    if isinstance(value, (list, tuple)) and not nested:
        if len(value) > MAX_LIST_ITEMS:
            raise ValueError(f"{key}: lists may have at most {MAX_LIST_ITEMS} items")
        return [_check_value(key, item, nested=True) for item in value]
    kind = "nested lists" if nested and isinstance(value, (list, tuple)) else type(value).__name__
    raise ValueError(
        f"{key}: values must be JSON numbers, strings, true/false, null or flat lists of "
        f"them, not {kind}"
    )


def check_model_kwargs(kwargs: Any) -> dict[str, Any] | None:
    """A checked copy of ``model_kwargs`` (``None`` and ``{}`` give ``None``).

    Keys are Python identifiers (not ``input_shape``/``n_classes``, which nn_tracing passes);
    values are JSON scalars or flat lists of them; at most :data:`MAX_KWARGS` keys and
    :data:`MAX_KWARGS_JSON` characters of JSON. Raises ``ValueError`` naming the problem.
    """
    if kwargs is None:
        return None
    if not isinstance(kwargs, Mapping):
        raise ValueError(f"must be a JSON object of keyword arguments, not {type(kwargs).__name__}")
    if len(kwargs) > MAX_KWARGS:
        raise ValueError(f"at most {MAX_KWARGS} keyword arguments")
    checked: dict[str, Any] = {}
    for key, value in kwargs.items():
        if not isinstance(key, str) or not re.fullmatch(_IDENTIFIER, key) or key.startswith("_"):
            raise ValueError(f"{key!r} is not a keyword name (letters, digits, _; no leading _)")
        if key in RESERVED_KWARGS:
            raise ValueError(f"{key!r} is passed by nn_tracing itself; leave it out")
        checked[key] = _check_value(key, value)
    if len(json.dumps(checked)) > MAX_KWARGS_JSON:
        raise ValueError(f"the keyword arguments are over {MAX_KWARGS_JSON} characters of JSON")
    return checked or None


# -- the built-in CNN's keyword arguments ------------------------------------------------------
#: The built-in CNN's keyword arguments and their defaults: channels of each convolution, the
#: kernel size (odd: the convolutions keep the image size), the side of the pooled grid.
CNN_DEFAULTS: dict[str, Any] = {"channels": [8, 16], "kernel_size": 3, "pool": 2}
MAX_CNN_LAYERS = 4
MAX_CNN_CHANNELS = 512


def _int_in(key: str, value: Any, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ValueError(f"{key} must be a whole number from {low} to {high}, not {value!r}")
    return value


def cnn_options(kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
    """The built-in CNN's options: ``kwargs`` over :data:`CNN_DEFAULTS`, checked
    (``channels``: 1 to 4 convolutions of 1 to 512 channels; ``kernel_size``: odd, 1 to 9;
    ``pool``: 1 to 8). Raises ``ValueError`` naming the option."""
    options = {**CNN_DEFAULTS, **(kwargs or {})}
    unknown = sorted(set(options) - set(CNN_DEFAULTS))
    if unknown:
        raise ValueError(
            f"the built-in CNN has no option {unknown[0]!r}; its options are "
            f"{', '.join(CNN_DEFAULTS)}"
        )
    channels = options["channels"]
    if not isinstance(channels, list) or not 1 <= len(channels) <= MAX_CNN_LAYERS:
        raise ValueError(
            f"channels must be a list of 1 to {MAX_CNN_LAYERS} channel counts, e.g. [8, 16]"
        )
    channels = [_int_in("channels", c, 1, MAX_CNN_CHANNELS) for c in channels]
    kernel = _int_in("kernel_size", options["kernel_size"], 1, 9)
    if kernel % 2 == 0:
        raise ValueError(f"kernel_size must be odd (the image keeps its size), not {kernel}")
    return {
        "channels": channels,
        "kernel_size": kernel,
        "pool": _int_in("pool", options["pool"], 1, 8),
    }


# -- the allow-list ---------------------------------------------------------------------------
def allowed_patterns(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The patterns of ``NN_TRACING_MODELS`` (comma-separated, blanks dropped)."""
    text = (os.environ if environ is None else environ).get(ENV_VAR, "")
    return tuple(part.strip() for part in text.split(",") if part.strip())


def is_entry_point_allowed(entry_point: str, patterns: tuple[str, ...]) -> bool:
    """Whether one of ``patterns`` (shell-style, case-sensitive) matches the whole entry point."""
    return any(fnmatch.fnmatchcase(entry_point, pattern) for pattern in patterns)


def check_allowed(entry_point: str, environ: Mapping[str, str] | None = None) -> None:
    """Raise :class:`EntryPointRefused` unless ``entry_point`` is built in, trusted
    (:func:`trusted_models`) or allowed by ``NN_TRACING_MODELS``. Imports nothing."""
    name = check_model_name(entry_point)
    if is_builtin(name) or _trusted.get():
        return
    patterns = allowed_patterns(environ)
    if is_entry_point_allowed(name, patterns):
        return
    module = name.split(":", 1)[0]
    now = f"it allows {', '.join(patterns)}" if patterns else "it is empty"
    raise EntryPointRefused(
        f"model {name!r} is an entry point that this process is not allowed to import: "
        f"entry points are imported only when the environment variable {ENV_VAR} allows "
        f"them ({now}). To allow it, start the app (or your script) with "
        f"{ENV_VAR}='{name}' or {ENV_VAR}='{module}:*' (comma-separated patterns). A trace "
        "or an uploaded file never imports code by itself."
    )


@contextlib.contextmanager
def trusted_models() -> Iterator[None]:
    """Within this block (this thread or task), entry points are imported without the
    allow-list: for the user's own command or script, never for a server."""
    token = _trusted.set(True)
    try:
        yield
    finally:
        _trusted.reset(token)


def _import(module_name: str) -> Any:
    """Import ``module_name`` from ``sys.path``, then from the working directory."""
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        top = module_name.split(".", 1)[0]
        cwd = os.getcwd()
        if exc.name not in (top, module_name) or cwd in sys.path:
            raise
    sys.path.append(cwd)  # the folder the app or command was started from (last: it shadows
    return importlib.import_module(module_name)  # nothing installed)


def load_factory(entry_point: str) -> Callable[..., Any]:
    """The callable ``package.module:factory`` names, imported only if it is allowed
    (:func:`check_allowed`).

    Raises
    ------
    EntryPointRefused
        Not allowed: nothing was imported.
    ValueError
        Allowed, but its module cannot be imported or has no such callable (the message says
        which, and where it was looked for).
    """
    check_allowed(entry_point)
    module_name, _, attribute = entry_point.partition(":")
    try:
        target: Any = _import(module_name)
    except ModuleNotFoundError as exc:
        raise ValueError(
            f"model {entry_point!r}: no module {exc.name!r} on the Python path nor in the "
            f"working directory ({os.getcwd()}); install your package, set PYTHONPATH, or "
            "start from the folder that holds it"
        ) from None
    except Exception as exc:  # the module's own code failed
        raise ValueError(
            f"model {entry_point!r}: importing {module_name} failed: {type(exc).__name__}: {exc}"
        ) from None
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise ValueError(f"model {entry_point!r}: {module_name} has no attribute {attribute}")
        target = getattr(target, part)
    if not callable(target):
        raise ValueError(f"model {entry_point!r}: {attribute} is not callable")
    return target
