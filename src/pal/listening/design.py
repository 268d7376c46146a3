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
import soundfile
from scipy import signal

from ..audio import float_wav_bytes
from ..errors import UserError

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
    """The stimuli of every clip of the run at ``checkpoint`` (default: the last), first seed."""
    from ..runfolder import RunFolder

    if mode not in MODES:
        raise UserError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    folder = RunFolder(run_dir)
    config = folder.read_config()
    checkpoints = config.checkpoints()
    checkpoint = checkpoints[-1] if checkpoint is None else checkpoint
    if checkpoint not in checkpoints:
        raise UserError(f"no checkpoint {checkpoint} in this run; it has {', '.join(map(str, checkpoints))}")
    losses = _chosen_losses(config.losses, mode, compare)
    seed, sample_rate = config.seeds[0], config.sample_rate
    clips = []
    for clip in config.clip_names:
        reference = _read(folder.original(clip))
        generated = {}
        for loss in losses:
            path = folder.checkpoint(clip, loss, seed, checkpoint)
            if not path.is_file():
                raise UserError(f"{clip}/{loss} has no checkpoint {checkpoint} (is the run finished?)")
            generated[loss] = _read(path)
        if mode == "mushra":
            generated = {REFERENCE: reference, ANCHOR: low_pass_anchor(reference, sample_rate), **generated}
        reference, generated = level_matched(reference, generated)
        clips.append(ClipStimuli(
            clip, float_wav_bytes(reference, sample_rate),
            {name: float_wav_bytes(x, sample_rate) for name, x in generated.items()},
        ))
    return Stimuli(run_dir, mode, checkpoint, sample_rate, clips)


def _chosen_losses(losses: list[str], mode: str, compare: list[str] | None) -> list[str]:
    if compare is None:
        return losses if mode == "mushra" else losses[:2]
    unknown = [name for name in compare if name not in losses]
    if unknown:
        raise UserError(f"this run has no loss {unknown[0]!r}; it has {', '.join(losses)}")
    if mode == "preference" and len(compare) != 2:
        raise UserError(f"preference mode compares exactly two losses, got {len(compare)}")
    if len(set(compare)) != len(compare):
        raise UserError(f"--compare names a loss twice: {', '.join(compare)}")
    return compare


def _read(path: Path) -> np.ndarray:
    samples, _ = soundfile.read(str(path), dtype="float64", always_2d=False)
    return samples
