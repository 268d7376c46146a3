"""The loss registry: every loss the experiment can train with, looked up by name.

A new loss is one entry: a function of the sample rate returning an ``nn.Module`` whose
``forward(input, target)`` takes ``(batch, 1, time)`` signals and returns a scalar.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from .errors import UserError
from .perceptual import PerceptualLoss, reduce

LossFactory = Callable[[float], nn.Module]

LOSSES: dict[str, LossFactory] = {}


def register_loss(name: str) -> Callable[[LossFactory], LossFactory]:
    """Decorator adding a loss factory to :data:`LOSSES` under ``name``."""

    def add(factory: LossFactory) -> LossFactory:
        if name in LOSSES:
            raise ValueError(f"a loss named {name!r} is already registered")
        LOSSES[name] = factory
        return factory

    return add


class UnknownLoss(UserError, KeyError):
    """Raised for a loss name that is not in the registry."""

    def __str__(self) -> str:
        return f"unknown loss {self.args[0]!r}; known losses: {', '.join(sorted(LOSSES))}"


def build_loss(name: str, sample_rate: float) -> nn.Module:
    """Build the loss registered as ``name`` for signals at ``sample_rate``."""
    if name not in LOSSES:
        raise UnknownLoss(name)
    return LOSSES[name](sample_rate)


class TargetLoss(nn.Module):
    """A loss with its targets fixed: per-item values for a batch of outputs, one per target.

    A loss with ``target_features``/``against`` (like :class:`PerceptualLoss`) has the targets'
    features computed once here, not at every step; any other loss is applied item by item.

    Shape:
        targets: ``(batch, 1, time)``; outputs: ``(batch, 1, time)``; result: ``(batch,)``.
    """

    def __init__(self, loss: nn.Module, targets: torch.Tensor):
        super().__init__()
        self.loss = loss
        self.cached = hasattr(loss, "target_features") and hasattr(loss, "against")
        features = loss.target_features(targets) if self.cached else targets
        if isinstance(features, torch.Tensor):
            self.register_buffer("targets", features)
        else:  # a loss's own bundle of tensors, made on the targets' device
            self.targets = features

    def forward(self, outputs: torch.Tensor) -> torch.Tensor:
        if self.cached:
            return self.loss.against(outputs, self.targets, reduction="none")
        return torch.stack([self.loss(o[None], t[None]) for o, t in zip(outputs, self.targets)])


class WeightedSum(nn.Module):
    """``sum_i weight_i * loss_i(input, target)``: a blend of losses, itself a loss.

    Targets are prepared once for every part that can (``target_features``/``against``), so a
    blend in training costs what its parts cost.

    Shape: as the parts; with ``reduction="none"`` in :meth:`against`, ``(batch,)``.
    """

    def __init__(self, parts: list[tuple[nn.Module, float]]):
        super().__init__()
        self.parts = nn.ModuleList(loss for loss, _ in parts)
        self.weights = [float(weight) for _, weight in parts]

    def target_features(self, target: torch.Tensor) -> tuple:
        return tuple(TargetLoss(loss, target) for loss in self.parts)

    def against(self, input: torch.Tensor, target: tuple, reduction: str = "mean") -> torch.Tensor:
        per_item = sum(weight * prepared(input) for weight, prepared in zip(self.weights, target))
        return reduce(per_item, reduction)

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return sum(weight * loss(input, target) for weight, loss in zip(self.weights, self.parts))


@register_loss("mse")
def _mse(sample_rate: float) -> nn.Module:
    return nn.MSELoss()


@register_loss("perceptual")
def _perceptual(sample_rate: float) -> nn.Module:
    return PerceptualLoss(sample_rate)


@register_loss("perceptual-mse")
def _perceptual_mse(sample_rate: float) -> nn.Module:
    """The seed's features compared by mean squared difference instead of cosine similarity."""
    return PerceptualLoss(sample_rate, similarity="mse")


@register_loss("l1")
def _l1(sample_rate: float) -> nn.Module:
    return nn.L1Loss()


@register_loss("mrstft")
def _mrstft(sample_rate: float) -> nn.Module:
    """auraloss's ``MultiResolutionSTFTLoss`` with its defaults, as its users call it.

    Spectral convergence plus log-magnitude L1 at FFT sizes 1024, 2048, 512 (hops 120, 240, 50;
    windows 600, 1200, 240), averaged (Steinmetz & Reiss, 2020, "auraloss").
    """
    from auraloss.freq import MultiResolutionSTFTLoss

    return MultiResolutionSTFTLoss()


@register_loss("mel-mrstft")
def _mel_mrstft(sample_rate: float) -> nn.Module:
    """auraloss's mel-scaled variant (``scale="mel", n_bins=128``) without librosa.

    auraloss builds its mel filters with librosa; we give its own STFT losses the same Slaney
    filters (:func:`perceptual_audio_loss.scales.mel_filterbank`) and run them unchanged.
    """
    from auraloss.freq import MultiResolutionSTFTLoss

    from .scales import mel_filterbank

    loss = MultiResolutionSTFTLoss()
    for resolution in loss.stft_losses:
        resolution.scale = "mel"
        resolution.fb = torch.from_numpy(mel_filterbank(sample_rate, resolution.fft_size, 128)).float()
    return loss


@register_loss("mulaw")
def _mulaw(sample_rate: float) -> nn.Module:
    """The addendum's categorical loss: 256 μ-law classes per sample, cross-entropy."""
    from .mulaw import MuLawLoss

    return MuLawLoss()


@register_loss("masked")
def _masked(sample_rate: float) -> nn.Module:
    """The masking-aware loss: error above the target's masking threshold (issue 6)."""
    from .masking import MaskedLoss

    return MaskedLoss(sample_rate)


# The masked loss's gradient at an untrained generator is about 1000-2000 times the seed loss's
# (measured on the speech and piano clips, seeds 0 and 1); this weight makes them about equal.
MASKED_BLEND_WEIGHT = 1e-3


@register_loss("masked+perceptual")
def _masked_perceptual(sample_rate: float) -> nn.Module:
    """The seed loss plus the masked loss at :data:`MASKED_BLEND_WEIGHT`: the seed loss gives a
    gradient everywhere, the masked loss says which errors the ear would hear."""
    from .masking import MaskedLoss

    return WeightedSum([(PerceptualLoss(sample_rate), 1.0), (MaskedLoss(sample_rate), MASKED_BLEND_WEIGHT)])
