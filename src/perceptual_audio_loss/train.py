"""Fitting the seed's generator to one target under one loss."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn

from .generator import GeneratorStack, seeded_generator_and_latent
from .losses import TargetLoss

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


@dataclass(frozen=True)
class RunSpec:
    """One run of a batched experiment: which target, which loss, which seed."""

    target: int
    loss: str
    seed: int


def train_batched(
    targets: torch.Tensor,
    runs: list[RunSpec],
    losses: dict[str, nn.Module],
    iterations: int,
    checkpoint_every: int,
    device: torch.device | str = "cpu",
    on_progress: Callable[[int, torch.Tensor], None] | None = None,
    on_checkpoint: Callable[[int, np.ndarray], None] | None = None,
    stack_mode: str = "auto",
) -> list[RunResult]:
    """Train every run's generator at once, as one grouped model; same results as :func:`train_one`.

    Each run's generator is seeded as :func:`train_one` seeds it. The objective is the sum of the
    runs' losses, so each generator's gradient is exactly that of its own loss, and Adam, being
    elementwise, updates each generator's slice of the stacked weights as its own Adam would.
    The targets' features are computed once per run, not at every step. With the stack's
    ``"looped"`` mode (the default on a CPU) every run's numbers are bit-identical to training it
    alone with :func:`train_one`; ``"grouped"`` (the default on CUDA) equals it up to rounding.

    Args:
        targets: ``(n_targets, 1, T)``; ``runs[i].target`` indexes it.
        losses: a loss module for every loss name the runs use.
        on_progress: called with ``(iteration, losses so far (iteration, n_runs) on the device)``
            about a hundred times over the run.
        on_checkpoint: called with ``(iteration, outputs (n_runs, T))`` at every checkpoint.
    """
    seeded = [seeded_generator_and_latent(run.seed) for run in runs]
    stack = GeneratorStack([model for model, _ in seeded], stack_mode).to(device)
    latents = torch.cat([latent for _, latent in seeded]).to(device)
    groups = []
    for name in dict.fromkeys(run.loss for run in runs):
        members = [i for i, run in enumerate(runs) if run.loss == name]
        group_targets = targets[[runs[i].target for i in members]].to(device)
        groups.append((members, TargetLoss(losses[name].to(device), group_targets)))
    # Position of every run in the concatenation of the groups' per-item losses.
    order = torch.tensor([i for members, _ in groups for i in members], device=device)
    back_to_run_order = torch.empty_like(order)
    back_to_run_order[order] = torch.arange(len(runs), device=device)

    optimizer = torch.optim.Adam(stack.parameters(), lr=LEARNING_RATE, betas=BETAS)
    marks = set(checkpoint_iterations(iterations, checkpoint_every))
    history = torch.empty(iterations, len(runs), device=device)
    progress_every = max(1, iterations // 100)
    results = [RunResult() for _ in runs]
    for iteration in range(1, iterations + 1):
        optimizer.zero_grad(set_to_none=True)
        outputs = stack(latents)
        per_run = torch.cat([loss(outputs[members]) for members, loss in groups])[back_to_run_order]
        per_run.sum().backward()
        optimizer.step()
        history[iteration - 1] = per_run.detach()
        if on_progress is not None and (iteration % progress_every == 0 or iteration == iterations):
            on_progress(iteration, history[:iteration])
        if iteration in marks:
            with torch.no_grad():
                audio = stack(latents).reshape(len(runs), -1).cpu().numpy()
            for result, samples in zip(results, audio):
                result.checkpoints[iteration] = samples
            if on_checkpoint is not None:
                on_checkpoint(iteration, audio)
    for result, column in zip(results, history.cpu().T):
        result.losses = column.tolist()
    return results
