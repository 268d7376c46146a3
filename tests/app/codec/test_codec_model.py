"""The codec model: its shapes, size and latent rate by hand, a stack of models equal to each
model alone, and each model's start drawn from its own seed."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pal.codec.model import CodecStack, channel_plan, hop, latent_rate, layer_shapes, parameter_count


def test_hop_and_latent_rate_by_hand():
    assert hop() == 2 * 4 * 5 * 8 == 320
    # 16000 / 320 = 50 frames a second, times 8 channels
    assert latent_rate(16000, 8) == 400.0
    assert latent_rate(44100, 4) == pytest.approx(44100 / 320 * 4)


def test_channels_double_then_stop():
    assert channel_plan(16) == [16, 32, 64, 128, 128]


@pytest.mark.parametrize("width, bottleneck", [(1, 1), (4, 2), (16, 8)])
def test_parameter_count_is_the_modules(width, bottleneck):
    stack = CodecStack([0, 1, 2], width, bottleneck)
    assert sum(p.numel() for p in stack.parameters()) == 3 * parameter_count(width, bottleneck)


def test_parameter_count_by_hand_at_width_one():
    # encoder: 1->1 k7, 1->2 k4, 2->4 k8, 4->8 k10, 8->8 k16, 8->1 k3; decoder mirrored
    weights = [1 * 1 * 7, 1 * 2 * 4, 2 * 4 * 8, 4 * 8 * 10, 8 * 8 * 16, 8 * 1 * 3,
               1 * 8 * 7, 8 * 8 * 16, 8 * 4 * 10, 4 * 2 * 8, 2 * 1 * 4, 1 * 1 * 7]
    biases = [1, 2, 4, 8, 8, 1, 8, 8, 4, 2, 1, 1]
    assert parameter_count(1, 1) == sum(weights) + sum(biases)
    assert len(layer_shapes(1, 1)) == 12


@pytest.mark.parametrize("frames", [1, 3, 25])
def test_decode_is_as_long_as_its_input(frames):
    stack = CodecStack([0, 1], 4, 2)
    x = torch.randn(3, 2, frames * hop())
    assert stack.encode(x).shape == (3, 2 * 2, frames)
    assert stack(x).shape == x.shape


def test_refuses_a_length_that_is_not_whole_frames():
    with pytest.raises(ValueError, match="multiple of 320"):
        CodecStack([0], 4, 2)(torch.zeros(1, 1, 321))


def _alone(stack: CodecStack, index: int, x: torch.Tensor) -> torch.Tensor:
    """Model ``index`` of the stack run by itself, with plain (ungrouped) convolutions."""
    m = stack.n_models
    for i, (kind, inputs, outputs, kernel, stride) in enumerate(stack.shapes):
        rows = outputs if kind == "conv" else inputs
        weight = stack.weights[i][index * rows:(index + 1) * rows]
        bias = stack.biases[i][index * outputs:(index + 1) * outputs]
        if i > 0 and i != stack.n_encoder:
            x = F.elu(x)
        if stride == 1:
            x = F.conv1d(x, weight, bias, padding=kernel // 2)
        elif kind == "conv":
            x = F.conv1d(x, weight, bias, stride=stride, padding=(stride + 1) // 2)
        else:
            p = (stride + 1) // 2
            x = F.conv_transpose1d(x, weight, bias, stride=stride, padding=p, output_padding=2 * p - stride)
    assert m >= 1
    return x


def test_a_stack_is_each_model_alone():
    stack = CodecStack([3, 4, 5], 4, 2).double()
    x = torch.randn(2, 3, 4 * hop(), dtype=torch.float64)
    together = stack(x)
    for index in range(3):
        alone = _alone(stack, index, x[:, index:index + 1])
        torch.testing.assert_close(together[:, index:index + 1], alone, rtol=1e-10, atol=1e-12)


def test_a_models_start_depends_on_its_seed_alone():
    pair, single = CodecStack([7, 11], 4, 2), CodecStack([11], 4, 2)
    for (kind, inputs, outputs, _, _), w2, w1, b2, b1 in zip(pair.shapes, pair.weights, single.weights,
                                                            pair.biases, single.biases):
        rows = outputs if kind == "conv" else inputs
        assert torch.equal(w2[rows:], w1)
        assert torch.equal(b2[outputs:], b1)
    assert not torch.equal(pair.weights[0][:4], single.weights[0])


def test_initial_weights_within_pytorch_default_bounds():
    stack = CodecStack([0], 8, 4)
    for (kind, inputs, outputs, kernel, _), weight in zip(stack.shapes, stack.weights):
        fan_in = (inputs if kind == "conv" else outputs) * kernel
        bound = 1 / np.sqrt(fan_in)
        assert float(weight.detach().abs().max()) <= bound
        assert float(weight.detach().abs().max()) > 0.8 * bound  # uniform over the whole range, not a corner of it
