"""Reading clips into training targets, and writing audio.

A target is mono, at the experiment's sample rate, one window long and scaled to peak 1.
Everything a user can get wrong about a file is reported as an :class:`AudioError` whose
message is one line naming the file.
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
import soxr

from .errors import UserError
from .files import atomic_write_bytes

SAMPLE_RATE = 11025
WINDOW = 8192


class AudioError(UserError):
    """A clip that cannot be used, with a one-line reason naming it."""


@dataclass
class Clip:
    """A training target and where it came from."""

    name: str
    samples: np.ndarray  # (WINDOW,) float32, peak 1
    source: str
    offset_samples: int
    padded: bool = False


def read_audio(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Decode any file soundfile reads: returns ``(frames, channels)`` float64 and the rate."""
    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: no such file")
    if path.is_dir():
        raise AudioError(f"{path}: is a folder, not an audio file")
    if not os.access(path, os.R_OK):
        raise AudioError(f"{path}: not readable (permission denied)")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: empty file")
    check_wav_complete(path)
    try:
        samples, rate = soundfile.read(str(path), dtype="float64", always_2d=True)
    except PermissionError:
        raise AudioError(f"{path}: not readable (permission denied)") from None
    except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise AudioError(f"{path}: cannot decode as audio ({reason})") from None
    if samples.shape[0] == 0:
        raise AudioError(f"{path}: holds no samples")
    return samples, int(rate)


def check_wav_complete(path: Path) -> None:
    """Refuse a WAV whose ``data`` chunk is shorter than its header says.

    libsndfile silently reads what is there, so a file cut short (a copy interrupted, a full
    disk) would otherwise train on a fragment. Other formats are left to the decoder.
    """
    try:
        with open(path, "rb") as handle:
            header = handle.read(12)
            if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
                return
            size = path.stat().st_size
            while True:
                chunk = handle.read(8)
                if len(chunk) < 8:
                    return
                declared = int.from_bytes(chunk[4:], "little")
                if chunk[:4] == b"data":
                    available = size - handle.tell()
                    # 0 and 0xFFFFFFFF mark streamed WAVs whose length was never filled in.
                    if declared not in (0, 0xFFFFFFFF) and declared > available:
                        raise AudioError(
                            f"{path}: truncated WAV (its header promises {declared} bytes of audio, "
                            f"the file holds {available})"
                        )
                    return
                handle.seek(declared + (declared & 1), os.SEEK_CUR)
    except PermissionError:
        raise AudioError(f"{path}: not readable (permission denied)") from None


def to_mono(samples: np.ndarray) -> np.ndarray:
    """Average the channels of ``(frames, channels)`` audio."""
    return samples.mean(axis=1) if samples.ndim == 2 else samples


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Resample 1-D audio with soxr (very high quality)."""
    if from_rate == to_rate:
        return samples
    return soxr.resample(samples, from_rate, to_rate, quality="VHQ")


def take_window(
    samples: np.ndarray, length: int, offset: int | None = None, pad: bool = False, label: str = "clip"
) -> tuple[np.ndarray, int, bool]:
    """The ``length``-sample window at ``offset`` (default: the middle of the clip).

    A clip shorter than the window is refused unless ``pad``, which centres it in silence.
    Returns ``(window, offset, padded)``; a padded window's offset is negative (the silence before).
    """
    total = len(samples)
    if total < length:
        if not pad:
            raise AudioError(
                f"{label}: {total} samples is shorter than the {length}-sample window; "
                "give a longer clip or pass --pad to centre it in silence"
            )
        before = (length - total) // 2
        return np.pad(samples, (before, length - total - before)), -before, True
    if offset is None:
        offset = (total - length) // 2
    if not 0 <= offset <= total - length:
        raise AudioError(
            f"{label}: offset {offset} samples leaves no full {length}-sample window "
            f"(the clip has {total} samples, so the offset must be 0..{total - length})"
        )
    return samples[offset : offset + length], offset, False


def scale_to_peak(samples: np.ndarray, label: str = "clip") -> np.ndarray:
    """Scale so the largest absolute sample is 1; refuse silence and non-finite samples."""
    if not np.all(np.isfinite(samples)):
        raise AudioError(f"{label}: holds NaN or infinite samples")
    peak = np.max(np.abs(samples))
    if peak == 0.0:
        raise AudioError(f"{label}: the window is silent (all samples are zero); nothing to learn")
    return samples / peak


def prepare_clip(
    name: str,
    samples: np.ndarray,
    rate: int,
    source: str,
    sample_rate: int = SAMPLE_RATE,
    window: int = WINDOW,
    offset_seconds: float | None = None,
    pad: bool = False,
) -> Clip:
    """Mono, resample, window, scale: the target the generator learns."""
    mono = to_mono(np.asarray(samples, dtype=np.float64))
    if not np.all(np.isfinite(mono)):
        raise AudioError(f"{source}: holds NaN or infinite samples")
    mono = resample(mono, rate, sample_rate)
    offset = None if offset_seconds is None else int(round(offset_seconds * sample_rate))
    windowed, offset, padded = take_window(mono, window, offset, pad, label=source)
    return Clip(name, scale_to_peak(windowed, source).astype(np.float32), source, offset, padded)


def clip_name(path: Path) -> str:
    """A folder-safe name from a file name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", path.stem).strip("-.") or "clip"


def load_clip(path: str | os.PathLike, **options) -> Clip:
    """Read a file and prepare it as a target; ``options`` as for :func:`prepare_clip`."""
    samples, rate = read_audio(path)
    return prepare_clip(clip_name(Path(path)), samples, rate, str(path), **options)


def float_wav_bytes(samples: np.ndarray, sample_rate: int) -> bytes:
    """A mono 32-bit IEEE-float WAV file: RIFF header, ``fmt`` (format 3), ``fact``, ``data``.

    Written here rather than by libsndfile, whose float WAVs carry a PEAK chunk with the time of
    writing: identical samples must give identical bytes, or a resumed run could not be
    compared with an uninterrupted one byte for byte.
    """
    data = np.asarray(samples, dtype="<f4").reshape(-1).tobytes()
    frames = len(data) // 4
    fmt = struct.pack("<HHIIHHH", 3, 1, sample_rate, sample_rate * 4, 4, 32, 0)
    chunks = (b"fmt " + struct.pack("<I", len(fmt)) + fmt
              + b"fact" + struct.pack("<II", 4, frames)
              + b"data" + struct.pack("<I", len(data)) + data)
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks


def write_wav(path: str | os.PathLike, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """Write mono float32 WAV, atomically: the exact values, which browsers and soundfile read."""
    atomic_write_bytes(path, float_wav_bytes(samples, sample_rate))
