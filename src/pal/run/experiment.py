"""The 2018 experiment: one generator per (clip, loss), all trained at once, into a run folder.

The folder's layout is in :mod:`pal.run.folder`. Everything the user can get
wrong is checked before the folder is touched; a run killed at any moment resumes from its last
saved state when the same command runs again, and ends bit-identical to an uninterrupted one.
"""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from perceptual_audio_loss import __version__

from ..core.audio import AudioError, Clip, load_clip, prepare_clip, read_audio, write_wav
from ..clips import BUILTIN_CLIPS, builtin_clip
from .config import ExperimentConfig, full_float32, resolve_device
from ..core.errors import UserError
from ..core.files import failure
from ..losses.guard import GuardedLoss, UserLossFailed, blame, unguarded
from ..measures.claims import claims_table, format_table
from ..measures.judges import CDPAM_JUDGE
from ..measures.registry import CDPAM
from ..losses.registry import filtering_method
from ..losses.specs import build_loss, probe
from .folder import RunFolder, RunStatus, fingerprint, run_label, open_run_folder, write_json, write_losses_csv
from .sources import audio_under, no_audio_message, unique_names
from ..core.locks import writing
from .train import BatchResult, Diverged, RunSpec, TrainHooks, TrainSettings, train_batched


@dataclass
class ExperimentOutcome:
    report: Path
    failed: list[str]  # "<run label>: reason" for every run that stopped early
    resumed_from: int  # the iteration a resumed run continued after; 0 for a new one
    already_finished: bool = False
    claims: str = ""  # the claims table, as text


def expand_sources(sources: list[str]) -> list[str]:
    """Built-in clip names and files pass through; a folder becomes the audio files under it."""
    expanded = []
    for source in sources:
        path = Path(source)
        if path.is_dir():
            found = [str(p) for p in audio_under(path)]
            if not found:
                raise UserError(no_audio_message(f"{source}: folder holds"))
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
            # The credit travels with the clip onto the page, as the recordings' licences ask.
            described = f"built-in clip {source!r} ({BUILTIN_CLIPS[source].credit.rstrip('.')})"
            clips.append(prepare_clip(source, samples, rate, described, **options))
        else:
            clips.append(load_clip(source, **options))
    for clip, name in zip(clips, unique_names([clip.name for clip in clips])):
        clip.name = name
    return clips


