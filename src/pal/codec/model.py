"""The codec: a small strided-convolution autoencoder, and many of them trained as one.

In the spirit of SoundStream's and DAC's generators (an encoder of strided 1-d convolutions
whose channels double as the rate falls, a bottleneck, a decoder that mirrors it with
transposed convolutions), but small and without residual units, quantiser or discriminator: a
model a 2-core CPU trains in minutes. ``width`` is the first layer's channels and
``bottleneck`` the latent channels per frame; the latent rate is the sample rate over the
product of the strides (:func:`latent_rate`).

:class:`CodecStack` holds ``n`` codecs as one: every convolution is grouped, one group per
model, so one training step runs every (loss, seed, width, data) model in one pass, each with
its own weights and its own batch of segments in its group's channels. Models of different
widths cannot share a group, so a stack holds one width.

References
----------
N. Zeghidour, A. Luebs, A. Omran, J. Skoglund and M. Tagliasacchi (2021), "SoundStream: An
End-to-End Neural Audio Codec", IEEE/ACM TASLP 30 (strided encoder, mirrored decoder, ELU).
R. Kumar, P. Seetharaman, A. Luebs, I. Kumar and K. Kumar (2023), "High-Fidelity Audio
Compression with Improved RVQGAN" (DAC), NeurIPS 2023.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

STRIDES = (2, 4, 5, 8)  # 320 samples a frame: 50 frames a second at 16 kHz, as DAC's 44.1 kHz model's 512
KERNEL = 7  # the outer convolutions', as SoundStream's and DAC's
MAX_CHANNELS_FACTOR = 8  # channels double per stride up to 8 x width (the last stride keeps them)


def hop(strides: tuple[int, ...] = STRIDES) -> int:
    """Samples per latent frame: the product of the strides."""
    return math.prod(strides)


def latent_rate(sample_rate: float, bottleneck: int, strides: tuple[int, ...] = STRIDES) -> float:
    """Latent values per second: frames per second times the bottleneck's channels."""
    return sample_rate / hop(strides) * bottleneck


def channel_plan(width: int, strides: tuple[int, ...] = STRIDES) -> list[int]:
    """The encoder's channels before each stride and after the last: ``width`` doubling, capped."""
    return [width * min(2 ** i, MAX_CHANNELS_FACTOR) for i in range(len(strides) + 1)]


def layer_shapes(width: int, bottleneck: int, strides: tuple[int, ...] = STRIDES) -> list[tuple[str, int, int, int, int]]:
    """Every layer as ``(kind, in, out, kernel, stride)``: ``conv`` or ``transposed``.

    Encoder: a 7-tap convolution to ``width`` channels, one convolution of kernel ``2 s`` and
    stride ``s`` per stride, a 3-tap one to the bottleneck. Decoder: the mirror, with transposed
    convolutions of kernel ``2 s`` and stride ``s``, and a 7-tap convolution to one channel.
    """
    channels = channel_plan(width, strides)
    encoder = [("conv", 1, channels[0], KERNEL, 1)]
    encoder += [("conv", channels[i], channels[i + 1], 2 * s, s) for i, s in enumerate(strides)]
    encoder += [("conv", channels[-1], bottleneck, 3, 1)]
    decoder = [("conv", bottleneck, channels[-1], KERNEL, 1)]
    decoder += [("transposed", channels[i + 1], channels[i], 2 * s, s) for i, s in reversed(list(enumerate(strides)))]
    decoder += [("conv", channels[0], 1, KERNEL, 1)]
    return encoder + decoder


def parameter_count(width: int, bottleneck: int, strides: tuple[int, ...] = STRIDES) -> int:
    """Weights and biases of one codec (checked against ``sum(p.numel())`` in the tests)."""
    return sum(i * o * k + o for _, i, o, k, _ in layer_shapes(width, bottleneck, strides))


