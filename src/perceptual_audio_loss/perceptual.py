"""The post's perceptual loss: auditory filter bank, half-wave rectification, log, weighting."""

from __future__ import annotations

import enum
from collections.abc import Callable
from functools import lru_cache

import torch
from torch import nn
from torch.nn import functional as F

from . import _batched, _compiled, _native
from ._derived import Derived
from .arguments import SAMPLE_RATE, Choice, Flag, Number, check_arguments, check_sample_rate
from .contract import (
    REDUCTION,
    check_reduction,
    compute_dtype,
    finish,
    full_precision,
    matching_signals,
    reduce,
    signals,
    widen,
)
from .filters import filter_bank, nyquist_hz
from .scales import SCALES, WEIGHTINGS, band_weights

SIMILARITIES = ("cosine", "mse")
METHODS = ("auto", "fft", "direct")
# Size bounds, checked before anything is allocated: budgets, not psychoacoustics. The post's
# bank is 512 x 512 = 2^18 coefficients; 2^24 (64 MiB in float32) leaves 64 times that. 768 kHz
# is the highest rate of common audio converters.
MAX_FILTER_COEFFICIENTS = 2**24
# Designing a filter takes scipy about half a millisecond: 8192 bands take a few seconds.
MAX_BANDS = 8192
ARGUMENTS = {
    "sample_rate": SAMPLE_RATE,
    "n_bands": Number(low=1, high=MAX_BANDS, integer=True),
    "taps": Number(low=3, high=2**16, integer=True),
    "low_hz": Number(low=0),
    "high_hz": Number(low=0, low_open=True, optional=True),
    "scale": Choice(SCALES),
    "stride": Number(low=1, high=2**16, integer=True),
    "log_factor": Number(low=0, low_open=True, high=1e12),
    "weighting": Choice(WEIGHTINGS),
    "similarity": Choice(SIMILARITIES),
    "reduction": REDUCTION,
    "method": Choice(METHODS),
    "compiled": Flag(),
}
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


class Path(enum.Enum):
    """How a :class:`PerceptualLoss` call computes; :func:`choose_path` says which one runs."""

    DIRECT = "direct"  # conv1d filter bank, autograd through torch operations: the reference
    FFT = "fft"  # the FFT filter bank in torch operations (_batched.features), autograd through them
    BATCHED = "batched"  # _batched.BatchedDistance: fused, analytic backward, torch operations
    COMPILED = "compiled"  # _compiled.CompiledDistance: fused, analytic backward, compiled kernels

    @property
    def fused(self) -> bool:
        """Whether the call is one autograd function from the input's samples to the distance
        against fixed target features (both fused paths prepare the target without a graph)."""
        return self in (Path.BATCHED, Path.COMPILED)


