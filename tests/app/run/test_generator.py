import numpy as np
import pytest
import torch

from pal.run.generator import BLOCKS, seeded_generator_and_latent
from pal.run.train import TrainSettings, checkpoint_iterations, train_one


def test_output_shape_and_layers():
    model, latent = seeded_generator_and_latent(0)
    assert latent.shape == (1, 128)
    assert model(latent).shape == (1, 1, 8192)
    assert [c.kernel_size[0] for c in model.convs] == [k for _, k in BLOCKS] == [3, 15, 25, 25, 25, 25, 25]
    assert all(c.bias is None for c in model.convs)
    assert model.convs[-1].out_channels == 1


def test_xavier_normal_std_by_hand():
    model, _ = seeded_generator_and_latent(0)
    leaky_gain = np.sqrt(2 / (1 + 0.2 ** 2))  # He et al. 2015 gain for leaky ReLU slope 0.2
    for i, conv in enumerate(model.convs):
        out_ch, in_ch, k = conv.weight.shape
        gain = 1.0 if i == len(model.convs) - 1 else leaky_gain
        expected = gain * np.sqrt(2.0 / (in_ch * k + out_ch * k))
        assert conv.weight.std().item() == pytest.approx(expected, rel=0.1)


def test_fast_forward_equals_the_literal_upsample_then_conv():
    model, latent = seeded_generator_and_latent(0)
    expected = model.reference_forward(latent)
    got = model(latent)
    assert got.shape == expected.shape
    assert (got - expected).abs().max() < 1e-5 * expected.abs().max()


def test_seed_fixes_weights_and_latent():
    a, za = seeded_generator_and_latent(3)
    b, zb = seeded_generator_and_latent(3)
    c, zc = seeded_generator_and_latent(4)
    assert torch.equal(za, zb) and not torch.equal(za, zc)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a.convs[0].weight, c.convs[0].weight)


def test_checkpoint_iterations():
    assert checkpoint_iterations(1000, 250) == [250, 500, 750, 1000]
    assert checkpoint_iterations(5, 5) == [5]
    assert checkpoint_iterations(7, 3) == [3, 6, 7]


def test_training_records_the_loss_of_the_untouched_generator_first_and_lowers_it():
    target = torch.sin(torch.linspace(0, 200, 8192)).view(1, 1, -1)
    model, latent = seeded_generator_and_latent(0)
    with torch.no_grad():
        first = torch.mean((model(latent) - target) ** 2).item()
    result = train_one(target, torch.nn.MSELoss(), seed=0, settings=TrainSettings(iterations=40, checkpoint_every=20))
    assert result.losses[0] == pytest.approx(first, rel=1e-6)
    assert result.losses[-1] < result.losses[0]
    assert sorted(result.checkpoints) == [20, 40]
    # A checkpoint is the output after that many updates: its MSE is below the last recorded loss.
    final_mse = np.mean((result.checkpoints[40] - target.numpy().ravel()) ** 2)
    assert final_mse < result.losses[-1]
