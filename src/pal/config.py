"""An experiment's configuration: from flags or a TOML file, checked before anything is written."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

import torch

from .audio import SAMPLE_RATE, WINDOW
from .clips import BUILTIN_CLIPS
from .errors import UserError
from .losses import LossSpec, parse_loss_spec

# The fields that decide a run's numbers; a run folder is resumed only under the same ones.
# The device is not among them: a run may continue elsewhere, bit-identity then not promised.
IDENTITY_FIELDS = ("clips", "losses", "iterations", "checkpoint_every", "seeds", "sample_rate", "window",
                   "offset_seconds", "pad")


@dataclass
class ExperimentConfig:
    """Everything that decides a run's results; recorded in the run folder (:mod:`pal.runfolder`)."""

    clips: list[str] = field(default_factory=lambda: list(BUILTIN_CLIPS))
    losses: list[str] = field(default_factory=lambda: ["mse", "perceptual"])
    iterations: int = 1000
    checkpoint_every: int = 250
    seeds: list[int] = field(default_factory=lambda: [0])
    device: str = "auto"
    sample_rate: int = SAMPLE_RATE
    window: int = WINDOW
    offset_seconds: float | None = None
    pad: bool = False
    # Clips scored for intelligibility (STOI, PESQ): by name; the built-in speech clip by default.
    speech: list[str] = field(default_factory=lambda: ["speech"])
    # Each loss's resolved spec by label (pal.losses.LossSpec records), filled by validate() from
    # `losses` as the user wrote them; after validate(), `losses` holds the labels.
    loss_sources: dict = field(default_factory=dict)

    def validate(self) -> None:
        if self.iterations <= 0:
            raise UserError(f"--iterations must be positive, got {self.iterations}")
        if not 0 < self.checkpoint_every <= self.iterations:
            raise UserError(
                f"--checkpoint-every must be between 1 and --iterations ({self.iterations}), "
                f"got {self.checkpoint_every}"
            )
        if not self.seeds or any(seed < 0 for seed in self.seeds):
            raise UserError(f"--seeds must be one or more integers, each 0 or more, got {self.seeds}")
        if len(set(self.seeds)) != len(self.seeds):
            raise UserError(f"--seeds names a seed twice: {self.seeds}")
        if self.sample_rate <= 0 or self.window <= 0:
            raise UserError("sample_rate and window must be positive")
        self.resolve_losses()
        resolve_device(self.device)

    def resolve_losses(self) -> None:
        """Resolve ``losses`` (the user's specs) into labels and :attr:`loss_sources`.

        An entry already in ``loss_sources`` (a sweep's shard, a second call) keeps its record.
        """
        if not self.losses:
            raise UserError("--losses names no loss")
        records = [self.loss_sources[label] if label in self.loss_sources else parse_loss_spec(label).record()
                   for label in self.losses]
        labels = [record["label"] for record in records]
        for label in labels:
            if labels.count(label) > 1:
                raise UserError(f"--losses names the loss {label!r} twice")
        self.losses = labels
        self.loss_sources = {record["label"]: record for record in records}

    def loss_specs(self) -> list[LossSpec]:
        self.resolve_losses()
        return [LossSpec.from_record(self.loss_sources[label]) for label in self.losses]

    def identity(self) -> dict:
        identity = {name: getattr(self, name) for name in IDENTITY_FIELDS}
        # A plain registered loss is its name, as in folders written before losses took options;
        # anything else (options, a user's file or module and its SHA-256) joins the identity.
        custom = custom_loss_sources(self.loss_sources)
        return identity | ({"loss_sources": custom} if custom else {})


def custom_loss_sources(sources: dict) -> dict:
    """The records of losses that are more than a registered name: with options, or a user's."""
    return {label: record for label, record in sources.items()
            if record["kind"] != "registered" or record["options"]}


def resolve_device(name: str) -> torch.device:
    """``auto`` is CUDA when there is one, else the CPU; anything else must exist here."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device {name!r}; use auto, cpu or cuda[:N]") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {name!r} asked for, but this machine has no CUDA device")
    if device.type not in ("cpu", "cuda"):
        raise UserError(f"device {name!r} is not supported; use auto, cpu or cuda[:N]")
    return device


def _string_list(value, key: str, source: str) -> list[str]:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return list(value)
    raise UserError(f"{source}: {key!r} must be a list of strings, got {value!r}")


def _integer(value, key: str, source: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise UserError(f"{source}: {key!r} must be an integer, got {value!r}")
    return value


def _integer_list(value, key: str, source: str) -> list[int]:
    if isinstance(value, str):
        try:
            return [int(item) for item in value.split(",") if item.strip()]
        except ValueError:
            raise UserError(f"{source}: {key!r} must be integers, got {value!r}") from None
    if isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return list(value)
    raise UserError(f"{source}: {key!r} must be a list of integers, got {value!r}")


def _number_or_none(value, key: str, source: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UserError(f"{source}: {key!r} must be a number of seconds, got {value!r}")
    return float(value)


def _boolean(value, key: str, source: str) -> bool:
    if not isinstance(value, bool):
        raise UserError(f"{source}: {key!r} must be true or false, got {value!r}")
    return value


def _string(value, key: str, source: str) -> str:
    if not isinstance(value, str):
        raise UserError(f"{source}: {key!r} must be a string, got {value!r}")
    return value


CHECKS = {
    "clips": _string_list, "losses": _string_list, "iterations": _integer, "checkpoint_every": _integer,
    "seeds": _integer_list, "device": _string, "speech": _string_list, "sample_rate": _integer, "window": _integer,
    "offset_seconds": _number_or_none, "pad": _boolean,
}
# Every field can be set from a TOML file except what validate() derives.
assert set(CHECKS) == {f.name for f in fields(ExperimentConfig)} - {"loss_sources"}


def checked_settings(settings: dict, source: str) -> dict:
    """Type-checked settings; an unknown key or a wrong type is a one-line :class:`UserError`.

    ``seed = N`` is accepted for ``seeds = [N]``.
    """
    checked = {}
    settings = dict(settings)
    if "seed" in settings:
        if "seeds" in settings:
            raise UserError(f"{source}: give 'seed' or 'seeds', not both")
        settings["seeds"] = [_integer(settings.pop("seed"), "seed", source)]
    for key, value in settings.items():
        if key not in CHECKS:
            raise UserError(f"{source}: unknown key {key!r} (known: {', '.join(CHECKS)})")
        checked[key] = CHECKS[key](value, key, source)
    return checked


def read_config_file(path: Path) -> dict:
    """Settings from a TOML file whose keys are :class:`ExperimentConfig`'s fields (and ``out``)."""
    try:
        settings = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: no such config file") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a folder, not a config file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: not valid TOML ({str(error).splitlines()[0]})") from None
    out = settings.pop("out", None)
    checked = checked_settings(settings, str(path))
    if out is not None:
        checked["out"] = Path(_string(out, "out", str(path)))
    return checked