def choose_path(method: str, compiled: bool, device_type: str, dtype: torch.dtype, fixed_target: bool,
                kernels_available: Callable[[], bool]) -> Path:
    """The path a :class:`PerceptualLoss` call takes: every place that chooses one asks here.

    The first row that matches decides:

    | method | target | device | dtype | compiled | kernels | path |
    |---|---|---|---|---|---|---|
    | direct | any | any | any | any | any | `DIRECT` |
    | fft | learnable | any | any | any | any | `FFT` |
    | fft | fixed | not cpu | any | any | any | `BATCHED` |
    | fft | fixed | cpu | float64 | any | any | `BATCHED` |
    | fft | fixed | cpu | float32 | False | any | `BATCHED` |
    | fft | fixed | cpu | float32 | True | absent | `BATCHED` |
    | fft | fixed | cpu | float32 | True | built | `COMPILED` |

    Args:
        method: the resolved method, ``"direct"`` or ``"fft"`` (:func:`choose_method`).
        compiled: the constructor's ``compiled`` flag.
        device_type: where the signals are computed (``"cuda"``, ``"mps"``: not cpu).
        dtype: what they are computed in; float16 and bfloat16 input is computed in float32
            (:func:`.contract.compute_dtype`).
        fixed_target: the target needs no gradient (:meth:`PerceptualLoss.against`,
            :meth:`PerceptualLoss.target_features`, ``forward`` with a target that does not require
            grad); ``False`` for both sides learnable and for :meth:`PerceptualLoss.features`.
        kernels_available: says whether the compiled kernels are built
            (:func:`._native.kernels_available`; absent without a C compiler or with
            ``PERCEPTUAL_AUDIO_LOSS_NATIVE=0``). Asked last, only where every other condition leaves
            the compiled path open: building them takes about a second and warns where no compiler
            works.

    The batch's size and shape choose nothing (they size :mod:`._batched`'s blocks only); float64
    input is not a path of its own (the float64 reference of the tests is ``DIRECT``, or ``BATCHED``,
    in float64); ``MaskedLoss`` and ``AuditorySpectrogramLoss`` each have one path. Asked for a graph
    of its gradient (``create_graph=True``), a fused path's backward differentiates the ``FFT``
    path's operations instead.
    """
    if method == "direct":
        return Path.DIRECT
    if not fixed_target:
        return Path.FFT
    if not compiled or device_type != _native.DEVICE_TYPE or dtype != _native.DTYPE or not kernels_available():
        return Path.BATCHED
    return Path.COMPILED


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
            Which path a call takes is :func:`choose_path`'s table (:meth:`path_for` asks it).

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
        arguments = check_arguments(ARGUMENTS, locals())
        sample_rate, n_bands, taps, stride = (arguments[k] for k in ("sample_rate", "n_bands", "taps", "stride"))
        log_factor, low_hz, high_hz = arguments["log_factor"], arguments["low_hz"], arguments["high_hz"]
        if n_bands * taps > MAX_FILTER_COEFFICIENTS:
            raise ValueError(f"n_bands x taps must be at most {MAX_FILTER_COEFFICIENTS} (the filters' size budget), "
                             f"got {n_bands} x {taps}")
        if high_hz is not None and low_hz >= high_hz:
            raise ValueError(f"low_hz must be below high_hz, got {low_hz} and {high_hz}")
        check_sample_rate(sample_rate, lambda rate: nyquist_hz(rate) > low_hz,
                          f"no band: its Nyquist frequency, {nyquist_hz(sample_rate):g} Hz, is not above low_hz={low_hz:g}")
        filters, centres = filter_bank(sample_rate, n_bands, taps, low_hz, high_hz, scale)
        self.sample_rate = sample_rate
        self.taps = taps
        self.stride = stride
        self.log_factor = log_factor
        self.similarity = similarity
        self.reduction = reduction
        self.method = choose_method(method, taps, stride)
        self.compiled = compiled
        self._spectra = Derived()
        self.block_bytes = _batched.BLOCK_BYTES
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
            items = widen(items)
            maps = self._signal_features(items, self.path_for(items, fixed_target=False))
        if x.dim() == 3 and x.shape[1] > 1:
            return maps.reshape(batch, x.shape[1], *maps.shape[1:])
        return maps

    def path_for(self, x: torch.Tensor, fixed_target: bool = True) -> Path:
        """The path a call on signals like ``x`` takes (:func:`choose_path`): against fixed target
        features, or with ``fixed_target=False`` with both sides learnable or for :meth:`features`."""
        return choose_path(self.method, self.compiled, x.device.type, compute_dtype(x.dtype), fixed_target,
                           _native.kernels_available)

    def _signal_features(self, x: torch.Tensor, path: Path) -> torch.Tensor:
        """``(signals, time)`` -> ``(signals, n_bands, frames)`` in ``x``'s dtype: by ``conv1d`` on
        the direct path, by the FFT on every other (the compiled kernels' map is :meth:`_prepare`'s)."""
        weights = self.band_weights.to(device=x.device, dtype=x.dtype)
        if path is not Path.DIRECT:
            # log_factor is folded into the filters' spectra: k relu(y) = relu(k y) for k > 0.
            geometry = self._geometry(x)
            return _batched.features(x, self._filter_spectra(geometry.n_fft, x.device, x.dtype), weights, geometry)
        filters = self.filters.to(device=x.device, dtype=x.dtype)
        # Zero padding of `taps` on both sides: T + taps + 1 outputs per band at stride 1.
        bands = F.conv1d(x.unsqueeze(1), filters, stride=self.stride, padding=self.taps)
        return torch.log1p(self.log_factor * F.relu(bands)) * weights

    def _geometry(self, x: torch.Tensor) -> _batched.Geometry:
        frames = x.shape[-1] + self.taps + 1
        return _batched.Geometry(fft_length(frames), frames, self.stride, self.similarity, self.block_bytes)

    def _filter_spectra(self, n_fft: int, device: torch.device, dtype: torch.dtype,
                        conjugate: bool = False) -> torch.Tensor:
        """rfft of ``log_factor`` x each filter, time-reversed and delayed by one sample (or the
        complex conjugate of that, for the adjoint of the filtering).

        Reversal turns convolution into the cross-correlation conv1d computes; the one-sample
        delay reproduces the leading zero of conv1d's ``taps`` padding, so the first
        ``T + taps + 1`` samples of the inverse FFT are exactly the direct path's outputs.

        Cached per FFT length, device and dtype, and made again whenever what they are made of
        changes: the filters tensor itself (``load_state_dict``, an in-place edit, a new tensor)
        or ``log_factor``.
        """
        def make() -> torch.Tensor:
            if conjugate:
                return self._filter_spectra(n_fft, device, dtype).conj().resolve_conj()
            kernels = self.log_factor * self.filters.detach().squeeze(1).flip(-1).to(torch.float64)
            delayed = F.pad(kernels, (1, 0))
            return torch.fft.rfft(delayed, n=n_fft).to(device=device, dtype=_complex_of(dtype))

        return self._spectra.get((n_fft, device, dtype, conjugate), (self.filters, self.log_factor), make)

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
        per_signal = _batched.similarity(input_features.reshape(-1, *input_features.shape[-2:]),
                                         target_features.reshape(-1, *target_features.shape[-2:]), self.similarity)
        return reduce(per_signal.reshape(batch, -1).mean(1), check_reduction(reduction or self.reduction))

    def target_features(self, target: torch.Tensor) -> torch.Tensor:
        """Features of a fixed target, without a graph: compute once, pass to :meth:`against`.

        A signal's features do not depend on the rest of the batch (within the rounding of batched
        FFTs on the device path; bit for bit on the compiled CPU path).

        Shape:
            target: as :meth:`forward` takes it. output: ``(batch * channels, n_bands, frames)``.
        """
        items, _ = signals(target, "target")
        with full_precision(target.device):
            items = items.to(compute_dtype(target.dtype))
            return self._prepare(items, self.path_for(items))

    @torch.no_grad()
    def _prepare(self, y: torch.Tensor, path: Path, scratch: bool = False) -> torch.Tensor:
        """Features of target signals ``(signals, time)``, without a graph, on ``path``.

        ``scratch``: the map is used and dropped within this call (the compiled path then reuses
        one array from call to call).
        """
        if path is Path.COMPILED:
            return _compiled.features(y, self._compiled_plan(y), scratch)
        return self._signal_features(y, path)

    def _compiled_plan(self, x: torch.Tensor) -> _compiled.Plan:
        """The compiled kernels' plan for signals like ``x``: for the compiled path only, where
        :func:`choose_path` has found the kernels built."""
        frames = x.shape[-1] + self.taps + 1
        n_fft = _compiled.decimated_fft_length(frames, self.stride, fft_length)
        return _compiled.Plan(n_fft, frames, self.stride, self.similarity, _native.native_kernels(),
                              self._filter_spectra(n_fft, x.device, x.dtype), self.band_weights.to(x.dtype),
                              self._workspace)

    def against(
        self, input: torch.Tensor, target_features: torch.Tensor, reduction: str | None = None
    ) -> torch.Tensor:
        """The loss of ``input`` against features from :meth:`target_features`.

        With ``method="fft"`` this runs a fused path (:func:`choose_path`): filtering, rectification,
        compression, weighting and similarity a block of bands at a time, with an analytic backward.
        """
        reduction = check_reduction(reduction or self.reduction)
        if not isinstance(target_features, torch.Tensor):
            raise TypeError(f"target_features must be a tensor from target_features(), got {type(target_features).__name__}")
        items, batch = signals(input, "input")
        with full_precision(input.device):
            items = widen(items)
            per_signal = self._against_signals(items, target_features, self.path_for(items))
        return finish(per_signal, batch, reduction, input.dtype)

    def _against_signals(self, x: torch.Tensor, target_features: torch.Tensor, path: Path) -> torch.Tensor:
        """``(signals, time)`` against their prepared features on ``path``: ``(signals,)`` in ``x``'s dtype."""
        frames = x.shape[-1] + self.taps + 1
        expected = (x.shape[0], self.filters.shape[0], (frames - 1) // self.stride + 1)
        if tuple(target_features.shape) != expected:
            raise ValueError(f"target_features {tuple(target_features.shape)} do not fit input signals "
                             f"{tuple(x.shape)}: expected {expected}")
        target_features = target_features.to(device=x.device, dtype=x.dtype)
        if path is Path.COMPILED:
            return _compiled.CompiledDistance.apply(x, target_features.contiguous(), self._compiled_plan(x))
        if path is Path.BATCHED:
            return self._batched_distance(x, target_features)
        return self.compare(self._signal_features(x, path), target_features, "none")

    def _batched_distance(self, x: torch.Tensor, target_features: torch.Tensor) -> torch.Tensor:
        """The batched path's fused distance of ``(signals, time)`` to their target features."""
        geometry = self._geometry(x)
        spectra = self._filter_spectra(geometry.n_fft, x.device, x.dtype)
        conjugate = self._filter_spectra(geometry.n_fft, x.device, x.dtype, conjugate=True)
        weights = self.band_weights.to(device=x.device, dtype=x.dtype)
        return _batched.BatchedDistance.apply(x, spectra, conjugate, weights, target_features.contiguous(), geometry)

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        x, y, batch = matching_signals(input, target)
        with full_precision(input.device):
            x, y = widen(x), widen(y)
            path = self.path_for(x, fixed_target=not target.requires_grad)
            if path.fused:
                per_signal = self._against_signals(x, self._prepare(y, path, scratch=True), path)
            else:  # the plain differentiable path: both sides' feature maps, compared
                per_signal = self.compare(self._signal_features(x, path), self._signal_features(y, path), "none")
        return finish(per_signal, batch, self.reduction, input.dtype)


def _complex_of(dtype: torch.dtype) -> torch.dtype:
    return torch.complex128 if dtype == torch.float64 else torch.complex64


def perceptual_loss(input: torch.Tensor, target: torch.Tensor, sample_rate: float, **kwargs) -> torch.Tensor:
    """Functional form: builds a :class:`PerceptualLoss` on the input's device and applies it.

    Designing the filters costs a few tens of milliseconds; in a training loop build the module once.
    """
    return PerceptualLoss(sample_rate, **kwargs).to(input.device)(input, target)