class CodecStack(nn.Module):
    """``models`` codecs of one ``width`` and ``bottleneck``, trained as one module.

    ``forward(x)`` takes ``(batch, models, time)``, model ``m`` coding channel ``m``, and returns
    its decode, ``(batch, models, time)``; ``time`` must be a multiple of :func:`hop` (the
    decode is then exactly as long). Model ``m``'s weights are drawn from ``seeds[m]`` alone
    (:meth:`reset_parameters`), so a model starts the same whatever else is in the stack.

    Shape:
        input ``(B, M, T)``, ``T % hop() == 0``; output ``(B, M, T)``.
    """

    def __init__(self, seeds: list[int], width: int, bottleneck: int, strides: tuple[int, ...] = STRIDES):
        super().__init__()
        self.n_models, self.width, self.bottleneck, self.strides = len(seeds), width, bottleneck, tuple(strides)
        self.shapes = layer_shapes(width, bottleneck, self.strides)
        self.n_encoder = len(self.strides) + 2
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for kind, inputs, outputs, kernel, _ in self.shapes:
            shape = (self.n_models * outputs, inputs, kernel) if kind == "conv" else (self.n_models * inputs, outputs, kernel)
            self.weights.append(nn.Parameter(torch.empty(shape)))
            self.biases.append(nn.Parameter(torch.empty(self.n_models * outputs)))
        self.reset_parameters(seeds)

    def reset_parameters(self, seeds: list[int]) -> None:
        """Each model's layers drawn from its own seed: PyTorch's default for convolutions
        (uniform in +-1/sqrt(fan_in), Kaiming-uniform with a = sqrt(5), for weights and biases)."""
        with torch.no_grad():
            for m, seed in enumerate(seeds):
                generator = torch.Generator().manual_seed(int(seed))
                for (kind, inputs, outputs, kernel, _), weight, bias in zip(self.shapes, self.weights, self.biases):
                    fan_in = (inputs if kind == "conv" else outputs) * kernel
                    bound = 1 / math.sqrt(fan_in)
                    rows = outputs if kind == "conv" else inputs
                    weight[m * rows:(m + 1) * rows].copy_(
                        torch.rand(weight[m * rows:(m + 1) * rows].shape, generator=generator) * 2 * bound - bound)
                    bias[m * outputs:(m + 1) * outputs].copy_(
                        torch.rand(outputs, generator=generator) * 2 * bound - bound)

    def _layer(self, x: torch.Tensor, index: int) -> torch.Tensor:
        kind, _, _, kernel, stride = self.shapes[index]
        weight, bias, groups = self.weights[index], self.biases[index], self.n_models
        if stride == 1:
            return F.conv1d(x, weight, bias, padding=kernel // 2, groups=groups)
        # Kernel 2s, stride s, padding ceil(s/2): exactly s times shorter (or longer, transposed,
        # where an odd stride needs one sample of output padding).
        padding = (stride + 1) // 2
        if kind == "transposed":
            return F.conv_transpose1d(x, weight, bias, stride=stride, padding=padding,
                                      output_padding=2 * padding - stride, groups=groups)
        return F.conv1d(x, weight, bias, stride=stride, padding=padding, groups=groups)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, M, T)`` audio to ``(B, M * bottleneck, T / hop)`` latents."""
        for index in range(self.n_encoder):
            x = self._layer(F.elu(x) if index > 0 else x, index)
        return x

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """``(B, M * bottleneck, frames)`` latents to ``(B, M, frames * hop)`` audio."""
        x = latents
        for index in range(self.n_encoder, len(self.shapes)):
            x = self._layer(F.elu(x) if index > self.n_encoder else x, index)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[1] != self.n_models:
            raise ValueError(f"x must be (batch, {self.n_models}, time), got {tuple(x.shape)}")
        if x.shape[-1] % hop(self.strides):
            raise ValueError(f"x's length must be a multiple of {hop(self.strides)}, got {x.shape[-1]}")
        return self.decode(self.encode(x))
