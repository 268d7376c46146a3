"""The 2018 post's claims as a table: each loss's mean over seeds with a 95 % interval, and the winner.

Input is the run's metric rows (clip, loss, seed, iteration, metric, value); nothing here trains
or reads audio, so the table can be rebuilt from the metrics table alone.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

from .stats import Estimate, mean_interval

WITHIN_DB = 1.0  # "iterations to reach within 1 dB of the final log-spectral distance"


@dataclass(frozen=True)
class Claim:
    name: str
    metric: str
    lower_is_better: bool
    post_says: str


CLAIMS = (
    Claim("high-band log-spectral distance (dB)", "lsd_high_db", True, "crisper mid and high frequencies"),
    Claim("noise floor (dB)", "noise_floor_db", True, "less noise"),
    Claim("STOI (speech)", "stoi", False, "intelligible sooner (read at the first checkpoints)"),
    Claim("multi-resolution STFT distance", "mrstft", True, "overall spectral fidelity"),
    Claim(f"iterations to within {WITHIN_DB:g} dB of the final log-spectral distance", "iterations_to_final_lsd",
          True, "quicker convergence; the drum kit plateaus by 250"),
    # Only in runs asked for it (--cdpam): a claim whose metric a run lacks has no row.
    Claim("CDPAM distance (a judge no loss optimises)", "cdpam", True,
          "nothing (it had no such judge): which loss a model of listeners finds closer"),
)


@dataclass
class ClaimRow:
    claim: Claim
    clip: str
    iteration: int | None  # None for a per-run quantity
    estimates: dict[str, Estimate] = field(default_factory=dict)
    winner: str | None = None
    margin: float = math.nan
    separated: bool = False  # the winner's interval does not overlap the runner-up's


def iterations_to_final(points: list[tuple[int, float]], within: float = WITHIN_DB) -> float:
    """The first checkpoint whose value is within ``within`` of the last checkpoint's."""
    points = sorted(points)
    final = points[-1][1]
    return float(next(iteration for iteration, value in points if value <= final + within))


def judge(row: ClaimRow) -> ClaimRow:
    ranked = sorted(((e.mean, loss) for loss, e in row.estimates.items() if math.isfinite(e.mean)),
                    reverse=not row.claim.lower_is_better)
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
        if row["metric"] == "lsd_overall_db":
            lsd[(row["clip"], row["loss"], row["seed"])].append((int(row["iteration"]), value))
        if row["clip"] not in clips:
            clips.append(row["clip"])
        iterations.add(int(row["iteration"]))
    table = []
    for claim in CLAIMS:
        for clip in clips:
            if claim.metric == "iterations_to_final_lsd":
                per_loss = {loss: [iterations_to_final(points) for (c, l, _), points in lsd.items()
                                   if c == clip and l == loss] for loss in losses}
                row = ClaimRow(claim, clip, None, {loss: mean_interval(v) for loss, v in per_loss.items()})
                table.append(judge(row))
                continue
            for iteration in sorted(iterations):
                estimates = {loss: mean_interval(values.get((claim.metric, clip, iteration, loss), []))
                             for loss in losses}
                if all(e.n == 0 for e in estimates.values()):
                    continue
                table.append(judge(ClaimRow(claim, clip, iteration, estimates)))
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
        row.claim.metric == "stoi" and row.iteration == first)]


@dataclass
class MatrixRow:
    """One line of the page's claims matrix: a claim (at one checkpoint) and its row for each clip."""

    claim: Claim
    iteration: int | None
    cells: dict[str, ClaimRow] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.claim.name if self.iteration is None else f"{self.claim.name} at {self.iteration}"


def claims_matrix(table: list[ClaimRow]) -> tuple[list[str], list[MatrixRow]]:
    """The headline rows as claims x clips: ``(clips, rows)``, claims in the post's order."""
    clips = list(dict.fromkeys(row.clip for row in table))
    rows: dict[tuple, MatrixRow] = {}
    for row in headline(table):
        rows.setdefault((row.claim.name, row.iteration), MatrixRow(row.claim, row.iteration)).cells[row.clip] = row
    order = {claim.name: index for index, claim in enumerate(CLAIMS)}
    return clips, sorted(rows.values(), key=lambda r: (order.get(r.claim.name, len(order)), r.iteration or 0))


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
        lines.append(f"  {row.clip}: {row.claim.name}{when}: {cells}{verdict}")
    return "\n".join(lines)
