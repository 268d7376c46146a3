"""An experiment's configuration: from flags or a TOML file, checked before anything is written."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path

import torch
from perceptual_audio_loss import arguments as library_arguments

from ..core.audio import SAMPLE_RATE, WINDOW
from ..clips import DEFAULT_CLIPS
from ..core.errors import UserError
from .generator import CHANNELS
from ..measures.judges import CDPAM_JUDGE, Judge
from ..losses.specs import LossSpec, parse_loss_spec
from ..core.names import check_label

COMMAND_LINE = "command line"


def _subject(key: str, source: str) -> str:
    """How a message names a setting: its flag on the command line, else its key in ``source``."""
    if source == COMMAND_LINE:
        declared = next((f for f in settings_fields() if f.name == key), None)
        flag = declared.metadata["flag"] if declared is not None else None
        return flag or "--" + key.replace("_", "-")
    return f"{source}: {key!r}"


def _string_list(value, key: str, source: str) -> list[str]:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return list(value)
    raise UserError(f"{_subject(key, source)} must be a list of strings, got {value!r}")


def _names(value, key: str, source: str) -> list[str]:
    """A list of strings that names at least one thing (clips, losses): ``[]`` is refused, as it
    would run nothing (no clips given at all means the built-in ones: the flag, or no key)."""
    names = _string_list(value, key, source)
    if not names or not all(name.strip() for name in names):
        raise UserError(f"{_subject(key, source)} must name at least one, and no empty one, got {value!r}")
    return names


def _boolean(value, key: str, source: str) -> bool:
    if not isinstance(value, bool):
        raise UserError(f"{_subject(key, source)} must be true or false, got {value!r}")
    return value


def _string(value, key: str, source: str) -> str:
    if not isinstance(value, str):
        raise UserError(f"{_subject(key, source)} must be a string, got {value!r}")
    return value


def _shown_bound(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


@dataclass(frozen=True)
class Number:
    """A setting's check: one finite number of ``kind`` (``int`` or ``float``, where an integer is
    also a number) from ``low`` to ``high``; ``low_excluded`` / ``high_excluded`` leave a bound out.
    With ``optional``, ``None`` (the declared default only: TOML has no null) passes. ``why`` says
    where a bound comes from. Tests generate out-of-range values from these bounds.

    The range test is the library's (:class:`perceptual_audio_loss.arguments.Number`, :meth:`bounds`);
    the rest is the application's own, as a setting differs from a constructor argument: a value
    read from TOML or a flag is a Python ``int`` or ``float`` only (not a numpy scalar), comes back
    as ``kind``, and a refusal is one :class:`~pal.core.errors.UserError` that names the flag or
    the TOML key and says why a bound is there."""

    kind: type
    low: float
    high: float
    low_excluded: bool = False
    high_excluded: bool = False
    optional: bool = False
    why: str = ""

    def describe(self) -> str:
        what = "an integer" if self.kind is int else "a finite number"
        if self.low == self.high:
            return f"{_shown_bound(self.low)}{f' ({self.why})' if self.why else ''}"
        low, high = _shown_bound(self.low), _shown_bound(self.high)
        if not (self.low_excluded or self.high_excluded):
            bounds = f"from {low} to {high}"
        else:
            bounds = (f"{'above' if self.low_excluded else 'at least'} {low} and "
                      f"{'below' if self.high_excluded else 'at most'} {high}")
        return f"{what} {bounds}{f' ({self.why})' if self.why else ''}"

    def bounds(self) -> library_arguments.Number:
        """The library's rule for the same kind and range."""
        return library_arguments.Number(low=self.low, high=self.high, integer=self.kind is int,
                                        low_open=self.low_excluded, high_open=self.high_excluded)

    def accepts(self, value) -> bool:
        kinds = int if self.kind is int else (int, float)
        return isinstance(value, kinds) and self.bounds().accepts(value)

    def __call__(self, value, key: str, source: str):
        if value is None and self.optional:
            return None
        if not self.accepts(value):
            raise UserError(f"{_subject(key, source)} must be {self.describe()}, got {value!r}")
        return self.kind(value)


