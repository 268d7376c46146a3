"""The run page: per clip, a grid of checkpoints (a row for the original and one per loss, a
column per checkpoint) whose spectrogram cells play when clicked, the loss curves of every loss
on one chart, the measures against iterations, and the post's claims as a matrix on top.

Built only from the files in a run folder, so ``pal report RUN_DIR`` can rebuild it any time.
All links are relative: the folder can be moved, zipped and opened from disk. Cells are plain
images (one STFT and a colour map each) and the charts are inline SVG, so the page costs little
to write next to the training it shows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from scipy import signal

from ..core.audio import AudioError, read_audio
from .charts import Series, line_chart
from ..core.errors import UserError
from ..core.files import atomic_write, atomic_write_text
from .templates import templates
from ..core.records import DamagedRecord
from ..losses.registry import MASK_SECTION, needs_section
from ..measures.registry import MEASURES

if TYPE_CHECKING:
    from ..run.folder import RunFolder, RunRecord, RunStatus

SPECTROGRAM_WINDOW = 256
SPECTROGRAM_HOP = 64
DYNAMIC_RANGE_DB = 80.0  # colour range of a spectrogram cell, down from the original's peak
ERROR_RANGE_DB = 40.0  # colour range of an error cell: generation minus original, -40 to +40 dB
SPECTROGRAM_COLOURS, ERROR_COLOURS, MASK_COLOURS = "magma", "RdBu_r", "viridis"
# One colour per loss, in the order of the run's losses, shared by the matrix, the grid and the charts.
LOSS_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf",
                "#7f7f7f", "#bcbd22")


@dataclass
class Cell:
    """One checkpoint of one (loss, seed) in the grid: what it plays and shows, or why it cannot."""

    label: str
    audio: str | None = None
    image: str | None = None
    error_image: str | None = None
    problem: str | None = None  # "missing", "damaged" or "not reached": the cell says so instead of playing


@dataclass
class GridRow:
    name: str  # "original" or the loss
    cells: list[Cell]
    status: str = "finished"


@dataclass
class SeedGrid:
    seed: int
    rows: list[GridRow]


@dataclass
class LossStatus:
    name: str
    status: str
    final_loss: float | None
    seconds: float | None


@dataclass
class ClipSection:
    name: str
    source: str
    iterations: list[int]
    grids: list[SeedGrid] = field(default_factory=list)
    statuses: list[LossStatus] = field(default_factory=list)
    curves: str = ""  # inline SVG
    measures: list[str] = field(default_factory=list)  # inline SVG, one per measure
    mask_image: str | None = None


def log_spectrogram_db(samples: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Magnitude STFT in dB (Hann, 256-sample window, hop 64): ``(freqs_hz, times_s, db)``."""
    freqs, times, stft = signal.stft(
        samples, fs=sample_rate, window="hann", nperseg=SPECTROGRAM_WINDOW, noverlap=SPECTROGRAM_WINDOW - SPECTROGRAM_HOP
    )
    return freqs, times, 20.0 * np.log10(np.abs(stft) + 1e-10)


def save_image(values: np.ndarray, path: Path, low: float, high: float, colours: str) -> None:
    """``values`` (frequency x time) as a palette PNG, one pixel per cell, low frequencies at the
    bottom: 256 colours of a matplotlib colour map from ``low`` to ``high``, one byte a pixel."""
    from PIL import Image

    index = np.clip(np.nan_to_num((values - low) / (high - low) * 255.0 + 0.5), 0, 255).astype(np.uint8)
    picture = Image.fromarray(np.ascontiguousarray(index[::-1]))
    picture.putpalette(palette(colours))  # makes it a palette image
    atomic_write(path, lambda temporary: picture.save(temporary, format="PNG", compress_level=6))


@lru_cache(maxsize=None)
def palette(colours: str) -> bytes:
    """A colour map's 256 colours as PIL's flat RGB palette."""
    from matplotlib import colormaps

    return (colormaps[colours](np.linspace(0.0, 1.0, 256))[:, :3] * 255.0 + 0.5).astype(np.uint8).tobytes()


def save_spectrogram(db: np.ndarray, reference_max_db: float, path: Path) -> None:
    """A spectrogram cell on the original's colour scale, so cells compare by eye."""
    save_image(db, path, reference_max_db - DYNAMIC_RANGE_DB, reference_max_db, SPECTROGRAM_COLOURS)


def save_error_spectrogram(db: np.ndarray, original_db: np.ndarray, reference_max_db: float, path: Path) -> None:
    """Generation minus original in dB, both floored at the colour range's bottom: red where the
    generation is louder (noise, artefacts), blue where it lacks the original's energy."""
    floor = reference_max_db - DYNAMIC_RANGE_DB
    save_image(np.maximum(db, floor) - np.maximum(original_db, floor), path, -ERROR_RANGE_DB, ERROR_RANGE_DB,
               ERROR_COLOURS)


