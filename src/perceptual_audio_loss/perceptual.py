"""The seed's perceptual loss: auditory filter bank, half-wave rectification, log, weighting."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .filters import filter_bank
from .scales import band_weights

SIMILARITIES = ("cosine", "mse")
REDUCTIONS = ("mean", "sum", "none")


def as_batch_of_mono(x: torch.Tensor, name: str = "input") -> torch.Tensor:
    """Accept ``(batch, time)`` or ``(batch, 1, time)``; return ``(batch, 1, time)``."""
    if x.dim() == 2:
        return x.unsqueeze(1)
    if x.dim() == 3 and x.shape[1] == 1:
        return x
    raise ValueError(f"{name} must be (batch, time) or (batch, 1, time), got {tuple(x.shape)}")


def reduce(per_item: torch.Tensor, reduction: str) -> torch.Tensor:
    """Reduce a per-batch-item loss like ``torch.nn`` losses do."""
    if reduction == "mean":
        return per_item.mean()
    if reduction == "sum":
        return per_item.sum()
    return per_item


class PerceptualLoss(nn.Module):
    """Distance between two signals as heard through a crude model of the ear's first stages.

    Each signal is cross-correlated with a bank of band-pass FIR filters whose centres are evenly
    spaced on an auditory scale (each one ERB wide), half-wave rectified, compressed with
    ``log(1 + log_factor * x)`` and multiplied per band by a frequency weighting. The two feature
    maps are compared per batch item: ``"cosine"`` gives minus their cosine similarity (so the
    minimum, -1, is reached when the features are proportional), ``"mse"`` their mean squared
    difference. The defaults reproduce the loss of the seed experiment (zounds' ``PerceptualLoss``
    as configured in the post of June 2018).

    Args:
        sample_rate: sample rate of the signals, Hz.
        n_bands: number of filters.
        taps: length of each FIR filter.
        low_hz, high_hz: centres of the first and last band (``high_hz`` defaults to Nyquist).
        scale: ``"bark"``, ``"mel"`` or ``"linear"`` spacing of the band centres.
        stride: hop of the filtering, in samples.
        log_factor: ``k`` in ``log(1 + k x)``.
        weighting: ``"a"`` (A-weighting in dB, shifted to be at least 1) or ``"none"``.
        similarity: ``"cosine"`` or ``"mse"``.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` over the batch.

    Shape:
        input, target: ``(batch, time)`` or ``(batch, 1, time)``, same shape.
        output: scalar, or ``(batch,)`` with ``reduction="none"``.

    >>> loss = PerceptualLoss(11025, n_bands=16, taps=64)
    >>> x = torch.randn(2, 1024)
    >>> bool(torch.isclose(loss(x, x), torch.tensor(-1.0)))
    True

    References
    ----------
    Vinyard (2018), "Perceptual Audio Loss" (the seed post); band spacing, bandwidth and weighting
    constants are sourced in :mod:`perceptual_audio_loss.scales`.
    """

    def __init__(
        self,
        sample_rate: float,
        n_bands: int = 512,
        taps: int = 512,
        low_hz: float = 1.0,
        high_hz: float | None = None,
        scale: str = "bark",
        stride: int = 1,
        log_factor: float = 10.0,
        weighting: str = "a",
        similarity: str = "cosine",
        reduction: str = "mean",
    ):
        super().__init__()
        if similarity not in SIMILARITIES:
            raise ValueError(f"unknown similarity {similarity!r}; choose one of {SIMILARITIES}")
        if reduction not in REDUCTIONS:
            raise ValueError(f"unknown reduction {reduction!r}; choose one of {REDUCTIONS}")
        if stride < 1:
            raise ValueError(f"stride must be at least 1, got {stride}")
        if log_factor <= 0:
            raise ValueError(f"log_factor must be positive, got {log_factor}")
        filters, centres = filter_bank(sample_rate, n_bands, taps, low_hz, high_hz, scale)
        self.sample_rate = sample_rate
        self.taps = taps
        self.stride = stride
        self.log_factor = log_factor
        self.similarity = similarity
        self.reduction = reduction
        self.register_buffer("filters", torch.from_numpy(filters).float().unsqueeze(1))
        self.register_buffer("band_centres_hz", torch.from_numpy(centres).float())
        weights = band_weights(centres, weighting)
        self.register_buffer("band_weights", torch.from_numpy(weights).float().view(-1, 1))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The auditory feature map of a batch of signals.

        Shape:
            x: ``(batch, time)`` or ``(batch, 1, time)``.
            output: ``(batch, n_bands, frames)`` with
            ``frames = (time + taps) // stride + 1``.
        """
        x = as_batch_of_mono(x)
        filters = self.filters.to(device=x.device, dtype=x.dtype)
        weights = self.band_weights.to(device=x.device, dtype=x.dtype)
        # Zero padding of `taps` on both sides: T + taps + 1 outputs per band at stride 1.
        bands = F.conv1d(x, filters, stride=self.stride, padding=self.taps)
        return torch.log1p(self.log_factor * F.relu(bands)) * weights

    def compare(self, input_features: torch.Tensor, target_features: torch.Tensor) -> torch.Tensor:
        """Loss between two feature maps from :meth:`features` (per the ``reduction``)."""
        a = input_features.flatten(1)
        b = target_features.flatten(1)
        if self.similarity == "cosine":
            per_item = -F.cosine_similarity(a, b, dim=1, eps=1e-8)
        else:
            per_item = (a - b).pow(2).mean(dim=1)
        return reduce(per_item, self.reduction)

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        input = as_batch_of_mono(input, "input")
        target = as_batch_of_mono(target, "target")
        if input.shape != target.shape:
            raise ValueError(f"input {tuple(input.shape)} and target {tuple(target.shape)} differ")
        return self.compare(self.features(input), self.features(target))


def perceptual_loss(input: torch.Tensor, target: torch.Tensor, sample_rate: float, **kwargs) -> torch.Tensor:
    """Functional form: builds a :class:`PerceptualLoss` on the input's device and applies it.

    Designing the filters costs a few tens of milliseconds; in a training loop build the module once.
    """
    return PerceptualLoss(sample_rate, **kwargs).to(input.device)(input, target)