@dataclass(frozen=True)
class NumberList:
    """A setting's check: ``min_items`` to ``max_items`` numbers, each passing ``item`` (a
    :class:`Number`), given as a list or as comma-separated text; with ``unique``, no repeats."""

    item: Number
    min_items: int
    max_items: int
    unique: bool = False

    def describe(self) -> str:
        count = (f"{self.min_items}" if self.min_items == self.max_items
                 else f"{self.min_items} to {self.max_items}")
        return f"{count} {'different ' if self.unique else ''}values, each {self.item.describe()}"

    def __call__(self, value, key: str, source: str) -> list:
        items = value
        if isinstance(value, str):
            try:
                items = [float(v) if self.item.kind is float else int(v) for v in value.split(",") if v.strip()]
            except ValueError:
                items = None
        if (not isinstance(items, list) or not self.min_items <= len(items) <= self.max_items
                or not all(self.item.accepts(v) for v in items)
                or (self.unique and len(set(items)) != len(items))):
            raise UserError(f"{_subject(key, source)} must be {self.describe()}, got {value!r}")
        return [self.item.kind(v) for v in items]


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


# Bounds that keep a typo from planning terabytes: the post trained 1000 iterations, 4 checkpoints,
# one seed. A plan beyond them is refused with the bound named.
MAX_ITERATIONS = 10_000_000
MAX_CHECKPOINTS = 10_000
MAX_SEEDS = 1_000
MAX_SEED = 2**32 - 1  # numpy's seed range; torch takes more
MAX_OFFSET_SECONDS = 10_000_000  # about 16 weeks of audio
# Rates the experiment is tested at, telephone to studio: at 384 kHz the 8192-sample window is too
# short for STOI's frames, and below 8 kHz no clip the project ships fills the window.
SAMPLE_RATES = Number(int, 8_000, 192_000, why="the rates the experiment supports")
# The 2018 generator writes 8192 samples (pal.run.generator.BLOCKS), so the window cannot differ.
WINDOWS = Number(int, WINDOW, WINDOW, why="the 2018 generator's output length")
SEEDS = NumberList(Number(int, 0, MAX_SEED), 1, MAX_SEEDS, unique=True)
BETAS = NumberList(Number(float, 0, 1, high_excluded=True), 2, 2)  # Adam's: each in [0, 1)
# The generator's hidden width: its weights grow as width^2 (115 w^2 + 409 w with the post's
# kernels), so at 1024 one generator's weights, gradient and Adam's two moments take about 2 GB.
WIDTHS = Number(int, 1, 1024, why="at 1024 one generator and its Adam state take about 2 GB")


