"""The run folder: the one module that knows its layout, its records, and whether a command
starts, resumes or refuses.

Layout (:class:`RunFolder` spells every name; no other module does)::

    config.json                        the resolved configuration and each target's fingerprint
    runs.json                          each (clip, loss, seed) run's status: running, finished or failed
    metrics.csv                        every checkpoint's measures against its original (clip, loss, seed, ...)
    state.pt                           the training state, for resuming (torch.load weights_only)
    report.html                        the page (pal.report)
    listening.txt, listening.png       the listening test's summary, as pal listen --results last wrote it
    clips/<clip>/original.wav          the target window, peak 1
    clips/<clip>/original.png, mask.png          the page's images of the clip: spectrogram, masking threshold
    clips/<clip>/<loss>/seed-<n>/iter-0250.wav  the generator's output after 250 updates, peak-normalised
    clips/<clip>/<loss>/seed-<n>/iter-0250.png  its spectrogram on the page
    clips/<clip>/<loss>/seed-<n>/iter-0250-error.png  its spectrogram minus the original's, in dB
    clips/<clip>/<loss>/seed-<n>/peaks.json     each checkpoint's raw peak (raw output = file x peak)
    clips/<clip>/<loss>/seed-<n>/losses.csv     the loss after every update

The listening test's ratings (``pal.listening.store``) live beside these. Every file is written
atomically (:mod:`pal.files`).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from .errors import UserError
from .files import atomic_write_bytes, atomic_write_text, remove_stale_temporaries
from .locks import LOCK_FILE

CONFIG, RUNS, METRICS, STATE, PAGE, CLIPS = "config.json", "runs.json", "metrics.csv", "state.pt", "report.html", "clips"
ORIGINAL, PEAKS, LOSSES = "original.wav", "peaks.json", "losses.csv"
LISTENING_SUMMARY, LISTENING_IMAGE = "listening.txt", "listening.png"  # written by pal listen --results
CLIP_IMAGES = {"original": "original.png", "mask": "mask.png"}
IMAGE_SUFFIX, ERROR_IMAGE_SUFFIX = ".png", "-error.png"  # beside a checkpoint's WAV
RUN_ENTRIES = (CONFIG, RUNS, METRICS, STATE, PAGE, CLIPS)


def fingerprint(samples: np.ndarray) -> str:
    """SHA-256 of a target window's float32 samples: a changed file is a different run."""
    return hashlib.sha256(np.ascontiguousarray(samples, dtype=np.float32).tobytes()).hexdigest()


@dataclass
class RunRecord:
    """The run's recorded configuration, as the page and the listening test read it back.

    Written by ``pal run`` (the :class:`pal.config.ExperimentConfig` fields and what the run
    resolved); folders from earlier versions lack some keys, which read as the defaults of then.
    """

    losses: list[str]
    iterations: int
    checkpoint_every: int
    sample_rate: int
    window: int
    clip_names: list[str]
    seeds: list[int] = field(default_factory=lambda: [0])
    clip_sources: dict = field(default_factory=dict)
    clip_offsets: dict = field(default_factory=dict)
    loss_sources: dict = field(default_factory=dict)
    resolved_device: str | None = None
    version: str | None = None
    identity: dict = field(default_factory=dict)

    @classmethod
    def from_record(cls, record: dict, path: Path) -> RunRecord:
        known = {f.name for f in fields(cls)}
        try:
            return cls(**{key: value for key, value in record.items() if key in known})
        except (TypeError, AttributeError) as error:
            raise UserError(f"{path}: damaged run configuration ({error})") from None

    def checkpoints(self) -> list[int]:
        """The iterations the run saves checkpoints at (every ``checkpoint_every``, and the last)."""
        every, last = self.checkpoint_every, self.iterations
        return sorted({*range(every, last + 1, every), last})

    def source(self, clip: str) -> str:
        return self.clip_sources.get(clip, clip)


