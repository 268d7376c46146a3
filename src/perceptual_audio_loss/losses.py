"""The library's losses by name, blends of losses, and a loss with its targets fixed.

Every loss registered here keeps the contract of :mod:`perceptual_audio_loss.contract`, and the
library's contract tests run each one through it. A new loss is one entry: a factory of the
sample rate (and keyword options) returning the module.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from .arguments import Number, check_arguments
from .auditory import AuditorySpectrogramLoss
from .contract import (
    REDUCTION,
    PreparedTargetLoss,
    check_reduction,
    finish,
    full_precision,
    matching_signals,
    out_of,
    peak_scale,
    reduce,
    widen,
)
from .masking import MaskedLoss
from .perceptual import PerceptualLoss

LossFactory = Callable[..., nn.Module]

LOSSES: dict[str, LossFactory] = {}


def register_loss(name: str) -> Callable[[LossFactory], LossFactory]:
    """Decorator adding a loss factory to :data:`LOSSES` under ``name``."""

    def add(factory: LossFactory) -> LossFactory:
        if name in LOSSES:
            raise ValueError(f"a loss named {name!r} is already registered")
        LOSSES[name] = factory
        return factory

    return add


class UnknownLoss(KeyError):
    """Raised for a loss name that is not in the registry."""

    def __str__(self) -> str:
        return f"unknown loss {self.args[0]!r}; known losses: {', '.join(sorted(LOSSES))}"


def build_loss(name: str, sample_rate: float, **options) -> nn.Module:
    """Build the loss registered as ``name`` for signals at ``sample_rate``; ``options`` go to its factory."""
    if name not in LOSSES:
        raise UnknownLoss(name)
    return LOSSES[name](sample_rate, **options)


class TargetLoss(nn.Module):
    """A loss with its targets fixed: per-item values for a batch of outputs, one per target.

    A :class:`~perceptual_audio_loss.contract.PreparedTargetLoss` has the targets prepared once
    here, not at every step; any other loss is applied item by item, so an item's value never
    depends on the rest of the batch.

    Shape:
        targets: ``(batch, [channels,] time)``; outputs: the same; result: ``(batch,)``.
    """

    def __init__(self, loss: nn.Module, targets: torch.Tensor):
        super().__init__()
        self.loss = loss
        self.prepared = isinstance(loss, PreparedTargetLoss)
        features = loss.target_features(targets) if self.prepared else targets
        if isinstance(features, torch.Tensor):
            self.register_buffer("targets", features)
        else:  # a loss's own bundle of tensors, made on the targets' device
            self.targets = features

    def forward(self, outputs: torch.Tensor) -> torch.Tensor:
        if self.prepared:
            return self.loss.against(outputs, self.targets, reduction="none")
        return torch.stack([self.loss(o[None], t[None]).reshape(()) for o, t in zip(outputs, self.targets)])


WEIGHT = Number(low=0, high=1e12)  # a blend's weight: finite, not negative


class WeightedSum(nn.Module):
    """``sum_i weight_i * loss_i(input, target)``: a blend of losses, itself a loss.

    The parts are asked for per-item values (``reduction="none"``, which a part must accept
    through :meth:`against` or its own ``reduction``); the blend reduces. Targets are prepared
    once for every part that can, so a blend in training costs what its parts cost.

    Shape: as the parts; ``(batch,)`` with ``reduction="none"``.
    """

    def __init__(self, parts: list[tuple[nn.Module, float]], reduction: str = "mean"):
        super().__init__()
        self.parts = nn.ModuleList(loss for loss, _ in parts)
        self.weights = [WEIGHT.check(f"weights[{i}]", weight) for i, (_, weight) in enumerate(parts)]
        self.reduction = check_reduction(reduction)

    def target_features(self, target: torch.Tensor) -> tuple:
        return tuple(TargetLoss(loss, target) for loss in self.parts)

    def against(self, input: torch.Tensor, target: tuple, reduction: str | None = None) -> torch.Tensor:
        reduction = check_reduction(reduction or self.reduction)
        with full_precision(input.device):
            widened = widen(input)
            per_item = sum(weight * prepared(widened) for weight, prepared in zip(self.weights, target))
        return out_of(reduce(per_item, reduction), input.dtype)

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        matching_signals(input, target)
        return self.against(input, self.target_features(target))


# A difference whose peak passes 2^48 is squared scaled down by a power of two: a sum of 2^24
# squares of it then stays under float32's 2^128; below it the scale is 1 and nothing changes.
SAFE_PEAK_EXPONENT = 48


class _MeanSquare(torch.autograd.Function):
    """``(signals, time)`` -> ``(signals,)``: each signal's mean square, its squares summed at a
    scale whose sum stays finite and the scale then taken out; its gradient ``2 d / time`` computed
    from the difference itself, so it is finite wherever the dtype holds it even when the value is
    not (a float32 difference of 1e30: the value is past float32, its gradient about 1e27 is not)."""

    @staticmethod
    def forward(ctx, difference):
        ctx.save_for_backward(difference)
        scale = peak_scale(difference, SAFE_PEAK_EXPONENT)
        return (difference * scale).square().mean(-1) / scale[:, 0].square()

    @staticmethod
    def backward(ctx, grad):
        (difference,) = ctx.saved_tensors
        return grad[:, None] * difference * (2 / difference.shape[-1])


class WaveformDistance(nn.Module):
    """Mean squared (``p=2``) or absolute (``p=1``) sample difference per signal.

    With equal-length items its ``"mean"`` equals ``nn.MSELoss`` / ``nn.L1Loss``; unlike them it
    follows the contract (channels averaged per item, ``reduction="none"`` gives ``(batch,)``).
    """

    def __init__(self, p: int = 2, reduction: str = "mean"):
        super().__init__()
        check_arguments({"p": Number(low=1, high=2, integer=True), "reduction": REDUCTION},
                        {"p": p, "reduction": reduction})
        self.p = p
        self.reduction = reduction

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        x, y, batch = matching_signals(input, target)
        with full_precision(input.device):
            difference = widen(x) - widen(y)
            if self.p == 1:
                per_signal = difference.abs().mean(-1)
            else:
                per_signal = _MeanSquare.apply(difference)
        return finish(per_signal, batch, self.reduction, input.dtype)


@register_loss("mse")
def _mse(sample_rate: float, reduction: str = "mean") -> nn.Module:
    return WaveformDistance(2, reduction)


@register_loss("l1")
def _l1(sample_rate: float, reduction: str = "mean") -> nn.Module:
    return WaveformDistance(1, reduction)


@register_loss("perceptual")
def _perceptual(sample_rate: float, **options) -> nn.Module:
    """The post's loss; every :class:`PerceptualLoss` argument can be passed."""
    return PerceptualLoss(sample_rate, **options)