@dataclass
class ExperimentConfig:
    """Everything that decides a run's results; recorded in the run folder (:mod:`pal.run.folder`).

    Each field is declared once, with :func:`setting`: ``pal run``'s and ``pal sweep``'s flags,
    their help and defaults, and the TOML keys are generated from these declarations.
    """

    clips: list[str] = setting(factory=lambda: list(DEFAULT_CLIPS), check=_names, sweep=False,
                               help="audio files, folders, or built-in clip names")
    losses: list[str] = setting(factory=lambda: ["mse", "perceptual"], check=_names, metavar="LOSSES",
                                help="comma-separated losses: a name, name:key=value:..., path/to/file.py:NAME "
                                     "or package.module:NAME")
    iterations: int = setting(1000, check=Number(int, 1, MAX_ITERATIONS), help="updates of each generator")
    checkpoint_every: int = setting(250, check=Number(int, 1, MAX_ITERATIONS),
                                    help="iterations between saved checkpoints")
    seeds: list[int] = setting(factory=lambda: [0], check=SEEDS, metavar="SEEDS",
                               help="comma-separated seeds: every (clip, loss) runs once per seed, with its own "
                                    "initial weights and latent")
    device: str = setting("auto", check=_string, identity="never", help="auto, cpu or cuda[:N]")
    sample_rate: int = setting(SAMPLE_RATE, check=SAMPLE_RATES, flag="", help="Hz (TOML only)")
    window: int = setting(WINDOW, check=WINDOWS, flag="", help="samples (TOML only)")
    offset_seconds: float | None = setting(None, check=Number(float, 0, MAX_OFFSET_SECONDS, optional=True),
                                           flag="--offset", metavar="SECONDS", sweep=False,
                                           help="start of the window in each clip (default: the middle)")
    pad: bool = setting(False, check=_boolean, help="centre clips shorter than the window in silence instead "
                                                     "of refusing them")
    # Clips scored for intelligibility (STOI, PESQ), by name; "*" scores every clip.
    speech: list[str] = setting(factory=lambda: ["speech"], check=_string_list, identity="never", metavar="CLIPS",
                                help="clip names to score for intelligibility (STOI, PESQ), or * for every clip")
    # A measure, not training (pal.measures.judges): like speech, it leaves the run's identity alone.
    cdpam: bool = setting(False, check=_boolean, identity="never",
                          help="score every checkpoint with CDPAM, a judge fitted to human judgements "
                               "(the cdpam extra)")
    # The post's optimiser: Adam, lr 1e-4, betas (0, 0.9) (WGAN-GP style: Gulrajani et al., 2017).
    learning_rate: float = setting(1e-4, check=Number(float, 0, 1, low_excluded=True), identity="if-changed",
                                   help="Adam's step size")
    betas: list[float] = setting(factory=lambda: [0.0, 0.9], check=BETAS, identity="if-changed", metavar="B1,B2",
                                 help="Adam's two decay rates")
    # The post's generator has 32 channels in every hidden layer (pal.run.generator.CHANNELS); folders
    # written before this setting existed hold no width, and read (and resume) as 32.
    width: int = setting(CHANNELS, check=WIDTHS, identity="if-changed",
                         help="channels of the generator's hidden layers, the post's by default")
    # Each loss's resolved spec by label (pal.losses.specs.LossSpec records), filled by validate() from
    # `losses` as the user wrote them; after validate(), `losses` holds the labels.
    loss_sources: dict = field(default_factory=dict)

    def validate(self) -> None:
        """Every setting through its declared check (as flags and TOML keys are), then the rules
        between settings; one line (:class:`~pal.core.errors.UserError`) for the first that fails."""
        for declared in settings_fields():
            checked = declared.metadata["check"](getattr(self, declared.name), declared.name, "the configuration")
            setattr(self, declared.name, checked)
        if self.checkpoint_every > self.iterations:
            raise UserError(f"--checkpoint-every must be at most --iterations ({self.iterations}), "
                            f"got {self.checkpoint_every}")
        checkpoints = self.iterations // self.checkpoint_every
        if checkpoints > MAX_CHECKPOINTS:
            raise UserError(f"--checkpoint-every {self.checkpoint_every} would write {checkpoints} checkpoints per run "
                            f"(at most {MAX_CHECKPOINTS}); choose a larger --checkpoint-every")
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
            check_label(label, "loss")  # its folders' name: refused here, before any is made
        self.losses = labels
        self.loss_sources = {record["label"]: record for record in records}

    def loss_specs(self) -> list[LossSpec]:
        self.resolve_losses()
        return [LossSpec.from_record(self.loss_sources[label]) for label in self.losses]

    def judges(self) -> list[Judge]:
        """The optional judges this run asked for (``cdpam``)."""
        return [CDPAM_JUDGE] if self.cdpam else []

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


@contextmanager
def full_float32() -> Iterator[None]:
    """While inside, CUDA computes float32 in float32: TF32 off in matrix products and cuDNN
    convolutions, cuDNN limited to deterministic algorithms; the previous flags return on exit.

    This is what "the same experiment on a GPU" means here: the CPU's experiment up to float32
    rounding, and a resumed run bit-identical to an uninterrupted one on the same device. TF32
    keeps 10 bits of mantissa (unit roundoff 2^-11, about 5e-4) where float32 keeps 23 (2^-24,
    about 6e-8), and the seed's Adam (beta1 = 0) turns gradient differences of that size into
    step-sized ones: with cuDNN's default TF32 the CUDA checkpoints left the CPU's by 3 % of
    the peak in two updates (issue 21), against about 1e-6 for float32 rounding alone. cuDNN's
    nondeterministic algorithms (atomic adds) would make two runs of one command differ.

    The flags are process-wide, so the library never sets them; ``pal run`` and ``pal sweep`` do,
    around each run only. They are torch's TF32 flags of every release from 2.1 on; torch
    2.9's ``fp32_precision`` settings must not be mixed with them in one process (torch refuses).
    They do nothing on the CPU.
    """
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    saved = matmul.allow_tf32, cudnn.allow_tf32, cudnn.deterministic, cudnn.benchmark
    matmul.allow_tf32, cudnn.allow_tf32, cudnn.deterministic, cudnn.benchmark = False, False, True, False
    try:
        yield
    finally:
        matmul.allow_tf32, cudnn.allow_tf32, cudnn.deterministic, cudnn.benchmark = saved