@dataclass
class RunStatus:
    """One (clip, loss, seed) run's record in the folder: how far it got and how it ended."""

    clip: str
    loss: str
    seed: int = 0  # folders from before seeds hold no seed: theirs was 0
    status: str = "running"  # running (or interrupted), finished, failed
    reason: str | None = None  # why a failed run stopped, for people
    stopped_at: int | None = None  # the iteration a failed run stopped at
    final_loss: float | None = None
    seconds: float | None = None
    checkpoints: list[int] = field(default_factory=list)

    @classmethod
    def from_record(cls, record: dict) -> RunStatus:
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in record.items() if key in known})

    @property
    def key(self) -> tuple[str, str, int]:
        return self.clip, self.loss, self.seed

    @property
    def label(self) -> str:
        return run_label(self.clip, self.loss, self.seed)


@dataclass(frozen=True)
class RunFolder:
    """Every path of one run folder, and its records read and written as Python values."""

    root: Path

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    # -- paths -------------------------------------------------------------------------------
    @property
    def config(self) -> Path:
        return self.root / CONFIG

    @property
    def runs(self) -> Path:
        return self.root / RUNS

    @property
    def metrics(self) -> Path:
        return self.root / METRICS

    @property
    def state(self) -> Path:
        return self.root / STATE

    @property
    def page(self) -> Path:
        return self.root / PAGE

    @property
    def listening_summary(self) -> Path:
        return self.root / LISTENING_SUMMARY

    @property
    def listening_image(self) -> Path:
        return self.root / LISTENING_IMAGE

    def clip(self, clip: str) -> Path:
        return self.root / CLIPS / clip

    def original(self, clip: str) -> Path:
        return self.clip(clip) / ORIGINAL

    def clip_image(self, clip: str, kind: str) -> Path:
        """One of the page's images of a clip: ``original`` or ``mask``."""
        return self.clip(clip) / CLIP_IMAGES[kind]

    def run(self, clip: str, loss: str, seed: int) -> Path:
        """The folder of one (clip, loss, seed) run."""
        return self.root / CLIPS / run_label(clip, loss, seed)

    def checkpoint(self, clip: str, loss: str, seed: int, iteration: int) -> Path:
        return self.run(clip, loss, seed) / checkpoint_name(iteration)

    def checkpoint_image(self, clip: str, loss: str, seed: int, iteration: int, error: bool = False) -> Path:
        """A checkpoint's spectrogram on the page; with ``error``, its difference from the original's."""
        wav = self.checkpoint(clip, loss, seed, iteration)
        return wav.with_name(wav.stem + (ERROR_IMAGE_SUFFIX if error else IMAGE_SUFFIX))

    def peaks(self, clip: str, loss: str, seed: int) -> Path:
        return self.run(clip, loss, seed) / PEAKS

    def losses(self, clip: str, loss: str, seed: int) -> Path:
        return self.run(clip, loss, seed) / LOSSES

    def relative(self, path: Path) -> str:
        """``path`` as the page links it: relative to the folder, with forward slashes."""
        return Path(path).relative_to(self.root).as_posix()

    # -- records -----------------------------------------------------------------------------
    def is_run(self) -> bool:
        return self.config.is_file()

    def require(self) -> None:
        """Refuses (one line) a folder that holds no run."""
        if not self.is_run():
            raise UserError(f"{self.root}: not a run folder (no {CONFIG})")

    def read_config(self) -> RunRecord:
        self.require()
        return RunRecord.from_record(read_json(self.config), self.config)

    def read_identity(self) -> dict:
        """The identity a run was started under (what decides whether a command resumes it)."""
        return read_json(self.config).get("identity", {})

    def read_runs(self) -> list[RunStatus]:
        """Every run's status record; none before the first is written."""
        if not self.runs.exists():
            return []
        records = read_json(self.runs)
        try:
            return [RunStatus.from_record(record) for record in records]
        except (TypeError, AttributeError):
            raise UserError(f"{self.runs}: damaged run record (not a list of runs)") from None

    def write_runs(self, statuses: list[RunStatus]) -> None:
        write_json(self.runs, [asdict(status) for status in statuses])

    def read_metrics(self) -> list[dict]:
        return read_metrics_csv(self.metrics)

    def write_metrics(self, rows: list[dict]) -> None:
        write_metrics_csv(self.metrics, rows)

    def read_losses(self, clip: str, loss: str, seed: int) -> np.ndarray | None:
        path = self.losses(clip, loss, seed)
        return read_losses_csv(path) if path.exists() else None

    def checkpoints_on_disk(self, clip: str, loss: str, seed: int) -> list[int]:
        return checkpoint_iterations_on_disk(self.run(clip, loss, seed))

    def checkpoint_files(self, clip: str, loss: str, seed: int) -> list[tuple[int, Path]]:
        """``(iteration, WAV path)`` of every checkpoint written, in order."""
        return [(i, self.checkpoint(clip, loss, seed, i)) for i in self.checkpoints_on_disk(clip, loss, seed)]

    def save_state(self, state: dict) -> None:
        save_state(self.state, state)

    def load_state(self) -> dict | None:
        return load_state(self.state)


