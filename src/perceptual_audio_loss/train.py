"""Fitting the seed's generator to one target under one loss."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn

from .generator import seeded_generator_and_latent

LEARNING_RATE = 1e-4
BETAS = (0.0, 0.9)  # the seed's Adam settings (WGAN-GP style: Gulrajani et al., 2017)


def checkpoint_iterations(iterations: int, every: int) -> list[int]:
    """Iterations at which audio is kept: every ``every`` updates, and always the last.

    >>> checkpoint_iterations(1000, 250)
    [250, 500, 750, 1000]
    >>> checkpoint_iterations(10, 4)
    [4, 8, 10]
    """
    marks = list(range(every, iterations + 1, every))
    if not marks or marks[-1] != iterations:
        marks.append(iterations)
    return marks


@dataclass
class RunResult:
    """What one (clip, loss) run produced: the loss per update and the checkpoint outputs."""

    losses: list[float] = field(default_factory=list)
    checkpoints: dict[int, np.ndarray] = field(default_factory=dict)


def train_one(
    target: torch.Tensor,
    loss_fn: nn.Module,
    seed: int,
    iterations: int,
    checkpoint_every: int,
    device: torch.device | str = "cpu",
    on_step: Callable[[int, float], None] | None = None,
    on_checkpoint: Callable[[int, np.ndarray], None] | None = None,
) -> RunResult:
    """Train a freshly seeded generator to reproduce ``target`` (shape ``(1, 1, T)``).

    A checkpoint at iteration ``i`` is the generator's output after ``i`` updates.
    """
    model, latent = seeded_generator_and_latent(seed, device)
    loss_fn = loss_fn.to(device)
    target = target.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE, betas=BETAS)
    marks = set(checkpoint_iterations(iterations, checkpoint_every))
    result = RunResult()
    for iteration in range(1, iterations + 1):
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(latent), target)
        loss.backward()
        optimizer.step()
        value = loss.item()
        result.losses.append(value)
        if on_step is not None:
            on_step(iteration, value)
        if iteration in marks:
            with torch.no_grad():
                audio = model(latent).reshape(-1).cpu().numpy()
            result.checkpoints[iteration] = audio
            if on_checkpoint is not None:
                on_checkpoint(iteration, audio)
    return result
