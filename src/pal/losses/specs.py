"""The losses an experiment can train with: the library's, the peers', and anyone's own.

``--losses`` takes a comma-separated list of specs, each one of::

    perceptual                          a registered loss (the library's or a peer below)
    perceptual:taps=256:similarity=mse  the same with keyword options for its factory
    path/to/my_loss.py:MyLoss           a class or factory in a Python file
    package.module:MyLoss[:key=value]   the same in an importable module

A user's ``MyLoss`` is called as ``MyLoss(sample_rate, **options)`` and must return an
``nn.Module`` whose ``forward(input, target)`` follows :mod:`perceptual_audio_loss.contract`.
Option values are read as integers, numbers, ``true``/``false`` or else strings, so a spec
survives the shell unquoted. A file's (or module's) SHA-256 is part of the run's identity.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import math
import os
import re
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..core.errors import UserError
from .budget import check_working_set
from .guard import Guard, guarded
from .registry import REGISTERED, registered_names

@dataclass(frozen=True)
class LossSpec:
    """One resolved ``--losses`` entry; ``label`` names its folders and its column on the page."""

    label: str
    kind: str  # "registered", "file" or "module"
    target: str  # the registered name, the file's absolute path, or the module's dotted name
    attribute: str = ""  # the class or factory in a file or module
    options: dict = field(default_factory=dict)
    sha256: str = ""  # of the file or the module's source; "" for a registered loss

    def record(self) -> dict:
        return asdict(self)

    @classmethod
    def from_record(cls, record: dict) -> "LossSpec":
        return cls(**record)


_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def parse_option_value(text: str):
    """``"3"`` -> 3, ``"0.5"`` -> 0.5, ``"true"`` -> True, anything else stays a string."""
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            value = kind(text)
        except ValueError:
            continue
        if isinstance(value, float) and not math.isfinite(value):
            raise UserError(f"loss option value {text!r} is not a finite number")
        return value
    return text


def _options(parts: list[str], spec: str) -> dict:
    options = {}
    for part in parts:
        key, equals, value = part.partition("=")
        if not equals or not _NAME.match(key):
            raise UserError(f"loss {spec!r}: option {part!r} is not key=value")
        if key in options:
            raise UserError(f"loss {spec!r}: option {key!r} given twice")
        options[key] = parse_option_value(value)
    return options


def _label(head: str, attribute: str, options: dict) -> str:
    base = f"{head}:{attribute}" if attribute else head
    return base + "".join(f":{key}={value}" for key, value in options.items())


def parse_loss_spec(spec: str) -> LossSpec:
    """Resolve one ``--losses`` entry (checking that its file or module exists), without building it."""
    spec = spec.strip()
    if not spec:
        raise UserError("--losses has an empty entry")
    head, *rest = spec.split(":")
    if head in REGISTERED:
        options = _options(rest, spec)
        return LossSpec(_label(head, "", options), "registered", head, options=options)
    if not rest or "=" in rest[0]:
        if _names_a_file(head):
            raise UserError(f"loss {spec!r}: name the class or factory in the file, as {head}:NAME")
        raise UnknownLossSpec(spec)
    attribute, options = rest[0], _options(rest[1:], spec)
    if not _NAME.match(attribute):
        raise UserError(f"loss {spec!r}: {attribute!r} is not a Python name")
    if _names_a_file(head):
        path = Path(head).expanduser().resolve()
        if not path.is_file():
            raise UserError(f"loss {spec!r}: no such file {head}")
        return LossSpec(_label(path.name, attribute, options), "file", str(path), attribute, options,
                        _file_sha256(path))
    if not _MODULE.match(head):
        raise UnknownLossSpec(spec)
    module = _import_module(head, spec)
    source = getattr(module, "__file__", None)
    digest = _file_sha256(Path(source)) if source else ""
    return LossSpec(_label(head, attribute, options), "module", head, attribute, options, digest)


def _names_a_file(head: str) -> bool:
    return head.endswith(".py") or "/" in head or os.sep in head


class UnknownLossSpec(UserError):
    def __init__(self, spec: str):
        super().__init__(f"unknown loss {spec!r}; known losses: {', '.join(registered_names())}, "
                         "or path/to/file.py:NAME, or package.module:NAME")


def _file_sha256(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as error:
        raise UserError(f"{path}: cannot read the loss's file ({error.strerror or error})") from None


def _import_module(name: str, spec: str):
    if os.getcwd() not in sys.path:  # as `python -m` would find a module in the working folder
        sys.path.append(os.getcwd())
    with Guard(spec, lambda: f"on import of {name}"):  # any error at import, sys.exit too, in one line
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError as error:
            if not (error.name and name.startswith(error.name)):
                raise
            missing = error.name
    raise UserError(f"loss {spec!r}: no module named {missing!r}")


def _load_file(spec: LossSpec):
    path = Path(spec.target)
    if not path.is_file():
        raise UserError(f"loss {spec.label!r}: its file {path} is gone")
    if _file_sha256(path) != spec.sha256:
        raise UserError(f"loss {spec.label!r}: {path} changed since the run was planned (SHA-256 differs)")
    module_name = f"pal_user_loss_{spec.sha256[:16]}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    loader_spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[module_name] = module
    try:
        with Guard(spec.label, lambda: f"on import of {path}"):
            loader_spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module


def check_size(spec: LossSpec, sample_rate: float, window: int) -> None:
    """Refuse a registered loss whose options would need more memory than the budget on signals of
    ``window`` samples (:mod:`pal.losses.budget`), before anything is built."""
    if spec.kind == "registered":
        check_working_set(spec.label, REGISTERED[spec.target].memory, spec.options, sample_rate, window)


def build_loss(spec: LossSpec, sample_rate: float, window: int | None = None) -> nn.Module:
    """The loss module of a resolved spec; a user's loss is also checked against the contract's shape.
    With ``window``, a registered loss's options are first bounded by :func:`check_size`."""
    if spec.kind == "registered":
        if spec.target not in REGISTERED:
            raise UserError(f"unknown loss {spec.target!r}")
        if window is not None:
            check_size(spec, sample_rate, window)
        return _call_factory(REGISTERED[spec.target].factory, spec, sample_rate)
    module = _load_file(spec) if spec.kind == "file" else _import_module(spec.target, spec.label)
    factory = getattr(module, spec.attribute, None)
    if factory is None:
        raise UserError(f"loss {spec.label!r}: {spec.target} has no {spec.attribute!r}")
    if not callable(factory):
        raise UserError(f"loss {spec.label!r}: {spec.attribute} is not a class or function")
    loss = _call_factory(factory, spec, sample_rate)
    _check_forward(loss, spec)
    source = spec.target if spec.kind == "file" else getattr(module, "__file__", None)
    return guarded(loss, spec.label, source)  # guarded for the whole run, not only at the probe