def save_mask_image(samples: np.ndarray, sample_rate: int, frequencies_hz: np.ndarray, path: Path) -> None:
    """The masked loss's threshold for ``samples`` (dB SPL, its own 23 ms frames), on the same
    linear frequency axis as the spectrogram cells: error below this level costs nothing."""
    import torch

    from perceptual_audio_loss.masking import MaskedLoss

    loss = MaskedLoss(sample_rate)
    threshold_db = loss.threshold_db(torch.from_numpy(samples).float()[None])[0].numpy()
    bands = np.clip(np.searchsorted(loss.band_edges_hz, frequencies_hz, side="right") - 1, 0, len(threshold_db) - 1)
    save_image(threshold_db[bands], path, 0.0, max(1.0, float(threshold_db.max())), MASK_COLOURS)


def colour_stops(colours: str, count: int = 9) -> str:
    """A CSS gradient's stops sampled from a matplotlib colour map (for the legends)."""
    from matplotlib import colormaps, colors

    colour_map = colormaps[colours]
    return ", ".join(colors.to_hex(colour_map(i / (count - 1))) for i in range(count))


def loss_curves_chart(curves: dict[str, list[np.ndarray]], colours: dict[str, str], clip: str) -> str:
    """Every loss on one chart, each relative to its own first value (the losses' units differ):
    a thin line per seed and, with several seeds, their mean in bold."""
    positive = all(np.all(c[:, 1] > 0) for seeds in curves.values() for c in seeds)
    series = []
    for loss, seeds in curves.items():
        scaled = []
        for curve in seeds:
            values = curve[:, 1]
            if positive:
                scaled.append(values / values[0])
            else:
                span = np.ptp(values)
                scaled.append((values - values.min()) / span if span > 0 else np.zeros_like(values))
        several = len(scaled) > 1
        for curve, values in zip(seeds, scaled):
            series.append(Series(None if several else loss, colours[loss], curve[:, 0], values,
                                 width=1.0 if several else 1.6, opacity=0.35 if several else 1.0))
        if several:
            length = min(len(v) for v in scaled)
            series.append(Series(loss, colours[loss], seeds[0][:length, 0], np.mean([v[:length] for v in scaled], 0)))
    label = "loss / its first value" if positive else "loss scaled to its range"
    return line_chart(series, f"{clip}: every loss, relative", "iteration", label, log_y=positive, width=470, height=260)


def measure_charts(rows: list[dict], losses: list[str], colours: dict[str, str]) -> list[str]:
    """Each measure against iteration: a line per loss (mean over seeds) in its 95 % interval band."""
    from ..measures.stats import mean_interval

    charts = []
    recorded = {r["metric"] for r in rows}
    for measure in (m for m in MEASURES if not m.per_run and m.key in recorded):
        series = []
        for loss in losses:
            by_iteration: dict[int, list[float]] = {}
            for r in rows:
                if r["metric"] == measure.key and r["loss"] == loss:
                    by_iteration.setdefault(r["iteration"], []).append(r["value"])
            if not by_iteration:
                continue
            iterations = sorted(by_iteration)
            estimates = [mean_interval(by_iteration[i]) for i in iterations]
            means = np.array([e.mean for e in estimates])
            half = np.nan_to_num(np.array([e.half_width for e in estimates]))
            series.append(Series(loss, colours[loss], np.array(iterations), means, means - half, means + half,
                                 markers=True))
        charts.append(line_chart(series, measure.chart, "iteration", ""))
    return charts


@dataclass
class ListeningSection:
    text: str  # what ``pal listen --results`` prints
    image: str | None = None


def collect_listening(folder) -> ListeningSection | None:
    """The listening test's section, as ``pal listen --results`` last wrote it into ``folder`` (a
    :class:`~pal.run.folder.RunFolder` or :class:`~pal.codec.folder.CodecFolder`)."""
    if not folder.listening_summary.is_file():
        return None
    image = folder.link(folder.listening_image) if folder.listening_image.is_file() else None
    return ListeningSection(folder.listening_summary.read_text(encoding="utf-8"), image)


def read_run(run_dir: Path) -> tuple:
    """The run's :class:`~pal.run.folder.RunRecord` and its per-run statuses keyed by (clip, loss, seed)."""
    from ..run.folder import RunFolder

    folder = RunFolder(run_dir)
    config = folder.read_config()
    return config, {status.key: status for status in folder.read_runs(config)}


