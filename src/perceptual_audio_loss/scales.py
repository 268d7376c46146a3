"""Auditory frequency scales, critical bandwidths and frequency weightings.

Plain numpy: these are design-time computations, done once when a loss is built.
"""

from __future__ import annotations

import numpy as np

SCALES = ("bark", "mel", "linear")
WEIGHTINGS = ("a", "none")


def hz_to_bark(hz):
    """Bark scale as ``6 asinh(f / 600)``.

    References
    ----------
    Schroeder, Atal & Hall (1979), "Optimizing digital speech coders by exploiting
    masking properties of the human ear", JASA 66(6); the form zounds' ``BarkScale`` uses.
    """
    return 6.0 * np.arcsinh(np.asarray(hz, dtype=np.float64) / 600.0)


def bark_to_hz(bark):
    """Inverse of :func:`hz_to_bark`."""
    return 600.0 * np.sinh(np.asarray(bark, dtype=np.float64) / 6.0)


def hz_to_mel(hz):
    """Mel scale as ``2595 log10(1 + f / 700)`` (O'Shaughnessy, 1987, "Speech Communication")."""
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def mel_to_hz(mel):
    """Inverse of :func:`hz_to_mel`."""
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


_TO_SCALE = {"bark": hz_to_bark, "mel": hz_to_mel, "linear": lambda hz: np.asarray(hz, float)}
_FROM_SCALE = {"bark": bark_to_hz, "mel": mel_to_hz, "linear": lambda x: np.asarray(x, float)}


def band_centres_hz(low_hz: float, high_hz: float, n_bands: int, scale: str = "bark") -> np.ndarray:
    """Centre frequencies evenly spaced on ``scale`` from ``low_hz`` to ``high_hz``, both included.

    >>> band_centres_hz(100.0, 1000.0, 3, scale="linear").tolist()
    [100.0, 550.0, 1000.0]
    """
    if scale not in _TO_SCALE:
        raise ValueError(f"unknown scale {scale!r}; choose one of {', '.join(SCALES)}")
    if not 0 <= low_hz < high_hz:
        raise ValueError(f"need 0 <= low_hz < high_hz, got {low_hz} and {high_hz}")
    if n_bands < 1:
        raise ValueError(f"n_bands must be at least 1, got {n_bands}")
    to_scale, from_scale = _TO_SCALE[scale], _FROM_SCALE[scale]
    return from_scale(np.linspace(to_scale(low_hz), to_scale(high_hz), n_bands))


def erb_hz(hz):
    """Equivalent rectangular bandwidth ``0.108 f + 24.7`` Hz.

    References
    ----------
    Glasberg & Moore (1990), "Derivation of auditory filter shapes from notched-noise data",
    Hearing Research 47: ERB = 24.7 (4.37 f/kHz + 1), i.e. 0.10794 f + 24.7 with f in Hz.
    """
    return 0.108 * np.asarray(hz, dtype=np.float64) + 24.7


def hz_to_erb_rate(hz):
    """ERB-rate (Cams): ``21.4 log10(4.37 f / 1000 + 1)``.

    References
    ----------
    Glasberg & Moore (1990), "Derivation of auditory filter shapes from notched-noise data",
    Hearing Research 47, eq. 4.

    >>> round(float(hz_to_erb_rate(1000.0)), 2)
    15.62
    """
    return 21.4 * np.log10(4.37e-3 * np.asarray(hz, dtype=np.float64) + 1.0)


def erb_rate_per_hz(hz):
    """ERBs per Hz at ``hz``: ``1 / (24.7 (4.37 f / 1000 + 1))``, the reciprocal of the ERB with
    Glasberg & Moore's (1990) eq. 3 coefficients unrounded (:func:`erb_hz` keeps the rounded 0.108
    the post's filter bank was designed with). It is the slope of :func:`hz_to_erb_rate` to within
    0.3 %: eq. 4's 21.4 is rounded from 1000 ln 10 / (24.7 x 4.37) = 21.33."""
    return 1.0 / (24.7 * (4.37e-3 * np.asarray(hz, dtype=np.float64) + 1.0))


def a_weighting_db(hz):
    """A-weighting in dB, 0 dB at 1 kHz.

    ``A(f) = 20 log10 R_A(f) + 2.00`` with
    ``R_A(f) = 12200² f⁴ / ((f² + 20.6²) sqrt((f² + 107.7²)(f² + 737.9²)) (f² + 12200²))``.
    IEC 61672-1 Annex E gives the top pole as 12194 Hz; 12200 Hz is the rounded textbook
    value the post used. The +2.00 dB normalises the curve to about 0 dB at 1 kHz.

    References
    ----------
    IEC 61672-1:2013, "Electroacoustics - Sound level meters - Part 1", Annex E.

    >>> abs(round(float(a_weighting_db(1000.0)), 2))
    0.0
    """
    f2 = np.asarray(hz, dtype=np.float64) ** 2
    # Pole frequencies in Hz, IEC 61672-1 Annex E.
    f1, f2_pole, f3, f4 = 20.6, 107.7, 737.9, 12200.0
    with np.errstate(divide="ignore"):
        r_a = (f4 ** 2 * f2 ** 2) / (
            (f2 + f1 ** 2) * np.sqrt((f2 + f2_pole ** 2) * (f2 + f3 ** 2)) * (f2 + f4 ** 2)
        )
        return 20.0 * np.log10(r_a) + 2.0