class RunProgress:
    """All runs' progress: one bar each on a terminal, a plain line every tenth of the way elsewhere."""

    def __init__(self, labels: list[str], iterations: int, enabled: bool):
        from tqdm import tqdm

        self.labels = labels
        self.iterations = iterations
        self.enabled = enabled
        self.terminal = enabled and sys.stderr.isatty()
        self.next_line = 0
        width = max(len(label) for label in labels)
        self.bars = [
            tqdm(total=iterations, desc=label.ljust(width), position=i, unit="it", leave=True)
            for i, label in enumerate(labels)
        ] if self.terminal else []

    def start(self, iteration: int) -> None:
        for bar in self.bars:
            bar.update(iteration - bar.n)
        self.next_line = iteration + max(1, self.iterations // 10)

    def update(self, iteration: int, history: torch.Tensor) -> None:
        if not self.enabled:
            return
        latest = history[-1].tolist()
        for bar, value in zip(self.bars, latest):
            bar.update(iteration - bar.n)
            bar.set_postfix_str(f"loss {value:.4g}", refresh=False)
        if not self.terminal and (iteration >= self.next_line or iteration == self.iterations):
            self.next_line = iteration + max(1, self.iterations // 10)
            losses = ", ".join(f"{label} {value:.4g}" for label, value in zip(self.labels, latest))
            print(f"iteration {iteration}/{self.iterations}: {losses}", file=sys.stderr, flush=True)

    def close(self) -> None:
        for bar in self.bars:
            bar.close()


def run_experiment(config: ExperimentConfig, out: Path, force: bool = False, progress: bool = True,
                   clips: list[Clip] | None = None, page: Callable[[Path], Path] | None = None) -> ExperimentOutcome:
    """Validate everything, then train every (clip, loss) at once and write the run folder and page.

    On a folder holding an unfinished run of the same configuration, continue it. ``clips``, when
    given, are the prepared targets (a sweep's windows), used instead of loading ``config.clips``.
    ``page`` writes the page of a run folder and returns its path (``pal run`` passes
    :func:`pal.report.page.build_report`); without it no page is written (``pal report`` builds it later).
    """
    config.validate()
    if config.cdpam and not CDPAM_JUDGE.installed():  # the run goes on, without that measure
        print(CDPAM_JUDGE.not_installed, file=sys.stderr, flush=True)
        config = replace(config, cdpam=False)
    clips = load_clips(config) if clips is None else clips
    report = page if page is not None else (lambda out: RunFolder(out).page)
    device = resolve_device(config.device)
    losses = {}
    for spec in config.loss_specs():
        losses[spec.label] = build_loss(spec, config.sample_rate, config.window)
        probe(losses[spec.label], spec, config.window, config.sample_rate)
    identity = config.identity() | {"targets": {c.name: fingerprint(c.samples) for c in clips}}
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a folder")
    existed = out.exists()
    checked = CheckedRun(config, out, clips, losses, device, identity, report)
    # One writer: a second pal run on this folder is refused. CUDA trains in float32, as the CPU.
    with writing(out, "run"), full_float32():
        return _run_locked(checked, force, progress, created=not existed)


@dataclass(frozen=True)
class CheckedRun:
    """What :func:`run_experiment` checked before touching the folder, and what the run needs of it."""

    config: ExperimentConfig
    out: Path
    clips: list[Clip]
    losses: dict[str, nn.Module]  # by label, built and probed
    device: torch.device
    identity: dict  # what the folder must hold to be resumed: the configuration and the targets' fingerprints
    report: Callable[[Path], Path]  # writes the page (or only names it) and returns its path

    def runs(self) -> list[RunSpec]:
        """Every (clip, loss, seed), in the order of the run folder and the training."""
        config = self.config
        return [RunSpec(c, name, seed) for c in range(len(self.clips)) for name in config.losses
                for seed in config.seeds]

    def key(self, run: RunSpec) -> tuple[str, str, int]:
        """The run's (clip name, loss, seed), as the run folder names it."""
        return self.clips[run.target].name, run.loss, run.seed


def _run_locked(checked: CheckedRun, force: bool, progress: bool, created: bool) -> ExperimentOutcome:
    out, config = checked.out, checked.config
    try:
        mode = open_run_folder(out, checked.identity, force)
    except OSError as error:
        raise UserError(f"{out}: cannot prepare the run folder ({error.strerror or error})") from None

    runs = checked.runs()
    folder = RunFolder(out)
    run_dirs = [folder.run(*checked.key(run)) for run in runs]
    running = [RunStatus(*checked.key(run)) for run in runs]
    if mode == "finished":
        return _finished_again(checked)
    _write_records(checked, running, run_dirs, created=created)
    state = folder.load_state() if mode == "resume" else None
    if state is not None:
        _verify_kept_checkpoints(folder, runs, checked.clips)
    results, seconds = _train(checked, runs, running, state, progress)
    try:
        statuses = _finish(out, config, checked.clips, runs, run_dirs, results, seconds)
        return ExperimentOutcome(checked.report(out), _failed(statuses), state["iteration"] if state else 0, False,
                                 _claims_text(out, config))
    except OSError as error:
        raise UserError(f"{out}: writing the run's results failed ({failure(error, out)}); the training "
                        "is saved: run the same command again to finish") from None


def _finished_again(checked: CheckedRun) -> ExperimentOutcome:
    """The same command on a finished run: score it with a judge asked for since, and rebuild its page."""
    out, config = checked.out, checked.config
    folder = RunFolder(out)
    if config.cdpam and not any(row["metric"] == CDPAM.key for row in folder.read_metrics()):
        # The judge asked for after the run: its checkpoints are on disk, so score them now.
        write_metrics(out, config, folder.read_runs())
    try:
        page = checked.report(out)
    except OSError as error:
        raise UserError(f"{out}: rebuilding the page failed ({failure(error, out)}); the finished run is kept: "
                        "run the same command again to rebuild it") from None
    return ExperimentOutcome(page, _failed(folder.read_runs()), config.iterations, True, _claims_text(out, config))


def _train(checked: CheckedRun, runs: list[RunSpec], running: list[RunStatus], state: dict | None,
           progress: bool) -> tuple[list[BatchResult], float]:
    """Train every run (continuing ``state`` on a resume), writing checkpoints and states as it goes;
    return the results and the seconds the training took. A user's loss that fails is recorded in
    the folder; an interruption rebuilds the page to show it."""
    out, config, losses = checked.out, checked.config, checked.losses
    folder = RunFolder(out)
    save_checkpoint = _checkpoint_writer(checked, runs)
    targets = torch.from_numpy(np.stack([clip.samples for clip in checked.clips])).unsqueeze(1)
    bars = RunProgress([run_label(*checked.key(run)) for run in runs], config.iterations, progress)
    bars.start(state["iteration"] if state else 0)
    for loss in losses.values():
        if isinstance(loss, GuardedLoss):
            loss.start(state["iteration"] + 1 if state else 1)
    started = time.perf_counter()
    try:
        settings = TrainSettings(config.iterations, config.checkpoint_every, checked.device,
                                 learning_rate=config.learning_rate, betas=config.betas, width=config.width)
        hooks = TrainHooks(on_progress=bars.update, on_checkpoint=save_checkpoint, on_save=folder.state_saver())
        results = train_batched(targets, runs, losses, settings, hooks, resume=state)
    except (Exception, SystemExit, GeneratorExit) as error:  # a Ctrl-C is not the loss's: below
        loss_failure = blame(error, losses.values())
        if loss_failure is not None:  # a user's loss failed: its runs are recorded so, the rest kept
            _record_loss_failure(out, running, loss_failure, checked.report)
            raise loss_failure from None
        if isinstance(error, OSError):
            raise UserError(f"{out}: writing the run failed ({failure(error, out)}); what was saved is kept: "
                            "run the same command again to resume") from None
        raise
    except KeyboardInterrupt:
        bars.close()
        try:
            checked.report(out)  # the page shows the runs as interrupted, with what they wrote so far
        except OSError:
            pass  # no page then; the interruption is what to report
        raise
    finally:
        bars.close()
    return results, round(time.perf_counter() - started, 3)


def _checkpoint_writer(checked: CheckedRun, runs: list[RunSpec]) -> Callable[[int, np.ndarray, list[bool]], None]:
    """What writes the checkpoints of the runs still training (``on_checkpoint`` of :func:`train_batched`)."""
    folder, sample_rate = RunFolder(checked.out), checked.config.sample_rate

    def save_checkpoint(iteration: int, audio: np.ndarray, running: list[bool]) -> None:
        # Peak-normalised, as the post saved its checkpoints: a listener (and the measures)
        # compare shapes, not the levels a scale-free loss like cosine similarity leaves open.
        # The raw peak is kept beside it, so the raw output is the file times that peak.
        for run, samples, still in zip(runs, audio, running):
            if still:
                peak = float(np.max(np.abs(samples)))
                where = checked.key(run)
                write_wav(folder.checkpoint(*where, iteration), samples / peak if peak > 0 else samples, sample_rate)
                write_json(folder.peaks(*where), folder.read_peaks(*where) | {str(iteration): peak})

    return save_checkpoint


def _record_loss_failure(out: Path, running: list[RunStatus], loss_failure: UserLossFailed, report) -> None:
    """The runs' statuses after a user's loss failed: its runs failed at that iteration, with the reason;
    the other runs stay as they were (interrupted: the same command resumes them). The page is
    rebuilt to show it; nothing written before is touched."""
    folder = RunFolder(out)
    statuses = [replace(status, status="failed", reason=loss_failure.reason, stopped_at=loss_failure.iteration,
                        checkpoints=folder.checkpoints_on_disk(*status.key))
                if status.loss == loss_failure.label else status for status in running]
    try:
        folder.write_runs(statuses)
        report(out)
    except (OSError, UserError):
        pass  # the loss's failure is what to report; the folder is as the last save left it


def _finish(out, config, clips, runs, run_dirs, results, seconds) -> list[RunStatus]:
    """Record every run's losses and status, then measure its checkpoints."""
    statuses = []
    for run, run_dir, result in zip(runs, run_dirs, results):
        write_losses_csv(RunFolder(out).losses(clips[run.target].name, run.loss, run.seed), result.losses)
        statuses.append(RunStatus(
            clip=clips[run.target].name, loss=run.loss, seed=run.seed,
            status="failed" if isinstance(result.outcome, Diverged) else "finished",
            reason=result.outcome.describe() if isinstance(result.outcome, Diverged) else None,
            stopped_at=result.outcome.iteration if isinstance(result.outcome, Diverged) else None,
            final_loss=result.losses[-1] if result.losses else None, seconds=seconds,
            checkpoints=RunFolder(out).checkpoints_on_disk(clips[run.target].name, run.loss, run.seed),
        ))
    write_metrics(out, config, statuses)
    RunFolder(out).write_runs(statuses)  # last: "finished" only once everything else is written
    return statuses


def _write_records(checked: CheckedRun, running: list[RunStatus], run_dirs: list[Path], created: bool) -> None:
    """Write the run's configuration, targets and statuses; again on a resume (they are the same).

    The configuration comes first: from then on the folder is a run this command can resume.
    On a write error a new folder this call created is removed, and the command refuses.
    """
    out, config, clips = checked.out, checked.config, checked.clips
    try:
        out.mkdir(parents=True, exist_ok=True)
        resolved = asdict(config) | {
            "clip_names": [c.name for c in clips],
            "clip_sources": {c.name: c.source for c in clips},
            "clip_offsets": {c.name: c.offset_samples for c in clips},
            "resolved_device": str(checked.device),
            "loss_methods": {name: filtering_method(unguarded(loss)) for name, loss in checked.losses.items()},
            "version": __version__,
            "identity": checked.identity,
        }
        folder = RunFolder(out)
        write_json(folder.config, resolved)
        for clip in clips:
            folder.clip(clip.name).mkdir(parents=True, exist_ok=True)
            write_wav(folder.original(clip.name), clip.samples, config.sample_rate)
        for run_dir in run_dirs:
            run_dir.mkdir(parents=True, exist_ok=True)
        folder.write_runs(running)
    except OSError as error:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise UserError(f"{out}: cannot write the run folder ({failure(error, out)})") from None


def _verify_kept_checkpoints(folder: RunFolder, runs, clips) -> None:
    """A resume keeps the checkpoints written before its saved state: each must still decode."""
    for run in runs:
        for saved in folder.checkpoints_on_disk(clips[run.target].name, run.loss, run.seed):
            path = folder.checkpoint(clips[run.target].name, run.loss, run.seed, saved)
            try:
                read_audio(path)
            except AudioError:
                raise UserError(f"{path}: damaged checkpoint; the run cannot be resumed around it: pass --force "
                                "to start it again (or delete the file to have the page mark it missing)") from None


def _failed(statuses: list[RunStatus]) -> list[str]:
    return [f"{status.label}: {status.reason}" for status in statuses if status.status == "failed"]


def write_metrics(out: Path, config: ExperimentConfig, statuses: list[RunStatus]) -> list[dict]:
    """Measure every checkpoint against its original; write the metrics (one row per value)."""
    import soundfile

    from ..measures.registry import measure

    folder = RunFolder(out)
    rows = []
    originals = {}
    for status in statuses:
        clip, loss, seed = status.key
        if clip not in originals:
            originals[clip] = soundfile.read(str(folder.original(clip)), dtype="float64")[0]
        for iteration in status.checkpoints:
            path = folder.checkpoint(clip, loss, seed, iteration)
            generated = soundfile.read(str(path), dtype="float64")[0]
            values = measure(originals[clip], generated, config.sample_rate, speech=config.scores_speech(clip),
                             judges=config.judges())
            rows.extend(dict(clip=clip, loss=loss, seed=seed, iteration=iteration, metric=name, value=value)
                        for name, value in values.items())
    folder.write_metrics(rows)
    return rows


def _claims_text(out: Path, config: ExperimentConfig) -> str:
    rows = RunFolder(out).read_metrics()
    return format_table(claims_table(rows, config.losses), config.losses, len(config.seeds)) if rows else ""