def _call_factory(factory, spec: LossSpec, sample_rate: float) -> nn.Module:
    try:
        inspect.signature(factory).bind(sample_rate, **spec.options)
    except TypeError as error:
        raise UserError(f"loss {spec.label!r}: cannot be called as {getattr(factory, '__name__', 'it')}"
                        f"(sample_rate{''.join(f', {k}=...' for k in spec.options)}): {error}") from None
    except ValueError:  # no signature to read (a builtin): let the call say
        pass
    try:  # anything else it raises (MemoryError, a user's bug, sys.exit) is one line from the guard
        with Guard(spec.label, lambda: "when built", passthrough=(ValueError, TypeError, KeyError)):
            loss = factory(sample_rate, **spec.options)
    except (ValueError, TypeError, KeyError) as error:  # options it refuses: one line naming them
        raise UserError(f"loss {spec.label!r}: {_refusal(error, spec.options)}") from None
    if not isinstance(loss, nn.Module):
        raise UserError(f"loss {spec.label!r}: {spec.attribute or spec.target}(sample_rate) returned "
                        f"{type(loss).__name__}, not a torch.nn.Module")
    return loss


def _refusal(error: Exception, options: dict) -> str:
    """The factory's refusal in one line; the options named when its message names none of them."""
    text = (str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)).strip()
    text = text.splitlines()[0] if text else type(error).__name__
    if options and not any(key in text for key in options):
        text += f" (options: {', '.join(f'{key}={value!r}' for key, value in options.items())})"
    return text


def _check_forward(loss: nn.Module, spec: LossSpec) -> None:
    try:
        inspect.signature(loss.forward).bind(torch.zeros(1, 1), torch.zeros(1, 1))
    except TypeError:
        raise UserError(f"loss {spec.label!r}: its forward must take (input, target), "
                        f"it takes {inspect.signature(loss.forward)}") from None


def probe(loss: nn.Module, spec: LossSpec, window: int, sample_rate: float) -> None:
    """One call on a noise pair, before any folder is written: a user's loss that raises, or
    returns something that is not one finite number, is refused in one line. What a guarded loss
    checks at every call (:mod:`pal.losses.guard`) is checked here first."""
    if spec.kind == "registered":
        return
    generator = torch.Generator().manual_seed(0)
    length = min(window, int(sample_rate))
    input = (0.1 * torch.randn(1, 1, length, generator=generator)).requires_grad_()
    target = 0.1 * torch.randn(1, 1, length, generator=generator)
    value = loss(input, target)
    if not bool(torch.isfinite(value).all()):
        raise UserError(f"loss {spec.label!r}: returned {float(value)} on a noise pair")
    with Guard(spec.label, lambda: "in its backward on a noise pair"):
        value.reshape(()).backward()
