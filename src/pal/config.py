"""An experiment's configuration: from flags or a TOML file, checked before anything is written."""

from __future__ import annotations

import math
import tomllib
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path

import torch

from .audio import SAMPLE_RATE, WINDOW
from .clips import BUILTIN_CLIPS
from .errors import UserError
from .losses import LossSpec, parse_loss_spec

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
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise UserError(f"{source}: {key!r} must be a finite number of seconds, 0 or more, got {value!r}")
    return float(value)


def _boolean(value, key: str, source: str) -> bool:
    if not isinstance(value, bool):
        raise UserError(f"{source}: {key!r} must be true or false, got {value!r}")
    return value


def _string(value, key: str, source: str) -> str:
    if not isinstance(value, str):
        raise UserError(f"{source}: {key!r} must be a string, got {value!r}")
    return value



def _positive_number(value, key: str, source: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise UserError(f"{source}: {key!r} must be a finite number above 0, got {value!r}")
    return float(value)


def _betas(value, key: str, source: str) -> list[float]:
    if isinstance(value, str):
        try:
            value = [float(item) for item in value.split(",")]
        except ValueError:
            raise UserError(f"{source}: {key!r} must be two numbers, got {value!r}") from None
    if (not isinstance(value, list) or len(value) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < 1 for v in value)):
        raise UserError(f"{source}: {key!r} must be two numbers in [0, 1), got {value!r}")
    return [float(v) for v in value]


def setting(default=None, *, factory=None, check, help: str, flag: str | None = None, metavar: str | None = None,
            sweep: bool = True, identity: str = "always"):
    """A configuration field and everything about it: its default, its type check (shared by the
    flags and the TOML loader), its help text, its flag (``--name-with-dashes`` unless given),
    whether ``pal sweep`` takes it too, and whether it decides the run's numbers (``identity``:
    ``always``, ``if-changed`` (joins a run's identity only when not the default, so folders from
    before the setting existed still resume) or ``never``)."""
    metadata = {"check": check, "help": help, "flag": flag, "metavar": metavar, "sweep": sweep, "identity": identity}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


# Bounds that keep a typo from planning terabytes: the post trained 1000 iterations, 4 checkpoints.
MAX_ITERATIONS = 10_000_000
MAX_CHECKPOINTS = 10_000


