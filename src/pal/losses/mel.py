"""A multi-scale mel loss following the Descript Audio Codec's recipe, as a yardstick for ``pal bench``.

The codec's published configuration (``conf/base.yml``, ``MelSpectrogramLoss``): seven STFTs with
Hann windows of 32, 64, ..., 2048 samples and hops of a quarter window, 5, 10, ..., 320 mel bands
from 0 Hz to Nyquist, magnitudes (``pow`` 1.0) clamped at 1e-5, then the L1 distance of their
``log10``, summed over the seven scales (``log_weight`` 1, ``mag_weight`` 0). It is written here
from that description, not copied, and lives in the application because it is a benchmark peer,
not one of the library's losses.

References
----------
Kumar et al. (2023), "High-Fidelity Audio Compression with Improved RVQGAN" (DAC), section 3.4
and the repository's ``conf/base.yml``; the Slaney mel scale and area-normalised triangles follow
Slaney (1998), "Auditory Toolbox", Technical Report 1998-010, Interval Research.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

# DAC conf/base.yml: MelSpectrogramLoss.window_lengths, .n_mels, .clamp_eps, .pow.
DAC_WINDOW_LENGTHS = (32, 64, 128, 256, 512, 1024, 2048)
DAC_MEL_BANDS = (5, 10, 20, 40, 80, 160, 320)
DAC_CLAMP = 1e-5
DAC_POWER = 1.0

# Slaney (1998): linear below 1 kHz (200/3 Hz per mel), logarithmic above (a factor of 6.4 every
# 27 mels), the scale librosa and audiotools use by default.
_SLANEY_HZ_PER_MEL = 200.0 / 3
_SLANEY_BREAK_HZ = 1000.0
_SLANEY_LOG_STEP = np.log(6.4) / 27.0


def hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale.

    >>> round(float(hz_to_mel(np.array(1000.0))), 6)
    15.0
    """
    hz = np.asarray(hz, dtype=np.float64)
    linear = hz / _SLANEY_HZ_PER_MEL
    break_mel = _SLANEY_BREAK_HZ / _SLANEY_HZ_PER_MEL
    logarithmic = break_mel + np.log(np.maximum(hz, 1e-12) / _SLANEY_BREAK_HZ) / _SLANEY_LOG_STEP
    return np.where(hz >= _SLANEY_BREAK_HZ, logarithmic, linear)


def mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    break_mel = _SLANEY_BREAK_HZ / _SLANEY_HZ_PER_MEL
    return np.where(mel >= break_mel, _SLANEY_BREAK_HZ * np.exp(_SLANEY_LOG_STEP * (mel - break_mel)),
                    _SLANEY_HZ_PER_MEL * mel)


def mel_basis(sample_rate: float, n_fft: int, n_mels: int, low_hz: float = 0.0, high_hz: float | None = None) -> np.ndarray:
    """Triangular mel filters on the rFFT bins, each normalised to unit area (Slaney).

    Shape:
        output: ``(n_mels, n_fft // 2 + 1)``.
    """
    high_hz = sample_rate / 2 if high_hz is None else high_hz
    bin_hz = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    edges_hz = mel_to_hz(np.linspace(hz_to_mel(low_hz), hz_to_mel(high_hz), n_mels + 2))
    lower, centre, upper = edges_hz[:-2, None], edges_hz[1:-1, None], edges_hz[2:, None]
    rising = (bin_hz - lower) / (centre - lower)
    falling = (upper - bin_hz) / (upper - centre)
    triangles = np.maximum(0.0, np.minimum(rising, falling))
    return triangles * (2.0 / (upper - lower))


class MultiScaleMelLoss(nn.Module):
    """L1 distance of log-mel magnitude spectrograms at several window sizes, summed (DAC's recipe).

    Args:
        sample_rate: Hz.
        window_lengths, n_mels: one STFT per pair; hop is a quarter of the window.
        clamp: magnitudes below it count as it, before the log.

    Shape:
        input, target: ``(batch, time)`` or ``(batch, channels, time)``, same shape, ``time``
        longer than half the longest window. output: scalar (the mean over every bin and frame,
        summed over the scales).

    >>> loss = MultiScaleMelLoss(16000)
    >>> x = torch.randn(2, 1, 4000)
    >>> float(loss(x, x))
    0.0
    """

    def __init__(self, sample_rate: float, window_lengths=DAC_WINDOW_LENGTHS, n_mels=DAC_MEL_BANDS,
                 clamp: float = DAC_CLAMP):
        super().__init__()
        if len(window_lengths) != len(n_mels):
            raise ValueError("window_lengths and n_mels must pair up")
        self.window_lengths = tuple(window_lengths)
        self.clamp = clamp
        for length, bands in zip(self.window_lengths, n_mels):
            self.register_buffer(f"window_{length}", torch.hann_window(length))
            self.register_buffer(f"mel_{length}", torch.from_numpy(mel_basis(sample_rate, length, bands)).float())

    def log_mel(self, x: torch.Tensor, length: int) -> torch.Tensor:
        """``log10(max(clamp, mel @ |STFT|))`` of ``(signals, time)``: ``(signals, n_mels, frames)``."""
        spectrum = torch.stft(x, n_fft=length, hop_length=length // 4, window=getattr(self, f"window_{length}"),
                              center=True, pad_mode="reflect", return_complex=True)
        mel = getattr(self, f"mel_{length}") @ spectrum.abs().pow(DAC_POWER)
        return mel.clamp(min=self.clamp).log10()

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if input.shape != target.shape:
            raise ValueError(f"input {tuple(input.shape)} and target {tuple(target.shape)} differ in shape")
        x, y = input.reshape(-1, input.shape[-1]), target.reshape(-1, target.shape[-1])
        total = input.new_zeros(())
        for length in self.window_lengths:
            total = total + (self.log_mel(x, length) - self.log_mel(y, length)).abs().mean()
        return total
