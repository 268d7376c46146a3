"""The loss registry: every loss the experiment can train with, looked up by name.

A new loss is one entry: a function of the sample rate returning an ``nn.Module`` whose
``forward(input, target)`` takes ``(batch, 1, time)`` signals and returns a scalar.
"""

from __future__ import annotations

from typing import Callable

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


@register_loss("mse")
def _mse(sample_rate: float) -> nn.Module:
    return nn.MSELoss()


@register_loss("perceptual")
def _perceptual(sample_rate: float) -> nn.Module:
    return PerceptualLoss(sample_rate)
