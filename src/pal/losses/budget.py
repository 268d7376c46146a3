"""Loss options bounded before anything is allocated: a working-set estimate against a budget.

A registered loss's size grows with its options (bands, taps, band width, spans) and the signal
(rate, length). An option mistyped by a few zeros (``perceptual:n_bands=10000000``) would design
millions of filters or allocate terabytes before anything could say so; here the working set of
one signal's forward and backward pass is estimated from the options alone, with arithmetic on
integers, and a loss whose estimate exceeds :data:`WORKING_SET_BUDGET` is refused in one line
naming the option. The library's constructors check each argument's own range as well; this is
the bound on their product, which only the application knows the signal for.

The estimates are calibrated against the peak memory of forward and backward on one 8192-sample
signal at 11025 Hz (growth of the process's resident high-water mark, torch 2.13 CPU, 2026-12-04,
after the library's batched paths): ``PerceptualLoss`` 104 MB at 512 bands x 512 taps on the
compiled CPU path and 161 MB on the torch path CUDA runs (``compiled=False``), 378 and 667 MB at
2048 x 1024, 878 MB and 1.42 GB at 4096 x 2048: 5.3 to 5.8 float32 values per feature-map cell
on the compiled path, 7.1 to 8.9 on the torch path, whose blocks cap it beyond 256 MiB per block;
``MaskedLoss`` 20 MB by default and 202 MB at ``band_width_bark=0.1``. Measured again the same day
in 26 fresh processes each, the torch path's 512 x 512 peak was 159 to 162 MB, and 202 and 237 MB
in two of them (the allocator's high-water mark varies from process to process): up to 13.3 values
per cell.
"""

from __future__ import annotations

import inspect
import math
import numbers
from dataclasses import dataclass
from typing import Callable

from ..core.errors import UserError

# Bytes one signal's forward and backward through a loss may need: 20 times the post's loss
# (about 100 MB), a tenth of a small machine's memory. A batch of runs needs it per signal.
WORKING_SET_BUDGET = 2 * 2**30

FLOAT32 = 4
PERCEPTUAL_VALUES_PER_CELL = 14  # measured up to 13.3 on the torch path (module docstring), rounded up
MASKED_VALUES_PER_SPREAD = 6  # the spreading's few frames x bands x bands arrays, and the default's other terms
MASKED_VALUES_PER_BIN = 8  # spectrum (complex), its magnitude, phase and prediction, per frame and bin


def _defaults(factory) -> dict:
    return {name: parameter.default for name, parameter in inspect.signature(factory).parameters.items()
            if parameter.default is not inspect.Parameter.empty}


