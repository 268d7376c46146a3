"""Every loss, every float dtype, amplitudes from 1e-30 to 1e30: finite input never gives NaN or
infinity. Where the true value or a gradient component (the same samples in float64) is past the
dtype's largest finite number, no result in that dtype could hold it: the loss then gives that
number (``contract.out_of`` for the value, ``contract.widen`` for the gradient), and elsewhere the
value is the true one within the dtype's rounding.

Where a loss's arithmetic would overflow before its result does (the masked and auditory losses
square amplitudes into powers), it computes scaled by a power of two (``contract.peak_scale``).
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
def test_finite_input_gives_a_finite_value_and_gradient_saturated_where_the_dtype_cannot_hold_them(name, dtype):
    loss = build_loss(name, RATE)
    generator = torch.Generator().manual_seed(0)
    noise = torch.randn(2, 2, LENGTH, generator=generator, dtype=torch.float64)
    largest = torch.finfo(dtype).max
    checked = saturated = 0
    for amplitude in AMPLITUDES:
        output, target = (amplitude * noise[0]).to(dtype), (amplitude * (0.5 * noise[0] + noise[1])).to(dtype)
        if not (torch.isfinite(output).all() and torch.isfinite(target).all()):
            continue  # not a finite input in this dtype
        value, gradient = value_and_gradient(loss, output, target)
        assert torch.isfinite(value) and torch.isfinite(gradient).all(), amplitude
        true_value, _ = value_and_gradient(loss, output.double(), target.double())
        if abs(float(true_value)) >= largest:
            assert float(value) == largest, amplitude
            saturated += 1
        else:  # within the dtype's rounding of the float64 figure (a 16-bit input rounds first)
            assert math.isclose(float(value), float(true_value), rel_tol=2e-2, abs_tol=1e-3), amplitude
            checked += 1
    assert checked >= 5
    # the MSE of float16 samples a few hundred apart and of float32 and bfloat16 ones past 1e19;
    # the post's features compared by MSE in float16 from about 1e2
    if (name == "mse" and dtype != torch.float64) or (name == "perceptual-mse" and dtype == torch.float16):
        assert saturated >= 1


def test_a_saturated_value_keeps_the_true_gradient():
    # float32 samples about 1e30 apart: the MSE (1e60) is past float32, its gradient 2 d / n is not
    loss = build_loss("mse", RATE)
    noise = torch.randn(2, LENGTH, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    output, target = (1e30 * noise[0]).float(), (1e30 * noise[1]).float()
    value, gradient = value_and_gradient(loss, output[None], target[None])
    expected = 2 * (output.double() - target.double()) / LENGTH
    assert float(value) == torch.finfo(torch.float32).max
    assert torch.allclose(gradient[0].double(), expected, rtol=1e-6)
