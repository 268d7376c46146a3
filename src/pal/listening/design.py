"""What a listening test plays: for each clip, the reference and the conditions to rate.

MUSHRA (ITU-R BS.1534-3) rates, per clip, a hidden copy of the reference, a low-pass anchor made
from it and each loss's generation at one checkpoint. Preference mode plays two losses' generations.
Every stimulus is held in memory as WAV bytes: the server maps opaque tokens to these, so no part
of a request ever becomes a file-system path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import signal

from ..core.audio import AudioError, float_wav_bytes, read_audio
from ..core.errors import UserError
from ..run.folder import RunFolder, RunRecord
from .text import one_line

REFERENCE = "reference"  # the hidden reference, rated like any condition
ANCHOR = "anchor-3.5kHz"
# ITU-R BS.1534-3, 5.1: the mandatory low-range anchor is the reference low-pass filtered at 3.5 kHz.
ANCHOR_CUTOFF_HZ = 3500.0
ANCHOR_TAPS = 255  # linear phase, so the anchor stays time-aligned with the reference
PEAK_LIMIT = 0.99
MODES = ("mushra", "preference")


@dataclass
class ClipStimuli:
    name: str
    reference: bytes
    conditions: dict[str, bytes]  # condition name -> WAV bytes


@dataclass
class Stimuli:
    run_dir: Path
    mode: str
    checkpoint: int
    sample_rate: int
    clips: list[ClipStimuli]

    @property
    def rated_conditions(self) -> list[str]:
        return list(self.clips[0].conditions) if self.clips else []


def low_pass_anchor(reference: np.ndarray, sample_rate: int) -> np.ndarray:
    """The reference through a zero-delay linear-phase FIR low-pass at 3.5 kHz."""
    if ANCHOR_CUTOFF_HZ >= sample_rate / 2:
        return reference.copy()
    taps = signal.firwin(ANCHOR_TAPS, ANCHOR_CUTOFF_HZ, fs=sample_rate)
    return signal.fftconvolve(reference, taps, mode="same")


def level_matched(reference: np.ndarray, others: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Every condition scaled to the reference's RMS, then the whole screen by one gain so no
    peak exceeds 0.99: loudness differences would otherwise bias the ratings (BS.1534-3, 5.2)."""
    target_rms = np.sqrt(np.mean(reference ** 2))
    scaled = {name: x * (target_rms / max(np.sqrt(np.mean(x ** 2)), 1e-12)) for name, x in others.items()}
    peak = max([np.abs(reference).max(), *(np.abs(x).max() for x in scaled.values())])
    gain = min(1.0, PEAK_LIMIT / max(peak, 1e-12))
    return reference * gain, {name: x * gain for name, x in scaled.items()}


def load_stimuli(run_dir: Path, mode: str = "mushra", checkpoint: int | None = None,
                 compare: list[str] | None = None) -> Stimuli:
    """The stimuli of every clip of the run at ``checkpoint`` (default: the last), first seed.

    Every file is read whole and checked before anything is served: a missing, truncated or
    undecodable WAV, or one that is not the run's window (mono, its rate and length, finite), is
    one line naming it (:class:`~pal.core.errors.UserError`), never a fragment served to raters.
    """
    if mode not in MODES:
        raise UserError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    folder = run_folder(run_dir)
    config, _, _ = folder.read_records()
    checkpoints = config.checkpoints()
    checkpoint = checkpoints[-1] if checkpoint is None else checkpoint
    if checkpoint not in checkpoints:
        raise UserError(f"no checkpoint {checkpoint} in this run; it has {', '.join(map(str, checkpoints))}")
    losses = _chosen_losses(config.losses, mode, compare)
    seed, sample_rate = config.seeds[0], config.sample_rate
    missing = _missing_checkpoints(folder, config, losses, checkpoint)
    if missing:
        raise UserError(_missing_message(folder, config, losses, checkpoint, missing, mode))
    clips = []
    for clip in config.clip_names:
        reference = _read(folder.original(clip), config, "the test needs every clip's original")
        generated = {loss: _read(folder.checkpoint(clip, loss, seed, checkpoint), config,
                                 f"leave {loss} out with --compare, or choose another --checkpoint")
                     for loss in losses}
        if mode == "mushra":
            generated = {REFERENCE: reference, ANCHOR: low_pass_anchor(reference, sample_rate), **generated}
        reference, generated = level_matched(reference, generated)
        clips.append(ClipStimuli(
            clip, float_wav_bytes(reference, sample_rate),
            {name: float_wav_bytes(x, sample_rate) for name, x in generated.items()},
        ))
    return Stimuli(run_dir, mode, checkpoint, sample_rate, clips)


