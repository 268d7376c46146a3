"""What every listening test is made of: a clip's screen (its reference and the conditions to rate,
as WAV bytes), the 3.5 kHz anchor, level matching, the losses a test compares, and the checked
reading of every WAV it plays. :mod:`pal.listening.design` builds a run's test from these,
:mod:`pal.listening.codec` a codec run's.

MUSHRA (ITU-R BS.1534-3) rates, per clip, a hidden copy of the reference, a low-pass anchor made
from it and each loss's sound. Preference mode plays two losses' sounds. Every stimulus is held in
memory as WAV bytes: the server maps opaque tokens to these, so no part of a request ever becomes
a file-system path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import signal

from ..core.audio import AudioError, float_wav_bytes, read_audio
from ..core.errors import UserError
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
    title: str | None = None  # what raters are told it is (a codec's test file and its group); None: nothing


@dataclass
class Stimuli:
    run_dir: Path
    mode: str
    checkpoint: int
    sample_rate: int
    clips: list[ClipStimuli]
    # A codec run's setting that was rated (its width, and its training data as the folder names it:
    # ``all``, ``30s``); None for a pal run, whose only setting is the checkpoint.
    width: int | None = None
    train_seconds: str | None = None

    @property
    def rated_conditions(self) -> list[str]:
        return list(self.clips[0].conditions) if self.clips else []

    @property
    def kind(self) -> str:
        """``codec`` for a codec run's test, ``run`` for a pal run's."""
        return "run" if self.width is None else "codec"

    @property
    def note(self) -> str:
        return setting_note(self.checkpoint, self.width, self.train_seconds)


def setting_note(checkpoint: int, width: int | None = None, train_seconds: str | None = None) -> str:
    """What a test rated, as its results name it: ``iteration 250`` for a run, ``width 16, all data,
    step 150`` for a codec run."""
    if width is None:
        return f"iteration {checkpoint}"
    return f"width {width}, {train_seconds} data, step {checkpoint}"


@dataclass(frozen=True)
class Expected:
    """What a WAV the test plays must be: mono, at ``rate``, ``length`` samples, finite. ``whose_rate``
    and ``whose_length`` say where those come from in a refusal (``the run's``, ``the run's window of``)."""

    rate: int
    length: int
    whose_rate: str
    whose_length: str


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


def clip_stimuli(name: str, reference: np.ndarray, generated: dict[str, np.ndarray], mode: str,
                 sample_rate: int, title: str | None = None) -> ClipStimuli:
    """One clip's screen: in MUSHRA the hidden reference and the anchor before the generations,
    everything level-matched to the reference, as WAV bytes."""
    if mode == "mushra":
        generated = {REFERENCE: reference, ANCHOR: low_pass_anchor(reference, sample_rate), **generated}
    reference, generated = level_matched(reference, generated)
    return ClipStimuli(name, float_wav_bytes(reference, sample_rate),
                       {condition: float_wav_bytes(x, sample_rate) for condition, x in generated.items()}, title)


def chosen_losses(losses: list[str], mode: str, compare: list[str] | None) -> list[str]:
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


def why_missing(status, what: str, at: str) -> str:
    """Why the file of a ``what`` (a run, a model) with ``status`` (a run's or model's record, or
    None) is missing: not finished, failed (at which ``at``, and why), or removed."""
    if status is None or status.status == "running":
        return f"its {what} is not finished"
    if status.status == "failed":
        reason = one_line(" ".join(str(status.reason).split()))  # a loss's own message may span lines
        return f"its {what} failed at {at} {status.stopped_at}: {reason}"
    return f"the file was removed after its {what} finished"


def instead(losses: list[str], incomplete: set[str], mode: str) -> str:
    """``rate the other losses with --compare a,b, or `` when the losses without a missing file
    fill the test; else nothing."""
    complete = [name for name in losses if name not in incomplete]
    usable = complete[:2] if mode == "preference" else complete
    enough = len(usable) == 2 if mode == "preference" else bool(usable)
    return f"rate the other losses with --compare {','.join(usable)}, or " if enough else ""


def read_checked(path: Path, expected: Expected, advice: str) -> np.ndarray:
    """The samples of a WAV as pal wrote it, if it is what ``expected`` says; else one line naming
    the file and ``advice``."""
    try:
        samples, rate = read_audio(path)  # a missing, empty, truncated or undecodable file is named
        problem = _unlike(samples, rate, expected)
        if problem:
            raise AudioError(f"{path}: not what pal wrote ({problem})")
    except AudioError as error:
        raise AudioError(f"{error}; {advice}") from None
    return samples[:, 0]


def _unlike(samples: np.ndarray, rate: int, expected: Expected) -> str | None:
    """How ``samples`` differ from what the test expects (mono, its rate and length, finite)."""
    if samples.shape[1] != 1:
        return f"{samples.shape[1]} channels, not 1"
    if rate != expected.rate:
        return f"{rate} Hz, not {expected.whose_rate} {expected.rate} Hz"
    if samples.shape[0] != expected.length:
        return f"{samples.shape[0]} samples, not {expected.whose_length} {expected.length}"
    if not np.isfinite(samples).all():
        return "samples that are not finite"
    return None
