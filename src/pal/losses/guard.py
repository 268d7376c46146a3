"""A user's loss, guarded for the whole run: whatever it does wrong is one line, never pal's end.

A user's loss is code pal did not write, running inside pal's process for thousands of
iterations. :class:`GuardedLoss` wraps it so that, at every call (import, construction, the
probe, ``forward``, its backward, ``target_features`` and ``against``):

- any exception it raises, ``SystemExit`` included (a loss calling ``sys.exit(0)`` must never end
  ``pal run`` with success), becomes a :class:`UserLossFailed` naming the loss, where it was and
  the iteration;
- the process state it must leave alone (working folder, grad mode, inference mode, default
  dtype) is checked after each call and restored, and a change is a failure;
- what it returns is checked against the contract: a tensor, of the input's dtype and device,
  one value (or one per item where ``reduction="none"`` is asked for), connected to the input
  through the autograd graph. A value that is not finite is *not* a failure here: training
  records it as divergence, as for any loss.

``KeyboardInterrupt`` passes through untouched: a real Ctrl-C arrives as one, most often while
the loss is computing, and must stop the run the usual way (state kept, exit 130), so a loss
that raises it itself is taken for a Ctrl-C too.

The checks read only tensors' metadata and the graph, never their values: no host sync.
"""

from __future__ import annotations

import os
import traceback
from pathlib import Path

import torch
from torch import nn

from ..core.errors import UserError
from .registry import DecodingLoss


class UserLossFailed(UserError):
    """A user's loss misbehaved; the message is one line naming the loss, what it did and where.

    ``iteration`` is the training iteration (``None`` before training: import, probe, targets).
    """

    def __init__(self, label: str, what: str, where: str, iteration: int | None, detail: str = ""):
        self.label, self.iteration = label, iteration
        self.reason = f"{what} {where}" + (f": {detail}" if detail else "")
        super().__init__(f"loss {label!r} {self.reason}")

    @classmethod
    def of(cls, label: str, error: BaseException, where: str, iteration: int | None) -> UserLossFailed:
        """The failure for ``error`` raised by the loss: ``raised RuntimeError at iteration 3: boom``."""
        if isinstance(error, SystemExit):
            return cls(label, f"called sys.exit({error.code!r})", where, iteration)
        try:
            text = str(error).strip().splitlines()[0] if str(error).strip() else ""
        except Exception:  # a message that cannot be rendered: the type still says what happened
            text = ""
        text = text if len(text) <= 200 else text[:197] + "..."
        return cls(label, f"raised {type(error).__name__}", where, iteration, text)


_HELD_MODES: list = []  # inference-mode guards that undo what a loss left on, held until exit


class Guard:
    """A context around one call into a user's loss: its exceptions become :class:`UserLossFailed`
    and the process state it changed is restored, then reported.

    ``where`` is a callable giving the text after the verb ("at iteration 3", "on import"), read
    only when something went wrong; exceptions of the ``passthrough`` types are left to the caller.
    """

    def __init__(self, label: str, where, iteration=lambda: None, passthrough: tuple = ()):
        self.label, self.where, self.iteration, self.passthrough = label, where, iteration, passthrough

    def __enter__(self):
        self.cwd = os.getcwd()
        self.grad = torch.is_grad_enabled()
        self.inference = torch.is_inference_mode_enabled()
        self.dtype = torch.get_default_dtype()
        return self

    def __exit__(self, kind, error, trace):
        changed = self._restore()
        if isinstance(error, (KeyboardInterrupt, UserLossFailed, *self.passthrough)):
            return False
        if error is not None:  # SystemExit and GeneratorExit too: the loss never ends pal
            raise UserLossFailed.of(self.label, error, self.where(), self.iteration()) from None
        if changed:
            raise UserLossFailed(self.label, changed, self.where(), self.iteration())
        return False

    def _restore(self) -> str:
        """Put back what the loss changed; say what that was ("" when nothing)."""
        changed = []
        try:
            now = os.getcwd()
        except OSError:  # it removed the folder it moved to
            now = None
        if now != self.cwd:
            os.chdir(self.cwd)
            changed.append(f"changed the working folder (to {now})" if now else "changed the working folder")
        if torch.is_grad_enabled() != self.grad:
            torch.set_grad_enabled(self.grad)
            changed.append(f"switched grad mode {'off' if self.grad else 'on'}")
        if torch.is_inference_mode_enabled() != self.inference:
            # Entered without being left: only a guard held from now on takes it back.
            _HELD_MODES.append(torch._C._InferenceMode(self.inference))
            changed.append(f"switched inference mode {'off' if self.inference else 'on'}")
        if torch.get_default_dtype() != self.dtype:
            torch.set_default_dtype(self.dtype)
            changed.append(f"changed torch's default dtype to {torch.get_default_dtype()}")
        return "; ".join(changed)


