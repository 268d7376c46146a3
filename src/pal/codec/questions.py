"""What a codec grid answers: the issue's four questions, from the run's own table of measures.

1. **Best cells.** Within each (width, training data), each cell is a test group x measure
   (ViSQOL, CDPAM, MR-STFT distance, high-band LSD, noise floor on every group; STOI, PESQ and
   DNSMOS on speech), the losses compared with everything else fixed. For each loss: the cells
   where it has the best mean, and the cells where another loss beats it with the 95 % intervals
   over seeds apart.
2. **Data.** A loss's ViSQOL (every test file, groups weighted alike) at each amount of training
   data, against the baselines' (MSE, MR-STFT) ViSQOL with all of it: the smallest amount whose
   mean reaches theirs, as a fraction of the corpus.
3. **Capacity.** At each width but the largest, a loss's ViSQOL with all the data against
   MR-STFT's at the next width up.
4. **Cost** is ``pal bench --codec``'s (:mod:`pal.bench.codec`), not the run's.

Each answer is text a user can check against the page's table: means with their intervals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..measures.registry import CDPAM, DNSMOS, LSD_HIGH, MRSTFT, NOISE_FLOOR, PESQ, STOI, VISQOL
from ..measures.stats import Estimate, apart, mean_interval
from .folder import CodecRecord, data_name
from .segments import seconds_of
from .table import Setting, per_seed_means, results_table

# The cells of question 1, as the issue lists them (ViSQOL's speech mode is the page's, not a cell).
CELL_MEASURES = (VISQOL, CDPAM, MRSTFT, LSD_HIGH, NOISE_FLOOR, STOI, PESQ, DNSMOS)
BASELINES = ("mse", "mrstft")
CAPACITY_PEER = "mrstft"
SHARE_GOAL = 0.8  # question 1's goal: the best mean on 80 % of the cells
DATA_GOAL = 0.5  # question 2's: the baselines' full-data ViSQOL with half the data or less


@dataclass
class Cell:
    width: int
    train_seconds: float | None
    group: str
    measure: str
    estimates: dict[str, Estimate]  # by loss
    lower_is_better: bool

    def best(self) -> str | None:
        finite = {loss: e for loss, e in self.estimates.items() if math.isfinite(e.mean)}
        if not finite:
            return None
        pick = min if self.lower_is_better else max
        return pick(finite, key=lambda loss: finite[loss].mean)

    def beaten_by(self, loss: str) -> list[str]:
        """The losses whose mean is better than ``loss``'s with the intervals apart."""
        mine = self.estimates.get(loss)
        if mine is None or not math.isfinite(mine.mean):
            return []
        better = (lambda e: e.mean < mine.mean) if self.lower_is_better else (lambda e: e.mean > mine.mean)
        return [other for other, e in self.estimates.items()
                if other != loss and math.isfinite(e.mean) and better(e) and apart(e, mine)]

    @property
    def label(self) -> str:
        return f"w{self.width} {data_name(self.train_seconds)} {self.group} {self.measure}"


def cells(config: CodecRecord, rows: list[dict]) -> list[Cell]:
    """Question 1's cells: every (width, data, group, measure) the rows measure."""
    keys = {m.key for m in CELL_MEASURES}
    found = []
    for width in config.width:
        for amount in config.train_seconds:
            settings = [Setting(loss, width, seconds_of(amount)) for loss in config.losses]
            for row in results_table(config, rows, settings):
                if row.measure.key in keys:
                    found.append(Cell(width, seconds_of(amount), row.group, row.measure.name,
                                      {s.loss: e for s, e in row.cells.items()}, row.measure.lower_is_better))
    return found


@dataclass
class BestCells:
    loss: str
    best: list[Cell]
    beaten: list[tuple[Cell, list[str]]]  # cells where others beat it with the intervals apart
    total: int

    @property
    def share(self) -> float:
        return len(self.best) / self.total if self.total else math.nan


def best_cells(config: CodecRecord, rows: list[dict]) -> list[BestCells]:
    """Question 1 for every loss of the run, in the run's order."""
    found = cells(config, rows)
    return [BestCells(loss, [c for c in found if c.best() == loss],
                      [(c, c.beaten_by(loss)) for c in found if c.beaten_by(loss)], len(found))
            for loss in config.losses]


def overall_visqol(config: CodecRecord, rows: list[dict], setting: Setting) -> Estimate:
    """ViSQOL over the whole test corpus, each group's mean weighted alike, per seed; over seeds."""
    means = per_seed_means(rows)
    groups = list(dict.fromkeys(f["group"] for f in config.test_files))
    per_seed = []
    for seed in config.seeds:
        values = [means.get((group, VISQOL.key, setting, seed)) for group in groups]
        if all(v is not None for v in values):
            per_seed.append(sum(values) / len(values))
    return mean_interval(per_seed)


@dataclass
class DataAnswer:
    loss: str
    width: int
    curve: dict[str, Estimate]  # data name -> ViSQOL
    target: float  # the best baseline's full-data mean
    reached: str | None  # the smallest data name reaching it
    fraction: float | None  # of the whole corpus


