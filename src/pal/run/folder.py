"""The run folder: the one module that knows its layout, its records, and whether a command
starts, resumes or refuses.

Layout (:class:`RunFolder` spells every name; no other module does)::

    config.json                        the resolved configuration and each target's fingerprint
    runs.json                          each (clip, loss, seed) run's status: running, finished or failed
    metrics.csv                        every checkpoint's measures against its original (clip, loss, seed, ...)
    state.pt                           the training state, for resuming (torch.load weights_only)
    report.html                        the page (pal.report.page)
    listening.txt, listening.png       the listening test's summary, as pal listen --results last wrote it
    clips/<clip>/original.wav          the target window, peak 1
    clips/<clip>/original.png, mask.png          the page's images of the clip: spectrogram, masking threshold
    clips/<clip>/<loss>/seed-<n>/iter-0250.wav  the generator's output after 250 updates, peak-normalised
    clips/<clip>/<loss>/seed-<n>/iter-0250.png  its spectrogram on the page
    clips/<clip>/<loss>/seed-<n>/iter-0250-error.png  its spectrogram minus the original's, in dB
    clips/<clip>/<loss>/seed-<n>/peaks.json     each checkpoint's raw peak (raw output = file x peak)
    clips/<clip>/<loss>/seed-<n>/losses.csv     the loss after every update

The listening test's ratings (``pal.listening.store``) live beside these. Every file is written
atomically (:mod:`pal.core.files`).
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..core.errors import UserError
from ..core.files import atomic_write_bytes, atomic_write_text, remove_stale_temporaries
from ..core.locks import LOCK_FILE
from ..core import records
from ..core.names import UnsafeName, folder_name, link
from ..measures.registry import BY_KEY

CONFIG, RUNS, METRICS, STATE, PAGE, CLIPS = "config.json", "runs.json", "metrics.csv", "state.pt", "report.html", "clips"
ORIGINAL, PEAKS, LOSSES = "original.wav", "peaks.json", "losses.csv"
SEED = "seed-"  # a run's folder is SEED followed by its seed
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

    Written by ``pal run`` (the :class:`pal.run.config.ExperimentConfig` fields and what the run
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
    width: int = 32  # the generator's hidden channels; folders from before --width hold the post's

    @classmethod
    def from_record(cls, record, path: Path) -> RunRecord:
        """The record checked field by field (the settings by their declared bounds, the names as
        folder names); anything else is a :class:`~pal.core.records.DamagedRecord` naming ``path``."""
        try:
            config = records.typed(cls, record, _run_record_checks())
            records.expect(config.checkpoint_every <= config.iterations,
                           f"'checkpoint_every' at most 'iterations' ({config.iterations})", config.checkpoint_every)
            records.expect(config.iterations // config.checkpoint_every <= _max_checkpoints(),
                           f"at most {_max_checkpoints()} checkpoints", config.iterations // config.checkpoint_every)
        except records.BadValue as error:
            raise records.DamagedRecord(path, "run configuration", str(error)) from None
        return config

    def checkpoints(self) -> list[int]:
        """The iterations the run saves checkpoints at (every ``checkpoint_every``, and the last)."""
        every, last = self.checkpoint_every, self.iterations
        return sorted({*range(every, last + 1, every), last})

    def source(self, clip: str) -> str:
        return self.clip_sources.get(clip, clip)


def _declared(name: str) -> records.Check:
    """A recorded setting checked as the flag and the TOML key are (:data:`pal.run.config.CHECKS`)."""
    from .config import CHECKS

    def check(value):
        try:
            return CHECKS[name](value, name, "record")
        except UserError as error:
            message = str(error)
            raise records.BadValue(message[message.index(" must be ") + 1:] if " must be " in message
                                   else message) from None

    return check


def _max_checkpoints() -> int:
    from .config import MAX_CHECKPOINTS

    return MAX_CHECKPOINTS


def _label(value) -> str:
    """A loss's label or a clip's name: text that can name a folder (:func:`pal.core.names.folder_name`)."""
    records.text(value)
    try:
        folder_name(value)
    except UnsafeName as error:
        raise records.BadValue(str(error)) from None
    return value


def _run_record_checks() -> dict[str, records.Check]:
    labels = records.list_of(_label, unique=True, nonempty=True)
    return {
        "losses": labels, "clip_names": labels,
        **{name: _declared(name) for name in ("iterations", "checkpoint_every", "sample_rate", "window", "seeds",
                                              "width")},
        "clip_sources": records.mapping(value=records.text),
        "clip_offsets": records.mapping(value=records.optional(records.number)),
        "loss_sources": records.mapping(value=records.mapping()),
        "resolved_device": records.optional(records.text), "version": records.optional(records.text),
        "identity": records.mapping(),
    }


STATUSES = ("running", "finished", "failed")


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

    CHECKS = {
        "clip": _label, "loss": _label, "seed": records.integer(0), "status": records.one_of(*STATUSES),
        "reason": records.optional(records.text), "stopped_at": records.optional(records.integer(0)),
        "final_loss": records.optional(records.number), "seconds": records.optional(records.number),
        "checkpoints": records.list_of(records.integer(1), unique=True),
    }

    @classmethod
    def from_record(cls, record, where: str = "") -> RunStatus:
        """One entry of ``runs.json``, checked field by field (:class:`~pal.core.records.BadValue` if not)."""
        return records.typed(cls, record, cls.CHECKS, where)

    def check_against(self, config: RunRecord) -> None:
        """Refuse (:class:`~pal.core.records.BadValue`) a status of a run the configuration does not
        hold, or with checkpoints it never saves."""
        records.expect(self.clip in config.clip_names, f"a clip of the run ({', '.join(config.clip_names)})", self.clip)
        records.expect(self.loss in config.losses, f"a loss of the run ({', '.join(config.losses)})", self.loss)
        records.expect(self.seed in config.seeds, f"a seed of the run ({config.seeds})", self.seed)
        planned = set(config.checkpoints())
        records.expect(all(i in planned for i in self.checkpoints), "checkpoints the run saves", self.checkpoints)

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
        """A clip's folder: its name made a safe, unique folder name (:func:`pal.core.names.folder_name`)."""
        return self.root / CLIPS / folder_name(clip)

    def original(self, clip: str) -> Path:
        return self.clip(clip) / ORIGINAL

    def clip_image(self, clip: str, kind: str) -> Path:
        """One of the page's images of a clip: ``original`` or ``mask``."""
        return self.clip(clip) / CLIP_IMAGES[kind]

    def run(self, clip: str, loss: str, seed: int) -> Path:
        """The folder of one (clip, loss, seed) run: the loss's label made a folder name, as the
        clip's, so no label (``..``, ``a/b``, ``#``) can reach outside it or into another's."""
        return self.clip(clip) / folder_name(loss) / f"{SEED}{int(seed)}"

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
        """``path`` relative to the folder, with forward slashes, as messages name it."""
        return Path(path).relative_to(self.root).as_posix()

    def link(self, path: Path) -> str:
        """``path`` as the page links it: relative, URL-encoded (a ``#`` or ``%`` in a name stays a name)."""
        return link(self.relative(path))

    # -- records -----------------------------------------------------------------------------
    def is_run(self) -> bool:
        return self.config.is_file()

    def require(self) -> None:
        """Refuses (one line) a folder that holds no run."""
        if not self.is_run():
            raise UserError(f"{self.root}: not a run folder (no {CONFIG})")

    def read_config(self) -> RunRecord:
        self.require()
        return RunRecord.from_record(records.read_json(self.config, "run configuration"), self.config)

    def read_identity(self) -> dict:
        """The identity a run was started under (what decides whether a command resumes it)."""
        return self.read_config().identity

    def read_runs(self, config: RunRecord | None = None) -> list[RunStatus]:
        """Every run's status record; none before the first is written. With ``config``, each
        must be a run of it (its clip, loss and seed, checkpoints it saves)."""
        if not self.runs.exists():
            return []

        def parse(value) -> list[RunStatus]:
            records.expect(isinstance(value, list), "a list of runs", value)
            statuses = [RunStatus.from_record(entry, f" of run {index + 1}") for index, entry in enumerate(value)]
            for index, status in enumerate(statuses):
                if config is not None:
                    try:
                        status.check_against(config)
                    except records.BadValue as error:
                        raise records.BadValue(f"run {index + 1}: {error}") from None
            return statuses

        return records.parse_json(self.runs, "run record", parse)

    def read_records(self) -> tuple[RunRecord, list[RunStatus], list[dict]]:
        """Every record of the run, each checked against the configuration: the configuration, the
        statuses, the measures, and each run's loss history and checkpoint peaks where written. The
        first damaged one is refused (:class:`~pal.core.records.DamagedRecord`, naming the file
        and the line); the commands that read a run call this before they write anything."""
        config = self.read_config()
        statuses, rows = self.read_runs(config), self.read_metrics(config)
        for run in itertools.product(config.clip_names, config.losses, config.seeds):
            self.read_losses(*run)
            self.read_peaks(*run)
        return config, statuses, rows

    def write_runs(self, statuses: list[RunStatus]) -> None:
        write_json(self.runs, [asdict(status) for status in statuses])

    def read_metrics(self, config: RunRecord | None = None) -> list[dict]:
        """``metrics.csv``'s rows; with ``config``, each must measure a checkpoint the run saves."""
        rows = read_metrics_csv(self.metrics)
        if config is not None:
            for number, row in enumerate(rows, start=2):
                try:
                    RunStatus(row["clip"], row["loss"], row["seed"], checkpoints=[row["iteration"]]).check_against(config)
                except records.BadValue as error:
                    raise records.DamagedRecord(self.metrics, "table of measures", f"line {number}: {error}") from None
        return rows

    def write_metrics(self, rows: list[dict]) -> None:
        write_metrics_csv(self.metrics, rows)

    def read_losses(self, clip: str, loss: str, seed: int) -> np.ndarray | None:
        path = self.losses(clip, loss, seed)
        return read_losses_csv(path) if path.exists() else None

    def read_peaks(self, clip: str, loss: str, seed: int) -> dict[str, float]:
        """Each checkpoint's raw peak by iteration (as text, as JSON keys are); ``{}`` before the first."""
        path = self.peaks(clip, loss, seed)
        if not path.exists():
            return {}
        return records.parse_json(path, "record of checkpoint peaks",
                                  records.mapping(key=_iteration_key, value=records.finite_number))

    def checkpoints_on_disk(self, clip: str, loss: str, seed: int) -> list[int]:
        return checkpoint_iterations_on_disk(self.run(clip, loss, seed))

    def checkpoint_files(self, clip: str, loss: str, seed: int) -> list[tuple[int, Path]]:
        """``(iteration, WAV path)`` of every checkpoint written, in order."""
        return [(i, self.checkpoint(clip, loss, seed, i)) for i in self.checkpoints_on_disk(clip, loss, seed)]

    def state_saver(self) -> Callable[[dict], None]:
        """What saves the training state, marked with the run it belongs to (:func:`identity_digest`
        of the identity in ``config.json``, read once here, not at every save)."""
        digest = identity_digest(self.read_identity())
        return lambda state: save_state(self.state, state | {"run": digest})

    def load_state(self) -> dict | None:
        """The saved training state, checked against this run (its identity, runs and iterations);
        ``None`` before the first save. A state of another run, or not of this shape: one line."""
        state = load_state(self.state)
        if state is not None:
            config = self.read_config()
            try:
                check_state(state, len(self.read_runs()), config.iterations, identity_digest(config.identity))
            except records.BadValue as error:
                raise UserError(f"{self.state}: not this run's training state ({error}); "
                                "pass --force to start the run again") from None
        return state


