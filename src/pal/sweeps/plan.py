"""What a sweep runs: audio files, windows in them, and shards of (window, loss, seed) runs."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from ..core.audio import clip_name, prepare_clip, read_audio
from ..core.errors import UserError
from ..run.sources import audio_under, is_audio_file, no_audio_message, unique_names


# One clip cut into this many windows or more is refused unless asked for (--allow-many-windows):
# 10^4 windows of 8192 samples are over 300 MB of targets from one file, and as many runs per loss.
MANY_WINDOWS = 10_000
# Bounds of a sweep's own settings; the training settings' are declared in pal.run.config.
MAX_WINDOWS_PER_CLIP = 10_000_000
MAX_RUNS_PER_TASK = 10_000  # runs trained together in one process
MAX_THREADS = 1_024  # threads of one shard, and shards at once on this machine


def _sweep_setting(default: int, check, flag: str, help: str):
    """A sweep's own setting: its default, its check (a :class:`pal.run.config.Number`), its flag and
    its help; ``pal sweep``'s flags for these are generated from it (:func:`own_settings`)."""
    return field(default=default, metadata={"check": check, "flag": flag, "help": help})


@dataclass(frozen=True)
class Window:
    name: str  # unique in the sweep; the clip's folder name in its shard
    source: str
    offset_samples: int  # at the sweep's sample rate; negative when padded (the silence before)
    padded: bool = False


def _run_default(name: str):
    """A training setting's default, as :class:`pal.run.config.ExperimentConfig` declares it."""
    from ..run.config import default_of

    return field(default_factory=lambda: default_of(name))


def _bounds(high: int):
    from ..run.config import Number

    return Number(int, 1, high)


@dataclass
class SweepSettings:
    """A sweep's settings: the training settings of :class:`pal.run.config.ExperimentConfig` (same
    names, same defaults, same flags) and what is a sweep's own (windows, shards, threads)."""

    losses: list[str] = _run_default("losses")
    seeds: list[int] = _run_default("seeds")
    windows_per_clip: int = _sweep_setting(1, _bounds(MAX_WINDOWS_PER_CLIP), "--windows-per-clip",
                                           "windows spread evenly over each clip")
    iterations: int = _run_default("iterations")
    checkpoint_every: int = _run_default("checkpoint_every")
    runs_per_task: int = _sweep_setting(8, _bounds(MAX_RUNS_PER_TASK), "--runs-per-task",
                                        "runs trained together in one shard")
    threads_per_task: int = _sweep_setting(1, _bounds(MAX_THREADS), "--threads-per-task", "torch threads of each shard")
    device: str = _run_default("device")
    # Source clips (by file name, as pal run names them) whose windows are scored for
    # intelligibility; "*" for all. Plans saved before this took names recorded true or false.
    speech: list[str] = _run_default("speech")
    cdpam: bool = _run_default("cdpam")  # plans saved before it existed read as False
    pad: bool = _run_default("pad")
    sample_rate: int = _run_default("sample_rate")
    window: int = _run_default("window")
    learning_rate: float = _run_default("learning_rate")
    betas: list[float] = _run_default("betas")
    width: int = _run_default("width")
    loss_sources: dict = field(default_factory=dict)  # label -> resolved spec, as ExperimentConfig's

    def __post_init__(self):
        if isinstance(self.speech, bool):
            self.speech = ["*"] if self.speech else []

    def experiment(self, **given):
        """These training settings as a :class:`pal.run.config.ExperimentConfig`, ``given`` in place of
        any of them (a shard's clips, losses and seeds)."""
        from ..run.config import ExperimentConfig

        shared = {f.name for f in fields(ExperimentConfig)} & {f.name for f in fields(self)}
        return ExperimentConfig(**({name: getattr(self, name) for name in shared} | given))


def own_settings() -> list:
    """The declared settings that are a sweep's own, not training settings (each has a flag)."""
    return [declared for declared in fields(SweepSettings) if "check" in declared.metadata]


@dataclass
class Shard:
    name: str
    windows: list[str]
    losses: list[str]
    seeds: list[int]

    @property
    def runs(self) -> int:
        return len(self.windows) * len(self.losses) * len(self.seeds)


# -- what to sweep over -----------------------------------------------------------------------