@register_loss("perceptual-mse")
def _perceptual_mse(sample_rate: float, **options) -> nn.Module:
    """The post's features compared by mean squared difference instead of cosine similarity."""
    return PerceptualLoss(sample_rate, **{"similarity": "mse", **options})


@register_loss("masked")
def _masked(sample_rate: float, **options) -> nn.Module:
    """The masking-aware loss: error above the target's masking threshold."""
    return MaskedLoss(sample_rate, **options)


# The masked loss's gradient at an untrained generator is about 1000-2000 times the perceptual loss's
# (measured on the speech and piano clips, seeds 0 and 1); this weight makes them about equal.
MASKED_BLEND_WEIGHT = 1e-3


@register_loss("masked+perceptual")
def _masked_perceptual(sample_rate: float, masked_weight: float = MASKED_BLEND_WEIGHT,
                       reduction: str = "mean") -> nn.Module:
    """The perceptual loss plus the masked loss at ``masked_weight``: the perceptual loss gives a gradient
    everywhere, the masked loss says which errors the ear would hear."""
    # the masked part first: its smallest sample rate (472 Hz) is the higher, so a refusal names the blend's
    masked = MaskedLoss(sample_rate, reduction="none")
    parts = [(PerceptualLoss(sample_rate, reduction="none"), 1.0), (masked, WEIGHT.check("masked_weight", masked_weight))]
    return WeightedSum(parts, reduction)


@register_loss("auditory")
def _auditory(sample_rate: float, **options) -> nn.Module:
    """ERB-band envelopes at several resolutions, compared by level (:mod:`~perceptual_audio_loss.auditory`)."""
    return AuditorySpectrogramLoss(sample_rate, **options)