def _iteration_key(value) -> str:
    records.expect(isinstance(value, str) and value.isdigit(), "an iteration", value)
    return value


def identity_digest(identity: dict) -> str:
    """SHA-256 of a run's identity: the training state carries it, so a ``state.pt`` copied from
    another run is refused, not resumed into this one."""
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode("utf-8")).hexdigest()


def check_state(state, runs: int, iterations: int, digest: str) -> None:
    """The shape :func:`pal.run.train.train_batched` saves, for ``runs`` runs of ``iterations``
    (:class:`~pal.core.records.BadValue` saying what differs)."""
    import torch

    from .train import STATE_FORMAT

    expect = records.expect
    expect(isinstance(state, dict), "a training state", type(state).__name__)
    expect(state.get("run", digest) == digest, "the state of this run", "the state of another run")
    expect(state.get("format") in (1, STATE_FORMAT), f"format 1 or {STATE_FORMAT}", state.get("format"))
    records.integer(1, iterations)(state.get("iteration"))
    tensors = {name: state.get(name) for name in ("latents", "history", "rng")}
    for name, tensor in tensors.items():
        expect(isinstance(tensor, torch.Tensor), f"{name} as a tensor", type(tensor).__name__)
    expect(tensors["latents"].dim() >= 1 and tensors["latents"].shape[0] == runs, f"latents of {runs} runs",
           tuple(tensors["latents"].shape))
    expect(tuple(tensors["history"].shape) == (state["iteration"], runs),
           f"a loss history of {state['iteration']} iterations x {runs} runs", tuple(tensors["history"].shape))
    weights = state.get("weights")
    expect(isinstance(weights, list) and all(isinstance(w, torch.Tensor) for w in weights), "weights as tensors",
           type(weights).__name__)
    optimizer = state.get("optimizer")
    expect(isinstance(optimizer, dict) and isinstance(optimizer.get("param_groups"), list)
           and isinstance(optimizer.get("state"), dict), "an optimiser state", type(optimizer).__name__)
    failures = state.get("failures")
    expect(isinstance(failures, list) and all(isinstance(f, (list, tuple)) and f and isinstance(f[0], int)
                                              and 0 <= f[0] < runs for f in failures),
           f"failures of runs 0 to {runs - 1}", failures)


