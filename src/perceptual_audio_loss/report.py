"""The run page: every checkpoint's audio and spectrogram beside the original's, and loss curves.

Built only from the files in a run folder, so ``pal report RUN_DIR`` can rebuild it any time.
All links are relative: the folder can be moved, zipped and opened from disk.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import soundfile
from scipy import signal

from .errors import UserError
from .files import atomic_write, atomic_write_text

SPECTROGRAM_WINDOW = 256
SPECTROGRAM_HOP = 64
DYNAMIC_RANGE_DB = 80.0


@dataclass
class Checkpoint:
    iteration: int
    audio: str
    image: str


@dataclass
class LossSection:
    name: str
    status: str
    final_loss: float | None
    seconds: float | None
    checkpoints: list[Checkpoint] = field(default_factory=list)


@dataclass
class ClipSection:
    name: str
    source: str
    original_audio: str
    original_image: str
    curves_image: str
    losses: list[LossSection] = field(default_factory=list)


def log_spectrogram_db(samples: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Magnitude STFT in dB (Hann, 256-sample window, hop 64): ``(freqs_hz, times_s, db)``."""
    freqs, times, stft = signal.stft(
        samples, fs=sample_rate, window="hann", nperseg=SPECTROGRAM_WINDOW, noverlap=SPECTROGRAM_WINDOW - SPECTROGRAM_HOP
    )
    return freqs, times, 20.0 * np.log10(np.abs(stft) + 1e-10)


def save_spectrogram(samples: np.ndarray, sample_rate: int, reference_max_db: float, path: Path, title: str) -> None:
    """One spectrogram image on the original's colour scale, so images compare by eye."""
    import matplotlib.pyplot as plt

    freqs, times, db = log_spectrogram_db(samples, sample_rate)
    figure, axes = plt.subplots(figsize=(4.2, 2.4), dpi=90)
    axes.pcolormesh(
        times, freqs / 1000.0, db, vmin=reference_max_db - DYNAMIC_RANGE_DB, vmax=reference_max_db,
        cmap="magma", shading="auto", rasterized=True,
    )
    axes.set_title(title, fontsize=9)
    axes.set_xlabel("time (s)", fontsize=8)
    axes.set_ylabel("kHz", fontsize=8)
    axes.tick_params(labelsize=7)
    figure.tight_layout()
    atomic_write(path, lambda temporary: figure.savefig(temporary, format="png"))
    plt.close(figure)


def save_loss_curves(curves: dict[str, np.ndarray], path: Path, title: str) -> None:
    """One panel per loss (their units differ), loss against iteration."""
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, max(1, len(curves)), figsize=(4.0 * max(1, len(curves)), 2.6), dpi=90, squeeze=False)
    for axis, (name, curve) in zip(axes[0], curves.items()):
        axis.plot(curve[:, 0], curve[:, 1], linewidth=1.0)
        if np.all(curve[:, 1] > 0):
            axis.set_yscale("log")
        axis.set_title(f"{title}: {name}", fontsize=9)
        axis.set_xlabel("iteration", fontsize=8)
        axis.set_ylabel("loss", fontsize=8)
        axis.tick_params(labelsize=7)
        axis.grid(alpha=0.3)
    figure.tight_layout()
    atomic_write(path, lambda temporary: figure.savefig(temporary, format="png"))
    plt.close(figure)


def read_run(run_dir: Path) -> tuple[dict, dict]:
    """``config.json`` and the per-run statuses of ``runs.json`` keyed by (clip, loss)."""
    from .runfolder import read_json

    if not (run_dir / "config.json").is_file():
        raise UserError(f"{run_dir}: not a run folder (no config.json)")
    config = read_json(run_dir / "config.json")
    runs = read_json(run_dir / "runs.json") if (run_dir / "runs.json").exists() else []
    return config, {(r["clip"], r["loss"]): r for r in runs}


def describe_status(status: dict) -> str:
    """What the page says of a run: finished, failed (why), or interrupted."""
    state = status.get("status", "running")
    if state == "finished":
        return "finished"
    if state == "failed":
        return f"failed: {status.get('reason')}"
    return "interrupted (or still running): run the same `pal run` command again to resume it"


def collect_clip(run_dir: Path, clip: str, config: dict, statuses: dict) -> ClipSection:
    from .runfolder import read_losses_csv

    sample_rate = config["sample_rate"]
    clip_dir = run_dir / "clips" / clip
    original, _ = soundfile.read(str(clip_dir / "original.wav"), dtype="float64")
    reference_max_db = log_spectrogram_db(original, sample_rate)[2].max()
    save_spectrogram(original, sample_rate, reference_max_db, clip_dir / "original.png", f"{clip}: original")
    statuses = {key: value for key, value in statuses.items() if key[0] == clip}
    section = ClipSection(
        clip, config.get("clip_sources", {}).get(clip, clip),
        f"clips/{clip}/original.wav", f"clips/{clip}/original.png", f"clips/{clip}/losses.png",
    )
    curves = {}
    for loss in config["losses"]:
        loss_dir = clip_dir / loss
        status = statuses.get((clip, loss), {})
        loss_section = LossSection(loss, describe_status(status), status.get("final_loss"), status.get("seconds"))
        if (loss_dir / "losses.csv").exists():
            curves[loss] = read_losses_csv(loss_dir / "losses.csv")
        for wav in sorted(loss_dir.glob("iter-*.wav")):
            iteration = int(wav.stem.split("-")[1])
            audio, _ = soundfile.read(str(wav), dtype="float64")
            image = wav.with_suffix(".png")
            save_spectrogram(audio, sample_rate, reference_max_db, image, f"{loss}, iteration {iteration}")
            loss_section.checkpoints.append(
                Checkpoint(iteration, f"clips/{clip}/{loss}/{wav.name}", f"clips/{clip}/{loss}/{image.name}")
            )
        section.losses.append(loss_section)
    save_loss_curves(curves, clip_dir / "losses.png", clip)
    return section


def build_report(run_dir: str | Path) -> Path:
    """Write ``report.html`` (and its images) for the run in ``run_dir``; return its path."""
    import jinja2
    import matplotlib

    matplotlib.use("Agg")
    run_dir = Path(run_dir)
    config, statuses = read_run(run_dir)
    clips = [collect_clip(run_dir, clip, config, statuses) for clip in config["clip_names"]]
    unfinished = [f"{c.name}/{l.name}" for c in clips for l in c.losses if l.status != "finished"]
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("perceptual_audio_loss", "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
    )
    page = environment.get_template("report.html").render(
        config=config,
        clips=clips,
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        run_name=run_dir.resolve().name,
        unfinished=unfinished,
    )
    path = run_dir / "report.html"
    atomic_write_text(path, page)
    return path
