"""The loss registry: every loss the experiment can train with, looked up by name.

A new loss is one entry: a function of the sample rate returning an ``nn.Module`` whose
``forward(input, target)`` takes ``(batch, 1, time)`` signals and returns a scalar.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from .errors import UserError
from .perceptual import PerceptualLoss

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
        self.register_buffer("targets", loss.target_features(targets) if self.cached else targets)

    def forward(self, outputs: torch.Tensor) -> torch.Tensor:
        if self.cached:
            return self.loss.against(outputs, self.targets, reduction="none")
        return torch.stack([self.loss(o[None], t[None]) for o, t in zip(outputs, self.targets)])


@register_loss("mse")
def _mse(sample_rate: float) -> nn.Module:
    return nn.MSELoss()


@register_loss("perceptual")
def _perceptual(sample_rate: float) -> nn.Module:
    return PerceptualLoss(sample_rate)
