"""Values derived from a module's tensors, kept until what they are made of changes."""

from __future__ import annotations

from typing import Any, Callable, Hashable

import torch


class Derived:
    """A few values made from tensors (filter spectra, impulse responses), each served again only
    while its sources are unchanged: the same tensor objects (not another tensor loaded in their
    place) at the same version (no in-place edit since), and the same plain values.

    A copied or pickled module starts empty. At most ``SLOTS`` values are kept; the oldest goes.
    """

    SLOTS = 16

    def __init__(self):
        self._entries: dict[Hashable, tuple] = {}

    def __reduce__(self):
        return (Derived, ())

    def get(self, key: Hashable, sources: tuple, make: Callable[[], Any]) -> Any:
        """The value under ``key``, made again by ``make()`` when any of ``sources`` changed."""
        stamp = tuple(source._version if isinstance(source, torch.Tensor) else source for source in sources)
        entry = self._entries.get(key)
        if entry is not None and entry[1] == stamp and all(a is b for a, b in zip(entry[0], sources)
                                                           if isinstance(b, torch.Tensor)):
            return entry[2]
        value = make()
        self._entries.pop(key, None)
        if len(self._entries) >= self.SLOTS:
            self._entries.pop(next(iter(self._entries)))
        self._entries[key] = (sources, stamp, value)
        return value
