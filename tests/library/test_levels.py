"""Every loss at every level: a target at the output's level, quiet (-20, -60, -120 dB) and silent,
an output that is silent, and both 60 dB louder than full scale; the table of
``docs/loss-contract.md`` ("Silence, quiet and loud"), row by row.

The values are compared with the value against a target at the output's level (both noise,
independent, 0.3 RMS): a quiet target must not make a loss dominate a batch. "toward the target"
means the gradient is finite, non-zero, and its descent direction has a positive inner product
with ``target - output``; "zero" that it is exactly zero (the post's rectifier at silence).
"""

import math
import re
from pathlib import Path

import pytest
import torch

from perceptual_audio_loss import LOSSES, build_loss

RATE, LENGTH = 11025, 8192
QUIET_DB = (-20.0, -60.0, -120.0)
CONTRACT = Path(__file__).resolve().parents[2] / "docs" / "loss-contract.md"

# loss: (bound on |value| for a quiet or silent target, in multiples of the matched-level value;
#        the gradient from a silent output)
LEVELS = {
    "mse": (1, "toward the target"),
    "l1": (1, "toward the target"),
    "perceptual": (1, "zero"),
    "perceptual-mse": (1, "zero"),
    "masked": (15, "toward the target"),
    "masked+perceptual": (30, "toward the target"),
    "auditory": (20, "toward the target"),
}


def signals():
    generator = torch.Generator().manual_seed(0)
    return 0.3 * torch.randn(1, LENGTH, generator=generator), 0.3 * torch.randn(1, LENGTH, generator=generator)


def value_and_gradient(loss, output, target):
    output = output.clone().requires_grad_()
    value = loss(output, target)
    value.backward()
    return value.item(), output.grad


def test_the_table_in_the_contract_is_this_one():
    text = CONTRACT.read_text()
    section = text[text.index("### Silence, quiet and loud"):]
    rows = re.findall(r"^\| `([^`]+)` \| (\d+) × \| ([a-z ]+) \|", section, re.M)
    assert {name: (int(bound), gradient) for name, bound, gradient in rows} == LEVELS


def test_every_registered_loss_has_a_row():
    assert set(LEVELS) == set(LOSSES)


@pytest.mark.parametrize("name", sorted(LEVELS))
def test_a_quiet_or_silent_target_keeps_the_value_bounded_and_the_gradient_finite(name):
    loss = build_loss(name, RATE)
    output, target = signals()
    matched, _ = value_and_gradient(loss, output, target)
    bound = LEVELS[name][0] * abs(matched)
    for db in (*QUIET_DB, None):
        quiet = target * 0.0 if db is None else target * 10.0 ** (db / 20.0)
        value, gradient = value_and_gradient(loss, output, quiet)
        assert math.isfinite(value) and abs(value) <= bound, (db, value, matched)
        assert torch.isfinite(gradient).all()
        if db is not None:
            assert gradient.abs().sum() > 0, db  # a quiet target still asks for something


@pytest.mark.parametrize("name", sorted(LEVELS))
def test_from_a_silent_output(name):
    loss = build_loss(name, RATE)
    _, target = signals()
    value, gradient = value_and_gradient(loss, torch.zeros_like(target), target)
    assert math.isfinite(value) and torch.isfinite(gradient).all()
    if LEVELS[name][1] == "zero":
        assert (gradient == 0).all()
    else:
        assert float((-gradient * target).sum()) > 0  # descent moves the output toward the target


@pytest.mark.parametrize("name", sorted(LEVELS))
def test_both_silent_and_both_loud_are_finite(name):
    loss = build_loss(name, RATE)
    output, target = signals()
    for scale in (0.0, 1e3):
        value, gradient = value_and_gradient(loss, output * scale, target * scale)
        assert math.isfinite(value) and torch.isfinite(gradient).all(), scale
