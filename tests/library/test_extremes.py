"""Every loss, every float dtype, amplitudes from 1e-30 to 1e30: finite input never gives NaN, and
gives infinity only where the true value or gradient (the same samples in float64) is past the
dtype's largest finite number, which no computation in that dtype could return.

Where a loss's arithmetic would overflow before its result does (the masked and auditory losses
square amplitudes into powers), it computes scaled by a power of two (``contract.peak_scale``),
so those losses are finite at every amplitude here.
"""

import math

import pytest
import torch

from perceptual_audio_loss import LOSSES, build_loss

RATE, LENGTH = 11025, 2048
DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]
AMPLITUDES = [10.0**k for k in range(-30, 31, 3)]


def value_and_gradient(loss, output, target):
    output = output.clone().requires_grad_()
    value = loss(output, target)
    value.backward()
    return value.detach(), output.grad


@pytest.mark.parametrize("dtype", DTYPES, ids=[str(d).removeprefix("torch.") for d in DTYPES])
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_finite_input_gives_a_finite_value_and_gradient_where_the_dtype_can_hold_them(name, dtype):
    loss = build_loss(name, RATE)
    generator = torch.Generator().manual_seed(0)
    noise = torch.randn(2, 2, LENGTH, generator=generator, dtype=torch.float64)
    largest = torch.finfo(dtype).max
    checked = 0
    for amplitude in AMPLITUDES:
        output, target = (amplitude * noise[0]).to(dtype), (amplitude * (0.5 * noise[0] + noise[1])).to(dtype)
        if not (torch.isfinite(output).all() and torch.isfinite(target).all()):
            continue  # not a finite input in this dtype
        value, gradient = value_and_gradient(loss, output, target)
        assert not value.isnan() and not gradient.isnan().any(), amplitude
        true_value, true_gradient = value_and_gradient(loss, output.double(), target.double())
        # the float64 figure with a margin for the dtype's rounding: past it only infinity is honest
        representable = abs(float(true_value)) < 0.5 * largest and float(true_gradient.abs().max()) < 0.5 * largest
        if representable:
            assert math.isfinite(float(value)) and torch.isfinite(gradient).all(), amplitude
            checked += 1
    assert checked >= 5
