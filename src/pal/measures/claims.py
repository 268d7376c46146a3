"""The 2018 post's claims as a table: each loss's mean over seeds with a 95 % interval, and the winner.

Input is the run's metric rows (clip, loss, seed, iteration, metric, value); nothing here trains
or reads audio, so the table can be rebuilt from the metrics table alone.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

from .registry import CLAIMED, LSD_OVERALL, STOI, Measure, iterations_to_final
from .stats import Estimate, mean_interval


@dataclass
class ClaimRow:
    measure: Measure  # the claim's measure (its claim, what the post says, is its ``claim``)
    clip: str
    iteration: int | None  # None for a per-run quantity
    estimates: dict[str, Estimate] = field(default_factory=dict)
    winner: str | None = None
    margin: float = math.nan
    separated: bool = False  # the winner's interval does not overlap the runner-up's


def judge(row: ClaimRow) -> ClaimRow:
    ranked = sorted(((e.mean, loss) for loss, e in row.estimates.items() if math.isfinite(e.mean)),
                    reverse=not row.measure.lower_is_better)
    if len(ranked) >= 2:
        (best_mean, best), (second_mean, second) = ranked[0], ranked[1]
        row.margin = abs(best_mean - second_mean)
        row.winner = best if row.margin > 0 else "tie"
        best_e, second_e = row.estimates[best], row.estimates[second]
        if not math.isnan(best_e.half_width) and not math.isnan(second_e.half_width):
            row.separated = row.margin > best_e.half_width + second_e.half_width
    # With one finite mean there is no runner-up: no winner and no margin (never "mse by nan").
    return row


def claims_table(rows: list[dict], losses: list[str]) -> list[ClaimRow]:
    """Every claim for every clip and checkpoint (where the clip has that metric)."""
    values: dict[tuple, list[float]] = defaultdict(list)
    lsd: dict[tuple, list[tuple[int, float]]] = defaultdict(list)
    clips, iterations = [], set()
    for row in rows:
        value = float(row["value"])
        values[(row["metric"], row["clip"], int(row["iteration"]), row["loss"])].append(value)
        if row["metric"] == LSD_OVERALL.key:
            lsd[(row["clip"], row["loss"], row["seed"])].append((int(row["iteration"]), value))
        if row["clip"] not in clips:
            clips.append(row["clip"])
        iterations.add(int(row["iteration"]))
    table = []
    for measure in CLAIMED:
        for clip in clips:
            if measure.per_run:  # iterations to the final log-spectral distance, per run
                per_loss = {loss: [iterations_to_final(points) for (c, l, _), points in lsd.items()
                                   if c == clip and l == loss] for loss in losses}
                row = ClaimRow(measure, clip, None, {loss: mean_interval(v) for loss, v in per_loss.items()})
                table.append(judge(row))
                continue
            for iteration in sorted(iterations):
                estimates = {loss: mean_interval(values.get((measure.key, clip, iteration, loss), []))
                             for loss in losses}
                if all(e.n == 0 for e in estimates.values()):
                    continue
                table.append(judge(ClaimRow(measure, clip, iteration, estimates)))
    return table


def headline(table: list[ClaimRow]) -> list[ClaimRow]:
    """The rows the claims are read at: each clip's last checkpoint, STOI also at the first
    ("intelligible sooner"), and the per-run quantities."""
    last = {}
    for row in table:
        if row.iteration is not None:
            last[row.clip] = max(last.get(row.clip, 0), row.iteration)
    first = min((r.iteration for r in table if r.iteration is not None), default=None)
    return [row for row in table if row.iteration is None or row.iteration == last.get(row.clip) or (
        row.measure is STOI and row.iteration == first)]


@dataclass
class MatrixRow:
    """One line of the page's claims matrix: a claim (at one checkpoint) and its row for each clip."""

    measure: Measure
    iteration: int | None
    cells: dict[str, ClaimRow] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.measure.name if self.iteration is None else f"{self.measure.name} at {self.iteration}"


def claims_matrix(table: list[ClaimRow]) -> tuple[list[str], list[MatrixRow]]:
    """The headline rows as claims x clips: ``(clips, rows)``, claims in the post's order."""
    clips = list(dict.fromkeys(row.clip for row in table))
    rows: dict[tuple, MatrixRow] = {}
    for row in headline(table):
        rows.setdefault((row.measure.key, row.iteration), MatrixRow(row.measure, row.iteration)).cells[row.clip] = row
    order = {measure.key: index for index, measure in enumerate(CLAIMED)}
    return clips, sorted(rows.values(), key=lambda r: (order.get(r.measure.key, len(order)), r.iteration or 0))


def format_table(table: list[ClaimRow], losses: list[str], seeds: int, unit: str = "seed") -> str:
    """The claims at each clip's last checkpoint (and STOI at its first), as plain text.

    ``seeds`` counts what the intervals are over: seeds of one run, or clips of a sweep (``unit``).
    """
    lines = [f"claims of the 2018 post, mean ± 95 % interval over {seeds} {unit}(s)"
             + ("" if seeds > 1 else f" (one {unit}: an anecdote, no interval)")]
    for row in headline(table):
        when = "" if row.iteration is None else f" @ {row.iteration}"
        cells = "; ".join(f"{loss} {row.estimates[loss]}" for loss in losses)
        verdict = "" if row.winner is None else f" -> {row.winner} by {row.margin:.3g}" + (
            " (intervals apart)" if row.separated else "")
        lines.append(f"  {row.clip}: {row.measure.name}{when}: {cells}{verdict}")
    return "\n".join(lines)