def run_label(clip: str, loss: str, seed: int) -> str:
    """How a run is named to a user, ``speech/mse/seed-0`` (its folder below ``clips/`` when the
    names are safe; :meth:`RunFolder.run` is its folder)."""
    return f"{clip}/{loss}/{SEED}{seed}"


def checkpoint_name(iteration: int) -> str:
    return f"iter-{iteration:04d}.wav"


def checkpoint_iteration(path: Path) -> int:
    """Inverse of :func:`checkpoint_name`."""
    return int(path.stem.split("-")[1])


_CHECKPOINT_NAME = re.compile(r"^iter-[0-9]+\.wav$")


def checkpoint_iterations_on_disk(run_folder: Path) -> list[int]:
    """The checkpoints in a run's folder (files named as :func:`checkpoint_name` names them; a
    stray ``iter-old.wav`` is not one)."""
    return sorted(checkpoint_iteration(path) for path in run_folder.glob("iter-*.wav")
                  if _CHECKPOINT_NAME.match(path.name))


def write_json(path: Path, value) -> None:
    atomic_write_text(path, json.dumps(value, indent=2) + "\n")


def read_json(path: Path):
    """A run record's JSON value (no shape checked: the readers of :class:`RunFolder` check it)."""
    return records.read_json(path, "run record")


