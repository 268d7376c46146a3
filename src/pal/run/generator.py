"""The 2018 experiment's generator: a tiny upsampling network from one latent to one clip."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

LATENT_DIM = 128
CHANNELS = 32  # the post's hidden width; pal run's --width sets another
# (upsampling factor, kernel size) per block: 1 -> 8192 samples. The post's settings.
BLOCKS = ((4, 3), (4, 15), (4, 25), (4, 25), (4, 25), (4, 25), (2, 25))
LEAKY_SLOPE = 0.2


def upsample_conv_kernel(weight: torch.Tensor, factor: int, groups: int = 1) -> torch.Tensor:
    """The transposed-convolution kernel equal to nearest upsampling by ``factor`` then ``weight``.

    Nearest upsampling is zero-stuffing followed by a box of ``factor`` ones, so the pair is one
    stride-``factor`` transposed convolution with ``weight`` convolved with that box:
    ``k + factor - 1`` taps at the low rate instead of ``k`` at the high one, about ``factor``
    times fewer multiply-adds, and the same values up to float rounding.

    Shape:
        weight: ``(groups * out, in, k)`` as ``Conv1d`` holds it; result: ``(groups * in, out, k + factor - 1)``.
    """
    out_total, in_channels, taps = weight.shape
    boxed = sum(F.pad(weight, (shift, factor - 1 - shift)) for shift in range(factor))
    boxed = boxed.view(groups, out_total // groups, in_channels, taps + factor - 1)
    return boxed.flip(-1).transpose(1, 2).reshape(groups * in_channels, out_total // groups, -1)


def upsample_conv(x: torch.Tensor, weight: torch.Tensor, factor: int, groups: int = 1) -> torch.Tensor:
    """``conv1d(interpolate(x, scale_factor=factor), weight, padding=k // 2, groups=groups)``, fast."""
    taps = weight.shape[-1]
    full = F.conv_transpose1d(x, upsample_conv_kernel(weight, factor, groups), stride=factor, groups=groups)
    start = taps - 1 - taps // 2
    return full[..., start : start + x.shape[-1] * factor]


class Generator(nn.Module):
    """Nearest-neighbour upsampling then a bias-free Conv1d, seven times; leaky ReLU between.

    Weights are Xavier-normal with the leaky-ReLU(0.2) gain (gain 1 for the last layer). Each
    upsample-then-convolve pair is computed as one strided transposed convolution
    (:func:`upsample_conv`); :meth:`reference_forward` computes it literally.

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
        return run_blocks(x, [conv.weight for conv in self.convs], self.scale_factors)

    def reference_forward(self, latent: torch.Tensor) -> torch.Tensor:
        """The post's computation, literally: ``interpolate`` then ``Conv1d``."""
        x = latent.view(latent.shape[0], self.latent_dim, 1)
        last = len(self.convs) - 1
        for i, (factor, conv) in enumerate(zip(self.scale_factors, self.convs)):
            x = conv(F.interpolate(x, scale_factor=factor, mode="nearest"))
            if i != last:
                x = F.leaky_relu(x, LEAKY_SLOPE)
        return x


def run_blocks(x: torch.Tensor, weights: list[torch.Tensor], factors: list[int], groups: int = 1) -> torch.Tensor:
    last = len(weights) - 1
    for i, (factor, weight) in enumerate(zip(factors, weights)):
        x = upsample_conv(x, weight, factor, groups)
        if i != last:
            x = F.leaky_relu(x, LEAKY_SLOPE)
    return x


def seeded_generator_and_latent(
    seed: int, device: torch.device | str = "cpu", out_channels: int = 1, channels: int = CHANNELS
) -> tuple[Generator, torch.Tensor]:
    """A freshly initialised generator of hidden width ``channels`` and its fixed N(0, I) latent,
    both drawn from ``seed``."""
    rng = torch.Generator().manual_seed(seed)
    model = Generator(channels=channels, out_channels=out_channels)
    model.reset_parameters(rng)
    latent = torch.randn(1, LATENT_DIM, generator=rng)
    return model.to(device), latent.to(device)


class GeneratorStack(nn.Module):
    """Several independent generators trained as one model: one stacked weight per layer.

    Generator ``g`` owns rows ``g`` of every stacked weight, so its output and gradients depend on
    its own weights and latent only, and one Adam over the stack is each generator's own Adam
    (Adam is elementwise). ``mode`` says how the layers run:

    - ``"grouped"``: one grouped (transposed) convolution per layer for all generators: the
      fewest kernel launches, best on a GPU; rounding then depends on how many are stacked.
    - ``"looped"``: each generator's slice in turn: bit-identical to training that generator
      alone, whatever else is stacked, and on a CPU as fast as grouped (see BENCHMARKS.md).
    - ``"auto"``: grouped on CUDA, looped elsewhere.

    Shape:
        latents: ``(n_models, latent_dim)``; output: ``(n_models, out_channels, 8192)``.
    """

    def __init__(self, generators: list[Generator], mode: str = "auto"):
        super().__init__()
        if not generators:
            raise ValueError("a GeneratorStack needs at least one generator")
        if mode not in ("auto", "grouped", "looped"):
            raise ValueError(f"unknown mode {mode!r}; choose auto, grouped or looped")
        first = generators[0]
        self.mode = mode
        self.n_models = len(generators)
        self.latent_dim = first.latent_dim
        self.scale_factors = list(first.scale_factors)
        self.weights = nn.ParameterList(
            nn.Parameter(torch.cat([g.convs[layer].weight.detach() for g in generators]))
            for layer in range(len(first.convs))
        )

    def resolved_mode(self) -> str:
        if self.mode != "auto":
            return self.mode
        return "grouped" if self.weights[0].is_cuda else "looped"

    def unstack(self, index: int) -> Generator:
        """Generator ``index`` as a plain :class:`Generator` with a copy of its weights."""
        channels = self.weights[1].shape[1]
        model = Generator(self.latent_dim, channels, self.weights[-1].shape[0] // self.n_models)
        with torch.no_grad():
            for conv, stacked in zip(model.convs, self.weights):
                conv.weight.copy_(stacked.view(self.n_models, *conv.weight.shape)[index])
        return model.to(self.weights[0].device)

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        if self.resolved_mode() == "grouped":
            x = latents.reshape(1, self.n_models * self.latent_dim, 1)
            x = run_blocks(x, list(self.weights), self.scale_factors, groups=self.n_models)
            return x.view(self.n_models, -1, x.shape[-1])
        outputs = []
        for index in range(self.n_models):
            weights = [w.view(self.n_models, -1, *w.shape[1:])[index] for w in self.weights]
            x = latents[index].view(1, self.latent_dim, 1)
            outputs.append(run_blocks(x, weights, self.scale_factors))
        return torch.cat(outputs)
