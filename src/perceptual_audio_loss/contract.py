"""The contract every loss in this library keeps, and the helpers that keep it.

A loss here is an ``nn.Module`` called as ``loss(input, target)`` where:

- ``input`` and ``target`` have the same shape, ``(batch, time)`` or ``(batch, channels, time)``.
  Each channel is an independent signal; a batch item's loss is the **mean over its channels**.
- They may be float16, bfloat16, float32 or float64. The loss computes in float32 (float64 for
  float64 input) with autocast switched off inside, and returns the input's dtype, so it works
  under ``torch.autocast`` on CPU and CUDA.
- ``reduction`` is ``"mean"`` (over the batch), ``"sum"`` or ``"none"`` (shape ``(batch,)``).
- Silent inputs and targets, and targets silent in one channel only, give a finite value and a
  finite gradient.

A loss whose target can be prepared once (features, thresholds) also follows
:class:`PreparedTargetLoss`: ``against(input, target_features(target))`` equals
``loss(input, target)``, and costs only the input's half.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, Protocol, runtime_checkable

import torch

from .arguments import Choice

REDUCTIONS = ("mean", "sum", "none")
FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


@runtime_checkable
class PreparedTargetLoss(Protocol):
    """A loss that can transform a fixed target once and be evaluated against it many times.

    ``target_features(target)`` takes the target as ``forward`` does and returns an opaque
    prepared value (a tensor or a tuple of tensors) made without a graph;
    ``against(input, prepared, reduction=None)`` returns what ``forward(input, target)`` would,
    ``reduction`` overriding the module's own for that call.
    """

    def target_features(self, target: torch.Tensor) -> Any: ...

    def against(self, input: torch.Tensor, prepared: Any, reduction: str | None = None) -> torch.Tensor: ...


REDUCTION = Choice(REDUCTIONS)  # the rule for every loss's ``reduction``, at build and per call


def check_reduction(reduction: str) -> str:
    return REDUCTION.check("reduction", reduction)


def signals(x: Any, name: str) -> tuple[torch.Tensor, int]:
    """``(batch, time)`` or ``(batch, channels, time)`` as ``(batch * channels, time)`` and the batch size.

    Raises ``TypeError`` for a non-tensor or a non-float tensor and ``ValueError`` for a shape
    the contract does not take, naming the argument.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be float16, bfloat16, float32 or float64, got {x.dtype}")
    if x.dim() not in (2, 3) or x.numel() == 0:
        raise ValueError(f"{name} must be (batch, time) or (batch, channels, time) with samples, "
                         f"got shape {tuple(x.shape)}")
    return x.reshape(-1, x.shape[-1]), x.shape[0]


def matching_signals(input: Any, target: Any) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Both sides as signals; they must have the same shape."""
    x, batch = signals(input, "input")
    y, _ = signals(target, "target")
    if input.shape != target.shape:
        raise ValueError(f"input {tuple(input.shape)} and target {tuple(target.shape)} differ in shape")
    return x, y, batch


def peak_scale(items: torch.Tensor, safe_exponent: int) -> torch.Tensor:
    """``(items, time)`` -> ``(items, 1)``: ``2^-k``, the smallest ``k >= 0`` that brings each
    signal's peak under ``2^safe_exponent``. A loss computes a signal scaled by it so that powers of
    extreme (finite) amplitudes stay finite in float32; 1 for every signal of sane level, and a
    power of two, so the scaling is exact and changes nothing there. No host synchronisation.

    >>> peak_scale(torch.tensor([[0.5, -1.0], [3e9, 0.0]]), 24).flatten().tolist()
    [1.0, 0.00390625]
    """
    exponent = torch.frexp(items.detach().abs().amax(1, keepdim=True)).exponent
    return torch.ldexp(torch.ones_like(items[:, :1]), -(exponent - safe_exponent).clamp_min(0))


def common_scale(x: torch.Tensor, prepared_scale: torch.Tensor, safe_exponent: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The scale a loss compares ``x`` ``(items, time)`` and a target prepared at
    ``prepared_scale`` ``(items, 1)`` at: the smaller of ``x``'s own (:func:`peak_scale`) and the
    target's, and the ratio that brings the target's quantities to it (a power of two, at most
    1, so nothing overflows). Both are 1 at any sane level."""
    prepared_scale = prepared_scale.to(x.dtype)
    scale = torch.minimum(peak_scale(x, safe_exponent), prepared_scale)
    return scale, scale / prepared_scale


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 stays float64; everything narrower is computed in float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