@dataclass
class ExperimentConfig:
    """Everything that decides a run's results; recorded in the run folder (:mod:`pal.runfolder`).

    Each field is declared once, with :func:`setting`: ``pal run``'s and ``pal sweep``'s flags,
    their help and defaults, and the TOML keys are generated from these declarations.
    """

    clips: list[str] = setting(factory=lambda: list(BUILTIN_CLIPS), check=_string_list, sweep=False,
                               help="audio files, folders, or built-in clip names")
    losses: list[str] = setting(factory=lambda: ["mse", "perceptual"], check=_string_list, metavar="LOSSES",
                                help="comma-separated losses: a name, name:key=value:..., path/to/file.py:NAME "
                                     "or package.module:NAME")
    iterations: int = setting(1000, check=_integer, help="updates of each generator")
    checkpoint_every: int = setting(250, check=_integer, help="iterations between saved checkpoints")
    seeds: list[int] = setting(factory=lambda: [0], check=_integer_list, metavar="SEEDS",
                               help="comma-separated seeds: every (clip, loss) runs once per seed, with its own "
                                    "initial weights and latent")
    device: str = setting("auto", check=_string, identity="never", help="auto, cpu or cuda[:N]")
    sample_rate: int = setting(SAMPLE_RATE, check=_integer, flag="", help="Hz (TOML only)")
    window: int = setting(WINDOW, check=_integer, flag="", help="samples (TOML only)")
    offset_seconds: float | None = setting(None, check=_number_or_none, flag="--offset", metavar="SECONDS",
                                           sweep=False, help="start of the window in each clip (default: the middle)")
    pad: bool = setting(False, check=_boolean, help="centre clips shorter than the window in silence instead "
                                                     "of refusing them")
    # Clips scored for intelligibility (STOI, PESQ), by name; "*" scores every clip.
    speech: list[str] = setting(factory=lambda: ["speech"], check=_string_list, identity="never", metavar="CLIPS",
                                help="clip names to score for intelligibility (STOI, PESQ), or * for every clip")
    # The post's optimiser: Adam, lr 1e-4, betas (0, 0.9) (WGAN-GP style: Gulrajani et al., 2017).
    learning_rate: float = setting(1e-4, check=_positive_number, identity="if-changed", help="Adam's step size")
    betas: list[float] = setting(factory=lambda: [0.0, 0.9], check=_betas, identity="if-changed", metavar="B1,B2",
                                 help="Adam's two decay rates")
    # Each loss's resolved spec by label (pal.losses.LossSpec records), filled by validate() from
    # `losses` as the user wrote them; after validate(), `losses` holds the labels.
    loss_sources: dict = field(default_factory=dict)

    def validate(self) -> None:
        if not 0 < self.iterations <= MAX_ITERATIONS:
            raise UserError(f"--iterations must be between 1 and {MAX_ITERATIONS}, got {self.iterations}")
        if not 0 < self.checkpoint_every <= self.iterations:
            raise UserError(
                f"--checkpoint-every must be between 1 and --iterations ({self.iterations}), "
                f"got {self.checkpoint_every}"
            )
        checkpoints = self.iterations // self.checkpoint_every
        if checkpoints > MAX_CHECKPOINTS:
            raise UserError(f"--checkpoint-every {self.checkpoint_every} would write {checkpoints} checkpoints per run "
                            f"(at most {MAX_CHECKPOINTS}); choose a larger --checkpoint-every")
        if not self.seeds or any(seed < 0 for seed in self.seeds):
            raise UserError(f"--seeds must be one or more integers, each 0 or more, got {self.seeds}")
        if len(set(self.seeds)) != len(self.seeds):
            raise UserError(f"--seeds names a seed twice: {self.seeds}")
        if self.sample_rate <= 0 or self.window <= 0:
            raise UserError("sample_rate and window must be positive")
        self.learning_rate = _positive_number(self.learning_rate, "learning_rate", "the configuration")
        self.betas = _betas(list(self.betas), "betas", "the configuration")
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

    def scores_speech(self, clip: str) -> bool:
        """Whether ``clip``'s checkpoints are scored for intelligibility (STOI, PESQ)."""
        return clip in self.speech or "*" in self.speech

    def identity(self) -> dict:
        """The settings that decide the run's numbers: a folder resumes only under the same ones.
        The device is not among them: a run may continue elsewhere, bit-identity then not promised."""
        identity = {}
        for declared in settings_fields():
            value = getattr(self, declared.name)
            rule = declared.metadata["identity"]
            if rule == "always" or (rule == "if-changed" and value != default_of(declared.name)):
                identity[declared.name] = value
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


def settings_fields():
    """The declared settings of :class:`ExperimentConfig` (every field but ``loss_sources``)."""
    return [f for f in fields(ExperimentConfig) if "check" in f.metadata]


def default_of(name: str):
    declared = next(f for f in fields(ExperimentConfig) if f.name == name)
    return declared.default_factory() if declared.default_factory is not MISSING else declared.default


CHECKS = {f.name: f.metadata["check"] for f in settings_fields()}


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


def _shown(value) -> str:
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return "the middle" if value is None else str(value)


def flagged_settings(command: str) -> list:
    """The declared settings ``command`` (``run`` or ``sweep``) takes as flags (the clips are
    ``pal run``'s positional arguments, a sweep's data its own)."""
    return [declared for declared in settings_fields()
            if declared.name != "clips" and declared.metadata["flag"] != ""
            and (command == "run" or declared.metadata["sweep"])]


def add_setting_flags(parser, command: str, integer) -> None:
    """``command``'s flags (``run`` or ``sweep``) for every declared setting that has one.

    Every flag defaults to ``None``, so that a TOML file's value (or the declared default) stands
    unless the flag is given; the help names the declared default. ``integer`` parses integers.
    """
    kinds = {_integer: integer, _positive_number: float, _number_or_none: float}
    for declared in flagged_settings(command):
        meta = declared.metadata
        flag = meta["flag"] or "--" + declared.name.replace("_", "-")
        default = default_of(declared.name)
        shown = default is not None and meta["check"] is not _boolean
        help_text = f"{meta['help']} (default {_shown(default)})" if shown else meta["help"]
        if meta["check"] is _boolean:
            parser.add_argument(flag, dest=declared.name, action="store_true", default=None, help=help_text)
        else:
            parser.add_argument(flag, dest=declared.name, type=kinds.get(meta["check"], str), default=None,
                                metavar=meta["metavar"], help=help_text)


def settings_from_flags(args, command: str) -> dict:
    """The declared settings given as flags, type-checked as a TOML file's would be."""
    given = {declared.name: getattr(args, declared.name) for declared in flagged_settings(command)
             if getattr(args, declared.name) is not None}
    return checked_settings(given, "command line")
