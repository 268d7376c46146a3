"""The run page: every checkpoint's audio and spectrogram beside the original's, and loss curves.

Built only from the files in a run folder, so ``pal report RUN_DIR`` can rebuild it any time.
All links are relative: the folder can be moved, zipped and opened from disk.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from scipy import signal

from .audio import AudioError, read_audio
from .errors import UserError
from .files import atomic_write_text
from .pages import save_figure, templates

SPECTROGRAM_WINDOW = 256
SPECTROGRAM_HOP = 64
DYNAMIC_RANGE_DB = 80.0


@dataclass
class Checkpoint:
    iteration: int
    audio: str
    image: str
    problem: str | None = None  # "missing" or "damaged": the page shows this instead of a player


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
    metrics_image: str | None = None
    mask_image: str | None = None


def log_spectrogram_db(samples: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Magnitude STFT in dB (Hann, 256-sample window, hop 64): ``(freqs_hz, times_s, db)``."""
    freqs, times, stft = signal.stft(
        samples, fs=sample_rate, window="hann", nperseg=SPECTROGRAM_WINDOW, noverlap=SPECTROGRAM_WINDOW - SPECTROGRAM_HOP
    )
    return freqs, times, 20.0 * np.log10(np.abs(stft) + 1e-10)


def label_time_frequency(axes, title: str) -> None:
    """Title and axes of a time-frequency image (spectrogram, masking threshold), alike on the page."""
    axes.set_title(title, fontsize=9)
    axes.set_xlabel("time (s)", fontsize=8)
    axes.set_ylabel("kHz", fontsize=8)
    axes.tick_params(labelsize=7)


def save_spectrogram(samples: np.ndarray, sample_rate: int, reference_max_db: float, path: Path, title: str) -> None:
    """One spectrogram image on the original's colour scale, so images compare by eye."""
    import matplotlib.pyplot as plt

    freqs, times, db = log_spectrogram_db(samples, sample_rate)
    figure, axes = plt.subplots(figsize=(4.2, 2.4), dpi=90)
    axes.pcolormesh(
        times, freqs / 1000.0, db, vmin=reference_max_db - DYNAMIC_RANGE_DB, vmax=reference_max_db,
        cmap="magma", shading="auto", rasterized=True,
    )
    label_time_frequency(axes, title)
    save_figure(figure, path)


def save_mask_image(samples: np.ndarray, sample_rate: int, path: Path, title: str) -> None:
    """The masked loss's threshold for ``samples`` (23 ms resolution), in dB SPL, on the
    spectrogram's axes so it reads under it: error below this level costs nothing."""
    import matplotlib.pyplot as plt
    import torch

    from perceptual_audio_loss.masking import MaskedLoss

    loss = MaskedLoss(sample_rate)
    threshold_db = loss.threshold_db(torch.from_numpy(samples).float()[None])[0].numpy()
    times = np.arange(threshold_db.shape[1]) * loss.hop() / sample_rate
    figure, axes = plt.subplots(figsize=(4.2, 2.4), dpi=90)
    mesh = axes.pcolormesh(
        np.append(times, times[-1] + loss.hop() / sample_rate), loss.band_edges_hz / 1000.0, threshold_db,
        vmin=0.0, vmax=max(1.0, float(threshold_db.max())), cmap="viridis", shading="flat", rasterized=True,
    )
    colorbar = figure.colorbar(mesh, ax=axes, pad=0.02)
    colorbar.set_label("dB SPL", fontsize=7)
    colorbar.ax.tick_params(labelsize=6)
    label_time_frequency(axes, title)
    save_figure(figure, path, right_inches=0.5)


def save_loss_curves(curves: dict[str, list[np.ndarray]], path: Path, title: str) -> None:
    """One panel per loss (their units differ), loss against iteration, a line per seed."""
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, max(1, len(curves)), figsize=(4.0 * max(1, len(curves)), 2.6), dpi=90, squeeze=False)
    for axis, (name, seeds) in zip(axes[0], curves.items()):
        for curve in seeds:
            axis.plot(curve[:, 0], curve[:, 1], linewidth=1.0, alpha=0.8)
        if all(np.all(curve[:, 1] > 0) for curve in seeds):
            axis.set_yscale("log")
        axis.set_title(f"{title}: {name}", fontsize=9)
        axis.set_xlabel("iteration", fontsize=8)
        axis.set_ylabel("loss", fontsize=8)
        axis.tick_params(labelsize=7)
        axis.grid(alpha=0.3)
    save_figure(figure, path)


