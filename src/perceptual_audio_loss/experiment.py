"""The seed experiment: one generator per (clip, loss), written to a run folder.

Run folder layout::

    config.json                      the resolved configuration
    runs.json                        each run's status, final loss and time (all runs train at once)
    report.html                      the page (perceptual_audio_loss.report)
    clips/<clip>/original.wav        the target window, peak 1
    clips/<clip>/<loss>/iter-0250.wav  the generator's output after 250 updates, ...
    clips/<clip>/<loss>/losses.csv   the loss after every update
"""

from __future__ import annotations

import csv
import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import __version__
from .audio import SAMPLE_RATE, WINDOW, Clip, load_clip, prepare_clip, write_wav
from .clips import BUILTIN_CLIPS, builtin_clip
from .errors import UserError
from .losses import LOSSES, UnknownLoss, build_loss
from .train import RunSpec, train_batched

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff", ".au", ".w64", ".caf"}
RUN_ENTRIES = ("config.json", "runs.json", "report.html", "clips")


@dataclass
class ExperimentConfig:
    """Everything that decides a run's results; written as ``config.json``."""

    clips: list[str] = field(default_factory=lambda: list(BUILTIN_CLIPS))
    losses: list[str] = field(default_factory=lambda: ["mse", "perceptual"])
    iterations: int = 1000
    checkpoint_every: int = 250
    seed: int = 0
    device: str = "auto"
    sample_rate: int = SAMPLE_RATE
    window: int = WINDOW
    offset_seconds: float | None = None
    pad: bool = False

    def validate(self) -> None:
        if self.iterations <= 0:
            raise UserError(f"--iterations must be positive, got {self.iterations}")
        if not 0 < self.checkpoint_every <= self.iterations:
            raise UserError(
                f"--checkpoint-every must be between 1 and --iterations ({self.iterations}), "
                f"got {self.checkpoint_every}"
            )
        if self.seed < 0:
            raise UserError(f"--seed must be 0 or more, got {self.seed}")
        if not self.losses:
            raise UserError("--losses names no loss")
        for name in self.losses:
            if name not in LOSSES:
                raise UnknownLoss(name)
        if len(set(self.losses)) != len(self.losses):
            raise UserError(f"--losses names a loss twice: {','.join(self.losses)}")
        resolve_device(self.device)


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


def expand_sources(sources: list[str]) -> list[str]:
    """Built-in clip names and files pass through; a folder becomes the audio files under it."""
    expanded = []
    for source in sources:
        path = Path(source)
        if path.is_dir():
            found = sorted(str(p) for p in path.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
            if not found:
                raise UserError(f"{source}: folder holds no audio files ({', '.join(sorted(AUDIO_SUFFIXES))})")
            expanded.extend(found)
        else:
            expanded.append(source)
    return expanded


def load_clips(config: ExperimentConfig) -> list[Clip]:
    """Every clip of the config, prepared as a target; names made unique."""
    options = dict(
        sample_rate=config.sample_rate, window=config.window, offset_seconds=config.offset_seconds, pad=config.pad
    )
    clips = []
    for source in expand_sources(config.clips):
        if source in BUILTIN_CLIPS and not Path(source).exists():
            samples, rate = builtin_clip(source)
            clips.append(prepare_clip(source, samples, rate, f"built-in clip {source!r}", **options))
        else:
            clips.append(load_clip(source, **options))
    seen: dict[str, int] = {}
    for clip in clips:
        count = seen.get(clip.name, 0)
        seen[clip.name] = count + 1
        if count:
            clip.name = f"{clip.name}-{count + 1}"
    return clips


def prepare_run_folder(out: Path, force: bool) -> None:
    """Create ``out``, or clear a previous run's entries from it when ``force``."""
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not (out / "config.json").exists():
            raise UserError(f"{out}: folder is not empty and holds no run; choose another --out")
        if not force:
            raise UserError(f"{out}: already holds a run; pass --force to replace it")
        for entry in RUN_ENTRIES:
            target = out / entry
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"{out}: cannot create the run folder ({error.strerror})") from None


