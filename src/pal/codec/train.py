"""Training every codec of a run at once: one step updates every (loss, width, data, seed) model.

Each model trains on its own segments (its training set, its seed: :mod:`pal.codec.segments`),
through one :class:`~pal.codec.model.CodecStack` per width; the objective is the sum of the
models' losses, so each model's gradient is its own loss's, and Adam, being elementwise,
updates each model's slice as its own Adam would. A loss that can prepare its targets
(:class:`~perceptual_audio_loss.contract.PreparedTargetLoss`) transforms each step's batch of
targets once, for all the models it trains. Nothing in a step waits for the device: a model's
health is read back every :data:`~pal.run.train.READ_EVERY` steps, at checkpoints and saves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from perceptual_audio_loss.contract import PreparedTargetLoss

from .segments import TrainingSet, seconds_of
from ..run.train import READ_EVERY, Diverged, Finished, RunHealth, checkpoint_iterations, inverse_order, to_host
from .model import CodecStack, hop

STATE_FORMAT = 1
SAVE_EVERY = 100  # steps between training-state saves, besides every checkpoint


@dataclass(frozen=True)
class CodecModel:
    """One model of a codec run: its loss (label), width, training data (seconds; ``None`` all) and seed."""

    loss: str
    width: int
    train_seconds: float | None
    seed: int


def every_model(widths: list[int], amounts: list, losses: list[str], seeds: list[int]) -> list[CodecModel]:
    """Every (width, data, loss, seed) model of a run, in the order of its training and its records
    (:func:`~pal.codec.segments.seconds_of` each amount)."""
    return [CodecModel(loss, width, seconds_of(amount), seed)
            for width in widths for amount in amounts for loss in losses for seed in seeds]


@dataclass(frozen=True)
class CodecSettings:
    """How the models train: steps, checkpoints, batch, optimiser, bottleneck, device."""

    steps: int
    checkpoint_every: int
    batch_size: int
    bottleneck: int
    learning_rate: float
    betas: tuple[float, float]
    device: torch.device | str = "cpu"


@dataclass
class CodecResult:
    """A model's loss per step and how its training ended."""

    losses: list[float]
    outcome: Finished | Diverged


@dataclass(frozen=True)
class CodecHooks:
    """What :func:`train_codecs` calls back: ``on_progress(step, history)``, ``on_checkpoint(step,
    decodes, running)`` with each test file's decodes ``(n_models, T)`` (host arrays) at every
    checkpoint, and ``on_save(state)`` at every checkpoint and every :data:`SAVE_EVERY` steps."""

    on_progress: Callable[[int, torch.Tensor], None] | None = None
    on_checkpoint: Callable[[int, list[np.ndarray], list[bool]], None] | None = None
    on_save: Callable[[dict], None] | None = None


def pad_to_hop(samples: np.ndarray) -> np.ndarray:
    """``samples`` padded with zeros at the end to a whole number of codec frames."""
    return np.pad(samples, (0, -len(samples) % hop()))