METRIC_LABELS = {
    "snr_db": "SNR (dB, higher better)", "lsd_overall_db": "log-spectral distance (dB)",
    "lsd_low_db": "LSD < 500 Hz (dB)", "lsd_mid_db": "LSD 500-2500 Hz (dB)", "lsd_high_db": "LSD > 2500 Hz (dB)",
    "mrstft": "multi-resolution STFT distance", "noise_floor_db": "noise floor (dB)",
    "stoi": "STOI (higher better)", "pesq_wb": "PESQ wideband (higher better)",
}


def save_metric_curves(rows: list[dict], losses: list[str], path: Path, title: str) -> None:
    """Each measure against iteration: a line per loss (mean over seeds) in its 95 % interval band."""
    import matplotlib.pyplot as plt

    from .stats import mean_interval

    names = [m for m in METRIC_LABELS if any(r["metric"] == m for r in rows)]
    columns = 3
    figure, axes = plt.subplots(-(-len(names) // columns), columns, figsize=(12, 2.6 * -(-len(names) // columns)),
                                dpi=80, squeeze=False)
    for axis, name in zip(axes.flat, names):
        for loss in losses:
            iterations = sorted({r["iteration"] for r in rows if r["metric"] == name and r["loss"] == loss})
            estimates = [mean_interval([r["value"] for r in rows if r["metric"] == name and r["loss"] == loss
                                        and r["iteration"] == i]) for i in iterations]
            means = np.array([e.mean for e in estimates])
            half = np.nan_to_num(np.array([e.half_width for e in estimates]))
            line = axis.plot(iterations, means, marker="o", markersize=3, linewidth=1.2, label=loss)[0]
            axis.fill_between(iterations, means - half, means + half, color=line.get_color(), alpha=0.2)
        axis.set_title(METRIC_LABELS[name], fontsize=9)
        axis.set_xlabel("iteration", fontsize=8)
        axis.tick_params(labelsize=7)
        axis.grid(alpha=0.3)
    for axis in list(axes.flat)[len(names):]:
        axis.axis("off")
    axes.flat[0].legend(fontsize=7)
    figure.suptitle(title, fontsize=10)
    save_figure(figure, path)


@dataclass
class ListeningSection:
    text: str  # what ``pal listen --results`` prints
    image: str | None = None


def collect_listening(run_dir: Path) -> ListeningSection | None:
    """The listening test's section, as ``pal listen --results`` last wrote it into the folder."""
    from .runfolder import RunFolder

    folder = RunFolder(run_dir)
    if not folder.listening_summary.is_file():
        return None
    image = folder.relative(folder.listening_image) if folder.listening_image.is_file() else None
    return ListeningSection(folder.listening_summary.read_text(encoding="utf-8"), image)


def read_run(run_dir: Path) -> tuple:
    """The run's :class:`~pal.runfolder.RunRecord` and its per-run statuses keyed by (clip, loss, seed)."""
    from .runfolder import RunFolder

    folder = RunFolder(run_dir)
    config = folder.read_config()
    return config, {status.key: status for status in folder.read_runs()}


def read_audio_file(path: Path) -> np.ndarray | None:
    """A checkpoint's or original's (mono) samples, or ``None`` when :func:`pal.audio.read_audio`
    finds the file missing, empty, truncated or not audio."""
    try:
        return read_audio(path)[0][:, 0]
    except AudioError:
        return None


def describe_status(status) -> str:
    """What the page says of a run (a :class:`pal.runfolder.RunStatus`): finished, failed (why), or interrupted."""
    if status.status == "finished":
        return "finished"
    if status.status == "failed":
        return f"failed: {status.reason}"
    return "interrupted (or still running): run the same `pal run` command again to resume it"


def collect_clip(run_dir: Path, clip: str, config, statuses: dict, metric_rows: list[dict]) -> ClipSection:
    """The clip's images and sections: players for the first seed's checkpoints, curves for all."""
    from .runfolder import RunFolder, RunStatus

    folder = RunFolder(run_dir)
    sample_rate = config.sample_rate
    seeds = config.seeds
    original = read_audio_file(folder.original(clip))
    if original is None:
        raise UserError(f"{folder.original(clip)}: missing or damaged; the run's original of {clip!r} is gone, "
                        "so the page cannot be built (run the same pal run command with --force to start again)")
    reference_max_db = log_spectrogram_db(original, sample_rate)[2].max()
    save_spectrogram(original, sample_rate, reference_max_db, folder.clip_image(clip, "original"), f"{clip}: original")
    section = ClipSection(
        clip, config.source(clip), folder.relative(folder.original(clip)),
        folder.relative(folder.clip_image(clip, "original")), folder.relative(folder.clip_image(clip, "losses")),
    )
    if any(loss.startswith("masked") for loss in config.losses):
        save_mask_image(original, sample_rate, folder.clip_image(clip, "mask"), f"{clip}: masking threshold")
        section.mask_image = folder.relative(folder.clip_image(clip, "mask"))
    curves = {}
    for loss in config.losses:
        per_seed = [statuses.get((clip, loss, seed)) or RunStatus(clip, loss, seed) for seed in seeds]
        described = [describe_status(status) for status in per_seed]
        summary = "finished" if all(d == "finished" for d in described) else "; ".join(
            f"seed {seed}: {d}" for seed, d in zip(seeds, described))
        first = per_seed[0]
        curves[loss] = [curve for curve in (folder.read_losses(clip, loss, seed) for seed in seeds) if curve is not None]
        # The checkpoints the run recorded (or, while it runs, those on disk), each checked.
        recorded = first.checkpoints or folder.checkpoints_on_disk(clip, loss, seeds[0])
        checkpoints = []
        for iteration in recorded:
            wav = folder.checkpoint(clip, loss, seeds[0], iteration)
            image = wav.with_suffix(".png")
            audio = read_audio_file(wav)
            if audio is None:
                problem = "damaged" if wav.exists() else "missing"
                checkpoints.append(Checkpoint(iteration, folder.relative(wav), folder.relative(image), problem))
                continue
            save_spectrogram(audio, sample_rate, reference_max_db, image, f"{loss}, iteration {iteration}")
            checkpoints.append(Checkpoint(iteration, folder.relative(wav), folder.relative(image)))
        lost = [f"{c.audio} {c.problem}" for c in checkpoints if c.problem]
        if lost:
            summary = f"{summary}; but {', '.join(lost)}"
        loss_section = LossSection(loss, summary, first.final_loss, first.seconds, checkpoints)
        section.losses.append(loss_section)
    save_loss_curves(curves, folder.clip_image(clip, "losses"), clip)
    rows = [r for r in metric_rows if r["clip"] == clip]
    if rows:
        save_metric_curves(rows, config.losses, folder.clip_image(clip, "metrics"),
                           f"{clip}: measures against the original")
        section.metrics_image = folder.relative(folder.clip_image(clip, "metrics"))
    return section


def build_report(run_dir: str | Path) -> Path:
    """Write the page (and its images) for the run in ``run_dir``; return its path."""
    import matplotlib

    matplotlib.use("Agg")
    run_dir = Path(run_dir)
    from .claims import claims_table
    from .runfolder import RunFolder

    config, statuses = read_run(run_dir)
    metric_rows = RunFolder(run_dir).read_metrics()
    clips = [collect_clip(run_dir, clip, config, statuses, metric_rows) for clip in config.clip_names]
    claims = claims_table(metric_rows, config.losses) if metric_rows else []
    unfinished = [f"{c.name}/{l.name}" for c in clips for l in c.losses if l.status != "finished"]
    page = templates().get_template("run_page.html").render(
        config=config,
        clips=clips,
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        run_name=run_dir.resolve().name,
        unfinished=unfinished,
        claims=claims,
        seeds=config.seeds,
        listening=collect_listening(run_dir),
    )
    path = RunFolder(run_dir).page
    atomic_write_text(path, page)
    return path