def settings_fields(of: type | None = None):
    """The declared settings of a configuration class (:func:`setting` fields), by default
    :class:`ExperimentConfig`'s (every field but ``loss_sources``); ``pal codec``'s are another's."""
    return [f for f in fields(of or ExperimentConfig) if "check" in f.metadata]


def default_of(name: str, of: type | None = None):
    declared = next(f for f in fields(of or ExperimentConfig) if f.name == name)
    return declared.default_factory() if declared.default_factory is not MISSING else declared.default


CHECKS = {f.name: f.metadata["check"] for f in settings_fields()}


def checked_settings(settings: dict, source: str, of: type | None = None) -> dict:
    """Type-checked settings; an unknown key or a wrong type is a one-line :class:`UserError`.

    ``seed = N`` is accepted for ``seeds = [N]``.
    """
    checks = CHECKS if of is None else {f.name: f.metadata["check"] for f in settings_fields(of)}
    checked = {}
    settings = dict(settings)
    if "seed" in settings:
        if "seeds" in settings:
            raise UserError(f"{source}: give 'seed' or 'seeds', not both")
        settings["seeds"] = [Number(int, 0, MAX_SEED)(settings.pop("seed"), "seed", source)]
    for key, value in settings.items():
        if key not in checks:
            raise UserError(f"{source}: unknown key {key!r} (known: {', '.join(checks)})")
        checked[key] = checks[key](value, key, source)
    return checked


def read_config_file(path: Path, of: type | None = None) -> dict:
    """Settings from a TOML file whose keys are :class:`ExperimentConfig`'s fields, or those of
    ``of`` (:class:`pal.codec.config.CodecConfig`), and ``out``."""
    try:
        settings = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: no such config file") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a folder, not a config file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: not valid TOML ({str(error).splitlines()[0]})") from None
    except RecursionError:  # tomllib recurses once per level of nested tables and arrays
        raise UserError(f"{path}: not a config file (nested too deeply to read)") from None
    out = settings.pop("out", None)
    checked = checked_settings(settings, str(path), of)
    if out is not None:
        checked["out"] = Path(_string(out, "out", str(path)))
    return checked


def _shown(value) -> str:
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return "the middle" if value is None else str(value)


def flagged_settings(command: str, of: type | None = None) -> list:
    """The declared settings ``command`` (``run`` or ``sweep``; ``codec`` with ``of``) takes as
    flags (the clips are ``pal run``'s positional arguments, a sweep's data its own)."""
    return [declared for declared in settings_fields(of)
            if declared.name != "clips" and declared.metadata["flag"] != ""
            and (command != "sweep" or declared.metadata["sweep"])]


def add_setting_flags(parser, command: str, integer, of: type | None = None) -> None:
    """``command``'s flags (``run`` or ``sweep``) for every declared setting that has one.

    Every flag defaults to ``None``, so that a TOML file's value (or the declared default) stands
    unless the flag is given; the help names the declared default. ``integer`` parses integers.
    """
    for declared in flagged_settings(command, of):
        meta = declared.metadata
        check = meta["check"]
        kind = (integer if check.kind is int else float) if isinstance(check, Number) else str
        flag = meta["flag"] or "--" + declared.name.replace("_", "-")
        default = default_of(declared.name, of)
        shown = default is not None and meta["check"] is not _boolean
        help_text = f"{meta['help']} (default {_shown(default)})" if shown else meta["help"]
        if meta["check"] is _boolean:
            parser.add_argument(flag, dest=declared.name, action="store_true", default=None, help=help_text)
        else:
            parser.add_argument(flag, dest=declared.name, type=kind, default=None,
                                metavar=meta["metavar"], help=help_text)


def settings_from_flags(args, command: str, of: type | None = None) -> dict:
    """The declared settings given as flags, type-checked as a TOML file's would be."""
    given = {declared.name: getattr(args, declared.name) for declared in flagged_settings(command, of)
             if getattr(args, declared.name) is not None}
    return checked_settings(given, COMMAND_LINE, of)