def write_losses_csv(path: Path, losses: list[float]) -> None:
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(LOSSES_COLUMNS)
    writer.writerows((i, repr(v)) for i, v in enumerate(losses, start=1))
    atomic_write_text(path, text.getvalue())


LOSSES_COLUMNS = ("iteration", "loss")


def read_losses_csv(path: Path) -> np.ndarray:
    """``(iterations, 2)`` array of (iteration, loss): iterations 1, 2, 3, ... in order, each loss
    a number (``nan`` where a run diverged); anything else a :class:`~pal.core.records.DamagedRecord`."""
    what = "loss history"
    values = []
    for line, row in records.read_csv(path, what, LOSSES_COLUMNS):
        iteration = records.csv_value(path, what, line, "iteration", row["iteration"], int)
        if iteration != len(values) + 1:
            raise records.DamagedRecord(path, what, f"line {line}: iteration {iteration}, expected {len(values) + 1}")
        values.append((iteration, records.csv_value(path, what, line, "loss", row["loss"], float)))
    return np.array(values, dtype=np.float64).reshape(-1, 2)


METRIC_COLUMNS = ("clip", "loss", "seed", "iteration", "metric", "value")


def write_metrics_csv(path: Path, rows: list[dict]) -> None:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=METRIC_COLUMNS)
    writer.writeheader()
    writer.writerows({**row, "value": repr(float(row["value"]))} for row in rows)
    atomic_write_text(path, text.getvalue())


