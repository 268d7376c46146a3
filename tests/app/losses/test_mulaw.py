"""The addendum's μ-law categorical loss against G.711's formula and hand-made logits."""

import math

import numpy as np
import pytest
import torch

from pal.losses.specs import LossSpec, build_loss
from pal.losses.mulaw import MuLawLoss, class_values, mu_law_compress, mu_law_expand, quantise
from pal.run.train import TrainSettings, train_one


def test_companding_by_hand_and_round_trip():
    x = torch.tensor([-1.0, -0.5, 0.0, 0.01, 1.0], dtype=torch.float64)
    expected = np.sign(x.numpy()) * np.log(1 + 255 * np.abs(x.numpy())) / np.log(256)
    np.testing.assert_allclose(mu_law_compress(x).numpy(), expected)
    np.testing.assert_allclose(mu_law_expand(mu_law_compress(x)).numpy(), x.numpy(), atol=1e-12)


def test_quantisation_edges():
    assert quantise(torch.tensor([-1.0, 0.0, 1.0, 2.0, -3.0])).tolist() == [0, 128, 255, 255, 0]
    values = class_values()
    assert values[0].item() == -1.0 and values[-1].item() == 1.0 and len(values) == 256


def test_decoding_rules():
    loss = MuLawLoss()
    confident = torch.full((1, 256, 3), -50.0)
    for t, c in enumerate([0, 200, 255]):
        confident[0, c, t] = 50.0
    expected = mu_law_expand(class_values()[[0, 200, 255]])
    torch.testing.assert_close(loss.decode(confident)[0], expected, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(MuLawLoss("argmax").decode(confident)[0], expected)
    uniform = torch.zeros(1, 256, 4)  # a symmetric distribution: expected companded value 0
    assert loss.decode(uniform).abs().max().item() < 1e-6


def test_cross_entropy_by_hand():
    target = torch.tensor([[[0.5, -0.25]]])
    logits = torch.randn(1, 256, 2, generator=torch.Generator().manual_seed(0))
    classes = quantise(target.view(1, -1))[0]
    by_hand = -np.mean([torch.log_softmax(logits[0, :, t], 0)[classes[t]].item() for t in range(2)])
    assert MuLawLoss()(logits, target).item() == pytest.approx(by_hand, rel=1e-6)


@pytest.mark.slow
def test_the_generator_learns_the_classes():
    target = (0.5 * torch.sin(torch.arange(8192) * 0.05)).view(1, 1, -1)
    result = train_one(target, build_loss(LossSpec("mulaw", "registered", "mulaw"), 11025), seed=0,
                       settings=TrainSettings(iterations=30, checkpoint_every=30))
    assert result.losses[-1] < result.losses[0] - 0.5  # starts near ln 256 = 5.5
    assert result.losses[0] == pytest.approx(math.log(256), abs=1.5)
    assert result.checkpoints[30].shape == (8192,) and np.all(np.abs(result.checkpoints[30]) <= 1)
