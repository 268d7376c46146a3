"""A sample rate that leaves a loss nothing to compute is refused when the loss is built, by name
and with the smallest rate that works; at that rate and above, the loss computes.

The smallest rates are worked out by hand from each loss's own requirement:
- the post's loss needs its first band, ``low_hz``, below the Nyquist frequency, which an integral
  rate halves by integer division (``rate // 2 > low_hz``);
- the masked loss needs each window at least 4 samples long (its hop, a quarter, at least 1): the
  window is the power of two nearest in log to ``rate x seconds``, so ``log2(rate x seconds)``
  must reach 1.5, ``rate >= 2^1.5 / seconds``;
- the auditory loss the same for its longest window.
"""

import math

import pytest
import torch

from perceptual_audio_loss import LOSSES, build_loss

LENGTH = 1024


def by_hand(seconds: float) -> int:
    return math.ceil(2**1.5 / seconds)


CASES = [
    ("mse", {}, 1),  # samples alone: any rate
    ("l1", {}, 1),
    ("perceptual", {}, 4),  # 4 // 2 = 2 > 1 Hz; 3 // 2 = 1 is not above it
    ("perceptual", {"low_hz": 100.0}, 202),
    ("perceptual-mse", {}, 4),
    ("masked", {}, by_hand(0.006)),  # the shorter of its windows, 6 ms
    ("masked", {"windows_s": (0.05,)}, by_hand(0.05)),
    ("masked+perceptual", {}, by_hand(0.006)),  # the masked part's is the higher
    ("auditory", {}, by_hand(0.046)),
    ("auditory", {"longest_window_s": 0.01, "resolutions": 8}, by_hand(0.01)),
]


def test_every_registered_loss_has_a_case():
    assert {name for name, _, _ in CASES} == set(LOSSES)


def finite_value_and_gradient(loss):
    generator = torch.Generator().manual_seed(0)
    input = (0.3 * torch.randn(2, LENGTH, generator=generator)).requires_grad_()
    value = loss(input, 0.3 * torch.randn(2, LENGTH, generator=generator))
    value.backward()
    return math.isfinite(value.item()) and bool(torch.isfinite(input.grad).all())


@pytest.mark.parametrize("name, options, smallest", CASES, ids=[f"{n}{o or ''}" for n, o, _ in CASES])
def test_below_the_smallest_rate_the_loss_is_refused_by_name(name, options, smallest):
    for rate in sorted({1, 100, 1000, smallest - 1, smallest, 2 * smallest}):
        if rate < 1:
            continue
        if rate < smallest:
            with pytest.raises(ValueError) as refused:
                build_loss(name, rate, **options)
            message = str(refused.value)
            assert message.startswith(f"sample_rate={rate} leaves ") and "\n" not in message
            assert message.endswith(f"the smallest sample_rate that works with these arguments is {smallest}")
        else:
            assert finite_value_and_gradient(build_loss(name, rate, **options)), rate
