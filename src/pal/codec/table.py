"""The codec run's results as a table: a row per (test group, measure), a column per model setting
(loss, width, training data), each cell the mean over seeds of the group's mean over its files
at the model's last checkpoint, with its 95 % Student-t interval; the best mean marked, and every
cell the best beats with the intervals apart (the losing cells), as ``pal compare`` marks them.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

from ..measures.registry import (CDPAM, DNSMOS, LSD_HIGH, MRSTFT, NOISE_FLOOR, PESQ, SNR,
                                 STOI, VISQOL, VISQOL_SPEECH, Measure)
from ..measures.stats import Estimate, apart, mean_interval
from .folder import CodecRecord, data_name
from .segments import seconds_of

# The rows' measures, in order: the judges first (what the field reports codecs by), then the
# spectral and noise measures, then speech's own.
TABLE_MEASURES = (VISQOL, VISQOL_SPEECH, DNSMOS, CDPAM, MRSTFT, LSD_HIGH, NOISE_FLOOR, SNR, STOI, PESQ)


@dataclass(frozen=True)
class Setting:
    """A column: the models of one loss, width and training data (their seeds pooled)."""

    loss: str
    width: int
    train_seconds: float | None

    @property
    def label(self) -> str:
        return f"{self.loss} w{self.width} {data_name(self.train_seconds)}"


@dataclass
class Row:
    group: str
    measure: Measure
    cells: dict[Setting, Estimate]

    def best(self) -> Setting | None:
        finite = {s: e for s, e in self.cells.items() if math.isfinite(e.mean)}
        if not finite:
            return None
        pick = min if self.measure.lower_is_better else max
        return pick(finite, key=lambda s: finite[s].mean)

    def losing(self) -> set[Setting]:
        """The cells the best beats with the 95 % intervals apart (never with one seed)."""
        best = self.best()
        if best is None:
            return set()
        top = self.cells[best]
        return {s for s, e in self.cells.items() if s != best and apart(top, e)}


def settings_of(config: CodecRecord) -> list[Setting]:
    return [Setting(loss, width, seconds_of(amount))
            for width in config.width for amount in config.train_seconds for loss in config.losses]


def last_steps(rows: list[dict]) -> dict[tuple, int]:
    """Each model's last measured step, by (loss, width, train_seconds, seed)."""
    last: dict[tuple, int] = {}
    for row in rows:
        key = (row["loss"], row["width"], row["train_seconds"], row["seed"])
        last[key] = max(last.get(key, 0), row["step"])
    return last


def per_seed_means(rows: list[dict]) -> dict[tuple, float]:
    """(group, metric, Setting, seed) -> the mean over the group's files at the model's last step."""
    last = last_steps(rows)
    values: dict[tuple, list[float]] = defaultdict(list)
    for row in rows:
        model = (row["loss"], row["width"], row["train_seconds"], row["seed"])
        if row["step"] == last[model] and math.isfinite(row["value"]):
            setting = Setting(row["loss"], row["width"], row["train_seconds"])
            values[(row["group"], row["metric"], setting, row["seed"])].append(row["value"])
    return {key: sum(v) / len(v) for key, v in values.items()}


def results_table(config: CodecRecord, rows: list[dict], settings: list[Setting] | None = None) -> list[Row]:
    """Every (group, measure) the rows hold, over ``settings`` (default: every column of the run)."""
    settings = settings_of(config) if settings is None else settings
    means = per_seed_means(rows)
    groups = list(dict.fromkeys(f["group"] for f in config.test_files))
    table = []
    for group in groups:
        for measure in TABLE_MEASURES:
            key = measure.key
            cells = {s: mean_interval([means[(group, key, s, seed)] for seed in config.seeds
                                       if (group, key, s, seed) in means]) for s in settings}
            if any(e.n for e in cells.values()):
                table.append(Row(group, measure, cells))
    return table
