"""The measures computed by formula: a generation against its original.

All take 1-D numpy arrays at the same sample rate. Plain numpy and scipy, except STOI and PESQ,
which come from ``pystoi`` and ``pesq``, imported only when asked for. Each is declared, with its
key, label, unit and direction, in :mod:`pal.measures.registry`; the judges (CDPAM) are in
:mod:`pal.measures.judges`.

| measure | the post's claim it tests |
|---|---|
| :func:`snr_db` | overall fidelity |
| :func:`log_spectral_distance_db` per band | "crisper mid and high frequencies" |
| :func:`multi_resolution_stft_distance` | overall spectral fidelity, the peer losses' own yardstick |
| :func:`noise_floor_db` | "less noise" |
| :func:`stoi`, :func:`pesq_wideband` | "quicker convergence on something intelligible" (speech) |
"""

from __future__ import annotations

import math

import numpy as np
from scipy import signal

LSD_WINDOW = 512  # 46 ms at 11025 Hz
LSD_HOP = 128
# Band edges of the "crisper highs" claim: low < 500 Hz, mid 500-2500 Hz, high 2500 Hz-Nyquist.
BANDS_HZ = {"low": (0.0, 500.0), "mid": (500.0, 2500.0), "high": (2500.0, math.inf)}
MRSTFT_SIZES = (256, 512, 1024)  # 75 % overlap each
NOISE_FLOOR_BELOW_PEAK_DB = 40.0
PESQ_RATE = 16000  # wideband PESQ (ITU-T P.862.2) is defined at 16 kHz


def _power_spectrogram(x: np.ndarray, sample_rate: float, window: int, hop: int) -> tuple[np.ndarray, np.ndarray]:
    freqs, _, stft = signal.stft(x, fs=sample_rate, window="hann", nperseg=window, noverlap=window - hop,
                                 boundary=None, padded=False)
    return freqs, np.abs(stft) ** 2


def snr_db(original: np.ndarray, generated: np.ndarray) -> float:
    """``10 log10(sum x^2 / sum (x - y)^2)``; infinite for a perfect copy."""
    error = np.sum((np.asarray(original, float) - np.asarray(generated, float)) ** 2)
    power = np.sum(np.asarray(original, float) ** 2)
    return math.inf if error == 0 else 10.0 * math.log10(power / error)


def log_spectral_distance_db(original: np.ndarray, generated: np.ndarray, sample_rate: float) -> dict[str, float]:
    """Log-spectral distance, overall and per band: the mean over frames of the RMS dB difference.

    Power spectra from a Hann STFT (512 samples, hop 128), floored at 100 dB below the original's
    peak so that silence compares as silence rather than as minus infinity.
    """
    freqs, reference = _power_spectrogram(np.asarray(original, float), sample_rate, LSD_WINDOW, LSD_HOP)
    _, estimate = _power_spectrogram(np.asarray(generated, float), sample_rate, LSD_WINDOW, LSD_HOP)
    floor = reference.max() * 1e-10
    difference = 10.0 * np.log10(estimate + floor) - 10.0 * np.log10(reference + floor)
    distances = {"overall": float(np.mean(np.sqrt(np.mean(difference ** 2, axis=0))))}
    for band, (low, high) in BANDS_HZ.items():
        rows = (freqs >= low) & (freqs < high)
        distances[band] = float(np.mean(np.sqrt(np.mean(difference[rows] ** 2, axis=0))))
    return distances


def multi_resolution_stft_distance(original: np.ndarray, generated: np.ndarray) -> float:
    """Mean over FFT sizes 256, 512 and 1024 (hop a quarter) of spectral convergence plus log-magnitude L1.

    Spectral convergence ``||Y| - |X|||_F / ||X|||_F`` and ``mean |log |Y| - log |X||``, the terms of
    Yamamoto et al. (2020), "Parallel WaveGAN", eq. 4-6.
    """
    total = 0.0
    for size in MRSTFT_SIZES:
        _, reference = _power_spectrogram(np.asarray(original, float), 1.0, size, size // 4)
        _, estimate = _power_spectrogram(np.asarray(generated, float), 1.0, size, size // 4)
        x, y = np.sqrt(reference), np.sqrt(estimate)
        convergence = np.linalg.norm(y - x) / max(np.linalg.norm(x), 1e-12)
        log_magnitude = np.mean(np.abs(np.log(y + 1e-7) - np.log(x + 1e-7)))
        total += convergence + log_magnitude
    return total / len(MRSTFT_SIZES)


def noise_floor_db(original: np.ndarray, generated: np.ndarray, sample_rate: float) -> float:
    """The generation's energy where the original is quiet, in dB relative to the original's total.

    Quiet: the time-frequency cells (Hann STFT, 512 samples, hop 128) where the original's power
    is more than 40 dB below its peak cell. NaN when the original has no such cell.
    """
    _, reference = _power_spectrogram(np.asarray(original, float), sample_rate, LSD_WINDOW, LSD_HOP)
    _, estimate = _power_spectrogram(np.asarray(generated, float), sample_rate, LSD_WINDOW, LSD_HOP)
    quiet = reference < reference.max() * 10.0 ** (-NOISE_FLOOR_BELOW_PEAK_DB / 10.0)
    if not quiet.any():
        return math.nan
    leaked = estimate[quiet].sum()
    return -math.inf if leaked == 0 else 10.0 * math.log10(leaked / reference.sum())


def stoi(original: np.ndarray, generated: np.ndarray, sample_rate: float) -> float:
    """Short-time objective intelligibility, 0 to 1 (Taal et al., 2011, via ``pystoi``)."""
    from pystoi import stoi as pystoi_stoi

    return float(pystoi_stoi(np.asarray(original, float), np.asarray(generated, float), int(sample_rate), extended=False))


def pesq_wideband(original: np.ndarray, generated: np.ndarray, sample_rate: float) -> float:
    """Wideband PESQ, MOS-LQO about 1.0 to 4.64 (ITU-T P.862.2, via ``pesq``), after resampling to 16 kHz.

    NaN when PESQ cannot score the pair (it finds no utterance in silence or in noise).
    """
    import soxr
    from pesq import pesq as pesq_score
    from pesq.cypesq import PesqError

    reference = soxr.resample(np.asarray(original, float), sample_rate, PESQ_RATE)
    degraded = soxr.resample(np.asarray(generated, float), sample_rate, PESQ_RATE)
    try:
        return float(pesq_score(PESQ_RATE, reference, degraded, "wb"))
    except PesqError:
        return math.nan
