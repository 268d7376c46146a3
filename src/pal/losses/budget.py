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


# Registered losses whose size depends on their options: the estimate, and the options it reads.
ESTIMATES: dict[str, tuple[Callable[[dict, float, int], int | None], tuple[str, ...]]] = {
    "perceptual": (perceptual_bytes, ("n_bands", "taps", "stride")),
    "perceptual-mse": (perceptual_bytes, ("n_bands", "taps", "stride")),
    "masked": (masked_bytes, ("band_width_bark", "windows_s", "backward_s")),
}


def size(bytes_: int) -> str:
    """``1.2 TB``, ``640 MB``: decimal units, two significant figures."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if bytes_ >= scale:
            return f"{bytes_ / scale:.2g} {unit}" if bytes_ / scale < 100 else f"{bytes_ / scale:.0f} {unit}"
    return f"{bytes_} B"


def check_working_set(label: str, name: str, options: dict, sample_rate: float, length: int) -> None:
    """Refuse, in one line naming the options, a registered loss ``name`` whose estimated working
    set on one ``length``-sample signal at ``sample_rate`` exceeds :data:`WORKING_SET_BUDGET`."""
    if name not in ESTIMATES:
        return
    estimate, read = ESTIMATES[name]
    try:
        needed = estimate(options, sample_rate, length)
    except (ArithmeticError, ValueError, TypeError):  # a value the loss's own checks will name
        return
    if needed is None or needed <= WORKING_SET_BUDGET:
        return
    given = [f"{key}={options[key]}" for key in read if key in options]
    named = " and ".join(given) if given else f"the sample rate {sample_rate:g} Hz"
    raise UserError(f"loss {label!r}: {named} would need about {size(needed)} of memory for one "
                    f"{length}-sample signal at {sample_rate:g} Hz (at most {size(WORKING_SET_BUDGET)}); "
                    "choose smaller values")