def data_question(config: CodecRecord, rows: list[dict], data_seconds: dict[str, float]) -> list[DataAnswer]:
    """Question 2, for every loss but the baselines at every width; empty without ViSQOL, without a
    baseline, or without all of the corpus among the amounts."""
    baselines = [b for b in BASELINES if b in config.losses]
    if not baselines or "all" not in config.train_seconds:
        return []
    amounts = sorted(config.train_seconds, key=lambda a: data_seconds.get(data_name(seconds_of(a)), math.inf))
    answers = []
    for width in config.width:
        target = max((overall_visqol(config, rows, Setting(b, width, None)).mean for b in baselines),
                     default=math.nan)
        if not math.isfinite(target):
            continue
        for loss in config.losses:
            if loss in baselines:
                continue
            curve = {data_name(seconds_of(a)): overall_visqol(config, rows, Setting(loss, width, seconds_of(a)))
                     for a in amounts}
            reached = next((name for name, e in curve.items() if math.isfinite(e.mean) and e.mean >= target), None)
            fraction = (data_seconds[reached] / data_seconds["all"]
                        if reached is not None and reached in data_seconds and data_seconds.get("all") else None)
            answers.append(DataAnswer(loss, width, curve, target, reached, fraction))
    return answers


@dataclass
class CapacityAnswer:
    loss: str
    width: int
    mine: Estimate
    next_width: int
    peer: Estimate

    @property
    def reached(self) -> bool:
        return self.mine.mean >= self.peer.mean


def capacity_question(config: CodecRecord, rows: list[dict]) -> list[CapacityAnswer]:
    """Question 3 at every width but the largest, with all of the corpus (the largest amount without it)."""
    if CAPACITY_PEER not in config.losses or len(config.width) < 2:
        return []
    amount = "all" if "all" in config.train_seconds else max(config.train_seconds)
    widths = sorted(config.width)
    answers = []
    for width, next_width in zip(widths, widths[1:]):
        peer = overall_visqol(config, rows, Setting(CAPACITY_PEER, next_width, seconds_of(amount)))
        for loss in config.losses:
            if loss == CAPACITY_PEER:
                continue
            mine = overall_visqol(config, rows, Setting(loss, width, seconds_of(amount)))
            if math.isfinite(mine.mean) and math.isfinite(peer.mean):
                answers.append(CapacityAnswer(loss, width, mine, next_width, peer))
    return answers


@dataclass
class Answers:
    best: list[BestCells]
    data: list[DataAnswer] = field(default_factory=list)
    capacity: list[CapacityAnswer] = field(default_factory=list)


def answers(config: CodecRecord, rows: list[dict]) -> Answers:
    return Answers(best_cells(config, rows), data_question(config, rows, config.data_seconds),
                   capacity_question(config, rows))


def answers_markdown(found: Answers) -> str:
    """The answers as Markdown: a table per question, every loss's row, the misses shown."""
    lines = ["**1. Best cells** (within each width and amount of data: test group × ViSQOL, CDPAM, MR-STFT "
             "distance, high-band LSD, noise floor; STOI, PESQ, DNSMOS on speech; goal: a loss of ours has "
             f"the best mean on {SHARE_GOAL:.0%} of them and is never beaten with the intervals apart)", "",
             "| loss | best mean | share | beaten with intervals apart | by |", "|---|---|---|---|---|"]
    for entry in found.best:
        by = sorted({other for _, others in entry.beaten for other in others})
        lines.append(f"| {entry.loss} | {len(entry.best)} of {entry.total} | {entry.share:.0%} | {len(entry.beaten)} "
                     f"| {', '.join(by) or '-'} |")
    if found.data:
        lines += ["", f"**2. Data** (ViSQOL over every test file, groups alike, mean ± 95 % interval over seeds; "
                  f"target: the best of {', '.join(BASELINES)} with all the data; goal: "
                  f"{DATA_GOAL:.0%} of the corpus or less)", ""]
        names = list(found.data[0].curve)
        lines += [f"| loss | width | {' | '.join(names)} | target | reaches it with |",
                  "|---|---|" + "---|" * len(names) + "---|---|"]
        for entry in found.data:
            reach = (f"{entry.reached} ({entry.fraction:.0%})" if entry.fraction is not None
                     else entry.reached or "never")
            lines.append(f"| {entry.loss} | {entry.width} | {' | '.join(str(entry.curve[n]) for n in names)} | "
                         f"{entry.target:.3g} | {reach} |")
    if found.capacity:
        lines += ["", f"**3. Capacity** (ViSQOL as above, all the data: a loss at a width against "
                  f"{CAPACITY_PEER} at the next width up)", "",
                  "| loss | width | its ViSQOL | next width | " + CAPACITY_PEER + "'s | reaches it |",
                  "|---|---|---|---|---|---|"]
        for entry in found.capacity:
            lines.append(f"| {entry.loss} | {entry.width} | {entry.mine} | {entry.next_width} | {entry.peer} | "
                         f"{'yes' if entry.reached else 'no'} |")
    return "\n".join(lines)