class _Widened(torch.autograd.Function):
    """A signal cast up to the dtype a loss computes in, whose gradient comes back to the signal's
    own dtype saturated: a component past that dtype's largest finite number is that number."""

    @staticmethod
    def forward(ctx, x, dtype):
        ctx.dtype = x.dtype
        return x.to(dtype)

    @staticmethod
    def backward(ctx, grad):
        return saturated(grad, ctx.dtype), None


def widen(x: torch.Tensor) -> torch.Tensor:
    """``x`` in :func:`compute_dtype`, its gradient back in ``x``'s dtype never past its range.

    A float16 signal far below full scale can have a true gradient past float16's 65504 (the post's
    cosine loss is scale-invariant: its gradient grows as one over the level); it comes back as
    65504, not infinity. float32 and float64 signals are returned as they are.
    """
    dtype = compute_dtype(x.dtype)
    return x if x.dtype == dtype else _Widened.apply(x, dtype)


def saturated(value: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``value`` in ``dtype``, a component past its largest finite number (infinity included) as
    that number; NaN stays NaN. Differentiable, with the clamp's gradient (zero where it clamps):
    a loss's value leaves through :func:`out_of`, which keeps the true value's gradient."""
    largest = torch.finfo(dtype).max
    return value.clamp(-largest, largest).to(dtype)


class _Saturated(torch.autograd.Function):
    """A loss's value in its output dtype, saturated (:func:`saturated`), with the gradient of the
    value itself: where the true value is past the dtype, its gradient still points the right way."""

    @staticmethod
    def forward(ctx, value, dtype):
        ctx.dtype = value.dtype
        return saturated(value, dtype)

    @staticmethod
    def backward(ctx, grad):
        return grad.to(ctx.dtype), None


@contextlib.contextmanager
def full_precision(device: torch.device) -> Iterator[None]:
    """Autocast off for the loss's own arithmetic (FFTs and logs lose too much in 16 bits)."""
    with torch.autocast(device_type=device.type, enabled=False):
        yield


class _FullPrecisionMatmul(torch.autograd.Function):
    """``a @ b`` whose backward is full precision too: a backward run inside an autocast region
    (``loss.backward()`` under ``torch.autocast``) would otherwise run its ``mm`` in 16 bits,
    where intensities of 1e10 overflow to inf and the gradient becomes NaN."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return torch.matmul(a, b)

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        with torch.autocast(device_type=grad.device.type, enabled=False):
            grad_a = torch.matmul(grad, b.transpose(-1, -2)) if ctx.needs_input_grad[0] else None
            grad_b = None
            if ctx.needs_input_grad[1]:
                grad_b = torch.matmul(a.transpose(-1, -2), grad).reshape(-1, *b.shape).sum(0)
        return grad_a, grad_b


def full_precision_matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b`` (``b`` a matrix) with a backward that ignores an enclosing autocast region."""
    return _FullPrecisionMatmul.apply(a, b)


def reduce(per_item: torch.Tensor, reduction: str) -> torch.Tensor:
    """Reduce a per-batch-item loss as ``torch.nn`` losses do."""
    if reduction == "mean":
        return per_item.mean()
    if reduction == "sum":
        return per_item.sum()
    return per_item


def finish(per_signal: torch.Tensor, batch: int, reduction: str, dtype: torch.dtype) -> torch.Tensor:
    """Per-signal values ``(batch * channels,)`` -> channels averaged, reduced, in ``dtype``."""
    return out_of(reduce(per_signal.reshape(batch, -1).mean(1), reduction), dtype)


def out_of(value: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A loss's value as it leaves the loss: in ``dtype``, never infinite for finite input. A value
    past ``dtype``'s largest finite number (the MSE of float16 samples a few hundred apart) is that
    number, and its gradient is the true value's."""
    return _Saturated.apply(value, dtype)
