"""Fitting the post's generators: one run alone, or every run of an experiment at once."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn

from perceptual_audio_loss.losses import TargetLoss

from ..losses.registry import DecodingLoss
from .generator import GeneratorStack, seeded_generator_and_latent


def output_channels(loss: nn.Module) -> int:
    """What the generator must output for ``loss``: 1 sample, or e.g. 256 μ-law logits, per step."""
    return loss.output_channels if isinstance(loss, DecodingLoss) else 1


def as_waveform(loss: nn.Module, output: torch.Tensor) -> torch.Tensor:
    """A generator's output ``(channels, T)`` as audio ``(T,)``: decoded if the loss is a DecodingLoss."""
    if isinstance(loss, DecodingLoss):
        return loss.decode(output[None])[0]
    return output.reshape(-1)


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


@dataclass(frozen=True)
class TrainSettings:
    """How a training goes: its length, when it keeps audio, where, and with what optimizer and generator.

    A ``None`` takes the configuration's declared default (the post's).
    """

    iterations: int
    checkpoint_every: int
    device: torch.device | str = "cpu"
    stack_mode: str = "auto"  # :class:`GeneratorStack`'s, for :func:`train_batched`; one run alone has no stack
    learning_rate: float | None = None
    betas: tuple[float, float] | None = None
    fused_adam: bool | None = None  # Adam's fused implementation (one kernel for every weight); by default on CUDA
    width: int | None = None  # every generator's hidden channels (the post's 32)


def train_one(
    target: torch.Tensor,
    loss_fn: nn.Module,
    seed: int,
    settings: TrainSettings,
    on_step: Callable[[int, float], None] | None = None,
    on_checkpoint: Callable[[int, np.ndarray], None] | None = None,
) -> RunResult:
    """Train a freshly seeded generator to reproduce ``target`` (shape ``(1, 1, T)``).

    A checkpoint at iteration ``i`` is the generator's output after ``i`` updates.
    """
    device = settings.device
    model, latent = seeded_generator_and_latent(seed, device, output_channels(loss_fn), _width(settings.width))
    loss_fn = loss_fn.to(device)
    target = target.to(device)
    optimizer = _adam(model.parameters(), settings.learning_rate, settings.betas, settings.fused_adam)
    marks = set(checkpoint_iterations(settings.iterations, settings.checkpoint_every))
    result = RunResult()
    for iteration in range(1, settings.iterations + 1):
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
                audio = as_waveform(loss_fn, model(latent)[0]).cpu().numpy()
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


@dataclass(frozen=True)
class Finished:
    """The run did every iteration."""

    iterations: int

    def describe(self) -> str:
        return f"finished after {self.iterations} iterations"


@dataclass(frozen=True)
class Diverged:
    """The run stopped at ``iteration``: its loss or its gradient stopped being finite there."""

    iteration: int
    reason: str  # "loss became nan", "gradient became non-finite", ...

    def describe(self) -> str:
        return f"{self.reason} at iteration {self.iteration}"


Outcome = Finished | Diverged


@dataclass
class BatchResult(RunResult):
    """A run of a batch: as :class:`RunResult`, and how it ended."""

    outcome: Outcome = Finished(0)


SAVE_EVERY = 100  # iterations between training-state saves, besides every checkpoint
STATE_FORMAT = 2  # 2: a failure is [run, iteration, reason]; 1 wrote [run, "reason at iteration N"]


def _build_groups(targets, runs, losses, device):
    groups = []
    for name in dict.fromkeys(run.loss for run in runs):
        members = [i for i, run in enumerate(runs) if run.loss == name]
        group_targets = targets[[runs[i].target for i in members]].to(device)
        groups.append((members, TargetLoss(losses[name].to(device), group_targets)))
    # Position of every run in the concatenation of the groups' per-item losses.
    return groups, inverse_order([i for members, _ in groups for i in members], device)


def inverse_order(order: list[int], device=None) -> torch.Tensor:
    """The indices that put a concatenation of runs in ``order`` back in run order (its inverse).

    >>> inverse_order([2, 0, 1]).tolist()
    [1, 2, 0]
    """
    order = torch.tensor(order, device=device)
    back = torch.empty_like(order)
    back[order] = torch.arange(len(order), device=device)
    return back