def _positive(value) -> bool:
    """A number an estimate can use; anything else is left for the loss's own check to refuse."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def perceptual_bytes(options: dict, sample_rate: float, length: int) -> int | None:
    """``PerceptualLoss``: its feature map, ``n_bands x ((length + taps) // stride + 1)`` cells."""
    from perceptual_audio_loss import PerceptualLoss

    values = _defaults(PerceptualLoss) | options
    n_bands, taps, stride = values["n_bands"], values["taps"], values["stride"]
    if not all(_positive(value) for value in (n_bands, taps, stride)):
        return None
    frames = int((length + taps) // stride) + 1
    return FLOAT32 * (PERCEPTUAL_VALUES_PER_CELL * int(n_bands) * frames + int(n_bands) * int(taps))


def masked_bytes(options: dict, sample_rate: float, length: int) -> int | None:
    """``MaskedLoss``: per resolution, its spectra (frames x bins) and the spreading of every band
    onto every other, plus the backward-masking span, per frame (frames x bands x (bands + lags))."""
    from perceptual_audio_loss import MaskedLoss
    from perceptual_audio_loss.masking import window_length
    from perceptual_audio_loss.scales import hz_to_critical_band_rate

    values = _defaults(MaskedLoss) | options
    width, span, windows = values["band_width_bark"], values["backward_s"], values["windows_s"]
    if not (_positive(width) and _positive(span) and isinstance(windows, (tuple, list))
            and windows and all(_positive(seconds) for seconds in windows)):
        return None
    bands = math.ceil(float(hz_to_critical_band_rate(sample_rate / 2.0)) / width) + 1
    total = 0
    for seconds in windows:
        n_fft = window_length(sample_rate, seconds)
        hop = max(1, n_fft // 4)
        frames, bins = length // hop + 1, n_fft // 2 + 1
        lags = math.ceil(span * sample_rate / hop)
        total += (MASKED_VALUES_PER_BIN * frames * bins + bins * bands
                  + frames * bands * (MASKED_VALUES_PER_SPREAD * bands + lags))
    return FLOAT32 * total


# Every other registered loss, measured the same way (2026-12-06, same machine and torch, at 8192
# and 32768 samples, 11025 and 44100 Hz): before any signal-sized array the first call's own
# growth (the autograd engine, the FFT's plans and thread pools) is 5 MB for MSE and up to 14 MB for
# auraloss's MR-STFT; beyond it, MSE and L1 add a few bytes per sample, the STFT losses 9 to 15
# float32 values per frame and bin (``AuditorySpectrogramLoss`` 15, auraloss 9 to 11, DAC's mel 12),
# the mu-law loss 3 per class and sample.
FIRST_CALL = 16 * 2**20
WAVEFORM_VALUES_PER_SAMPLE = 8  # input, target, difference, gradients
STFT_VALUES_PER_BIN = 16  # spectrum (complex), power, levels, their gradients, per frame and bin
MULAW_VALUES_PER_CLASS = 4  # logits' softmax, its log, the gradient, per class and sample


@dataclass(frozen=True)
class Memory:
    """How a registered loss's working set on one signal is estimated: ``estimate(options,
    sample_rate, length)`` in bytes (``None`` when an option is not a number it can use, for the
    loss's own check to refuse), and the options it reads (named in a refusal)."""

    estimate: Callable[[dict, float, int], int | None]
    reads: tuple[str, ...] = ()


def waveform_bytes(options: dict, sample_rate: float, length: int) -> int:
    """A loss on the samples themselves (MSE, L1): a few copies of the signal."""
    return FIRST_CALL + FLOAT32 * WAVEFORM_VALUES_PER_SAMPLE * length


def stft_bytes(windows: list[int], hops: list[int], length: int, bands: int = 0) -> int:
    """Short-time spectra at each (window, hop), frames centred every hop, and ``bands`` band
    values per frame and a bins x bands weighting per window."""
    total = 0
    for window, hop in zip(windows, hops):
        frames, bins = length // hop + 1, window // 2 + 1
        total += STFT_VALUES_PER_BIN * frames * bins + bands * (bins + frames)
    return FIRST_CALL + FLOAT32 * total


def auditory_bytes(options: dict, sample_rate: float, length: int) -> int | None:
    """``AuditorySpectrogramLoss``: per resolution its spectra and ERB bands (hop a quarter window)."""
    from perceptual_audio_loss import AuditorySpectrogramLoss
    from perceptual_audio_loss.auditory import window_lengths
    from perceptual_audio_loss.masking import SHORTEST_WINDOW
    from perceptual_audio_loss.scales import hz_to_erb_rate

    values = _defaults(AuditorySpectrogramLoss) | options
    longest_s, resolutions, per_erb = values["longest_window_s"], values["resolutions"], values["bands_per_erb"]
    if not all(_positive(value) for value in (longest_s, resolutions, per_erb)):
        return None
    windows = window_lengths(sample_rate, longest_s, int(resolutions)) or [SHORTEST_WINDOW]
    bands = math.ceil(float(hz_to_erb_rate(sample_rate / 2.0)) * per_erb) + 1
    return stft_bytes(windows, [max(1, n // 4) for n in windows], length, bands)


# auraloss's MultiResolutionSTFTLoss defaults (its source: FFT sizes, hops)
AURALOSS_FFTS, AURALOSS_HOPS, AURALOSS_MELS = (1024, 2048, 512), (120, 240, 50), 128


def mrstft_bytes(options: dict, sample_rate: float, length: int) -> int:
    return stft_bytes(list(AURALOSS_FFTS), list(AURALOSS_HOPS), length)


def mel_mrstft_bytes(options: dict, sample_rate: float, length: int) -> int:
    return stft_bytes(list(AURALOSS_FFTS), list(AURALOSS_HOPS), length, AURALOSS_MELS)


def dac_mel_bytes(options: dict, sample_rate: float, length: int) -> int:
    from .mel import DAC_MEL_BANDS, DAC_WINDOW_LENGTHS

    return stft_bytes(list(DAC_WINDOW_LENGTHS), [n // 4 for n in DAC_WINDOW_LENGTHS], length, max(DAC_MEL_BANDS))


def mulaw_bytes(options: dict, sample_rate: float, length: int) -> int:
    """The mu-law loss: the generator's logits, a class per level per sample."""
    from .mulaw import CLASSES

    return FIRST_CALL + FLOAT32 * MULAW_VALUES_PER_CLASS * CLASSES * length


def sum_of(*parts: Callable[[dict, float, int], int | None]) -> Callable[[dict, float, int], int | None]:
    """A blend's estimate: its parts' at their defaults, added (the blend's own options weigh them)."""
    def estimate(options: dict, sample_rate: float, length: int) -> int | None:
        sizes = [part({}, sample_rate, length) for part in parts]
        return None if None in sizes else sum(sizes)

    return estimate


def size(bytes_: int) -> str:
    """``1.2 TB``, ``640 MB``: decimal units, two significant figures."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if bytes_ >= scale:
            return f"{bytes_ / scale:.2g} {unit}" if bytes_ / scale < 100 else f"{bytes_ / scale:.0f} {unit}"
    return f"{bytes_} B"


def check_working_set(label: str, memory: Memory, options: dict, sample_rate: float, length: int) -> None:
    """Refuse, in one line naming the options, a registered loss (``label``, estimated by
    ``memory``) whose working set on one ``length``-sample signal at ``sample_rate`` exceeds
    :data:`WORKING_SET_BUDGET`."""
    try:
        needed = memory.estimate(options, sample_rate, length)
    except (ArithmeticError, ValueError, TypeError):  # a value the loss's own checks will name
        return
    if needed is None or needed <= WORKING_SET_BUDGET:
        return
    given = [f"{key}={options[key]}" for key in memory.reads if key in options]
    named = " and ".join(given) if given else f"the sample rate {sample_rate:g} Hz"
    raise UserError(f"loss {label!r}: {named} would need about {size(needed)} of memory for one "
                    f"{length}-sample signal at {sample_rate:g} Hz (at most {size(WORKING_SET_BUDGET)}); "
                    "choose smaller values")
