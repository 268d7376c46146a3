"""The peers on quiet and silent targets, and from a silent output: the table of
docs/guides/a-loss-that-wins.md ("Quiet targets and silence: the peers too"), cell by cell."""

import re
from pathlib import Path

import pytest
import torch

from pal.losses.registry import REGISTERED

GUIDE = Path(__file__).resolve().parents[3] / "docs" / "guides" / "a-loss-that-wins.md"
RATE, LENGTH = 11025, 8192


def table() -> dict[str, tuple[str, str]]:
    text = GUIDE.read_text()
    section = text[text.index("## Quiet targets and silence: the peers too"):]
    section = section[:section.index("\n## ", 1)]
    return {name: (target, silence) for name, target, silence in
            re.findall(r"^\| `([^`]+)` \| (blows up|bounded) \| (zero|toward the target) \|", section, re.M)}


def value_and_gradient(loss, output, target):
    output = output.clone().requires_grad_()
    value = loss(output, target)
    value.backward()
    return value.item(), output.grad


def test_every_peer_has_a_row():
    # mu-law's output is logits, not audio: no silent output, and its classes have no level to blow up
    assert set(table()) == {name for name, loss in REGISTERED.items() if loss.peer and not loss.decodes}


@pytest.mark.parametrize("name", sorted(table()))
def test_the_peers_row(name):
    target_cell, silence_cell = table()[name]
    loss = REGISTERED[name].factory(RATE)
    generator = torch.Generator().manual_seed(0)
    output, target = (0.3 * torch.randn(1, 1, LENGTH, generator=generator) for _ in range(2))
    matched, _ = value_and_gradient(loss, output, target)
    quiet, _ = value_and_gradient(loss, output, target * 1e-3)
    silent, gradient = value_and_gradient(loss, output, target * 0.0)
    assert torch.isfinite(gradient).all()
    if target_cell == "blows up":
        assert quiet > 100 * matched and silent > 10_000 * matched
    else:
        assert quiet < 30 * matched and silent < 30 * matched
    _, from_silence = value_and_gradient(loss, torch.zeros_like(output), target)
    assert (from_silence == 0).all() if silence_cell == "zero" else float((-from_silence * target).sum()) > 0