def run_folder(run_dir: Path) -> RunFolder:
    """The run folder at ``run_dir``; one line for anything else (a sweep folder, a file, nothing)."""
    from ..run.sweep_folder import SHARDS, SWEEP_FILE

    run_dir = Path(run_dir)
    folder = RunFolder(run_dir)
    if folder.is_run():
        return folder
    if not run_dir.exists():
        raise UserError(f"{run_dir}: no such run folder")
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: a file, not a run folder")
    if (run_dir / SWEEP_FILE).is_file():
        shards = sorted(path for path in (run_dir / SHARDS).glob("*") if RunFolder(path).is_run())
        example = f"one of its shards, such as {shards[0]}" if shards else "its shards, once they have run"
        raise UserError(f"{run_dir}: a sweep folder, not a run folder; pal listen takes a run folder: {example}")
    folder.require()
    return folder


def _chosen_losses(losses: list[str], mode: str, compare: list[str] | None) -> list[str]:
    if compare is None:
        if mode == "preference" and len(losses) < 2:
            raise UserError(f"preference mode compares two losses; this run has only {', '.join(losses)} "
                            "(rate it against the reference and anchor in the default MUSHRA mode)")
        return losses if mode == "mushra" else losses[:2]
    if not compare:
        raise UserError("--compare names no loss")
    unknown = [name for name in compare if name not in losses]
    if unknown:
        raise UserError(f"this run has no loss {unknown[0]!r}; it has {', '.join(losses)}")
    if mode == "preference" and len(compare) != 2:
        raise UserError(f"preference mode compares exactly two losses, got {len(compare)}")
    if len(set(compare)) != len(compare):
        raise UserError(f"--compare names a loss twice: {', '.join(compare)}")
    return compare


def _missing_checkpoints(folder: RunFolder, config: RunRecord, losses: list[str],
                         checkpoint: int) -> list[tuple[str, str]]:
    """The (clip, loss) runs of the first seed with no file for ``checkpoint``."""
    seed = config.seeds[0]
    return [(clip, loss) for clip in config.clip_names for loss in losses
            if not folder.checkpoint(clip, loss, seed, checkpoint).exists()]


def _missing_message(folder: RunFolder, config: RunRecord, losses: list[str], checkpoint: int,
                     missing: list[tuple[str, str]], mode: str) -> str:
    """The first missing checkpoint, why it is missing (its run failed, or is not finished), and
    what would work instead."""
    seed = config.seeds[0]
    clip, loss = missing[0]
    status = {status.key: status for status in folder.read_runs()}.get((clip, loss, seed))
    if status is None or status.status == "running":
        why = "its run is not finished"
    elif status.status == "failed":
        reason = one_line(" ".join(str(status.reason).split()))  # a loss's own message may span lines
        why = f"its run failed at iteration {status.stopped_at}: {reason}"
    else:
        why = "the file was removed after its run finished"
    complete = [name for name in losses if name not in {loss for _, loss in missing}]
    usable = complete[:2] if mode == "preference" else complete
    enough = len(usable) == 2 if mode == "preference" else bool(usable)
    others = f"rate the other losses with --compare {','.join(usable)}, or " if enough else ""
    return (f"{folder.checkpoint(clip, loss, seed, checkpoint)}: missing ({why}); {len(missing)} checkpoint(s) "
            f"at iteration {checkpoint} missing in all; {others}choose another --checkpoint")


def _read(path: Path, config: RunRecord, advice: str) -> np.ndarray:
    """The samples of a WAV as pal wrote it for ``config``, or one line naming the file."""
    try:
        samples, rate = read_audio(path)  # a missing, empty, truncated or undecodable file is named
        problem = _unlike_the_run(samples, rate, config)
        if problem:
            raise AudioError(f"{path}: not what pal wrote ({problem})")
    except AudioError as error:
        raise AudioError(f"{error}; {advice}") from None
    return samples[:, 0]


def _unlike_the_run(samples: np.ndarray, rate: int, config: RunRecord) -> str | None:
    """How ``samples`` differ from a window of the run (mono, its rate and length, finite)."""
    if samples.shape[1] != 1:
        return f"{samples.shape[1]} channels, not 1"
    if rate != config.sample_rate:
        return f"{rate} Hz, not the run's {config.sample_rate} Hz"
    if samples.shape[0] != config.window:
        return f"{samples.shape[0]} samples, not the run's window of {config.window}"
    if not np.isfinite(samples).all():
        return "samples that are not finite"
    return None
