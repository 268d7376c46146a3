"""A masking-aware loss: an error counts only as far as it rises above what the target masks.

The masking threshold is a psychoacoustic model in the line of the MPEG-1 psychoacoustic models
and PEAQ, computed from the target alone and without gradient:

1. short-time spectra at two resolutions (about 23 ms and 6 ms), levels calibrated so that a
   full-scale sine is ``full_scale_db`` dB SPL, energies grouped into bands 0.5 Bark wide;
2. each band's energy spread across Bark with PEAQ's level-dependent slopes, lowered by a
   tonality-dependent offset (Johnston), maskers added as intensities;
3. forward masking by a per-band leaky integrator, backward masking by a short cos² kernel;
4. the threshold in quiet as a floor.

The error's band energies (of the complex spectrum of ``input - target``) are compared with that
threshold in dB, and only the part above it is penalised, through a softplus.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._derived import Derived
from .arguments import SAMPLE_RATE, Number, Numbers, check_arguments, check_sample_rate
from .contract import (
    REDUCTION,
    check_reduction,
    compute_dtype,
    finish,
    full_precision,
    full_precision_matmul,
    common_scale,
    matching_signals,
    peak_scale,
    signals,
    widen,
)
from .scales import critical_band_rate_to_hz, hz_to_critical_band_rate, threshold_in_quiet_db

# ISO/IEC 11172-3 Annex D, psychoacoustic models 1 and 2: a full-scale sine is 96 dB SPL.
# ITU-R BS.1387 (PEAQ) assumes 92 dB; both are conventions for an unknown playback level.
FULL_SCALE_DB = 96.0
# Analysis windows: ISO/IEC 11172-3 model 2 uses 1024- and 256-point FFTs at 44.1-48 kHz,
# 23 ms and 6 ms; here the nearest power of two at the actual sample rate.
WINDOWS_S = (0.023, 0.006)
BAND_WIDTH_BARK = 0.5
# Johnston (1988), "Transform coding of audio signals using perceptual noise criteria",
# IEEE JSAC 6(2): a tone masks noise down to 14.5 + z dB below it, noise masks a tone to 5.5 dB.
TONE_MASKING_NOISE_DB = 14.5
NOISE_MASKING_TONE_DB = 5.5
# ITU-R BS.1387-1 (PEAQ), FFT ear model, spreading: 27 dB/Bark towards lower frequencies,
# 24 + 230 Hz / f_c - 0.2 L dB/Bark towards higher ones (L the masker band's level in dB SPL).
LOWER_SLOPE_DB_PER_BARK = 27.0
UPPER_SLOPE_DB_PER_BARK = 24.0
UPPER_SLOPE_HZ = 230.0
UPPER_SLOPE_PER_DB = 0.2
# ITU-R BS.1387-1, time-domain spreading: tau(f_c) = tau_min + (100 Hz / f_c)(tau_100 - tau_min).
FORWARD_TAU_MIN_S = 0.008
FORWARD_TAU_100_S = 0.030
# Backward (pre-)masking: a cos² kernel over 8 ms, after the cos² smearing of BS.1387-1's
# filter-bank model; pre-masking lasts a few ms (Zwicker & Fastl, "Psychoacoustics", ch. 4).
BACKWARD_S = 0.008
# ISO/IEC 11172-3 Annex D model 2: tonality = -0.299 - 0.43 ln(unpredictability), in [0, 1].
TONALITY_OFFSET = -0.299
TONALITY_SLOPE = -0.43
_DB_PER_NEPER = 10.0 / math.log(10.0)  # intensity: 10 log10(x) = (10 / ln 10) ln(x)
# Bounds of the constructor's arguments: budgets, not psychoacoustics. The spreading step holds
# bands x bands values per frame; 0.1 Bark gives 250 bands (25 times the default's 50 squared).
ARGUMENTS = {
    "sample_rate": SAMPLE_RATE,
    "full_scale_db": Number(low=0, high=200),
    "windows_s": Numbers(Number(low=0, low_open=True, high=1.0), most=4),
    "band_width_bark": Number(low=0.1, high=25.0),
    "beta": Number(low=0, low_open=True, high=1e3),
    "theta_db": Number(low=-100, high=100),
    "backward_s": Number(low=0, high=1.0),
    "quiet_clamp_hz": Number(low=0, low_open=True),
    "reduction": REDUCTION,
}
# Signals whose peak passes 2^16 (96 dB above full scale, 192 dB SPL) are computed scaled down by
# a power of two: a bin's intensity re 0 dB SPL reaches about 2^72 peak^2 at the longest window,
# and float32 ends at 2^128. Below it the scale is 1 and nothing changes.
SAFE_PEAK_EXPONENT = 16
# The error's floor inside the log: d = 10 log10(E_err / M + 1e-3), so d >= -30 dB (issue 6).
ERROR_FLOOR = 1e-3


# The shortest window a resolution can frame with: its hop, a quarter of it, is one sample.
SHORTEST_WINDOW = 4


def window_length(sample_rate: float, seconds: float) -> int:
    """The power of two nearest (in log) to ``seconds`` of samples.

    >>> window_length(44100, 0.023), window_length(11025, 0.006), window_length(48000, 0.023)
    (1024, 64, 1024)
    """
    return 2 ** max(1, round(math.log2(sample_rate * seconds)))


def centred_rfft(x: torch.Tensor, window: torch.Tensor, hop: int) -> torch.Tensor:
    """``(items, time)`` -> complex ``(items, frames, bins)``: ``window``-long frames centred every
    ``hop`` samples from sample 0 (half a window of zeros padded at each end), windowed, one rFFT.
    """
    half = window.shape[-1] // 2
    frames = F.pad(x, (half, half)).unfold(-1, window.shape[-1], hop)
    return torch.fft.rfft(frames * window.to(x.dtype), dim=-1)


def band_edges_bark(sample_rate: float, width_bark: float = BAND_WIDTH_BARK) -> np.ndarray:
    """Band edges every ``width_bark`` from 0 Bark; the last band ends at the Nyquist frequency.

    The grid starts at 0 Bark at every sample rate, so a band means the same frequencies at
    11025 Hz as at 48 kHz; only the top band is cut short.
    """
    top = float(hz_to_critical_band_rate(sample_rate / 2.0))
    edges = np.arange(0.0, top, width_bark)
    if top - edges[-1] < 1e-9:
        return edges
    return np.append(edges, top)


def bin_to_band_matrix(sample_rate: float, n_fft: int, edges_hz: np.ndarray) -> np.ndarray:
    """``(bands, bins)`` share of each FFT bin's energy that falls in each band.

    Bin k covers ``[(k - 1/2) df, (k + 1/2) df]`` clipped to ``[0, fs/2]``; its energy goes to
    the bands in proportion to overlap in Hz. Columns sum to 1, so energy is conserved, and a band
    narrower than a bin (low frequencies at the short window) still gets its share.
    """
    bin_hz = sample_rate / n_fft
    centres = np.arange(n_fft // 2 + 1) * bin_hz
    low = np.clip(centres - bin_hz / 2, 0.0, sample_rate / 2)
    high = np.clip(centres + bin_hz / 2, 0.0, sample_rate / 2)
    overlap = np.minimum(high[None], edges_hz[1:, None]) - np.maximum(low[None], edges_hz[:-1, None])
    return np.maximum(overlap, 0.0) / (high - low)[None]


def quiet_threshold_intensity(edges_hz: np.ndarray, clamp_hz: float) -> np.ndarray:
    """Each band's threshold in quiet as an intensity re 0 dB SPL: the lowest value of Terhardt's
    curve across the band (checked on 17 points), as ISO model 2 takes a partition's minimum."""
    grid = np.linspace(edges_hz[:-1], edges_hz[1:], 17)
    return 10.0 ** (threshold_in_quiet_db(grid, high_clamp_hz=clamp_hz).min(0) / 10.0)