class _Boundary(torch.autograd.Function):
    """Identity marking where the graph enters (``"in"``) or leaves (``"out"``) a user's loss, so
    that its backward is known to be running between the two."""

    @staticmethod
    def forward(ctx, x, guard, side):
        ctx.guard, ctx.side = guard, side
        return x.clone()  # not a view: a loss may change its input in place, as without the guard

    @staticmethod
    def backward(ctx, grad):
        ctx.guard._backward_crossed(ctx.side)
        return grad, None, None


def _reaches(value: torch.Tensor, node) -> bool:
    """Whether ``node`` is in ``value``'s autograd graph (a walk over the graph, no computation)."""
    seen, pending = set(), [value.grad_fn]
    while pending:
        function = pending.pop()
        if function is None or function in seen:
            continue
        if function is node:
            return True
        seen.add(function)
        pending.extend(next_function for next_function, _ in function.next_functions)
    return False


class GuardedLoss(nn.Module):
    """A user's loss module, guarded at every call; as the loss itself to the code that trains.

    Before :meth:`start` calls are the probe ("on a noise pair"); after it, each call is placed
    at its training iteration: the first call after a backward through this loss begins the next.
    """

    def __init__(self, loss: nn.Module, label: str, source: str | None = None):
        super().__init__()
        self.loss = loss
        self.label = label
        self.source = source  # the loss's file, to recognise its frames in a traceback
        self.iteration: int | None = None
        self._stepped = False
        self._in_backward = 0

    def start(self, first_iteration: int) -> None:
        """Training begins (or resumes) at ``first_iteration``."""
        self.iteration, self._stepped, self._in_backward = first_iteration - 1, True, 0

    def where(self, doing: str = "") -> str:
        if self.iteration is None:
            return doing or "on a noise pair"
        return f"{doing + ' ' if doing else ''}at iteration {self.iteration}"

    def guard(self, doing: str = "") -> Guard:
        return Guard(self.label, lambda: self.where(doing), lambda: self.iteration)

    def _guarded(self, function, doing: str):
        def call(*args, **kwargs):
            with self.guard(doing):
                return function(*args, **kwargs)
        return call

    def _tick(self) -> None:
        if self.iteration is not None and self._stepped:
            self.iteration, self._stepped = self.iteration + 1, False

    def _backward_crossed(self, side: str) -> None:
        if side == "out":
            self._stepped = True
            self._in_backward += 1
        else:
            self._in_backward -= 1

    def _call(self, method, input: torch.Tensor, other, per_item: bool, **kwargs) -> torch.Tensor:
        self._tick()
        graph = isinstance(input, torch.Tensor) and input.requires_grad and torch.is_grad_enabled()
        entered = _Boundary.apply(input, self, "in") if graph else input
        with self.guard():
            value = method(entered, other, **kwargs)
        self._check(value, input, entered if graph else None, per_item)
        return _Boundary.apply(value, self, "out") if graph else value

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self._call(self.loss, input, target, per_item=False)

    def _check(self, value, input: torch.Tensor, entered: torch.Tensor | None, per_item: bool) -> None:
        def fail(detail: str):
            raise UserLossFailed(self.label, "returned what the contract forbids", self.where(), self.iteration,
                                 detail)

        if not isinstance(value, torch.Tensor):
            fail(f"a {type(value).__name__}, not a tensor")
        items = input.shape[0] if input.dim() else 1
        if per_item and tuple(value.shape) != (items,):
            fail(f"shape {tuple(value.shape)} for {items} item(s) with reduction='none', not ({items},)")
        if not per_item and value.numel() != 1:
            fail(f"shape {tuple(value.shape)} for a batch of {items}, not a single value")
        if value.dtype != input.dtype:
            fail(f"{value.dtype} for {input.dtype} input, not the input's dtype")
        if value.device != input.device:
            fail(f"a value on {value.device} for input on {input.device}")
        if entered is not None and not (value.requires_grad and _reaches(value, entered.grad_fn)):
            fail("a value not connected to its input through the graph (detached, or computed without grad)")

    def raised_in_its_file(self, error: BaseException) -> bool:
        """Whether ``error``'s traceback passes through this loss's file."""
        if not self.source:
            return False
        files = {Path(frame.f_code.co_filename).resolve() for frame, _ in traceback.walk_tb(error.__traceback__)}
        return Path(self.source).resolve() in files

    def in_backward(self, error: BaseException) -> bool:
        """Whether this loss's backward was running (entered, not yet left) when ``error`` came."""
        return self._in_backward > 0