def write_losses_csv(path: Path, losses: list[float]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["iteration", "loss"])
        writer.writerows((i, repr(v)) for i, v in enumerate(losses, start=1))


def read_losses_csv(path: Path) -> np.ndarray:
    """``(iterations, 2)`` array of (iteration, loss)."""
    return np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)


def checkpoint_name(iteration: int) -> str:
    return f"iter-{iteration:04d}.wav"


class RunProgress:
    """One progress bar per (clip, loss) run, each with its latest loss; all advance together."""

    def __init__(self, labels: list[str], iterations: int, enabled: bool):
        from tqdm import tqdm

        width = max(len(label) for label in labels)
        self.bars = [
            tqdm(total=iterations, desc=label.ljust(width), position=i, unit="it", disable=not enabled, leave=True)
            for i, label in enumerate(labels)
        ]

    def update(self, iteration: int, history: torch.Tensor) -> None:
        latest = history[-1].tolist()
        for bar, value in zip(self.bars, latest):
            bar.update(iteration - bar.n)
            bar.set_postfix_str(f"loss {value:.4g}", refresh=False)

    def close(self) -> None:
        for bar in self.bars:
            bar.close()


def run_experiment(config: ExperimentConfig, out: Path, force: bool = False, progress: bool = True) -> Path:
    """Validate everything, then train every (clip, loss) at once and write the run folder and page."""
    config.validate()
    clips = load_clips(config)
    device = resolve_device(config.device)
    losses = {name: build_loss(name, config.sample_rate) for name in config.losses}
    prepare_run_folder(out, force)

    runs = [RunSpec(c, name, config.seed) for c in range(len(clips)) for name in config.losses]
    run_dirs = [out / "clips" / clips[run.target].name / run.loss for run in runs]
    resolved = asdict(config) | {"clip_names": [c.name for c in clips], "resolved_device": str(device)}
    resolved["clip_sources"] = {c.name: c.source for c in clips}
    resolved["clip_offsets"] = {c.name: c.offset_samples for c in clips}
    resolved["loss_methods"] = {name: getattr(loss, "method", None) for name, loss in losses.items()}
    resolved["version"] = __version__
    (out / "config.json").write_text(json.dumps(resolved, indent=2) + "\n")
    for clip in clips:
        (out / "clips" / clip.name).mkdir(parents=True, exist_ok=True)
        write_wav(out / "clips" / clip.name / "original.wav", clip.samples, config.sample_rate)
    for run_dir in run_dirs:
        run_dir.mkdir(exist_ok=True)

    def save_checkpoint(iteration: int, audio: np.ndarray) -> None:
        for run_dir, samples in zip(run_dirs, audio):
            write_wav(run_dir / checkpoint_name(iteration), samples, config.sample_rate)

    targets = torch.from_numpy(np.stack([clip.samples for clip in clips])).unsqueeze(1)
    bars = RunProgress([f"{clips[r.target].name}/{r.loss}" for r in runs], config.iterations, progress)
    started = time.perf_counter()
    try:
        results = train_batched(
            targets, runs, losses, config.iterations, config.checkpoint_every, device,
            on_progress=bars.update, on_checkpoint=save_checkpoint,
        )
    finally:
        bars.close()
    seconds = round(time.perf_counter() - started, 3)
    statuses = []
    for run, run_dir, result in zip(runs, run_dirs, results):
        write_losses_csv(run_dir / "losses.csv", result.losses)
        statuses.append(
            dict(
                clip=clips[run.target].name, loss=run.loss, status="finished", final_loss=result.losses[-1],
                seconds=seconds, checkpoints=sorted(result.checkpoints),
            )
        )
    (out / "runs.json").write_text(json.dumps(statuses, indent=2) + "\n")

    from .report import build_report

    return build_report(out)