def band_weights(centres_hz: np.ndarray, weighting: str = "a") -> np.ndarray:
    """Per-band multiplicative weights for the perceptual loss.

    ``"a"``: the post's A-weighting in dB, shifted so the least-weighted band gets 1,
    ``1 + (A(f_c) - min A)``; ``"none"``: all ones.
    """
    if weighting == "none":
        return np.ones(len(centres_hz))
    if weighting != "a":
        raise ValueError(f"unknown weighting {weighting!r}; choose 'a' or 'none'")
    weights_db = a_weighting_db(centres_hz)
    if not np.all(np.isfinite(weights_db)):
        raise ValueError("A-weighting is -inf at 0 Hz: use low_hz > 0")
    return 1.0 + (weights_db - weights_db.min())


# Slaney's mel scale (Auditory Toolbox, 1998): linear at 200/3 Hz per mel below 1 kHz, logarithmic
# above with 27 mels per factor 6.4; the scale and filter normalisation librosa uses by default.
_SLANEY_HZ_PER_MEL = 200.0 / 3.0
_SLANEY_BREAK_HZ = 1000.0
_SLANEY_LOG_STEP = np.log(6.4) / 27.0


def hz_to_mel_slaney(hz):
    """Slaney's mel scale: 15 mels at 1 kHz.

    >>> round(float(hz_to_mel_slaney(1000.0)), 9)
    15.0
    """
    hz = np.asarray(hz, dtype=np.float64)
    linear = hz / _SLANEY_HZ_PER_MEL
    above = _SLANEY_BREAK_HZ / _SLANEY_HZ_PER_MEL + np.log(np.maximum(hz, 1e-10) / _SLANEY_BREAK_HZ) / _SLANEY_LOG_STEP
    return np.where(hz >= _SLANEY_BREAK_HZ, above, linear)


def mel_slaney_to_hz(mel):
    mel = np.asarray(mel, dtype=np.float64)
    break_mel = _SLANEY_BREAK_HZ / _SLANEY_HZ_PER_MEL
    above = _SLANEY_BREAK_HZ * np.exp(_SLANEY_LOG_STEP * (mel - break_mel))
    return np.where(mel >= break_mel, above, mel * _SLANEY_HZ_PER_MEL)


def mel_filterbank(sample_rate: float, n_fft: int, n_mels: int = 128) -> np.ndarray:
    """Triangular filters on Slaney's mel scale over 0 Hz..Nyquist, each of unit area in Hz.

    Shape: ``(n_mels, n_fft // 2 + 1)``, to multiply a magnitude spectrogram from the left.
    """
    bin_hz = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    edges_hz = mel_slaney_to_hz(np.linspace(0.0, hz_to_mel_slaney(sample_rate / 2.0), n_mels + 2))
    lower, centre, upper = edges_hz[:-2, None], edges_hz[1:-1, None], edges_hz[2:, None]
    rising = (bin_hz - lower) / (centre - lower)
    falling = (upper - bin_hz) / (upper - centre)
    triangles = np.maximum(0.0, np.minimum(rising, falling))
    return triangles * (2.0 / (upper - lower))


def hz_to_critical_band_rate(hz):
    """Critical-band rate in Bark, ``13 atan(0.00076 f) + 3.5 atan((f / 7500)²)``.

    This is the Bark of the masking model (:mod:`perceptual_audio_loss.masking`); it follows
    Zwicker's measured table to 20 kHz (24.7 Bark at 22.05 kHz), where ``6 asinh(f / 600)``,
    the post's filter-bank spacing, runs on to 26.

    References
    ----------
    Zwicker & Terhardt (1980), "Analytical expressions for critical-band rate and critical
    bandwidth as a function of frequency", JASA 68(5).

    >>> round(float(hz_to_critical_band_rate(1000.0)), 2)
    8.51
    """
    hz = np.asarray(hz, dtype=np.float64)
    return 13.0 * np.arctan(0.00076 * hz) + 3.5 * np.arctan((hz / 7500.0) ** 2)


def critical_band_rate_to_hz(bark):
    """Inverse of :func:`hz_to_critical_band_rate`, by interpolation on a 0.5 Hz grid to 96 kHz.

    The function is strictly increasing, so the inverse is unique; there is no closed form.
    """
    grid_hz = np.arange(0.0, 96000.0, 0.5)
    return np.interp(np.asarray(bark, dtype=np.float64), hz_to_critical_band_rate(grid_hz), grid_hz)


def threshold_in_quiet_db(hz, low_clamp_hz: float = 20.0, high_clamp_hz: float = 15000.0):
    """Threshold in quiet in dB SPL, ``3.64 f^-0.8 - 6.5 exp(-0.6 (f - 3.3)²) + 1e-3 f⁴``, f in kHz.

    Both ends of the formula run away: ``f^-0.8`` to infinity at 0 Hz, ``f⁴`` to 160 dB at
    20 kHz. Frequencies are clamped to ``[low_clamp_hz, high_clamp_hz]`` before it is evaluated,
    so the threshold is held at 83.2 dB below 20 Hz and at 51.0 dB above 15 kHz. The upper clamp
    is a choice: young listeners hear 16-18 kHz at levels well below what ``f⁴`` says, and a loss
    that declared every error up there inaudible would let a generator put anything there.

    References
    ----------
    Terhardt (1979), "Calculating virtual pitch", Hearing Research 1; the form used by
    ISO/IEC 11172-3 Annex D and by Painter & Spanias (2000), "Perceptual coding of digital
    audio", Proc. IEEE 88(4), eq. (1).

    >>> round(float(threshold_in_quiet_db(1000.0)), 2)
    3.37
    """
    khz = np.clip(np.asarray(hz, dtype=np.float64), low_clamp_hz, high_clamp_hz) / 1000.0
    return 3.64 * khz ** -0.8 - 6.5 * np.exp(-0.6 * (khz - 3.3) ** 2) + 1e-3 * khz ** 4
