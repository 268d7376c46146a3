"""Every loss the harness knows, built at sample rates 1, 100 and 1000 Hz and at the smallest rate
it accepts: refused when built, by name and with that smallest rate, or computing a finite value
and gradient. The smallest rate is found here by building the loss (bisection over integer
rates), not read from the loss; the library's own figures, by hand, are in
``tests/library/test_rates.py``."""

import math
import re

import pytest
import torch

from pal.losses.registry import REGISTERED

LENGTH = 4096  # longer than every peer's longest window (their reflect padding needs it)
REFUSAL = re.compile(r"sample_rate=\d+ leaves [^\n]+: the smallest sample_rate that works with these arguments is (\d+)")


def builds(name: str, rate: int) -> bool:
    try:
        REGISTERED[name].factory(rate)
    except ValueError:
        return False
    return True


def smallest_rate(name: str) -> int:
    low, high = 0, 48000  # every loss builds at 48 kHz
    assert builds(name, high)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if builds(name, middle) else (middle, high)
    return high


def finite_value_and_gradient(name: str, rate: int) -> bool:
    loss = REGISTERED[name].factory(rate)
    generator = torch.Generator().manual_seed(0)
    channels = loss.output_channels if REGISTERED[name].decodes else 1
    output = torch.randn(2, channels, LENGTH, generator=generator).requires_grad_()
    value = loss(output, 0.3 * torch.randn(2, 1, LENGTH, generator=generator))
    value.backward()
    return math.isfinite(value.item()) and bool(torch.isfinite(output.grad).all())


@pytest.mark.parametrize("name", sorted(REGISTERED))
def test_a_rate_with_nothing_to_compute_is_refused_at_construction_with_the_smallest_that_works(name):
    smallest = smallest_rate(name)
    assert finite_value_and_gradient(name, smallest)
    for rate in (1, 100, 1000):
        if rate >= smallest:
            assert finite_value_and_gradient(name, rate), rate
            continue
        with pytest.raises(ValueError) as refused:
            REGISTERED[name].factory(rate)
        stated = REFUSAL.fullmatch(str(refused.value))
        assert stated and str(refused.value).startswith(f"sample_rate={rate} "), refused.value
        assert int(stated.group(1)) == smallest