def find_audio(data: list[str]) -> list[Path]:
    """Audio files from files, folders (searched recursively) and text files listing paths."""
    found: list[Path] = []
    for item in data:
        path = Path(item)
        if path.is_dir():
            found.extend(audio_under(path))
        elif is_audio_file(path):
            found.append(path)
        elif path.is_file():
            found.extend(_listed(path))
        else:
            raise UserError(f"{item}: no such file or folder")
    unique = list(dict.fromkeys(p.resolve() for p in found))
    if not unique:
        raise UserError(no_audio_message(", ".join(data)))
    return unique


def _listed(list_file: Path) -> list[Path]:
    """A text file of paths, one per line (blank lines and # comments skipped), relative to it."""
    try:
        lines = list_file.read_text(encoding="utf-8").splitlines()
    except (UnicodeDecodeError, OSError) as error:
        raise UserError(f"{list_file}: neither audio nor a text list of paths ({error})") from None
    paths = []
    for number, line in enumerate(lines, 1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        path = (list_file.parent / entry) if not os.path.isabs(entry) else Path(entry)
        if path.is_dir():
            paths.extend(audio_under(path))
        elif path.is_file():
            paths.append(path)
        else:
            raise UserError(f"{list_file}:{number}: {entry}: no such file or folder")
    return paths


def window_offsets(total_samples: int, window: int, count: int) -> list[int]:
    """``count`` window starts spread evenly: window k is centred at (k + 1/2) / count of the
    clip's usable span, so one window is the middle, as ``pal run`` takes it."""
    usable = total_samples - window
    if count > usable:  # starts closer than a sample apart: every start, 0 to usable (the same set)
        return list(range(usable + 1))
    return sorted({int(round(usable * (k + 0.5) / count)) for k in range(count)})


def windows_of(total_samples: int, window: int, count: int) -> int:
    """How many windows :func:`window_offsets` gives, at most: ``count``, or every start when
    the clip has fewer (found without listing them)."""
    return min(count, max(total_samples - window, 0) + 1)


def plan_windows(files: list[Path], settings: SweepSettings,
                 allow_many_windows: bool = False) -> tuple[list[Window], dict[str, np.ndarray]]:
    """Every window of every file, prepared as a target: ``(windows, name -> samples)``.

    A clip cut into :data:`MANY_WINDOWS` or more is refused (one line naming it) unless
    ``allow_many_windows``."""
    windows, targets, short = [], {}, []
    for path, stem in zip(files, unique_names([clip_name(path) for path in files])):
        samples, rate = read_audio(path)
        length = int(round(len(samples) * settings.sample_rate / rate))
        if length < settings.window and not settings.pad:
            short.append(path)
            continue
        many = windows_of(length, settings.window, settings.windows_per_clip)
        if many >= MANY_WINDOWS and not allow_many_windows:
            raise UserError(f"{path}: --windows-per-clip {settings.windows_per_clip} would cut this clip into {many} "
                            f"windows ({MANY_WINDOWS} or more); pass --allow-many-windows if that is meant")
        offsets = [None] if length < settings.window else window_offsets(length, settings.window, settings.windows_per_clip)
        for index, offset in enumerate(offsets):
            seconds = None if offset is None else offset / settings.sample_rate
            name = f"{stem}.w{index}" if len(offsets) > 1 else stem
            clip = prepare_clip(name, samples, rate, str(path), settings.sample_rate, settings.window, seconds, settings.pad)
            windows.append(Window(name, str(path), clip.offset_samples, clip.padded))
            targets[name] = clip.samples
    if short:
        raise UserError(f"{len(short)} file(s) shorter than the {settings.window}-sample window at "
                        f"{settings.sample_rate} Hz (first: {short[0]}); remove them or pass --pad")
    return windows, targets


def plan_shards(windows: list[Window], settings: SweepSettings) -> list[Shard]:
    """Cut window × loss × seed into shards of at most ``runs_per_task`` runs (at least one run),
    whole windows first: a shard holds every loss and seed of its windows when it can."""
    per_window = len(settings.losses) * len(settings.seeds)
    names = [w.name for w in windows]
    groups: list[tuple[list[str], list[str], list[int]]] = []
    if settings.runs_per_task >= per_window:
        step = settings.runs_per_task // per_window
        groups = [(names[i : i + step], settings.losses, settings.seeds) for i in range(0, len(names), step)]
    else:
        seeds_step = max(1, settings.runs_per_task)
        for name in names:
            for loss in settings.losses:
                for i in range(0, len(settings.seeds), seeds_step):
                    groups.append(([name], [loss], settings.seeds[i : i + seeds_step]))
    return [Shard(f"shard-{index:04d}", *group) for index, group in enumerate(groups)]