class GuardedPreparedLoss(GuardedLoss):
    """:class:`GuardedLoss` for a loss that follows ``PreparedTargetLoss``: the two methods guarded too."""

    def target_features(self, target: torch.Tensor):
        # Before the first iteration (and on a resume, before the next): no iteration to name.
        with Guard(self.label, lambda: "preparing its targets"):
            return self.loss.target_features(target)

    def against(self, input: torch.Tensor, prepared, reduction: str | None = None) -> torch.Tensor:
        return self._call(self.loss.against, input, prepared, per_item=reduction == "none", reduction=reduction)


class _GuardedDecoding:
    """A guarded :class:`~pal.losses.registry.DecodingLoss`: its channels, and its decode guarded."""

    @property
    def output_channels(self) -> int:
        return self.loss.output_channels

    def decode(self, output: torch.Tensor) -> torch.Tensor:
        with self.guard("decoding a checkpoint"):
            return self.loss.decode(output)


class GuardedDecodingLoss(_GuardedDecoding, GuardedLoss):
    pass


class GuardedPreparedDecodingLoss(_GuardedDecoding, GuardedPreparedLoss):
    pass


def unguarded(loss: nn.Module) -> nn.Module:
    """The user's own loss inside a guard (``loss`` itself when it is not guarded): what the run's
    record describes."""
    return loss.loss if isinstance(loss, GuardedLoss) else loss


def guarded(loss: nn.Module, label: str, source: str | None = None) -> GuardedLoss:
    """``loss`` guarded, with the methods of the contracts it follows (``PreparedTargetLoss``,
    :class:`~pal.losses.registry.DecodingLoss`) guarded too."""
    from perceptual_audio_loss.contract import PreparedTargetLoss

    kinds = {(False, False): GuardedLoss, (True, False): GuardedPreparedLoss,
             (False, True): GuardedDecodingLoss, (True, True): GuardedPreparedDecodingLoss}
    return kinds[isinstance(loss, PreparedTargetLoss), isinstance(loss, DecodingLoss)](loss, label, source)


def blame(error: BaseException, losses) -> UserLossFailed | None:
    """The failure of the guarded loss that ``error`` (raised out of training, e.g. from a backward
    pass) came from, or ``None`` when it came from none of them."""
    if isinstance(error, UserLossFailed):
        return error
    guarded = [loss for loss in losses if isinstance(loss, GuardedLoss)]
    # Its own frames in the traceback say whose it is; failing that, whose backward was running.
    for claims in (GuardedLoss.raised_in_its_file, GuardedLoss.in_backward):
        for loss in guarded:
            if claims(loss, error):
                return UserLossFailed.of(loss.label, error, loss.where("in its backward"), loss.iteration)
    return None