def read_audio_file(path: Path) -> np.ndarray | None:
    """A checkpoint's or original's (mono) samples, or ``None`` when :func:`pal.core.audio.read_audio`
    finds the file missing, empty, truncated or not audio."""
    try:
        return read_audio(path)[0][:, 0]
    except AudioError:
        return None


def describe_status(status) -> str:
    """What the page says of a run (a :class:`pal.run.folder.RunStatus`): finished, failed (why), or interrupted."""
    if status.status == "finished":
        return "finished"
    if status.status == "failed":
        return f"failed: {status.reason}"
    return "interrupted (or still running): run the same `pal run` command again to resume it"


def loss_status(per_seed: list, seeds: list[int]) -> str:
    """The loss's row status over its seeds' :class:`pal.run.folder.RunStatus`."""
    described = [describe_status(status) for status in per_seed]
    if all(d == "finished" for d in described):
        return "finished"
    return "; ".join(f"seed {seed}: {d}" for seed, d in zip(seeds, described))


@dataclass(frozen=True)
class PageRun:
    """What every clip's section is built from: the run folder and what the page read of it once."""

    run_dir: Path
    config: RunRecord
    statuses: dict  # the :class:`~pal.run.folder.RunStatus` of each (clip, loss, seed)
    metric_rows: list[dict]
    colours: dict[str, str]  # by loss
    damaged: list[DamagedRecord]  # the records the page is built without; collecting a clip adds its own


def collect_clip(run: PageRun, clip: str) -> ClipSection:
    """The clip's grid for every seed (writing each cell's images), its curves and its measures.

    A damaged loss history leaves its curve out, is named in its loss's status,
    and is added to ``run.damaged``."""
    from ..run.folder import RunFolder, RunStatus

    folder, config = RunFolder(run.run_dir), run.config
    original = read_audio_file(folder.original(clip))
    if original is None:
        raise UserError(f"{folder.original(clip)}: missing or damaged; the run's original of {clip!r} is gone, "
                        "so the page cannot be built (run the same pal run command with --force to start again)")
    frequencies, _, original_db = log_spectrogram_db(original, config.sample_rate)
    save_spectrogram(original_db, original_db.max(), folder.clip_image(clip, "original"))
    runs = {(loss, seed): run.statuses.get((clip, loss, seed)) or RunStatus(clip, loss, seed)
            for loss in config.losses for seed in config.seeds}
    # The checkpoints each run recorded (or, while it runs, those on disk): the grid's columns are their union.
    recorded = {key: status.checkpoints or folder.checkpoints_on_disk(clip, *key) for key, status in runs.items()}
    iterations = sorted({i for its in recorded.values() for i in its})
    section = ClipSection(clip, config.source(clip), iterations)
    if needs_section(MASK_SECTION, config.losses, config.loss_sources):
        save_mask_image(original, config.sample_rate, frequencies, folder.clip_image(clip, "mask"))
        section.mask_image = folder.link(folder.clip_image(clip, "mask"))
    original_cell = Cell(f"{clip}, original", folder.link(folder.original(clip)),
                         folder.link(folder.clip_image(clip, "original")))
    clip_runs = ClipRuns(folder, clip, config.sample_rate, original_db, runs, recorded, iterations, original_cell)
    lost = {loss: [] for loss in config.losses}
    for seed in config.seeds:
        section.grids.append(clip_runs.grid(seed, config.losses, lost))
    curves = {}
    for loss in config.losses:
        status, curves[loss] = clip_runs.loss_row(loss, config.seeds, lost[loss], run.damaged)
        section.statuses.append(status)
    section.curves = loss_curves_chart({k: v for k, v in curves.items() if v}, run.colours, clip)
    section.measures = measure_charts([r for r in run.metric_rows if r["clip"] == clip], config.losses, run.colours)
    return section