def read_metrics_csv(path: Path) -> list[dict]:
    """Every row with ``seed`` and ``iteration`` as integers and ``value`` as a number; ``[]``
    before the file is written. A row that is not so: :class:`~pal.core.records.DamagedRecord`."""
    if not path.exists():
        return []
    what = "table of measures"
    rows = []
    for line, row in records.read_csv(path, what, METRIC_COLUMNS):
        seed = records.csv_value(path, what, line, "seed", row["seed"], int)
        iteration = records.csv_value(path, what, line, "iteration", row["iteration"], int)
        if seed < 0 or iteration < 1:
            raise records.DamagedRecord(path, what, f"line {line}: seed {seed}, iteration {iteration}")
        value = records.csv_value(path, what, line, "value", row["value"], float)
        declared = BY_KEY.get(row["metric"])
        if declared is not None and not declared.recordable(value):
            raise records.DamagedRecord(path, what, f"line {line}: {row['metric']} is {value!r}, "
                                        f"which the measure never records")
        rows.append({**row, "seed": seed, "iteration": iteration, "value": value})
    return rows


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


def open_run_folder(out: Path, identity: dict, force: bool, folder=None, entries: tuple[str, ...] = RUN_ENTRIES,
                    what: str = "run") -> str:
    """Decide what ``out`` is for this command: ``"new"``, ``"resume"`` or ``"finished"``.

    A folder holding a run of a different configuration is refused unless ``force``, which then
    clears that run's own entries (never anything else); a non-empty folder that holds no run is
    always refused. ``folder`` reads the records (a :class:`RunFolder` of ``out`` by default; ``pal
    codec`` passes its :class:`~pal.codec.folder.CodecFolder`, with its ``entries`` and ``what``):
    it has ``is_run()``, ``read_identity()`` and ``read_records()`` (whose second value is the statuses).
    """
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a folder")
    if not out.is_dir() or not any(entry.name != LOCK_FILE for entry in out.iterdir()):
        return "new"
    folder = RunFolder(out) if folder is None else folder
    if not folder.is_run():
        raise UserError(f"{out}: folder is not empty and holds no {what}; choose another --out")
    try:
        saved = folder.read_identity()
    except UserError as error:
        if not force:
            raise UserError(f"{error}; pass --force to replace the run") from None
        saved = None  # --force: a run whose record is damaged is replaced like any other
    if saved == identity and not force:
        _, runs, _ = folder.read_records()  # a damaged record refused before anything is touched
        remove_stale_temporaries(out)
        done = runs and all(run.status != "running" for run in runs)
        return "finished" if done else "resume"
    if not force:
        raise UserError(f"{out}: holds a {what} of a different configuration "
                        f"({describe_difference(saved, identity)}); pass --force to replace it")
    for entry in entries:
        target = out / entry
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    remove_stale_temporaries(out)
    return "new"