class CodecStacks(nn.Module):
    """Every model's codec: one :class:`CodecStack` per width, model ``i`` at ``slots[i]``."""

    def __init__(self, models: list[CodecModel], bottleneck: int):
        super().__init__()
        widths = sorted({m.width for m in models})
        self.members = [[i for i, m in enumerate(models) if m.width == w] for w in widths]
        self.stacks = nn.ModuleList(CodecStack([models[i].seed for i in members], w, bottleneck)
                                    for w, members in zip(widths, self.members))
        self.n_models = len(models)
        # Device-side indices, made once: a list index is copied to the device at every use.
        self.register_buffer("back_to_model_order", inverse_order([i for m in self.members for i in m]),
                             persistent=False)
        for index, members in enumerate(self.members):
            self.register_buffer(f"members_{index}", torch.tensor(members), persistent=False)

    def finite_gradients(self) -> torch.Tensor:
        """Whether each model's gradient is finite everywhere, ``(n_models,)`` on the device, model order."""
        flags = []
        for stack in self.stacks:
            grads = [p.grad.view(stack.n_models, -1) for p in stack.parameters() if p.grad is not None]
            flags.append(torch.isfinite(torch.cat(grads, dim=1)).all(dim=1))
        return self.in_model_order(flags)

    def in_model_order(self, per_stack: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat(per_stack)[self.back_to_model_order]

    def freeze(self, active: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        """Zero the gradients and Adam momentum of stopped models, so their weights stay."""
        for index, stack in enumerate(self.stacks):
            stopped = (~active[getattr(self, f"members_{index}")]).view(stack.n_models, 1)
            for p in stack.parameters():
                if p.grad is not None:
                    p.grad.view(stack.n_models, -1).masked_fill_(stopped, 0.0)
                average = optimizer.state.get(p, {}).get("exp_avg")
                if average is not None:
                    average.view(stack.n_models, -1).masked_fill_(stopped, 0.0)

    def decode_file(self, samples: np.ndarray, device) -> np.ndarray:
        """Every model's decode of one whole file, ``(n_models, len(samples))``."""
        padded = torch.from_numpy(pad_to_hop(samples)).to(device)
        decodes = [None] * self.n_models
        with torch.no_grad():
            for stack, members in zip(self.stacks, self.members):
                out = stack(padded.expand(1, stack.n_models, -1).contiguous())[0, :, :len(samples)]
                for j, i in enumerate(members):
                    decodes[i] = out[j]
        return torch.stack(decodes)


class LossGroup:
    """The models one loss trains, and how their per-model values are computed in one call
    (a prepared-target loss: targets transformed once per step for all of them) or one call a model."""

    def __init__(self, loss: nn.Module, members: list[int], stacks: CodecStacks):
        self.loss, self.members = loss, members
        self.prepared = isinstance(loss, PreparedTargetLoss)
        # (stack, positions in it, positions among this group's models)
        self.parts = []
        for s, stack_members in enumerate(stacks.members):
            mine = [(stack_members.index(i), k) for k, i in enumerate(members) if i in stack_members]
            if mine:
                self.parts.append((s, [a for a, _ in mine], [b for _, b in mine]))
        device = next(stacks.parameters()).device
        self.back_to_member_order = inverse_order([k for _, _, ks in self.parts for k in ks], device)

    def values(self, outputs: list[torch.Tensor], inputs: list[torch.Tensor]) -> torch.Tensor:
        """Each member's loss on its batch, ``(len(members),)``, in member order."""
        out = torch.cat([outputs[s][:, slots] for s, slots, _ in self.parts], dim=1)  # (B, k, T)
        target = torch.cat([inputs[s][:, slots] for s, slots, _ in self.parts], dim=1)
        batch, k, length = out.shape
        if self.prepared:
            flat_out = out.transpose(0, 1).reshape(k * batch, 1, length)
            flat_target = target.transpose(0, 1).reshape(k * batch, 1, length)
            features = self.loss.target_features(flat_target)
            per_model = self.loss.against(flat_out, features, reduction="none").view(k, batch).mean(dim=1)
        else:
            per_model = torch.stack([self.loss(out[:, j:j + 1], target[:, j:j + 1]).reshape(())
                                     for j in range(k)])
        return per_model[self.back_to_member_order]


class CodecTraining:
    """A :func:`train_codecs` under way: the stacks, the loss groups, Adam, the history and
    health of every model; built fresh or from a saved state. :attr:`first` is the next step."""

    def __init__(self, models: list[CodecModel], sets: list[TrainingSet], losses: dict[str, nn.Module],
                 settings: CodecSettings, resume: dict | None = None):
        self.models, self.sets, self.settings = models, sets, settings
        device = torch.device(settings.device)
        self.device = device
        self.stacks = CodecStacks(models, settings.bottleneck).to(device)
        self.groups = [LossGroup(losses[name].to(device), [i for i, m in enumerate(models) if m.loss == name],
                                 self.stacks) for name in dict.fromkeys(m.loss for m in models)]
        self.group_order = torch.tensor([i for g in self.groups for i in g.members], device=device)
        self.optimizer = torch.optim.Adam(self.stacks.parameters(), lr=settings.learning_rate,
                                          betas=tuple(settings.betas))
        self.history = torch.full((settings.steps, len(models)), float("nan"), device=device)
        self.failures: dict[int, Diverged] = {}
        self.first = 1
        if resume is not None:
            self.first = self._restore(resume) + 1
        self.health = RunHealth(len(models), self.failures, device)

    def inputs(self, step: int) -> list[torch.Tensor]:
        """Each stack's batch for ``step``, ``(batch, models, segment)``: model ``i``'s segments in its channel."""
        batch = self.settings.batch_size
        per_model = [self.sets[i].draw(self.models[i].seed, step, batch) for i in range(len(self.models))]
        return [torch.from_numpy(np.stack([per_model[i] for i in members], axis=1)).to(self.device)
                for members in self.stacks.members]

    def step(self, step: int) -> None:
        inputs = self.inputs(step)
        self.optimizer.zero_grad(set_to_none=True)
        outputs = [stack(x) for stack, x in zip(self.stacks.stacks, inputs)]
        grouped = torch.cat([group.values(outputs, inputs) for group in self.groups])
        per_model = torch.empty_like(grouped).scatter_(0, self.group_order, grouped)
        finite = torch.isfinite(per_model)
        health = self.health
        torch.where(health.active & finite, per_model, torch.zeros_like(per_model)).sum().backward()
        self.history[step - 1] = torch.where(health.active, per_model.detach(), self.history[step - 1])
        health.update(step, finite, self.stacks.finite_gradients())
        self.stacks.freeze(health.active, self.optimizer)
        self.optimizer.step()

    def read_back(self) -> list[bool]:
        """The models stopped since the last read recorded; which still train."""
        flags = to_host([self.health.failed_at, self.health.loss_was_finite])
        self.failures.update(self.health.failures(*flags, self.history, self.failures))
        return [i not in self.failures for i in range(len(self.models))]

    def state(self, step: int) -> dict:
        weights = [p.detach() for p in self.stacks.parameters()]
        host = to_host(weights + [self.history[:step]])
        optimizer = self.optimizer.state_dict()
        optimizer["state"] = {k: {n: (v.cpu() if isinstance(v, torch.Tensor) else v) for n, v in entry.items()}
                              for k, entry in optimizer["state"].items()}
        return {"format": STATE_FORMAT, "step": step, "weights": host[:len(weights)], "optimizer": optimizer,
                "history": host[-1],
                "failures": [[i, f.iteration, f.reason] for i, f in sorted(self.failures.items())]}

    def _restore(self, state: dict) -> int:
        weights = list(self.stacks.parameters())
        with torch.no_grad():
            for weight, saved in zip(weights, state["weights"]):
                weight.copy_(saved)
            self.history[:state["step"]] = state["history"].to(self.device)
        self.optimizer.load_state_dict(state["optimizer"])
        self.failures.update({int(i): Diverged(int(at), str(reason)) for i, at, reason in state["failures"]})
        return int(state["step"])

    def results(self) -> list[CodecResult]:
        self.read_back()
        results = []
        for i, column in enumerate(self.history.cpu().T):
            outcome = self.failures.get(i, Finished(self.settings.steps))
            done = outcome.iteration if isinstance(outcome, Diverged) else self.settings.steps
            results.append(CodecResult(column[:done].tolist(), outcome))
        return results


def train_codecs(models: list[CodecModel], sets: list[TrainingSet], losses: dict[str, nn.Module],
                 settings: CodecSettings, test_files: list[np.ndarray], hooks: CodecHooks = CodecHooks(),
                 resume: dict | None = None) -> list[CodecResult]:
    """Train every model for ``settings.steps`` steps (continuing ``resume``, bit-identically);
    decode every test file at each checkpoint. ``sets[i]`` is model ``i``'s training set."""
    training = CodecTraining(models, sets, losses, settings, resume)
    last = settings.steps
    marks = set(checkpoint_iterations(last, settings.checkpoint_every))
    progress_every = max(1, last // 100)
    for step in range(training.first, last + 1):
        training.step(step)
        if hooks.on_progress is not None and (step % progress_every == 0 or step == last):
            hooks.on_progress(step, training.history[:step])
        checkpoint, save = step in marks, hooks.on_save is not None and (step in marks or step % SAVE_EVERY == 0)
        if checkpoint or save or step % READ_EVERY == 0:
            running = training.read_back()
            if checkpoint and hooks.on_checkpoint is not None:
                decodes = [training.stacks.decode_file(samples, training.device) for samples in test_files]
                hooks.on_checkpoint(step, [d.numpy() for d in to_host(decodes)], running)
        if save:
            hooks.on_save(training.state(step))
    return training.results()