class RunStacks(nn.Module):
    """Every run's generator: one :class:`GeneratorStack` per output width, run ``i`` at ``slots[i]``."""

    def __init__(self, runs: list[RunSpec], losses: dict[str, nn.Module], stack_mode: str, width: int | None = None):
        super().__init__()
        widths = [output_channels(losses[run.loss]) for run in runs]
        seeded = [seeded_generator_and_latent(run.seed, out_channels=w, channels=_width(width))
                  for run, w in zip(runs, widths)]
        self.members = [[i for i, w in enumerate(widths) if w == width] for width in sorted(set(widths))]
        self.stacks = nn.ModuleList(GeneratorStack([seeded[i][0] for i in m], stack_mode) for m in self.members)
        self.slots = {run: (s, j) for s, members in enumerate(self.members) for j, run in enumerate(members)}
        self.register_buffer("latents", torch.cat([latent for _, latent in seeded]))
        # Device-side indices between run order and the stacks' order, so no step waits for the host.
        back_to_run_order = inverse_order([run for members in self.members for run in members])
        self.register_buffer("back_to_run_order", back_to_run_order, persistent=False)
        for stack, members in enumerate(self.members):
            self.register_buffer(f"members_{stack}", torch.tensor(members), persistent=False)
        self._slot_indices: dict[tuple[int, ...], torch.Tensor] = {}

    def forward(self) -> list[torch.Tensor]:
        """Each stack's outputs ``(members, width, T)``."""
        return [stack(self.latents[self._members(index)]) for index, stack in enumerate(self.stacks)]

    def output(self, outputs: list[torch.Tensor], runs: list[int]) -> torch.Tensor:
        """The outputs of ``runs`` (all of one width), stacked."""
        stack = self.slots[runs[0]][0]
        key = tuple(runs)
        if key not in self._slot_indices:  # made once: a list index is copied to the device at every use
            self._slot_indices[key] = torch.tensor([self.slots[run][1] for run in runs], device=self.latents.device)
        return outputs[stack][self._slot_indices[key]]

    def _members(self, stack: int) -> torch.Tensor:
        return getattr(self, f"members_{stack}")

    def finite_gradients(self) -> torch.Tensor:
        """Whether each run's gradient is finite everywhere: ``(n_runs,)`` bool, on the device."""
        per_stack = []
        for stack in self.stacks:
            grads = [weight.grad.view(stack.n_models, -1) for weight in stack.weights if weight.grad is not None]
            per_stack.append(torch.isfinite(torch.cat(grads, dim=1)).all(dim=1) if grads
                             else torch.ones(stack.n_models, dtype=torch.bool, device=self.latents.device))
        return self._in_run_order(per_stack)

    def freeze(self, active: torch.Tensor, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Zero the gradients of stopped runs (``~active``), and their Adam momentum, so that
        Adam leaves their weights where they are. ``masked_fill_``, not multiplication (a NaN
        gradient times 0 stays NaN) nor a boolean index (which waits for the device)."""
        # With beta1 = 0 (the post's) the momentum is the gradient itself, already zero.
        momentum = optimizer is not None and optimizer.param_groups[0]["betas"][0] != 0
        for stack, stopped in zip(self.stacks, self._per_stack(~active)):
            stopped = stopped.view(stack.n_models, 1)
            for weight in stack.weights:
                if weight.grad is not None:
                    weight.grad.view(stack.n_models, -1).masked_fill_(stopped, 0.0)
                average = optimizer.state.get(weight, {}).get("exp_avg") if momentum else None
                if average is not None:
                    average.view(stack.n_models, -1).masked_fill_(stopped, 0.0)

    def _per_stack(self, per_run: torch.Tensor) -> list[torch.Tensor]:
        """A per-run tensor split by stack, each in its stack's order."""
        if len(self.members) == 1:  # one stack holds every run, in run order
            return [per_run]
        return [per_run[self._members(stack)] for stack in range(len(self.members))]

    def _in_run_order(self, per_stack: list[torch.Tensor]) -> torch.Tensor:
        if len(per_stack) == 1:
            return per_stack[0]
        return torch.cat(per_stack)[self.back_to_run_order]

    def weights(self) -> list[torch.Tensor]:
        return [weight for stack in self.stacks for weight in stack.weights]


@dataclass(frozen=True)
class TrainHooks:
    """What :func:`train_batched` calls back as it goes; each may be ``None``.

    ``on_progress``: ``(iteration, losses so far (iteration, n_runs) on the device)``, about a
    hundred times over the run. ``on_checkpoint``: ``(iteration, outputs (n_runs, T), active)`` at
    every checkpoint. ``on_save``: the training state (a dict of tensors and numbers that
    ``torch.load(..., weights_only=True)`` reads) at every checkpoint, after ``on_checkpoint``,
    and every :data:`SAVE_EVERY` iterations.
    """

    on_progress: Callable[[int, torch.Tensor], None] | None = None
    on_checkpoint: Callable[[int, np.ndarray, list[bool]], None] | None = None
    on_save: Callable[[dict], None] | None = None


def train_batched(
    targets: torch.Tensor,
    runs: list[RunSpec],
    losses: dict[str, nn.Module],
    settings: TrainSettings,
    hooks: TrainHooks = TrainHooks(),
    resume: dict | None = None,
) -> list[BatchResult]:
    """Train every run's generator at once, as one stacked model; same results as :func:`train_one`.

    Each run's generator is seeded as :func:`train_one` seeds it. The objective is the sum of the
    runs' losses, so each generator's gradient is exactly that of its own loss, and Adam, being
    elementwise, updates each generator's slice of the stacked weights as its own Adam would.
    The targets' features are computed once per run, not at every step. With the stack's
    ``"looped"`` mode (the default on a CPU) every run's numbers are bit-identical to training it
    alone with :func:`train_one`; ``"grouped"`` (the default on CUDA) equals it up to rounding.

    A run whose loss or gradient stops being finite is stopped there, its reason recorded; the
    others go on. A stopped run's weights stay as they were when it stopped. Which runs stopped
    is kept on the device and read back every :data:`READ_EVERY` iterations, at checkpoints,
    saves and the end (:class:`RunHealth`), so no iteration waits for the device.

    Args:
        targets: ``(n_targets, 1, T)``; ``runs[i].target`` indexes it.
        losses: a loss module for every loss name the runs use.
        resume: a state from ``hooks.on_save``: training continues after its iteration, bit-identically.
    """
    training = BatchTraining(targets, runs, losses, settings, resume)
    last = settings.iterations
    marks = set(checkpoint_iterations(last, settings.checkpoint_every))
    progress_every = max(1, last // 100)
    for iteration in range(training.first, last + 1):
        training.step(iteration)
        if hooks.on_progress is not None and (iteration % progress_every == 0 or iteration == last):
            hooks.on_progress(iteration, training.history[:iteration])
        checkpoint = iteration in marks
        save = hooks.on_save is not None and (checkpoint or iteration % SAVE_EVERY == 0)
        if checkpoint or save or iteration % READ_EVERY == 0 or iteration == last:
            training.read_back(iteration, checkpoint, hooks.on_checkpoint)
        if save:
            hooks.on_save(training.state(iteration))
    return training.results()


class BatchTraining:
    """A :func:`train_batched` under way: the stacked generators, their losses, Adam, every run's
    loss history and health, and the checkpoints each run kept. Built as a fresh training or from
    a saved state (``resume``); :attr:`first` is the iteration to train next."""

    def __init__(self, targets: torch.Tensor, runs: list[RunSpec], losses: dict[str, nn.Module],
                 settings: TrainSettings, resume: dict | None = None):
        self.runs, self.losses, self.iterations = runs, losses, settings.iterations
        self.stacks = RunStacks(runs, losses, settings.stack_mode, settings.width).to(settings.device)
        self.groups, self.back_to_run_order = _build_groups(targets, runs, losses, settings.device)
        self.optimizer = _adam(self.stacks.parameters(), settings.learning_rate, settings.betas, settings.fused_adam)
        self.history = torch.full((settings.iterations, len(runs)), float("nan"), device=settings.device)
        self.failures: dict[int, Diverged] = {}
        self.first = 1
        if resume is not None:
            self.first = _restore(resume, self.stacks, self.optimizer, self.history, self.failures, len(runs)) + 1
        self.health = RunHealth(len(runs), self.failures, self.history.device)
        self.kept = [BatchResult() for _ in runs]

    def step(self, iteration: int) -> None:
        """One update of every run still training, its losses into the history; nothing waits for the device."""
        stacks, health = self.stacks, self.health
        self.optimizer.zero_grad(set_to_none=True)
        outputs = stacks()
        per_run = torch.cat([loss(stacks.output(outputs, members)) for members, loss in self.groups])
        per_run = per_run[self.back_to_run_order]
        finite_loss = torch.isfinite(per_run)
        torch.where(health.active & finite_loss, per_run, torch.zeros_like(per_run)).sum().backward()
        self.history[iteration - 1] = torch.where(health.active, per_run.detach(), self.history[iteration - 1])
        health.update(iteration, finite_loss, stacks.finite_gradients())
        stacks.freeze(health.active, self.optimizer)
        self.optimizer.step()

    def read_back(self, iteration: int, checkpoint: bool,
                  on_checkpoint: Callable[[int, np.ndarray, list[bool]], None] | None = None) -> None:
        """Read the runs' health on the host, recording the runs stopped since the last read; at a
        ``checkpoint`` also every run's audio, kept by the runs still training and given to ``on_checkpoint``."""
        audio = _checkpoint_audio(self.stacks, self.runs, self.losses) if checkpoint else None
        flags = to_host([self.health.failed_at, self.health.loss_was_finite] + ([audio] if checkpoint else []))
        self.failures.update(self.health.failures(*flags[:2], self.history, self.failures))
        if not checkpoint:
            return
        audio = flags[2].numpy()
        still_running = [i not in self.failures for i in range(len(self.runs))]
        for result, samples, running in zip(self.kept, audio, still_running):
            if running:
                result.checkpoints[iteration] = samples
        if on_checkpoint is not None:
            on_checkpoint(iteration, audio, still_running)

    def state(self, iteration: int) -> dict:
        """The training state after ``iteration``, on the host (what ``on_save`` is given)."""
        return _state(iteration, self.stacks, self.optimizer, self.history, self.failures)

    def results(self) -> list[BatchResult]:
        """Every run's losses, checkpoints and outcome, once the last iteration is done."""
        for index, (result, column) in enumerate(zip(self.kept, self.history.cpu().T)):
            result.outcome = self.failures.get(index, Finished(self.iterations))
            done = result.outcome.iteration if isinstance(result.outcome, Diverged) else self.iterations
            result.losses = column[:done].tolist()
        return self.kept


READ_EVERY = 50  # iterations between reads of the runs' health on the host, besides checkpoints and saves


class RunHealth:
    """Which runs still train, and when and why the others stopped, kept on the device.

    Updated at every iteration without the host waiting for the device; :meth:`failures` reads it
    back (every :data:`READ_EVERY` iterations, at checkpoints, saves and the end), and finds each
    stopped run's iteration and reason as they were when it stopped.
    """

    def __init__(self, n_runs: int, failures: dict[int, Diverged], device: torch.device):
        self.active = torch.tensor([i not in failures for i in range(n_runs)], device=device)
        self.failed_at = torch.zeros(n_runs, dtype=torch.long, device=device)  # 0: not stopped here
        self.loss_was_finite = torch.ones(n_runs, dtype=torch.bool, device=device)

    def update(self, iteration: int, finite_loss: torch.Tensor, finite_gradients: torch.Tensor) -> None:
        stopping = self.active & ~(finite_loss & finite_gradients)
        self.failed_at = torch.where(stopping, iteration, self.failed_at)
        self.loss_was_finite = torch.where(stopping, finite_loss, self.loss_was_finite)
        self.active = self.active & ~stopping

    @staticmethod
    def failures(failed_at: torch.Tensor, loss_was_finite: torch.Tensor, history: torch.Tensor,
                 known: dict[int, Diverged]) -> dict[int, Diverged]:
        """The runs stopped since ``known`` was made, from host copies of :attr:`failed_at` and
        :attr:`loss_was_finite`; a loss that was not finite is read from ``history``."""
        stopped = {}
        for index, (iteration, loss_finite) in enumerate(zip(failed_at.tolist(), loss_was_finite.tolist())):
            if iteration == 0 or index in known:
                continue
            if loss_finite:
                stopped[index] = Diverged(iteration, "gradient became non-finite")
            else:
                stopped[index] = Diverged(iteration, f"loss became {float(history[iteration - 1, index])!r}")
        return stopped


def _checkpoint_audio(stacks: RunStacks, runs: list[RunSpec], losses: dict[str, nn.Module]) -> torch.Tensor:
    """Every run's current output as audio, ``(n_runs, T)``, on the device."""
    with torch.no_grad():
        outputs = stacks()
        return torch.stack([as_waveform(losses[run.loss], stacks.output(outputs, [i])[0])
                            for i, run in enumerate(runs)])


def to_host(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """Copies of ``tensors`` on the host. From CUDA every copy is queued at once into pinned memory
    and waited for once, rather than a stall per tensor."""
    copies = [torch.empty(t.shape, dtype=t.dtype, pin_memory=True).copy_(t, non_blocking=True) if t.is_cuda
              else t.clone() for t in tensors]
    for device in {t.device for t in tensors if t.is_cuda}:
        torch.cuda.current_stream(device).synchronize()
    return copies


def _width(width: int | None) -> int:
    """The generator's hidden channels; ``None`` takes the configuration's declared default."""
    from .config import default_of

    return default_of("width") if width is None else width


def _adam(parameters, learning_rate: float | None, betas, fused: bool | None = None) -> torch.optim.Adam:
    """Adam with the run's settings; ``None`` takes the configuration's declared default.

    ``fused`` (by default: when the weights are on CUDA) updates every weight in one kernel
    instead of a few per weight; elsewhere torch's default implementation runs, as before.
    """
    from .config import default_of

    parameters = list(parameters)
    learning_rate = default_of("learning_rate") if learning_rate is None else learning_rate
    betas = default_of("betas") if betas is None else betas
    fused = parameters[0].is_cuda if fused is None else fused
    return torch.optim.Adam(parameters, lr=learning_rate, betas=tuple(betas), **({"fused": True} if fused else {}))


def _state(iteration, stacks, optimizer, history, failures) -> dict:
    """The training state on the host; from CUDA its tensors come in one wait (:func:`to_host`)."""
    weights = [w.detach() for w in stacks.weights()]
    optimizer_state = optimizer.state_dict()  # its tensors are the optimizer's own: CUDA ones are copied
    moved = [(index, name) for index, entry in optimizer_state["state"].items() for name, value in entry.items()
             if isinstance(value, torch.Tensor) and value.is_cuda]
    host = to_host(weights + [stacks.latents, history[:iteration]]
                    + [optimizer_state["state"][index][name] for index, name in moved])
    copied = {}
    for (index, name), tensor in zip(moved, host[len(weights) + 2:]):
        copied.setdefault(index, dict(optimizer_state["state"][index]))[name] = tensor
    return {
        "format": STATE_FORMAT,
        "iteration": iteration,
        "weights": host[:len(weights)],
        "optimizer": optimizer_state | {"state": optimizer_state["state"] | copied},
        "latents": host[len(weights)],
        "history": host[len(weights) + 1],
        "failures": [[index, failure.iteration, failure.reason] for index, failure in sorted(failures.items())],
        "rng": torch.get_rng_state(),
    }


def _restore(state, stacks, optimizer, history, failures, n_runs) -> int:
    """Load a saved state into freshly built objects; return its iteration."""
    weights = stacks.weights()
    if state.get("format") not in (1, STATE_FORMAT) or len(state["weights"]) != len(weights):
        raise ValueError("the saved training state does not fit this run")
    if state["latents"].shape[0] != n_runs:
        raise ValueError("the saved training state has a different number of runs")
    with torch.no_grad():
        for weight, saved in zip(weights, state["weights"]):
            weight.copy_(saved)
        stacks.latents.copy_(state["latents"])
        done = state["iteration"]
        history[:done] = state["history"].to(history.device)
    optimizer.load_state_dict(state["optimizer"])
    failures.update({int(entry[0]): _saved_failure(entry, state["format"]) for entry in state["failures"]})
    torch.set_rng_state(state["rng"])
    return done


def _saved_failure(entry: list, format: int) -> Diverged:
    """A failure as the training state holds it. Format 1 (before 2026-11-26) kept only the text
    "<reason> at iteration <i>"; it is read once here so that those folders still resume."""
    if format == 1:
        reason, _, iteration = str(entry[1]).rpartition(" at iteration ")
        return Diverged(int(iteration), reason)
    return Diverged(int(entry[1]), str(entry[2]))
