"""The training segments: the first N seconds of a corpus, and a seeded draw of fixed-length
segments from them that depends only on (seed, step).

Because a step's draw is a function of the seed and the step number alone (numpy's
``default_rng([seed, step])``), a resumed training draws what an uninterrupted one would,
with no random state to save, and two models of one seed see the same segments whatever else
trains beside them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.errors import UserError
from .corpus import SILENCE, CorpusFile

ALL = "all"  # --train-seconds' word for the whole corpus


def seconds_of(amount) -> float | None:
    """An amount of training data as seconds: ``None`` (the whole corpus) for :data:`ALL`."""
    return None if amount == ALL else amount


@dataclass(frozen=True)
class TrainingSet:
    """The audio a model trains on: the corpus's files in order, cut after ``seconds`` of
    audio (``None``: all of it). A cut that leaves less than one segment of the last file drops
    it. ``pieces`` are the arrays kept, ``seconds_used`` their total."""

    pieces: tuple[np.ndarray, ...]
    segment: int
    sample_rate: int

    @classmethod
    def first_seconds(cls, files: list[CorpusFile], seconds: float | None, segment: int,
                      sample_rate: int) -> TrainingSet:
        short = [f for f in files if len(f.samples) < segment]
        if short:
            raise UserError(f"{short[0].source}: {len(short[0].samples) / sample_rate:.3g} s is shorter than a "
                            f"training segment ({segment / sample_rate:g} s); remove it or lower --segment-seconds")
        total = sum(len(f.samples) for f in files)
        if seconds is not None and seconds * sample_rate > total:
            raise UserError(f"--train-seconds {seconds:g} is more than the training corpus holds "
                            f"({total / sample_rate:.1f} s); give at most that, or {ALL}")
        budget = total if seconds is None else int(round(seconds * sample_rate))
        pieces = []
        for f in files:
            take = min(len(f.samples), budget)
            if take >= segment:
                pieces.append(f.samples[:take])
            budget -= take
            if budget <= 0:
                break
        if not pieces:
            raise UserError(f"--train-seconds {seconds:g} is shorter than one training segment "
                            f"({segment / sample_rate:g} s)")
        if all(float(np.max(np.abs(p))) < SILENCE for p in pieces):
            raise UserError(f"--train-seconds {seconds:g}: the first {seconds:g} s of the training corpus are silent")
        return cls(tuple(pieces), segment, sample_rate)

    @property
    def seconds_used(self) -> float:
        return sum(len(p) for p in self.pieces) / self.sample_rate

    def offsets(self, seed: int, step: int, batch: int) -> list[tuple[int, int]]:
        """The ``(piece, start)`` of each of a step's ``batch`` segments: uniform over every
        segment the set holds (so a longer file is drawn more often), from ``(seed, step)``."""
        starts = np.array([len(p) - self.segment + 1 for p in self.pieces])
        bounds = np.cumsum(starts)
        drawn = np.random.default_rng([seed, step]).integers(0, int(bounds[-1]), size=batch)
        piece = np.searchsorted(bounds, drawn, side="right")
        start = drawn - np.concatenate([[0], bounds[:-1]])[piece]
        return [(int(p), int(s)) for p, s in zip(piece, start)]

    def draw(self, seed: int, step: int, batch: int) -> np.ndarray:
        """A step's segments, ``(batch, segment)`` float32."""
        return np.stack([self.pieces[p][s:s + self.segment] for p, s in self.offsets(seed, step, batch)])
