"""Constructor arguments checked by declared rules: one rule per argument, one message style.

A loss declares ``ARGUMENTS = {"name": rule, ...}`` and calls :func:`check_arguments` first thing
in ``__init__``; a bad value raises ``TypeError`` (wrong kind: a bool where a number is wanted, a
string, a float where an integer is) or ``ValueError`` (NaN, infinity, out of range, not a
choice), and the message starts with the argument's name.

>>> Number(low=0, low_open=True).check("beta", float("nan"))
Traceback (most recent call last):
...
ValueError: beta must be a finite number, got nan
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Callable, Mapping


@dataclass(frozen=True)
class Number:
    """A real number (or an integer) in ``[low, high]``; ``low_open`` excludes ``low`` itself,
    ``high_open`` ``high``.

    The application's settings check (``pal.run.config.Number``) asks :meth:`accepts` whether a
    value is in range, and words its own refusal (a ``UserError`` naming the flag or the TOML
    key); this one raises ``TypeError`` or ``ValueError`` naming the constructor's argument.
    """

    low: float | None = None
    high: float | None = None
    integer: bool = False
    low_open: bool = False
    optional: bool = False  # None allowed (a documented default computed later)
    high_open: bool = False

    def check(self, name: str, value: Any) -> Any:
        if value is None and self.optional:
            return None
        if not self._of_kind(value):
            wanted = "an integer" if self.integer else "a number"
            raise TypeError(f"{name} must be {wanted}, got {value!r} ({type(value).__name__})")
        if not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
        if not self._within(value):
            raise ValueError(f"{name} must be {self.describe()}, got {value!r}")
        return int(value) if self.integer else value

    def accepts(self, value: Any) -> bool:
        """Whether :meth:`check` takes ``value`` (``None`` aside): of the kind, finite, in range."""
        return self._of_kind(value) and math.isfinite(value) and self._within(value)

    def _of_kind(self, value: Any) -> bool:
        kind = numbers.Integral if self.integer else numbers.Real
        return not isinstance(value, bool) and isinstance(value, kind)

    def _within(self, value) -> bool:
        too_low = self.low is not None and (value <= self.low if self.low_open else value < self.low)
        too_high = self.high is not None and (value >= self.high if self.high_open else value > self.high)
        return not (too_low or too_high)

    def describe(self) -> str:
        low = "" if self.low is None else f"{'above' if self.low_open else 'at least'} {self.low:g}"
        high = "" if self.high is None else f"{'below' if self.high_open else 'at most'} {self.high:g}"
        return " and ".join(part for part in (low, high) if part) or "finite"


@dataclass(frozen=True)
class Choice:
    """One of a fixed set of strings."""

    options: tuple[str, ...]

    def check(self, name: str, value: Any) -> Any:
        if not isinstance(value, str):
            raise TypeError(f"{name} must be one of {self.options}, got {value!r} ({type(value).__name__})")
        if value not in self.options:
            raise ValueError(f"{name} must be one of {self.options}, got {value!r}")
        return value


@dataclass(frozen=True)
class Flag:
    """``True`` or ``False`` and nothing else (not 0, 1 or a string)."""

    def check(self, name: str, value: Any) -> Any:
        if not isinstance(value, bool):
            raise TypeError(f"{name} must be True or False, got {value!r} ({type(value).__name__})")
        return value


@dataclass(frozen=True)
class Numbers:
    """A non-empty tuple or list of numbers, each by ``rule``, at most ``most`` of them."""

    rule: Number
    most: int = 8

    def check(self, name: str, value: Any) -> Any:
        if isinstance(value, (str, bytes)) or not isinstance(value, (tuple, list)):
            raise TypeError(f"{name} must be a tuple of numbers, got {value!r} ({type(value).__name__})")
        if not 1 <= len(value) <= self.most:
            raise ValueError(f"{name} must hold 1 to {self.most} numbers, got {len(value)}")
        return tuple(self.rule.check(f"{name}[{i}]", item) for i, item in enumerate(value))


Rule = Number | Choice | Flag | Numbers

# The highest sample rate any loss accepts (ARGUMENTS' "sample_rate" rules): 768 kHz, the
# highest rate of common audio interfaces.
HIGHEST_RATE = 768000
SAMPLE_RATE = Number(low=0, low_open=True, high=float(HIGHEST_RATE))


def smallest_integer(works: Callable[[int], bool], highest: int = HIGHEST_RATE) -> int | None:
    """The smallest integer ``n`` in ``[1, highest]`` for which ``works(n)``, by bisection: ``works``
    must stay true once it is true (a rate high enough for a window is high enough for it from
    there on). ``None`` when ``works(highest)`` is false.

    >>> smallest_integer(lambda n: n * n >= 1000)
    32
    """
    if not works(highest):
        return None
    low, high = 0, highest  # works(high), and low is below every n that works
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if works(middle) else (middle, high)
    return high


def check_sample_rate(sample_rate: float, works: Callable[[float], bool], leaves: str) -> None:
    """Refuse, when the loss is built, a ``sample_rate`` that leaves nothing to compute: a
    ``ValueError`` naming ``sample_rate``, what it leaves (``leaves``, worded by the loss, naming
    the other arguments involved) and the smallest integer rate that works with them."""
    if works(sample_rate):
        return
    smallest = smallest_integer(works)
    fix = (f"the smallest sample_rate that works with these arguments is {smallest}" if smallest is not None
           else "no sample_rate works with these arguments")
    raise ValueError(f"sample_rate={sample_rate:g} leaves {leaves}: {fix}")


def check_arguments(rules: Mapping[str, Rule], values: Mapping[str, Any]) -> dict[str, Any]:
    """Every value by its rule, in the rules' order; the checked values (integers as ``int``)."""
    return {name: rule.check(name, values[name]) for name, rule in rules.items()}
