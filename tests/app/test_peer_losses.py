"""The peer losses (auraloss's, as its users call it) against values worked out by hand."""

import math

import pytest
import torch

from pal.losses import LossSpec, build_loss

RATE = 11025


@pytest.mark.parametrize("name", ["mrstft", "mel-mrstft"])
def test_multi_resolution_losses_of_a_doubled_signal(name):
    # Magnitudes (and their mel projections, linear) double: spectral convergence 1, log distance ln 2.
    x = torch.randn(1, 1, 8192, generator=torch.Generator().manual_seed(0))
    loss = build_loss(LossSpec(name, "registered", name), RATE)
    assert loss(2 * x, x).item() == pytest.approx(1 + math.log(2), rel=1e-5)
    assert loss(x, x).item() == 0.0
