"""Counting the aten operations a computation dispatches: the GPU's launch budget, seen from a CPU.

On CUDA nearly every aten operation that computes is one kernel launch (views and other
metadata-only operations launch nothing, and are counted apart), and at the sizes of the 2018
experiment a step's time is its launches. Counted on the CPU, a path that runs the same operations
as on CUDA (``PerceptualLoss(..., compiled=False)``, the generator stack's ``"grouped"`` mode) shows
its launch count without a GPU. ``pal bench --ops`` prints these counts.
"""

from __future__ import annotations

from collections import Counter
from typing import Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode


# Markers that pass through the dispatcher and compute nothing (the optimizer's record_function).
IGNORED_NAMESPACES = frozenset({"profiler"})


class OpCounter(TorchDispatchMode):
    """Counts every aten operation dispatched while it is active, forward and backward alike.

    >>> x = torch.ones(3)
    >>> with OpCounter() as counter:
    ...     y = (x * 2 + 1).sum()
    >>> counter.total, dict(counter.by_name)
    (3, {'aten.mul.Tensor': 1, 'aten.add.Tensor': 1, 'aten.sum.default': 1})
    """

    def __init__(self):
        super().__init__()
        self.by_name: Counter[str] = Counter()
        self.views = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.namespace not in IGNORED_NAMESPACES:
            self.by_name[str(func)] += 1
            self.views += _is_view(func)
        return func(*args, **(kwargs or {}))

    @property
    def total(self) -> int:
        """Every operation counted, views included."""
        return sum(self.by_name.values())

    @property
    def computing(self) -> int:
        """The operations that are not views: an upper bound on the kernels they launch on CUDA."""
        return self.total - self.views


# Views whose schemas do not say so (the output is declared fresh, but shares the input's memory).
UNMARKED_VIEWS = frozenset({"aten::_unsafe_view"})


def _is_view(func) -> bool:
    """Whether ``func`` returns a view of an input (its schema says the output aliases one)."""
    returns = func._schema.returns
    if func._schema.name in UNMARKED_VIEWS:
        return True
    return bool(returns) and all(r.alias_info is not None and not r.alias_info.is_write for r in returns)


def count_ops(compute: Callable[[], object]) -> OpCounter:
    """The operations ``compute()`` dispatches."""
    with OpCounter() as counter:
        compute()
    return counter


def forward_backward_ops(loss: torch.nn.Module, input: torch.Tensor, target: torch.Tensor) -> OpCounter:
    """The operations of one ``loss(input, target)`` and its backward to ``input``, after one
    uncounted call (so that caches a loss builds on its first call are not counted)."""

    def step():
        x = input.detach().clone().requires_grad_(True)
        loss(x, target).backward()

    step()
    x = input.detach().clone().requires_grad_(True)
    with OpCounter() as counter:
        loss(x, target).backward()
    return counter
