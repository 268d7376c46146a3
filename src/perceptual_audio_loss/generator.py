"""The seed experiment's generator: a tiny upsampling network from one latent to one clip."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

LATENT_DIM = 128
CHANNELS = 32
# (upsampling factor, kernel size) per block: 1 -> 8192 samples. The seed's settings.
BLOCKS = ((4, 3), (4, 15), (4, 25), (4, 25), (4, 25), (4, 25), (2, 25))
LEAKY_SLOPE = 0.2


class Generator(nn.Module):
    """Nearest-neighbour upsampling then a bias-free Conv1d, seven times; leaky ReLU between.

    Weights are Xavier-normal with the leaky-ReLU(0.2) gain (gain 1 for the last layer).

    Shape:
        latent: ``(batch, latent_dim)``; output: ``(batch, 1, 8192)`` with the default blocks.

    >>> Generator()(torch.zeros(2, LATENT_DIM)).shape
    torch.Size([2, 1, 8192])
    """

    def __init__(self, latent_dim: int = LATENT_DIM, channels: int = CHANNELS, out_channels: int = 1):
        super().__init__()
        self.latent_dim = latent_dim
        self.scale_factors = [factor for factor, _ in BLOCKS]
        widths = [latent_dim] + [channels] * (len(BLOCKS) - 1) + [out_channels]
        self.convs = nn.ModuleList(
            nn.Conv1d(c_in, c_out, kernel, padding=kernel // 2, bias=False)
            for (_, kernel), c_in, c_out in zip(BLOCKS, widths[:-1], widths[1:])
        )

    @property
    def output_length(self) -> int:
        length = 1
        for factor in self.scale_factors:
            length *= factor
        return length

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Xavier-normal init, drawn from ``generator`` so a seed fixes every weight."""
        hidden_gain = nn.init.calculate_gain("leaky_relu", LEAKY_SLOPE)
        last = len(self.convs) - 1
        for i, conv in enumerate(self.convs):
            nn.init.xavier_normal_(conv.weight, gain=1.0 if i == last else hidden_gain, generator=generator)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        x = latent.view(latent.shape[0], self.latent_dim, 1)
        last = len(self.convs) - 1
        for i, (factor, conv) in enumerate(zip(self.scale_factors, self.convs)):
            x = conv(F.interpolate(x, scale_factor=factor, mode="nearest"))
            if i != last:
                x = F.leaky_relu(x, LEAKY_SLOPE)
        return x


def seeded_generator_and_latent(seed: int, device: torch.device | str = "cpu") -> tuple[Generator, torch.Tensor]:
    """A freshly initialised generator and its fixed N(0, I) latent, both drawn from ``seed``."""
    rng = torch.Generator().manual_seed(seed)
    model = Generator()
    model.reset_parameters(rng)
    latent = torch.randn(1, LATENT_DIM, generator=rng)
    return model.to(device), latent.to(device)