def run_label(clip: str, loss: str, seed: int) -> str:
    """How a run is named to a user, ``speech/mse/seed-0``: its folder below ``clips/``."""
    return f"{clip}/{loss}/seed-{seed}"


def checkpoint_name(iteration: int) -> str:
    return f"iter-{iteration:04d}.wav"


def checkpoint_iteration(path: Path) -> int:
    """Inverse of :func:`checkpoint_name`."""
    return int(path.stem.split("-")[1])


def checkpoint_iterations_on_disk(run_folder: Path) -> list[int]:
    return sorted(checkpoint_iteration(path) for path in run_folder.glob("iter-*.wav"))


def write_json(path: Path, value) -> None:
    atomic_write_text(path, json.dumps(value, indent=2) + "\n")


def read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: unreadable run record ({error})") from None


def write_losses_csv(path: Path, losses: list[float]) -> None:
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["iteration", "loss"])
    writer.writerows((i, repr(v)) for i, v in enumerate(losses, start=1))
    atomic_write_text(path, text.getvalue())


def read_losses_csv(path: Path) -> np.ndarray:
    """``(iterations, 2)`` array of (iteration, loss)."""
    return np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)


METRIC_COLUMNS = ("clip", "loss", "seed", "iteration", "metric", "value")


def write_metrics_csv(path: Path, rows: list[dict]) -> None:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=METRIC_COLUMNS)
    writer.writeheader()
    writer.writerows({**row, "value": repr(float(row["value"]))} for row in rows)
    atomic_write_text(path, text.getvalue())


def read_metrics_csv(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        return [{**row, "seed": int(row["seed"]), "iteration": int(row["iteration"]), "value": float(row["value"])}
                for row in csv.DictReader(handle)]


def save_state(path: Path, state: dict) -> None:
    import torch

    # Serialised in memory, then written as bytes: torch writing a file itself turns a full disk
    # into a RuntimeError ("unexpected pos"), never the kernel's OSError that names the cause.
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_state(path: Path) -> dict | None:
    import torch

    if not path.exists():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a state file from elsewhere: say so, never unpickle code
        raise UserError(f"{path}: unreadable training state ({type(error).__name__}); "
                        "pass --force to start the run again") from None


def describe_difference(saved: dict, wanted: dict) -> str:
    changed = [key for key in wanted if saved.get(key) != wanted[key]]
    return ", ".join(f"{key} {saved.get(key)!r} -> {wanted[key]!r}" for key in changed[:3])


def open_run_folder(out: Path, identity: dict, force: bool) -> str:
    """Decide what ``out`` is for this command: ``"new"``, ``"resume"`` or ``"finished"``.

    A folder holding a run of a different configuration is refused unless ``force``, which then
    clears that run's own entries (never anything else); a non-empty folder that holds no run is
    always refused.
    """
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a folder")
    if not out.is_dir() or not any(entry.name != LOCK_FILE for entry in out.iterdir()):
        return "new"
    folder = RunFolder(out)
    if not folder.is_run():
        raise UserError(f"{out}: folder is not empty and holds no run; choose another --out")
    saved = folder.read_identity()
    if saved == identity and not force:
        remove_stale_temporaries(out)
        runs = folder.read_runs()
        done = runs and all(run.status != "running" for run in runs)
        return "finished" if done else "resume"
    if not force:
        raise UserError(f"{out}: holds a run of a different configuration "
                        f"({describe_difference(saved, identity)}); pass --force to replace it")
    for entry in RUN_ENTRIES:
        target = out / entry
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    remove_stale_temporaries(out)
    return "new"
