"""FIR filter bank design: one band-pass filter per auditory band (the post's design)."""

from __future__ import annotations

import numpy as np
from scipy import signal

from .scales import band_centres_hz, erb_hz

GAUSSIAN_POINTS = 100
GAUSSIAN_STD = 3.0


def nyquist_hz(sample_rate: float) -> float:
    """Half the sample rate, as the post's code takes it: an integral rate is halved by integer
    division (zounds 1.57.0's ``SampleRate.nyquist`` is ``samples_per_second // 2``), so at the
    post's 11025 Hz the top band and the filter design's frequency axis end at 5512 Hz, not 5512.5.
    That half hertz moves the post's loss by up to 2e-4 (``tests/library/test_zounds_golden.py``).

    >>> nyquist_hz(11025), nyquist_hz(44100), nyquist_hz(22050.5)
    (5512.0, 22050.0, 11025.25)
    """
    if float(sample_rate).is_integer():
        return float(int(sample_rate) // 2)
    return sample_rate / 2.0


def band_edges_hz(centres_hz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each band spans one ERB centred on its centre frequency."""
    half_width = erb_hz(centres_hz) / 2.0
    return centres_hz - half_width, centres_hz + half_width


def design_band_filter(start_hz: float, stop_hz: float, sample_rate: float, taps: int) -> np.ndarray:
    """One band-pass FIR: ``firwin2`` with a Gaussian-shaped gain over ``[start, stop)``.

    The desired response is 0 at DC, a Gaussian window (100 points, std 3) spread evenly over
    ``[max(0, start), min(nyquist, stop))``, and 0 at Nyquist: the post's design.
    """
    nyquist = nyquist_hz(sample_rate)
    grid = np.linspace(max(0.0, start_hz), min(nyquist, stop_hz), GAUSSIAN_POINTS, endpoint=False)
    freqs = np.concatenate([[0.0], grid / nyquist, [1.0]])
    # firwin2 refuses a repeated 0 (bands whose ERB reaches below DC) and wants the grid strictly
    # inside [0, 1]; nudge the offending points by machine epsilon.
    eps = np.finfo(np.float64).eps
    if freqs[1] <= 0.0:
        freqs[1] = eps
    if freqs[-2] >= 1.0:
        freqs[-2] = 1.0 - eps
    gains = np.concatenate([[0.0], signal.windows.gaussian(GAUSSIAN_POINTS, GAUSSIAN_STD), [0.0]])
    return signal.firwin2(taps, freqs, gains)


def filter_bank(
    sample_rate: float,
    n_bands: int = 512,
    taps: int = 512,
    low_hz: float = 1.0,
    high_hz: float | None = None,
    scale: str = "bark",
) -> tuple[np.ndarray, np.ndarray]:
    """Design the bank: returns ``(filters, band_centres_hz)``.

    Shape:
        filters: ``(n_bands, taps)``, float64; band_centres_hz: ``(n_bands,)``.

    >>> filters, centres = filter_bank(11025, n_bands=8, taps=64)
    >>> filters.shape, centres.shape
    ((8, 64), (8,))
    """
    if taps < 3:
        raise ValueError(f"taps must be at least 3, got {taps}")
    nyquist = nyquist_hz(sample_rate)
    high_hz = nyquist if high_hz is None else high_hz
    if high_hz > nyquist:
        raise ValueError(f"high_hz {high_hz} is above the Nyquist frequency {nyquist}")
    centres = band_centres_hz(low_hz, high_hz, n_bands, scale)
    starts, stops = band_edges_hz(centres)
    filters = np.stack([design_band_filter(a, b, sample_rate, taps) for a, b in zip(starts, stops)])
    return filters, centres