def forward_decay(centres_hz: np.ndarray, hop: int, sample_rate: float) -> np.ndarray:
    """Per-band factor ``a = exp(-hop / (fs tau))`` of PEAQ's forward-masking integrator."""
    tau = FORWARD_TAU_MIN_S + (100.0 / np.maximum(centres_hz, 1.0)) * (FORWARD_TAU_100_S - FORWARD_TAU_MIN_S)
    return np.exp(-hop / (sample_rate * tau))


def backward_weights(hop: int, sample_rate: float, span_s: float) -> np.ndarray:
    """``cos²(pi k hop / (2 span))`` for the frames k = 0, 1, ... that start within the span."""
    lags = np.arange(0, math.ceil(span_s * sample_rate / hop))
    return np.cos(np.pi * lags * hop / (2 * span_s * sample_rate)) ** 2


class _MaskingResolution(nn.Module):
    """One analysis resolution of the masking model: window, grouping into Bark bands as
    intensities re 0 dB SPL, and the per-band constants of the model (threshold in quiet,
    forward and backward masking).

    Not one class with :mod:`.auditory`'s ``_SpectrogramResolution``: the two share their framing
    (:func:`centred_rfft`, :func:`window_length`, hop ``n / 4``) and differ in everything after it
    (bands 0.5 Bark wide and levels in dB SPL here; ERB triangles, a full-scale sine at 1 and the
    level term's band weights there).
    """

    def __init__(self, sample_rate: float, n_fft: int, edges_hz: np.ndarray, centres_hz: np.ndarray,
                 full_scale_db: float, quiet_clamp_hz: float, backward_s: float):
        super().__init__()
        self.n_fft, self.hop = n_fft, n_fft // 4
        window = torch.hann_window(n_fft, periodic=True, dtype=torch.float64)
        # Intensity in units of 0 dB SPL: a sine of amplitude A has sum over its lobe of |X|² =
        # n (A²/4) sum(w²); scaled by 4 / (n sum(w²)) that is A², full scale 1 -> full_scale_db.
        scale = 10.0 ** (full_scale_db / 10.0) * 4.0 / (n_fft * float((window ** 2).sum()))
        as_buffer = lambda array: torch.from_numpy(np.asarray(array)).float()  # noqa: E731
        self.register_buffer("window", window.float())
        self.register_buffer("bands_by_bin", as_buffer(bin_to_band_matrix(sample_rate, n_fft, edges_hz).T * scale))
        self.register_buffer("quiet", as_buffer(quiet_threshold_intensity(edges_hz, quiet_clamp_hz)))
        self.register_buffer("decay", as_buffer(forward_decay(centres_hz, self.hop, sample_rate)))
        self.register_buffer("backward", as_buffer(backward_weights(self.hop, sample_rate, backward_s)))
        self._responses = Derived()

    def response_spectrum(self, frames: int) -> torch.Tensor:
        """The forward-masking integrator's response spectrum for ``frames`` frames (kept while
        ``decay`` is unchanged): see :func:`_response_spectrum`."""
        return self._responses.get((frames, self.decay.device), (self.decay,),
                                   lambda: _response_spectrum(self.decay, frames))

    def spectrum(self, x: torch.Tensor) -> torch.Tensor:
        """``(items, time)`` -> complex ``(items, frames, bins)``, frames centred every hop.

        ``torch.stft(center=True, pad_mode="constant")`` framed by hand: zero padding, a strided
        view, one batched FFT; its backward is a handful of operations where stft's is dozens.
        """
        return centred_rfft(x, self.window, self.hop)

    def band_energy(self, spectrum: torch.Tensor) -> torch.Tensor:
        """Complex ``(items, frames, bins)`` -> intensities ``(items, frames, bands)`` re 0 dB SPL."""
        return self.group(torch.view_as_real(spectrum).square().sum(-1))

    def group(self, per_bin: torch.Tensor) -> torch.Tensor:
        """Sum ``(items, frames, bins)`` over each band's bins: ``(items, frames, bands)``."""
        return full_precision_matmul(per_bin, self.bands_by_bin.to(per_bin.dtype))


