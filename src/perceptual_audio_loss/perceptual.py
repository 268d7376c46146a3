"""The post's perceptual loss: auditory filter bank, half-wave rectification, log, weighting."""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import nn
from torch.nn import functional as F

from . import _compiled, _native
from .contract import (
    check_reduction,
    compute_dtype,
    finish,
    full_precision,
    matching_signals,
    reduce,
    signals,
)
from .filters import filter_bank
from .scales import band_weights

SIMILARITIES = ("cosine", "mse")
METHODS = ("auto", "fft", "direct")
_COSINE_EPS = 1e-8  # as F.cosine_similarity's default eps
# Below this many taps per output frame a direct convolution beats the FFT on a CPU
# (measured by `pal bench`'s crossover table on a 2-core x86 machine; see BENCHMARKS.md).
FFT_MIN_TAPS_PER_FRAME = 64


# Odd factors that keep a transform fast: pocketfft slows on long chains of radix 3 (8748 =
# 2^2 3^7 took 25 % longer than 9216 = 2^10 9 on our CPU; `pal bench` prints the comparison).
FAST_ODD_FACTORS = (1, 3, 5, 7, 9, 15)


@lru_cache(maxsize=64)
def fft_length(n: int) -> int:
    """The shortest fast real-FFT length of at least ``n``: a power of two times 1, 3, 5, 7, 9 or 15.

    Not blindly the next power of two (16384 for the post's 8705 outputs, almost twice the work).

    >>> fft_length(8192 + 512 + 1)
    9216
    """
    best = 1 << max(0, (n - 1).bit_length())
    for odd in FAST_ODD_FACTORS[1:]:
        power = 1 << max(0, (-(-n // odd) - 1).bit_length())
        best = min(best, odd * power)
    return best


def choose_method(method: str, taps: int, stride: int) -> str:
    """``auto`` resolves by a fixed cost rule, never by timing, so results are reproducible."""
    if method != "auto":
        return method
    return "fft" if taps / stride >= FFT_MIN_TAPS_PER_FRAME else "direct"


BAND_CHUNK = 32  # bands filtered together in the fused path: a chunk's arrays stay in cache


class _FusedFFTDistance(torch.autograd.Function):
    """Per-item distance between the features of ``x`` and fixed target features, fused.

    Forward filters by FFT a chunk of bands at a time, rectifies, compresses, weights, and keeps
    the features and their slope ``w / (1 + relu(y))`` (0 where ``y <= 0``), while accumulating the
    similarity's sums; backward uses the slope and the adjoint of the filtering (a convolution with
    the same filters, again by FFT). Each batch item is computed on its own, so an item's value
    does not depend on what else is in the batch. ``x`` is ``(batch, time)``.
    """

    @staticmethod
    def forward(ctx, x, spectra, weights, target, n_fft, frames, stride, similarity):
        features = torch.empty_like(target)
        slopes = torch.empty_like(target)
        n_bands = spectra.shape[0]
        # The similarity's sums, per item: float32 pairwise sums within a chunk, accumulated over
        # chunks in float64. One float32 dot product over millions of terms drifts by 1e-4.
        sums = torch.zeros(x.shape[0], 3, dtype=torch.float64, device=x.device)
        for item in range(x.shape[0]):
            spectrum = torch.fft.rfft(x[item], n=n_fft)
            for start in range(0, n_bands, BAND_CHUNK):
                bands = slice(start, min(n_bands, start + BAND_CHUNK))
                filtered = torch.fft.irfft(spectrum * spectra[bands], n=n_fft)[:, :frames:stride]
                rectified = filtered.clamp_min_(0.0)
                chunk = torch.log1p(rectified, out=features[item, bands]).mul_(weights[bands])
                slope = torch.add(rectified, 1.0, out=slopes[item, bands]).reciprocal_().mul_(weights[bands])
                slope.masked_fill_(rectified == 0.0, 0.0)
                target_chunk = target[item, bands]
                if similarity == "cosine":
                    sums[item, 0] += torch.sum(chunk * target_chunk)
                    sums[item, 1] += torch.sum(chunk * chunk)
                    sums[item, 2] += torch.sum(target_chunk * target_chunk)
                else:
                    sums[item, 0] += torch.sum((chunk - target_chunk) ** 2)
        if similarity == "cosine":
            dot = sums[:, 0]
            f_norm = sums[:, 1].sqrt().clamp_min(_COSINE_EPS)
            t_norm = sums[:, 2].sqrt().clamp_min(_COSINE_EPS)
            value = (-dot / (f_norm * t_norm)).to(x.dtype)
            # dL/df = a * target + b * features, per item
            a = (-1.0 / (f_norm * t_norm)).to(x.dtype)
            b = torch.where(f_norm > _COSINE_EPS, dot / (f_norm ** 3 * t_norm), torch.zeros_like(dot)).to(x.dtype)
        else:
            size = target[0].numel()
            value = (sums[:, 0] / size).to(x.dtype)
            a = torch.full_like(value, -2.0 / size)
            b = torch.full_like(value, 2.0 / size)
        ctx.save_for_backward(spectra, target, features, slopes, a, b)
        ctx.shape = (x.shape[-1], n_fft, frames, stride)
        return value

    @staticmethod
    def backward(ctx, grad_value):
        spectra, target, features, slopes, a, b = ctx.saved_tensors
        length, n_fft, frames, stride = ctx.shape
        n_bands = spectra.shape[0]
        a, b = a * grad_value, b * grad_value
        grad_x = torch.empty(target.shape[0], length, dtype=target.dtype, device=target.device)
        for item in range(target.shape[0]):
            adjoint = torch.zeros(n_fft // 2 + 1, dtype=spectra.dtype, device=spectra.device)
            for start in range(0, n_bands, BAND_CHUNK):
                bands = slice(start, min(n_bands, start + BAND_CHUNK))
                grad_filtered = torch.mul(target[item, bands], a[item])
                grad_filtered.addcmul_(features[item, bands], b[item]).mul_(slopes[item, bands])
                if stride != 1:
                    spread = grad_filtered.new_zeros(grad_filtered.shape[0], frames)
                    spread[:, ::stride] = grad_filtered
                    grad_filtered = spread
                # Adjoint of "irfft of spectrum x filter": rfft, then multiply by the conjugate filter.
                grad_spectra = torch.fft.rfft(grad_filtered, n=n_fft)
                adjoint += (grad_spectra * spectra[bands].conj()).sum(dim=0)
            # Adjoint of "rfft of x": the scale factors of rfft's and irfft's adjoints cancel here.
            grad_x[item] = torch.fft.irfft(adjoint, n=n_fft)[:length]
        return grad_x, None, None, None, None, None, None, None


class PerceptualLoss(nn.Module):
    """Distance between two signals as heard through a crude model of the ear's first stages.

    Each signal is cross-correlated with a bank of band-pass FIR filters whose centres are evenly
    spaced on an auditory scale (each one ERB wide), half-wave rectified, compressed with
    ``log(1 + log_factor * x)`` and multiplied per band by a frequency weighting. The two feature
    maps are compared per batch item: ``"cosine"`` gives minus their cosine similarity (so the
    minimum, -1, is reached when the features are proportional), ``"mse"`` their mean squared
    difference. The defaults reproduce the loss of the 2018 experiment (zounds' ``PerceptualLoss``
    as configured in the post of June 2018).

    Args:
        sample_rate: sample rate of the signals, Hz.
        n_bands: number of filters.
        taps: length of each FIR filter.
        low_hz, high_hz: centres of the first and last band (``high_hz`` defaults to Nyquist).
        scale: ``"bark"``, ``"mel"`` or ``"linear"`` spacing of the band centres.
        stride: hop of the filtering, in samples.
        log_factor: ``k`` in ``log(1 + k x)``.
        weighting: ``"a"`` (A-weighting in dB, shifted to be at least 1) or ``"none"``.
        similarity: ``"cosine"`` or ``"mse"``.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` over the batch.
        method: how the filter bank is applied: ``"direct"`` (``conv1d``, the reference),
            ``"fft"`` (one real FFT of the signal, a product with the filters' spectra, one
            inverse FFT per band; equal to the direct path within float32 rounding, about
            1e-6 of the feature scale) or ``"auto"`` (FFT unless the filters are short for
            the stride; the rule is fixed, so the choice never depends on timing).
        compiled: run the FFT path's elementwise work on compiled, multi-threaded kernels (float32
            on the CPU; built with the system's C compiler at first use, see
            :mod:`perceptual_audio_loss._native`). ``False``, or no working compiler, runs the same
            steps as torch operations; the two agree within float32 rounding, not bit for bit.

    Shape:
        input, target: ``(batch, time)`` or ``(batch, channels, time)``, same shape, any float
        dtype (computed in float32, or float64 for float64 input; autocast is off inside).
        output: scalar in the input's dtype, or ``(batch,)`` with ``reduction="none"``; each
        channel is compared on its own and a batch item's value is its channels' mean
        (:mod:`perceptual_audio_loss.contract`).

    >>> loss = PerceptualLoss(11025, n_bands=16, taps=64)
    >>> x = torch.randn(2, 1024)
    >>> bool(torch.isclose(loss(x, x), torch.tensor(-1.0)))
    True

    References
    ----------
    Vinyard (2018), "Perceptual Audio Loss" (the 2018 post); band spacing, bandwidth and weighting
    constants are sourced in :mod:`perceptual_audio_loss.scales`.
    """

    def __init__(
        self,
        sample_rate: float,
        n_bands: int = 512,
        taps: int = 512,
        low_hz: float = 1.0,
        high_hz: float | None = None,
        scale: str = "bark",
        stride: int = 1,
        log_factor: float = 10.0,
        weighting: str = "a",
        similarity: str = "cosine",
        reduction: str = "mean",
        method: str = "auto",
        compiled: bool = True,
    ):
        super().__init__()
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")
        if similarity not in SIMILARITIES:
            raise ValueError(f"unknown similarity {similarity!r}; choose one of {SIMILARITIES}")
        check_reduction(reduction)
        if stride < 1:
            raise ValueError(f"stride must be at least 1, got {stride}")
        if log_factor <= 0:
            raise ValueError(f"log_factor must be positive, got {log_factor}")
        filters, centres = filter_bank(sample_rate, n_bands, taps, low_hz, high_hz, scale)
        self.sample_rate = sample_rate
        self.taps = taps
        self.stride = stride
        self.log_factor = log_factor
        self.similarity = similarity
        self.reduction = reduction
        self.method = choose_method(method, taps, stride)
        if not isinstance(compiled, bool):
            raise TypeError(f"compiled must be True or False, got {compiled!r}")
        self.compiled = compiled
        self._spectra: dict[tuple, torch.Tensor] = {}
        self._workspace = _compiled.Workspace()
        self.register_buffer("filters", torch.from_numpy(filters).float().unsqueeze(1))
        self.register_buffer("band_centres_hz", torch.from_numpy(centres).float())
        weights = band_weights(centres, weighting)
        self.register_buffer("band_weights", torch.from_numpy(weights).float().view(-1, 1))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The auditory feature map of a batch of signals, in float32 (float64 for float64 input).

        Shape:
            x: ``(batch, time)`` or ``(batch, channels, time)``.
            output: ``(batch, n_bands, frames)``, or ``(batch, channels, n_bands, frames)`` for
            more than one channel, with ``frames = (time + taps) // stride + 1``.
        """
        items, batch = signals(x, "x")
        with full_precision(x.device):
            maps = self._signal_features(items.to(compute_dtype(x.dtype)))
        if x.dim() == 3 and x.shape[1] > 1:
            return maps.reshape(batch, x.shape[1], *maps.shape[1:])
        return maps

    def _signal_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(signals, time)`` -> ``(signals, n_bands, frames)`` in ``x``'s dtype."""
        x = x.unsqueeze(1)
        weights = self.band_weights.to(device=x.device, dtype=x.dtype)
        if self.method == "fft":
            # log_factor is folded into the filters' spectra: k relu(y) = relu(k y) for k > 0.
            scaled_bands = self._fft_filter(x)
            return torch.log1p(scaled_bands.clamp_min_(0.0)).mul_(weights)
        filters = self.filters.to(device=x.device, dtype=x.dtype)
        # Zero padding of `taps` on both sides: T + taps + 1 outputs per band at stride 1.
        bands = F.conv1d(x, filters, stride=self.stride, padding=self.taps)
        return torch.log1p(self.log_factor * F.relu(bands)) * weights

    def _filter_spectra(self, n_fft: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """rfft of ``log_factor`` x each filter, time-reversed and delayed by one sample.

        Reversal turns convolution into the cross-correlation conv1d computes; the one-sample
        delay reproduces the leading zero of conv1d's ``taps`` padding, so the first
        ``T + taps + 1`` samples of the inverse FFT are exactly the direct path's outputs.
        """
        key = (n_fft, device, dtype, self.filters.data_ptr())
        if key not in self._spectra:
            kernels = self.log_factor * self.filters.detach().squeeze(1).flip(-1).to(torch.float64)
            delayed = F.pad(kernels, (1, 0))
            self._spectra[key] = torch.fft.rfft(delayed, n=n_fft).to(device=device, dtype=_complex_of(dtype))
        return self._spectra[key]

    def _fft_filter(self, x: torch.Tensor) -> torch.Tensor:
        """``log_factor`` x the direct path's conv1d output, by FFT: ``(batch, n_bands, frames)``."""
        frames = x.shape[-1] + self.taps + 1
        n_fft = fft_length(frames)
        spectra = self._filter_spectra(n_fft, x.device, x.dtype)
        signal_spectrum = torch.fft.rfft(x, n=n_fft)  # (batch, 1, bins)
        bands = torch.fft.irfft(signal_spectrum * spectra, n=n_fft)
        return bands[..., : frames : self.stride]

    def compare(
        self, input_features: torch.Tensor, target_features: torch.Tensor, reduction: str | None = None
    ) -> torch.Tensor:
        """Loss between two feature maps from :meth:`features`.

        ``reduction`` overrides the module's own for this call. Maps with a channel axis,
        ``(batch, channels, n_bands, frames)``, are compared channel by channel and averaged.
        """
        if input_features.shape != target_features.shape:
            raise ValueError(f"input_features {tuple(input_features.shape)} and target_features "
                             f"{tuple(target_features.shape)} must have the same shape")
        batch = input_features.shape[0]
        a = input_features.reshape(-1, *input_features.shape[-2:]).flatten(1)
        b = target_features.reshape(-1, *target_features.shape[-2:]).flatten(1)
        # Sums accumulated in float64: over millions of terms a float32 dot product drifts by 1e-5.
        if self.similarity == "cosine":
            dot = torch.sum(a * b, dim=1, dtype=torch.float64)
            a_norm = torch.sum(a * a, dim=1, dtype=torch.float64).sqrt().clamp_min(_COSINE_EPS)
            b_norm = torch.sum(b * b, dim=1, dtype=torch.float64).sqrt().clamp_min(_COSINE_EPS)
            per_item = (-dot / (a_norm * b_norm)).to(a.dtype)
        else:
            per_item = (torch.sum((a - b) ** 2, dim=1, dtype=torch.float64) / a.shape[1]).to(a.dtype)
        return reduce(per_item.reshape(batch, -1).mean(1), check_reduction(reduction or self.reduction))

    def target_features(self, target: torch.Tensor) -> torch.Tensor:
        """Features of a fixed target, without a graph: compute once, pass to :meth:`against`.

        Signal by signal, so a signal's features do not depend on the rest of the batch.

        Shape:
            target: as :meth:`forward` takes it. output: ``(batch * channels, n_bands, frames)``.
        """
        items, _ = signals(target, "target")
        with full_precision(target.device):
            return self._prepare(items.to(compute_dtype(target.dtype)))

    @torch.no_grad()
    def _prepare(self, y: torch.Tensor, scratch: bool = False) -> torch.Tensor:
        """Features of target signals ``(signals, time)``, one signal at a time, without a graph.

        ``scratch``: the map is used and dropped within this call (the compiled path then reuses
        one array from call to call).
        """
        plan = self._compiled_plan(y)
        if plan is not None:
            return _compiled.features(y, plan, scratch)
        return torch.cat([self._signal_features(item[None]) for item in y])

    def _compiled_plan(self, x: torch.Tensor) -> _compiled.Plan | None:
        """The compiled kernels' plan for signals like ``x``, or ``None`` where the torch path runs
        (the direct method, a dtype other than float32, a device other than the CPU, no compiler)."""
        if not self.compiled or self.method != "fft" or not _native.NativeKernels.accepts(x):
            return None
        kernels = _native.native_kernels()
        if kernels is None:
            return None
        frames = x.shape[-1] + self.taps + 1
        n_fft = _compiled.decimated_fft_length(frames, self.stride, fft_length)
        return _compiled.Plan(n_fft, frames, self.stride, self.similarity, kernels,
                              self._filter_spectra(n_fft, x.device, x.dtype), self.band_weights.to(x.dtype),
                              self._workspace)

    def against(
        self, input: torch.Tensor, target_features: torch.Tensor, reduction: str | None = None
    ) -> torch.Tensor:
        """The loss of ``input`` against features from :meth:`target_features`.

        With ``method="fft"`` this runs the fused path: filtering, rectification, compression,
        weighting and similarity a chunk of bands at a time, with an analytic backward.
        """
        reduction = check_reduction(reduction or self.reduction)
        if not isinstance(target_features, torch.Tensor):
            raise TypeError(f"target_features must be a tensor from target_features(), got {type(target_features).__name__}")
        items, batch = signals(input, "input")
        with full_precision(input.device):
            per_signal = self._against_signals(items.to(compute_dtype(input.dtype)), target_features)
        return finish(per_signal, batch, reduction, input.dtype)

    def _against_signals(self, x: torch.Tensor, target_features: torch.Tensor) -> torch.Tensor:
        """``(signals, time)`` against their prepared features: ``(signals,)`` in ``x``'s dtype."""
        frames = x.shape[-1] + self.taps + 1
        expected = (x.shape[0], self.filters.shape[0], (frames - 1) // self.stride + 1)
        if tuple(target_features.shape) != expected:
            raise ValueError(f"target_features {tuple(target_features.shape)} do not fit input signals "
                             f"{tuple(x.shape)}: expected {expected}")
        target_features = target_features.to(device=x.device, dtype=x.dtype)
        if self.method != "fft":
            return self.compare(self._signal_features(x), target_features, "none")
        plan = self._compiled_plan(x)
        if plan is not None:
            return _compiled.CompiledDistance.apply(x, target_features.contiguous(), plan)
        n_fft = fft_length(frames)
        spectra = self._filter_spectra(n_fft, x.device, x.dtype)
        weights = self.band_weights.to(device=x.device, dtype=x.dtype)
        return _FusedFFTDistance.apply(x, spectra, weights, target_features, n_fft, frames, self.stride,
                                       self.similarity)

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        x, y, batch = matching_signals(input, target)
        dtype = compute_dtype(input.dtype)
        with full_precision(input.device):
            x, y = x.to(dtype), y.to(dtype)
            if target.requires_grad:  # both sides learnable: the plain differentiable path
                per_signal = self.compare(self._signal_features(x), self._signal_features(y), "none")
            else:
                per_signal = self._against_signals(x, self._prepare(y, scratch=True))
        return finish(per_signal, batch, self.reduction, input.dtype)


def _complex_of(dtype: torch.dtype) -> torch.dtype:
    return torch.complex128 if dtype == torch.float64 else torch.complex64


def perceptual_loss(input: torch.Tensor, target: torch.Tensor, sample_rate: float, **kwargs) -> torch.Tensor:
    """Functional form: builds a :class:`PerceptualLoss` on the input's device and applies it.

    Designing the filters costs a few tens of milliseconds; in a training loop build the module once.
    """
    return PerceptualLoss(sample_rate, **kwargs).to(input.device)(input, target)
