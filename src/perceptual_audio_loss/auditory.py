"""A multi-resolution auditory spectrogram loss: ERB-spaced band envelopes, compared by level.

Each resolution frames the signal with a Hann window, takes the power of every FFT bin (the
squared envelope of a complex, analytic band-pass filter: no phase, unlike the post's
half-wave rectified FIR outputs) and sums it into bands spaced evenly on the ERB-rate scale, as
the cochlea's filters are spaced. The distance is level-sensitive, as MR-STFT's is: the
spectral convergence of the band envelopes plus the mean absolute difference of their
compressed levels, plus the mean absolute difference of every FFT bin's compressed level (the
fine structure the bands pool away), averaged over the resolutions. Levels are floored 60 dB
below the target's loudest band: detail the target plays far below its loudest is not asked
for. Bands are A-weighted in the level term, as the post weighted its features.

Every choice is an argument, so that each can be removed in turn (the ablation in
``docs/guides/a-loss-that-wins.md``).
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .arguments import SAMPLE_RATE, Choice, Number, check_arguments, check_sample_rate
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
from .masking import (
    LOWER_SLOPE_DB_PER_BARK,
    TONE_MASKING_NOISE_DB,
    UPPER_SLOPE_DB_PER_BARK,
    SHORTEST_WINDOW,
    UPPER_SLOPE_HZ,
    centred_rfft,
    window_length,
)
from .scales import a_weighting_db, erb_rate_per_hz, hz_to_critical_band_rate, hz_to_erb_rate

# Window durations: the longest is 46 ms, the post's 512 taps at 11025 Hz; each next one halves it,
# as MR-STFT's windows do (Yamamoto et al., 2020), down to 6 ms, about the ear's temporal
# resolution (Moore, "An Introduction to the Psychology of Hearing", ch. 5). 23 ms is also the long
# block of MPEG-1 Layer III and the masking model's long window (ISO/IEC 11172-3).
LONGEST_WINDOW_S = 0.046
RESOLUTIONS = 4
# Two bands per ERB: the spacing of auditory filter banks such as the gammatone bank of
# Patterson et al. (1992) is one or more per ERB; two keeps every band's neighbours overlapping.
BANDS_PER_ERB = 2.0
# The floor re the target's loudest band: a sound 60 dB down counts as gone in room acoustics
# (RT60; Sabine, 1900). Below it the loss asks for no detail, and output there still costs.
RELATIVE_FLOOR_DB = -60.0
# Band power is scaled so a full-scale sine gives 1 (0 dB); the floor inside the log is the
# threshold in quiet near 1 kHz, about 0 dB SPL, with full scale at 96 dB SPL as the MPEG
# psychoacoustic models assume (ISO/IEC 11172-3 Annex D; Terhardt, 1979).
FLOOR_DB = -96.0
# Stevens' power law on intensity as PLP uses it: loudness ~ intensity^(1/3)
# (Hermansky, 1990, "Perceptual linear predictive (PLP) analysis of speech", JASA 87(4)).
CUBE_ROOT = 1.0 / 3.0
# The fine-structure term weighs as the band term: no constant tuned (the ablation tried 0 and 1).
FINE = 1.0
COMPRESSIONS = ("log", "cube-root")
DISTANCES = ("level", "cosine")
WEIGHTINGS = ("none", "a", "erb")
MASKINGS = ("none", "simultaneous")

ARGUMENTS = {
    "sample_rate": SAMPLE_RATE,
    "longest_window_s": Number(low=0, low_open=True, high=1.0),
    "resolutions": Number(low=1, high=8, integer=True),
    "bands_per_erb": Number(low=0, high=64.0),  # 0: no bands, every FFT bin on its own
    "compression": Choice(COMPRESSIONS),
    "distance": Choice(DISTANCES),
    "weighting": Choice(WEIGHTINGS),
    "floor_db": Number(low=-300.0, high=0.0),
    "fine": Number(low=0.0, high=1e6),
    "relative_floor_db": Number(low=-300.0, high=0.0, optional=True),
    "masking": Choice(MASKINGS),
    "reduction": REDUCTION,
}


def window_lengths(sample_rate: float, longest_window_s: float, resolutions: int) -> list[int]:
    """The resolutions' windows, longest first: the longest as :func:`.masking.window_length` gives
    it, halved ``resolutions - 1`` times, the halvings that would fall below the shortest window a
    hop can frame (4 samples) left out.

    >>> window_lengths(11025, 0.046, 4), window_lengths(200, 0.046, 4)
    ([512, 256, 128, 64], [8, 4])
    """
    longest = window_length(sample_rate, longest_window_s)
    # past the window's bit length every halving is below the shortest: range() need not go further
    halvings = range(min(resolutions, longest.bit_length()))
    return sorted({longest >> k for k in halvings if longest >> k >= SHORTEST_WINDOW}, reverse=True)


def erb_band_matrix(sample_rate: float, n_fft: int, bands_per_erb: float) -> np.ndarray:
    """``(bins, bands)``: triangles on the ERB-rate scale, ``1 / bands_per_erb`` apart, that add to 1.

    Each bin's power is shared between the two band centres around its ERB-rate (linear
    interpolation on ERB-rate), so the bands together hold every bin's power once. Bands no bin
    reaches (below the first bin spacing of a short window) are left out. ``bands_per_erb = 0``
    gives the identity: every bin is its own band.
    """
    bins = n_fft // 2 + 1
    if bands_per_erb == 0:
        return np.eye(bins)
    rate = hz_to_erb_rate(np.linspace(0.0, sample_rate / 2, bins)) * bands_per_erb
    centres = np.arange(int(np.ceil(rate[-1])) + 1)
    shares = np.clip(1.0 - np.abs(rate[:, None] - centres[None, :]), 0.0, None)
    return shares[:, shares.sum(0) > 0]


def simultaneous_masking_matrix(centres_hz: np.ndarray) -> np.ndarray:
    """``(maskee, masker)`` intensity gains: how much of band ``j``'s power masks in band ``i``.

    The spreading of the library's masking model (:mod:`perceptual_audio_loss.masking`) with
    every masker taken for a tone and no level term: the threshold falls 27 dB/Bark below the
    masker and ``24 + 230 Hz / f_j`` dB/Bark above it (ITU-R BS.1387-1 without its ``-0.2 L``,
    so the upper slope is the steepest it gets), and sits ``14.5 + z_j`` dB below the masker
    (Johnston, 1988, tone masking noise, ``z_j`` the masker's critical-band rate). Both choices
    give the lowest threshold the model allows: what is called masked is masked for any level and
    any masker. Intensities of the maskers add.
    """
    bark = hz_to_critical_band_rate(centres_hz)
    distance = bark[:, None] - bark[None, :]  # maskee i above masker j: positive
    upper_slope = UPPER_SLOPE_DB_PER_BARK + UPPER_SLOPE_HZ / np.maximum(centres_hz, 1.0)
    spread_db = np.where(distance < 0, LOWER_SLOPE_DB_PER_BARK * distance, -upper_slope[None, :] * distance)
    return 10.0 ** ((spread_db - (TONE_MASKING_NOISE_DB + bark[None, :])) / 10.0)


class _SpectrogramResolution(nn.Module):
    """One resolution of the auditory spectrogram: a Hann window scaled so a full-scale sine's band
    power is 1, the ERB band triangles (:func:`erb_band_matrix`), the level term's band weights and,
    with masking, the band-to-band masking gains.

    Not one class with :mod:`.masking`'s ``_MaskingResolution``: see there.
    """

    def __init__(self, sample_rate: float, n_fft: int, bands_per_erb: float, weighting: str, masking: str):
        super().__init__()
        self.n_fft, self.hop = n_fft, n_fft // 4
        window = torch.hann_window(n_fft, periodic=True, dtype=torch.float64)
        # A sine of amplitude A has sum over its lobe of |X|^2 = n (A^2 / 4) sum(w^2): this scale
        # makes a full-scale sine's band power 1.
        scale = 4.0 / (n_fft * float((window**2).sum()))
        shares = erb_band_matrix(sample_rate, n_fft, bands_per_erb)
        bin_hz = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
        centres_hz = (bin_hz @ shares) / shares.sum(0)
        weights = np.ones(shares.shape[1])
        if weighting == "erb":  # each band by its width in ERBs
            weights = (bin_hz[1] * erb_rate_per_hz(bin_hz)) @ shares
        if weighting == "a":  # IEC 61672-1 A-weighting as an amplitude gain
            weights = 10.0 ** (a_weighting_db(np.maximum(centres_hz, 1.0)) / 20.0)
        weights = weights / weights.mean()  # the mean band weighs 1
        self.register_buffer("window", window.float() * math.sqrt(scale))
        self.register_buffer("bands_by_bin", torch.from_numpy(shares).float())
        self.register_buffer("weights", torch.from_numpy(weights).float())
        if masking == "simultaneous":  # (masker, maskee): the target's band powers times it give the threshold
            self.register_buffer("masking_by_band", torch.from_numpy(simultaneous_masking_matrix(centres_hz).T.copy()).float())

    def powers(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(items, time)`` -> the power of every bin ``(items, frames, bins)`` and of every band
        ``(items, frames, bands)``, frames centred every hop, zero padded."""
        per_bin = torch.view_as_real(centred_rfft(x, self.window, self.hop)).square().sum(-1)
        return per_bin, full_precision_matmul(per_bin, self.bands_by_bin.to(x.dtype))


# Signals whose peak passes 2^24 (144 dB above full scale) are computed scaled down by a power of
# two, so that float32's powers, band sums and norms stay finite (a bin's power reaches about
# 2^40 peak^2 at the longest window); below it the scale is 1 and nothing changes.
SAFE_PEAK_EXPONENT = 24
# An output 60 dB below its target (the relative floor, an amplitude ratio of 1e-3) is silence to
# it, and is rescued from there (AuditorySpectrogramLoss._rescue).
SILENCE_RATIO = 10.0 ** (RELATIVE_FLOOR_DB / 20.0)
# The spectral convergence's denominator is never below the output's envelope 20 dB down: for a
# target far quieter than the output (a pause, silence) the term stays under 1 + 10 and its
# gradient within about 10 times a matched pair's, where dividing by the target alone grows
# without bound. A bound chosen for the gradient, not psychoacoustics; the level term still
# asks the output down.
CONVERGENCE_FLOOR_RATIO = 10.0 ** (-20.0 / 20.0)


class AuditoryTarget(NamedTuple):
    """A target prepared once, computed at its own scale (:func:`~.contract.peak_scale`): the scale, the
    scaled signal, and per resolution its compressed band levels, band envelopes and (with
    ``fine``) compressed bin levels, and the floors inside the compression."""

    levels: tuple[torch.Tensor, ...]
    envelopes: tuple[torch.Tensor, ...]
    fine_levels: tuple[torch.Tensor, ...]
    floors: tuple
    batch: int
    shape: torch.Size
    scale: torch.Tensor
    signal: torch.Tensor


class _ScaledTarget(NamedTuple):
    """One resolution of a prepared target at the input's scale: its levels and envelope."""

    levels: torch.Tensor
    envelope: torch.Tensor


class AuditorySpectrogramLoss(nn.Module):
    """Distance of ERB-band envelopes at several resolutions: spectral convergence plus level L1,
    and the level L1 of every FFT bin.

    For each resolution (window ``n``, hop ``n/4``) and band ``b``, ``P[t, b]`` is the power of
    the bins the band gathers, 1 for a full-scale sine, and ``p[t, k]`` the power of bin ``k``.
    With ``L = log(P + floor)`` (or ``(P + floor)^(1/3)`` divided by the target's mean), ``l`` the
    same of ``p``, ``E = sqrt(P)``, and the floor 60 dB below the target's loudest band (never
    below ``floor_db`` re full scale):

    ``loss = mean over resolutions of ||E_x - E_y||_F / ||E_y||_F + mean_{t,b} w_b |L_x - L_y|
    + fine mean_{t,k} |l_x - l_y|``,

    ``w_b`` the A-weighting of band ``b``'s centre as an amplitude gain, the mean band weighing 1,
    and ``fine`` 1.

    One path: every device and dtype run the same torch operations (unlike
    :class:`~perceptual_audio_loss.PerceptualLoss`, whose paths :func:`.perceptual.choose_path` picks).

    Args:
        sample_rate: of the signals, in Hz.
        longest_window_s: the longest analysis window; it becomes the nearest power of two in
            samples, and each further resolution halves it.
        resolutions: how many windows.
        bands_per_erb: band density on the ERB-rate scale; 0 compares every FFT bin on its own.
        compression: ``"log"`` or ``"cube-root"`` (Stevens' law on intensity).
        distance: ``"level"`` (the two terms above) or ``"cosine"`` (one minus the cosine
            similarity of the levels above the floor, as the post compared its features).
        weighting: of the level term: ``"a"`` (A-weighting as an amplitude gain per band, the
            mean band weighing 1, as the post weighted its features), ``"none"`` (every band alike:
            with ERB bands the ERB-rate density is the weighting) or ``"erb"`` (each band by its
            width in ERBs: with ``bands_per_erb=0``, FFT bins weighted as the ear resolves them).
        floor_db: the lowest floor inside the compression, in dB re a full-scale sine.
        relative_floor_db: the floor in dB re the target's loudest band (per signal and
            resolution): detail far below what the target plays is not asked for, and output
            there still costs. ``None``: ``floor_db`` alone (as ``-300`` does).
        masking: ``"simultaneous"`` raises each band and frame's floor to the target's masking
            threshold there (:func:`simultaneous_masking_matrix`), so a level difference counts
            only as far as it rises above what the target masks; ``"none"``: no masking. It has
            no per-bin threshold, so it asks for ``fine=0``.
        fine: weight of a third term, the mean absolute difference of every FFT bin's compressed
            level (unweighted): the fine structure that the bands pool away (0: none).
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` over the batch.

    Shape:
        input, target: ``(batch, time)`` or ``(batch, channels, time)``;
        output: scalar, or ``(batch,)`` with ``reduction="none"`` (channels averaged).

    References
    ----------
    Glasberg & Moore (1990), Hearing Research 47 (the ERB-rate scale); Yamamoto et al. (2020),
    "Parallel WaveGAN", eq. 4-6 (spectral convergence and log-magnitude L1 over resolutions);
    Hermansky (1990), JASA 87(4) (cube-root compression).

    >>> loss = AuditorySpectrogramLoss(11025)
    >>> x = 0.1 * torch.randn(2, 4096)
    >>> float(loss(x, x))
    0.0
    """

    def __init__(self, sample_rate: float, longest_window_s: float = LONGEST_WINDOW_S, resolutions: int = RESOLUTIONS,
                 bands_per_erb: float = BANDS_PER_ERB, compression: str = "log", distance: str = "level",
                 weighting: str = "a", floor_db: float = FLOOR_DB, fine: float = FINE,
                 relative_floor_db: float | None = RELATIVE_FLOOR_DB, masking: str = "none", reduction: str = "mean"):
        super().__init__()
        check_arguments(ARGUMENTS, locals())
        if masking != "none" and fine:
            raise ValueError("masking applies to the band term and has no per-bin threshold: pass fine=0 with it")
        self.masking = masking
        self.sample_rate, self.compression, self.distance = float(sample_rate), compression, distance
        self.floor, self.fine, self.reduction = 10.0 ** (floor_db / 10.0), fine, reduction
        self.relative_floor = None if relative_floor_db is None else 10.0 ** (relative_floor_db / 10.0)
        check_sample_rate(sample_rate, lambda rate: window_length(rate, longest_window_s) >= SHORTEST_WINDOW,
                          f"a longest window shorter than {SHORTEST_WINDOW} samples (a hop of none) for "
                          f"longest_window_s={longest_window_s:g}")
        lengths = window_lengths(sample_rate, longest_window_s, resolutions)
        self.resolutions = nn.ModuleList(
            _SpectrogramResolution(sample_rate, n, bands_per_erb, weighting, masking) for n in lengths)

    def _levels(self, power: torch.Tensor, floor: torch.Tensor | float) -> torch.Tensor:
        if self.compression == "log":
            return torch.log(power + floor)
        return (power + floor).pow(CUBE_ROOT)

    def _rescaling(self, ratio: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        """What turns levels of powers computed at one scale into levels at ``ratio`` (items, 1, 1)
        times it, worked out once per call: powers scale by ``ratio^2``, so a log level moves by
        ``2 log ratio`` and a cube-root level is multiplied by ``ratio^(2/3)`` (exactly unchanged
        for a ratio of 1)."""
        if self.compression == "log":
            shift = 2.0 * torch.log(ratio)
            return lambda levels: levels + shift
        factor = ratio.pow(2.0 * CUBE_ROOT)
        return lambda levels: levels * factor

    def _floor(self, resolution: _SpectrogramResolution, target_band_power: torch.Tensor,
               absolute: torch.Tensor) -> torch.Tensor:
        """The floor inside the compression, at the target's scale (``absolute`` is ``floor_db``
        there, ``(items, 1, 1)``): fixed, per signal re its loudest band, or with masking per band
        and frame ``(items, frames, bands)``."""
        floor = absolute
        if self.relative_floor is not None:
            loudest = target_band_power.flatten(1).amax(1)[:, None, None]
            floor = (loudest * self.relative_floor).clamp_min(absolute)
        if self.masking == "none":
            return floor
        threshold = full_precision_matmul(target_band_power, resolution.masking_by_band.to(target_band_power.dtype))
        return threshold.clamp_min(floor)  # floor: a number, or (items, 1, 1) broadcast

    def _envelope_floor(self, squared_scale: torch.Tensor) -> torch.Tensor:
        """Under the envelope's square root, at a scale whose square is ``squared_scale``: sqrt's
        gradient at zero power is infinite, and a floor far below the level floor keeps it finite."""
        return self.floor * 1e-6 * squared_scale

    def target_features(self, target: torch.Tensor) -> AuditoryTarget:
        items, batch = signals(target, "target")
        with torch.no_grad(), full_precision(target.device):
            y = items.to(compute_dtype(target.dtype))
            scale = peak_scale(y, SAFE_PEAK_EXPONENT)
            y = y * scale
            squared = scale.square()[:, :, None]
            below_envelope = self._envelope_floor(squared)
            powers = [r.powers(y) for r in self.resolutions]
            # floor_db at the target's scale, held at the smallest normal number (a target hundreds of dB
            # above full scale would take it under)
            absolute = (self.floor * squared).clamp_min(torch.finfo(y.dtype).tiny)
            floors = [self._floor(r, per_band, absolute) for r, (_, per_band) in zip(self.resolutions, powers)]
            fine = tuple(self._levels(per_bin, f) for (per_bin, _), f in zip(powers, floors)) if self.fine else ()
            return AuditoryTarget(tuple(self._levels(p, f) for (_, p), f in zip(powers, floors)),
                                  tuple((p + below_envelope).sqrt() for _, p in powers), fine, tuple(floors), batch,
                                  target.shape, scale, y)

    def against(self, input: torch.Tensor, prepared: AuditoryTarget, reduction: str | None = None) -> torch.Tensor:
        reduction = check_reduction(reduction or self.reduction)
        items, batch = signals(input, "input")
        if input.shape != prepared.shape:
            raise ValueError(f"input {tuple(input.shape)} and the prepared target {tuple(prepared.shape)} differ in shape")
        with full_precision(input.device):
            x = widen(items)
            # Both sides at one scale, the smaller of the two: the input's own, or the target's
            # quantities brought down by ``ratio`` (a power of two, 1 for signals of sane level).
            scale, ratio = common_scale(x, prepared.scale, SAFE_PEAK_EXPONENT)
            x = x * scale
            per_signal = self._rescue(x, prepared.signal.to(x.dtype) * ratio)
            ratio = ratio[:, :, None]
            # worked out once for every resolution
            rescaled, floor_ratio = self._rescaling(ratio), ratio.square()
            below_envelope = self._envelope_floor(scale.square()[:, :, None])
            for index, resolution in enumerate(self.resolutions):
                per_bin, per_band = resolution.powers(x)
                floor = prepared.floors[index].to(x.dtype) * floor_ratio
                target = _ScaledTarget(rescaled(prepared.levels[index].to(x.dtype)),
                                       prepared.envelopes[index].to(x.dtype) * ratio)
                per_signal = per_signal + self._resolution_distance(resolution, per_band, floor, target, below_envelope)
                if self.fine:
                    fine_target = rescaled(prepared.fine_levels[index].to(x.dtype))
                    fine_difference = (self._levels(per_bin, floor) - fine_target).abs()
                    per_signal = per_signal + self.fine * fine_difference.mean((1, 2))
            per_signal = per_signal / len(self.resolutions)
        return finish(per_signal, batch, reduction, input.dtype)

    @staticmethod
    def _rescue(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """A way out of silence: an output more than 60 dB below its target gets the waveform
        distance ``||x - y|| / ||y||``, faded out as it rises to that level (0 above it).

        Every term above is a function of power, so at a silent output (``x = 0``, a stationary
        point of any such function) their gradient vanishes and the output could never leave
        silence; this one's gradient there is ``-y / ||y||``, toward the target. Above the fade
        it adds exactly 0 to the value and the gradient. ``(items,)``.
        """
        tiny = torch.finfo(x.dtype).tiny
        rms_x = (x.square().mean(1) + tiny).sqrt()
        rms_y = y.square().mean(1).sqrt()
        fade = (1.0 - rms_x / (SILENCE_RATIO * rms_y).clamp_min(tiny)).clamp(0.0, 1.0)
        distance = (x - y).square().sum(1).clamp_min(tiny).sqrt() / y.square().sum(1).clamp_min(tiny).sqrt()
        return fade * distance

    def _resolution_distance(self, resolution: _SpectrogramResolution, power: torch.Tensor, floor,
                             target: _ScaledTarget, below_envelope: torch.Tensor) -> torch.Tensor:
        levels = self._levels(power, floor)
        if self.distance == "cosine":
            silence = self._levels(torch.zeros((), dtype=power.dtype, device=power.device), floor)
            a, b = (levels - silence).flatten(1), (target.levels - silence).flatten(1)
            return 1.0 - F.cosine_similarity(a, b, dim=1, eps=1e-12)
        envelope = (power + below_envelope).sqrt()
        below = envelope.flatten(1).norm(dim=1) * CONVERGENCE_FLOOR_RATIO  # see CONVERGENCE_FLOOR_RATIO
        denominator = torch.maximum(target.envelope.flatten(1).norm(dim=1), below).clamp_min(1e-12)
        convergence = (envelope - target.envelope).flatten(1).norm(dim=1) / denominator
        difference = (levels - target.levels).abs()
        if self.compression == "cube-root":  # relative, as the log's differences are
            difference = difference / target.levels.flatten(1).mean(1)[:, None, None]
        return convergence + (difference * resolution.weights).mean((1, 2))

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        matching_signals(input, target)
        return self.against(input, self.target_features(target))


def auditory_spectrogram_loss(input: torch.Tensor, target: torch.Tensor, sample_rate: float,
                              **kwargs) -> torch.Tensor:
    """Functional form: builds an :class:`AuditorySpectrogramLoss` on the input's device and applies it.

    Each call designs the band matrices again; in a training loop build the module once.
    """
    return AuditorySpectrogramLoss(sample_rate, **kwargs).to(input.device)(input, target)