@dataclass(frozen=True)
class ClipRuns:
    """One clip's runs as its section shows them: the grid's cells, drawn on the colour scale of
    the clip's original, and each loss's status and curves."""

    folder: RunFolder
    clip: str
    sample_rate: int
    original_db: np.ndarray  # the original's spectrogram: every cell's colours are relative to its peak
    runs: dict[tuple[str, int], RunStatus]  # by (loss, seed)
    recorded: dict[tuple[str, int], list[int]]  # the checkpoints each (loss, seed) recorded
    iterations: list[int]  # the grid's columns: every checkpoint any run recorded
    original: Cell  # the first row's cell, the same in every column

    def grid(self, seed: int, losses: list[str], lost: dict[str, list[str]]) -> SeedGrid:
        """The seed's grid: the original's row, then a row per loss; a checkpoint missing or damaged
        on disk is named in ``lost`` under its loss."""
        rows = [GridRow("original", [self.original] * len(self.iterations))]
        for loss in losses:
            cells = [self.cell(loss, seed, iteration, lost[loss]) for iteration in self.iterations]
            rows.append(GridRow(loss, cells, describe_status(self.runs[(loss, seed)])))
        return SeedGrid(seed, rows)

    def cell(self, loss: str, seed: int, iteration: int, lost: list[str]) -> Cell:
        """The checkpoint's cell, its images written; or the problem that keeps it from playing."""
        folder, clip = self.folder, self.clip
        cell = Cell(f"{clip}, {loss}, seed {seed}, iteration {iteration}")
        wav = folder.checkpoint(clip, loss, seed, iteration)
        audio = read_audio_file(wav) if iteration in self.recorded[(loss, seed)] else None
        if audio is None:
            cell.problem = ("not reached" if iteration not in self.recorded[(loss, seed)]
                            else "damaged" if wav.exists() else "missing")
            if cell.problem != "not reached":
                lost.append(f"{folder.relative(wav)} is {cell.problem}")
            return cell
        db = log_spectrogram_db(audio, self.sample_rate)[2]
        image = folder.checkpoint_image(clip, loss, seed, iteration)
        error_image = folder.checkpoint_image(clip, loss, seed, iteration, error=True)
        reference_max_db = self.original_db.max()
        save_spectrogram(db, reference_max_db, image)
        save_error_spectrogram(db, self.original_db, reference_max_db, error_image)
        cell.audio, cell.image = folder.link(wav), folder.link(image)
        cell.error_image = folder.link(error_image)
        return cell

    def loss_row(self, loss: str, seeds: list[int], lost: list[str],
                 damaged: list[DamagedRecord]) -> tuple[LossStatus, list[np.ndarray]]:
        """The loss's status over its seeds (naming the checkpoints ``lost``) and its seeds' loss
        curves; a damaged history is left out, named in the status and added to ``damaged``."""
        status = loss_status([self.runs[(loss, seed)] for seed in seeds], seeds)
        if lost:
            status = f"{status}; but {', '.join(lost)}"
        first = self.runs[(loss, seeds[0])]
        row = LossStatus(loss, status, first.final_loss, first.seconds)
        curves = []
        for seed in seeds:
            try:
                curve = self.folder.read_losses(self.clip, loss, seed)
            except DamagedRecord as error:
                damaged.append(error)
                row.status += f"; but {self.folder.relative(error.path)} is damaged (its curve is left out)"
                continue
            if curve is not None and len(curve):
                curves.append(curve)
        return row, curves


def build_report(run_dir: str | Path) -> Path:
    """Write the page (and its images) for the run in ``run_dir``; return its path."""
    run_dir = Path(run_dir)
    from ..measures.claims import claims_matrix, claims_table
    from ..run.folder import RunFolder

    config, statuses = read_run(run_dir)
    damaged: list[DamagedRecord] = []  # records the page is built without; named once it is written
    try:
        metric_rows = RunFolder(run_dir).read_metrics(config)
    except DamagedRecord as error:
        metric_rows, damaged = [], [error]
    colours = {loss: LOSS_COLOURS[i % len(LOSS_COLOURS)] for i, loss in enumerate(config.losses)}
    run = PageRun(run_dir, config, statuses, metric_rows, colours, damaged)
    clips = [collect_clip(run, clip) for clip in config.clip_names]
    claims = claims_table(metric_rows, config.losses) if metric_rows else []
    matrix_clips, matrix = claims_matrix(claims)
    unfinished = [f"{c.name}/{s.name}" for c in clips for s in c.statuses if s.status != "finished"]
    page = templates().get_template("run_page.html").render(
        config=config,
        clips=clips,
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        run_name=run_dir.resolve().name,
        unfinished=unfinished,
        damaged=[str(error) for error in damaged],
        claims=claims,
        matrix=matrix,
        matrix_clips=matrix_clips,
        colours=colours,
        seeds=config.seeds,
        listening=collect_listening(RunFolder(run_dir)),
        spectrogram_stops=colour_stops(SPECTROGRAM_COLOURS),
        error_stops=colour_stops(ERROR_COLOURS),
        dynamic_range_db=DYNAMIC_RANGE_DB,
        error_range_db=ERROR_RANGE_DB,
        duration=config.window / config.sample_rate,
    )
    path = RunFolder(run_dir).page
    atomic_write_text(path, page)
    if damaged:
        more = f" (and {len(damaged) - 1} more damaged record(s), named on the page)" if len(damaged) > 1 else ""
        raise PageWithoutDamaged(f"{damaged[0]}{more}; the page {path} was rebuilt without it")
    return path


class PageWithoutDamaged(UserError):
    """The page was written, but without what a damaged record held; the message names the record."""