class MaskedLoss(nn.Module):
    """Error above the target's masking threshold, in dB, through a softplus.

    For each resolution, band ``b`` and frame ``t``, with ``E`` the energy of the complex spectral
    difference of input and target and ``M`` the masking threshold of the target alone,
    ``d = 10 log10(E / M + 1e-3)`` and the penalty is
    ``(softplus(beta (d - theta)) - softplus(beta (-30 - theta))) / beta``, which is zero when
    there is no error and grows by one per dB above ``theta``. Penalties are summed over bands
    weighted by their width in Bark (so the value does not drift with the sample rate), averaged
    over frames, summed over the two resolutions and reduced over the batch.

    One path: every device and dtype run the same torch operations (unlike
    :class:`~perceptual_audio_loss.PerceptualLoss`, whose paths :func:`.perceptual.choose_path` picks).

    Args:
        sample_rate: of the signals, in Hz.
        full_scale_db: dB SPL of a full-scale sine (96: ISO/IEC 11172-3; 92: PEAQ).
        windows_s: analysis window durations; each becomes the nearest power of two in samples.
        band_width_bark: width of the bands energies are grouped into.
        beta: softplus sharpness, per dB.
        theta_db: where the penalty turns on, in dB relative to the threshold.
        backward_s: span of backward masking.
        quiet_clamp_hz: the threshold in quiet is held constant above this frequency.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` over the batch.

    Shape:
        input, target: ``(batch, time)`` or ``(batch, channels, time)``;
        output: scalar, or ``(batch,)`` with ``reduction="none"`` (channels averaged).

    References
    ----------
    ISO/IEC 11172-3:1993 Annex D (psychoacoustic models 1 and 2); Johnston (1988), IEEE JSAC 6(2);
    ITU-R BS.1387-1 (2001), "Method for objective measurements of perceived audio quality";
    Terhardt (1979), Hearing Research 1; Zwicker & Terhardt (1980), JASA 68(5).

    >>> loss = MaskedLoss(11025)
    >>> x = 0.1 * torch.randn(2, 4096)
    >>> float(loss(x, x))
    0.0
    """

    def __init__(
        self,
        sample_rate: float,
        full_scale_db: float = FULL_SCALE_DB,
        windows_s: tuple[float, ...] = WINDOWS_S,
        band_width_bark: float = BAND_WIDTH_BARK,
        beta: float = 0.5,
        theta_db: float = 0.0,
        backward_s: float = BACKWARD_S,
        quiet_clamp_hz: float = 15000.0,
        reduction: str = "mean",
    ):
        super().__init__()
        arguments = check_arguments(ARGUMENTS, locals())
        windows_s = arguments["windows_s"]
        check_sample_rate(sample_rate, lambda rate: all(window_length(rate, s) >= SHORTEST_WINDOW for s in windows_s),
                          f"a window shorter than {SHORTEST_WINDOW} samples (a hop of none) for windows_s={windows_s}")
        self.sample_rate, self.beta, self.theta_db, self.reduction = float(sample_rate), beta, theta_db, reduction
        edges_bark = band_edges_bark(sample_rate, band_width_bark)
        self.band_edges_hz = critical_band_rate_to_hz(edges_bark)
        self.band_edges_hz[-1] = sample_rate / 2  # the interpolated inverse, exact at Nyquist
        centres_bark = (edges_bark[:-1] + edges_bark[1:]) / 2
        centres_hz = critical_band_rate_to_hz(centres_bark)
        self.resolutions = nn.ModuleList(
            _MaskingResolution(sample_rate, window_length(sample_rate, seconds), self.band_edges_hz, centres_hz,
                        full_scale_db, quiet_clamp_hz, backward_s)
            for seconds in sorted(windows_s, reverse=True)
        )
        self.register_buffer("band_width_bark", torch.from_numpy(np.diff(edges_bark)).float())
        self.register_buffer("centres_bark", torch.from_numpy(centres_bark).float())
        # Per masker band: PEAQ's upper slope without its level term; Johnston's tone-masking-noise
        # offset at the band's critical-band rate (below).
        self.register_buffer("upper_slope_base", torch.from_numpy(UPPER_SLOPE_DB_PER_BARK + UPPER_SLOPE_HZ / np.maximum(centres_hz, 1.0)).float())
        # In the units _simultaneous computes in (nepers of intensity): the tone offset's excess
        # over the noise offset; from masker j to maskee i, the fixed lower slope's attenuation
        # below the masker, and the Bark distance above it that the level-dependent upper slope
        # (dB/Bark) multiplies; lower_spread also holds the noise offset every masker has.
        tone_offset_db = TONE_MASKING_NOISE_DB + centres_bark
        self.register_buffer("tone_excess", torch.from_numpy((tone_offset_db - NOISE_MASKING_TONE_DB) / _DB_PER_NEPER).float())
        distance = torch.from_numpy(centres_bark[:, None] - centres_bark[None, :]).float()  # (maskee i, masker j)
        lower_spread_db = LOWER_SLOPE_DB_PER_BARK * distance.clamp(max=0.0) - NOISE_MASKING_TONE_DB
        self.register_buffer("lower_spread", lower_spread_db / _DB_PER_NEPER)
        self.register_buffer("upper_distance", distance.clamp(min=0.0) / _DB_PER_NEPER)

    # -- the masking threshold of a target --------------------------------------------------

    @torch.no_grad()
    def _threshold_intensities(self, target: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Masking thresholds as intensities re 0 dB SPL times ``scale^2``, one per resolution
        (longest window first), ``(items, frames, bands)``: the layout the loss computes in, and
        ``scale`` ``(items, 1)`` (:func:`~.contract.peak_scale`: 1 at any sane level; below 1 only
        where a target's intensities would pass float32's range). ``target`` is ``(items, time)``;
        :meth:`threshold_db` is the public view.
        """
        scale = peak_scale(target, SAFE_PEAK_EXPONENT)
        target = (target * scale).float()  # no graph here: the method runs under no_grad
        log_scale = 2.0 * torch.log(scale.float())[:, :, None]
        # the threshold in quiet at that scale, held at float32's smallest normal number: it may
        # underflow for a target hundreds of dB above it, where it no longer matters
        quiet = (torch.exp(log_scale) * self.resolutions[0].quiet).clamp_min(torch.finfo(torch.float32).tiny)
        spectra = [resolution.spectrum(target) for resolution in self.resolutions]
        tonality = self._tonality(self.resolutions[0], spectra[0])
        energies = [resolution.band_energy(spectrum) for resolution, spectrum in zip(self.resolutions, spectra)]
        frame_tonality = [_at_frames(tonality, energy.shape[1], resolution.hop, self.resolutions[0].hop)
                          for resolution, energy in zip(self.resolutions, energies)]
        # Simultaneous masking is frame by frame: every resolution's frames in one batch.
        simultaneous = self._simultaneous(torch.cat(energies, 1), torch.cat(frame_tonality, 1), log_scale)
        parts = simultaneous.split([energy.shape[1] for energy in energies], 1)
        # The threshold in quiet is the same per band at every resolution (the same band edges).
        return scale, [torch.maximum(_temporal(part, resolution), quiet) for resolution, part in zip(self.resolutions, parts)]

    def threshold_db(self, target: torch.Tensor, resolution: int = 0) -> torch.Tensor:
        """The masking threshold in dB SPL, ``(batch, [channels,] bands, frames)``, at one resolution.

        Resolution 0 is the longest window (about 23 ms), 1 the shortest. Band edges are in
        :attr:`band_edges_hz`; frame ``t`` is centred on sample ``t * hop`` (:meth:`hop`).
        """
        items, _ = signals(target, "target")
        with full_precision(target.device):
            scale, thresholds = self._threshold_intensities(items)
            threshold_db = (10.0 * torch.log10(thresholds[resolution])
                            - 20.0 * torch.log10(scale.float())[:, :, None]).transpose(1, 2)
        return threshold_db.reshape(*target.shape[:-1], *threshold_db.shape[1:])

    def hop(self, resolution: int = 0) -> int:
        return self.resolutions[resolution].hop

    def _tonality(self, resolution: _MaskingResolution, spectrum: torch.Tensor) -> torch.Tensor:
        """Per band and frame tonality in [0, 1] from ISO model 2's unpredictability.

        Each bin's magnitude and phase are predicted by linear extrapolation from the two frames
        before; ``c = |X - X_pred| / (|X| + |X_pred|)`` is near 0 for a steady tone and near 1 for
        noise. Bands take the energy-weighted mean of ``c``. The first frames, with nothing to
        predict from, are predicted from silence (c = 1), as in the standard.
        """
        magnitude, phase = spectrum.abs(), spectrum.angle()
        frames = magnitude.shape[1]
        history = F.pad(torch.stack([magnitude, phase]), (0, 0, 2, 0))  # two silent frames before
        predicted_magnitude, predicted_phase = 2 * history[:, :, 1 : frames + 1] - history[:, :, :frames]
        predicted = torch.polar(predicted_magnitude, predicted_phase)
        unpredictability = (spectrum - predicted).abs() / (magnitude + predicted_magnitude.abs()).clamp_min(1e-30)
        power = magnitude**2
        energy, weighted = resolution.group(torch.stack([power, power * unpredictability]))
        # A silent band (energy below 1e-30, -300 dB SPL) counts as unpredictable: 1e-30 / 1e-30.
        band_unpredictability = (weighted + 1e-30) / (energy + 1e-30)
        return (TONALITY_OFFSET + TONALITY_SLOPE * torch.log(band_unpredictability.clamp_min(1e-12))).clamp(0.0, 1.0)

    def _simultaneous(self, energy: torch.Tensor, tonality: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
        """Threshold of simultaneous masking: every band spreads, less its offset, intensities add.

        ``energy``, ``tonality``: ``(items, frames, bands)``. The spreading from masker band j to
        band i falls 27 dB/Bark below j and ``24 + 230/f_c - 0.2 L_j`` dB/Bark above it (never
        rising: the slope is held at 0 or more). ``energy`` and the threshold returned are scaled
        intensities, ``log_scale`` ``(items, 1, 1)`` the log of their scale: the level that sets the
        slope is the true one.
        """
        # In nepers of intensity (ln): dB x ln(10) / 10. The exponential then adds the intensities.
        level = torch.log(energy.clamp_min(1e-30)) - log_scale
        upper_slope = (self.upper_slope_base - (UPPER_SLOPE_PER_DB * _DB_PER_NEPER) * level).clamp_min(0.0)
        # The masker's level less its offset: Johnston's tone offset for a tone, 5.5 dB for noise
        # (the 5.5 dB is folded into lower_spread).
        masker = level - tonality * self.tone_excess
        spread = self.lower_spread - self.upper_distance * upper_slope[:, :, None, :] + masker[:, :, None, :]
        return torch.exp(spread + log_scale[..., None]).sum(-1)

    # -- the loss ---------------------------------------------------------------------------

    def target_features(self, target: torch.Tensor) -> "MaskedTarget":
        """What the loss needs of a fixed target, computed once: the waveform and its thresholds."""
        items, _ = signals(target, "target")
        with torch.no_grad(), full_precision(target.device):
            items = items.detach().to(compute_dtype(target.dtype))
            scale, masks = self._threshold_intensities(items)
            return MaskedTarget(items, tuple(masks), scale)

    def against(self, input: torch.Tensor, target: "MaskedTarget", reduction: str | None = None) -> torch.Tensor:
        """The loss of ``input`` against a target prepared by :meth:`target_features`."""
        reduction = check_reduction(reduction or self.reduction)
        if not isinstance(target, MaskedTarget):
            raise TypeError(f"target must be a MaskedTarget from target_features(), got {type(target).__name__}")
        items, batch = signals(input, "input")
        if items.shape != target.waveform.shape:
            raise ValueError(f"input {tuple(input.shape)} does not match the target's {tuple(target.waveform.shape)} signals")
        with full_precision(input.device):
            items = widen(items)
            per_signal = self._per_item(*self._at_one_scale(items - target.waveform.to(items.dtype), target))
        return finish(per_signal, batch, reduction, input.dtype)

    @staticmethod
    def _at_one_scale(error: torch.Tensor, target: "MaskedTarget") -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The error and the target's thresholds at one scale, the smaller of the error's own
        (:func:`~.contract.peak_scale`) and the thresholds': ``E / M`` is the same at any scale,
        and both stay finite. At sane levels both scales are 1 and nothing changes."""
        scale, ratio = common_scale(error, target.scale, SAFE_PEAK_EXPONENT)
        squared = ratio.square()[:, :, None]
        return error * scale, [mask * squared.to(mask.dtype) for mask in target.masks]

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        matching_signals(input, target)
        return self.against(input, self.target_features(target))

    def _noise_to_mask(self, error: torch.Tensor, masks):
        """``E / M`` of ``error`` at each resolution, ``(items, frames, bands)``."""
        for resolution, mask in zip(self.resolutions, masks):
            yield resolution.band_energy(resolution.spectrum(error)) / mask

    def _over_bands_and_frames(self, per_band: torch.Tensor) -> torch.Tensor:
        """Sum over bands weighted by their width in Bark, mean over frames: ``(items,)``."""
        return (per_band * self.band_width_bark).sum(-1).mean(-1)

    def _per_item(self, error: torch.Tensor, masks) -> torch.Tensor:
        """The penalty summed over bands (Bark-weighted), averaged over each resolution's frames and
        summed over resolutions: ``(items,)``. Every resolution's frames go through one batch."""
        floor = math.log1p(math.exp(self.beta * (10.0 * math.log10(ERROR_FLOOR) - self.theta_db))) / self.beta
        ratios = list(self._noise_to_mask(error, masks))
        ratio_db = torch.log(torch.cat(ratios, 1) + ERROR_FLOOR) * _DB_PER_NEPER
        penalty = F.softplus(ratio_db - self.theta_db, beta=self.beta) - floor
        # 1 / frames for each frame of a resolution: each resolution's mean over its own frames.
        frame_weights = np.concatenate([np.full(ratio.shape[1], 1.0 / ratio.shape[1], np.float32) for ratio in ratios])
        weights = torch.from_numpy(frame_weights).to(penalty.device, penalty.dtype)[:, None] * self.band_width_bark
        return (penalty * weights).sum((1, 2))

    @torch.no_grad()
    def noise_to_mask_ratio_db(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Total noise-to-mask ratio in dB: ``10 log10`` of the mean of ``E / M`` over resolutions,
        frames and bands (Bark-weighted), per batch item (channels averaged in dB); PEAQ's
        "Total NMR" with this model's mask. Shape: ``(batch,)``.
        """
        items, target_items, batch = matching_signals(input, target)
        with full_precision(input.device):
            items, target_items = items.to(compute_dtype(input.dtype)), target_items.float()
            prepared = MaskedTarget(target_items, *reversed(self._threshold_intensities(target_items)))
            ratios = [self._over_bands_and_frames(ratio) / self.band_width_bark.sum()
                      for ratio in self._noise_to_mask(*self._at_one_scale(items - target_items.to(items.dtype), prepared))]
            return (10.0 * torch.log10(torch.stack(ratios).mean(0))).reshape(batch, -1).mean(1)


class MaskedTarget(NamedTuple):
    """A target prepared for :meth:`MaskedLoss.against`: ``(items, time)`` and one threshold per resolution."""

    waveform: torch.Tensor
    masks: tuple[torch.Tensor, ...]
    scale: torch.Tensor  # (items, 1): the masks are intensities times scale^2 (contract.peak_scale)


def _at_frames(values: torch.Tensor, frames: int, hop: int, source_hop: int) -> torch.Tensor:
    """``values`` ``(items, source_frames, bands)`` at ``frames`` frames of ``hop``: for each, the
    source frame whose centre is nearest (the values themselves when the hops agree)."""
    if hop == source_hop and frames == values.shape[1]:
        return values
    nearest = np.minimum(np.round(np.arange(frames) * (hop / source_hop)).astype(np.int64), values.shape[1] - 1)
    return values.index_select(1, torch.from_numpy(nearest).to(values.device))


def _temporal(threshold: torch.Tensor, resolution: _MaskingResolution) -> torch.Tensor:
    """Forward masking by PEAQ's per-band leaky integrator, then backward masking.

    Forward: ``s_t = a s_(t-1) + (1 - a) m_t`` with ``a = exp(-hop / (fs tau))``, the threshold
    the larger of ``s_t`` and ``m_t``. Backward: frame t is masked by frame ``t + k`` lowered by
    ``cos²(pi k hop / (2 * backward span))``, the largest of these. ``threshold`` is
    ``(items, frames, bands)``; a few batched operations, whatever the number of frames.
    """
    forward = torch.maximum(_leaky_integral(threshold, resolution.response_spectrum(threshold.shape[1])), threshold)
    weights = resolution.backward
    # Frame t sees frames t .. t + lags - 1 (zeros past the end, which never raise a maximum).
    ahead = F.pad(forward, (0, 0, 0, weights.shape[0] - 1)).unfold(1, weights.shape[0], 1)
    return (ahead * weights).amax(-1)


def _leaky_integral(values: torch.Tensor, response: torch.Tensor) -> torch.Tensor:
    """``s_t = a s_(t-1) + (1 - a) m_t`` from ``s_(-1) = 0`` along frames (dim 1), per band ``a``;
    ``response`` from :func:`_response_spectrum` for as many frames as ``values`` has.

    The recursion is a causal convolution with ``(1 - a) a^k``, computed by one zero-padded FFT
    in float64 instead of one step per frame. Every term is non-negative and the FFT's error is
    about 1e-16 of the largest intensity (1e10 re 0 dB SPL for a full-scale sine at 96 dB), far
    under the threshold in quiet that every threshold is raised to afterwards.
    """
    frames = values.shape[1]
    product = torch.fft.rfft(values.double(), n=2 * frames, dim=1) * response
    return torch.fft.irfft(product, n=2 * frames, dim=1)[:, :frames].to(values.dtype)


def _response_spectrum(decay: torch.Tensor, frames: int) -> torch.Tensor:
    """rfft of ``(1 - a) a^k``, k < frames, zero-padded to ``2 frames``: ``(frames + 1, bands)``, float64."""
    a = decay.double()
    response = (1.0 - a) * a ** torch.arange(frames, device=decay.device, dtype=torch.float64)[:, None]
    return torch.fft.rfft(response, n=2 * frames, dim=0)


def masked_loss(input: torch.Tensor, target: torch.Tensor, sample_rate: float, **kwargs) -> torch.Tensor:
    """Functional form: builds a :class:`MaskedLoss` on the input's device and applies it."""
    return MaskedLoss(sample_rate, **kwargs).to(input.device)(input, target)
