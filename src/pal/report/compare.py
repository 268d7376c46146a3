"""Several finished runs side by side: the claims' measures as Markdown tables (``pal compare``).

One table per measure and checkpoint: a row per clip, a column per (run folder, loss), each cell
the mean over seeds with the half-width of its 95 % Student-t interval (:func:`pal.measures.stats.mean_interval`).
The best mean of a row is bold; a cell marked :data:`APART` is one the best beats with the two
intervals apart (the best's interval clears it, as the claims table's "intervals apart"). With
``focus``, each table ends with one line: in how many rows that column has the best mean, and
where another beats it with the intervals apart. With ``over_clips``, each table with more than
one clip gets a last row: every column's mean of its clips' means, over the clips where every
column has one (a summary, so without an interval).

Run folders are read through :mod:`pal.run.folder` only; nothing here trains or reads audio.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..measures.registry import COMPARED, ITERATIONS_TO_FINAL, LSD_OVERALL, Measure, iterations_to_final
from ..core.errors import UserError
from ..run.folder import METRICS, RunFolder, RunRecord
from ..measures.stats import Estimate, apart, mean_interval

APART = "†"
# Identity keys that name what a run trained on or with, not how: never a column's prefix.
NOT_A_SETTING = ("targets", "clips", "losses", "loss_sources", "seeds")


@dataclass(frozen=True)
class Column:
    folder: Path
    loss: str
    label: str
    seeds: int


@dataclass
class RunMetrics:
    """One run folder's configuration and its metric rows."""

    folder: Path
    config: RunRecord
    rows: list[dict]


@dataclass
class Table:
    """One measure at one checkpoint (``None``: a per-run quantity): ``cells[clip][column]``."""

    measure: Measure
    iteration: int | None
    columns: list[Column]
    cells: dict[str, list[Estimate]] = field(default_factory=dict)

    def best(self, clip: str) -> float:
        """The row's best finite mean (NaN when it has none)."""
        means = [e.mean for e in self.cells[clip] if math.isfinite(e.mean)]
        if not means:
            return math.nan
        return min(means) if self.measure.lower_is_better else max(means)

    def best_columns(self, clip: str) -> list[int]:
        best = self.best(clip)
        return [i for i, e in enumerate(self.cells[clip]) if e.mean == best]

    def beaten_apart(self, clip: str, index: int) -> list[int]:
        """The columns whose mean beats column ``index``'s with the two intervals apart."""
        mine = self.cells[clip][index]
        return [i for i, other in enumerate(self.cells[clip])
                if i != index and _better(other.mean, mine.mean, self.measure.lower_is_better) and apart(other, mine)]


def _better(a: float, b: float, lower_is_better: bool) -> bool:
    return math.isfinite(a) and math.isfinite(b) and (a < b if lower_is_better else a > b)


def read_runs(folders: list[Path]) -> list[RunMetrics]:
    """Each folder's configuration and metrics; a folder that is missing, holds no run or has no
    measures yet is refused in one line naming it."""
    runs = []
    for path in folders:
        if folders.count(path) > 1:
            raise UserError(f"{path}: named twice")
        if not path.is_dir():
            raise UserError(f"{path}: no such run folder")
        folder = RunFolder(path)
        config, _, rows = folder.read_records()
        if not folder.metrics.is_file():
            raise UserError(f"{path}: no {METRICS} (the run has not finished; run the same pal run to finish it)")
        if not rows:
            raise UserError(f"{path}: its {METRICS} holds no measures")
        runs.append(RunMetrics(path, config, rows))
    return runs


def _shown(value) -> str:
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def _settings(config: RunRecord) -> dict:
    """A run's identity as settings, the declared default for any it does not hold (an
    ``if-changed`` setting at its default, or one from before the setting existed)."""
    from ..run.config import default_of, settings_fields

    declared = {f.name for f in settings_fields()}
    identity = {key: value for key, value in config.identity.items() if key not in NOT_A_SETTING}
    return {name: identity.get(name, default_of(name)) for name in declared if name not in NOT_A_SETTING} | identity


def folder_prefixes(runs: list[RunMetrics]) -> list[str]:
    """What tells each folder apart: the settings whose values differ between them
    (``width=8``), or, where those do not tell every folder apart, the folder's path."""
    settings = [_settings(run.config) for run in runs]
    keys = sorted({key for s in settings for key in s if len({repr(t.get(key)) for t in settings}) > 1})
    prefixes = [" ".join(f"{key}={_shown(s.get(key))}" for key in keys) for s in settings]
    if keys and len(set(prefixes)) == len(prefixes):
        return prefixes
    return [str(run.folder) for run in runs]


def columns(runs: list[RunMetrics], names: list[str] | None = None) -> list[Column]:
    """A column per (folder, loss), labelled by the loss, prefixed where a loss is in several folders;
    or by ``names``, one per column in order."""
    counts = defaultdict(int)
    for run in runs:
        for loss in run.config.losses:
            counts[loss] += 1
    prefixes = folder_prefixes(runs) if any(count > 1 for count in counts.values()) else [""] * len(runs)
    made = [Column(run.folder, loss, f"{prefix}: {loss}" if counts[loss] > 1 else loss, len(run.config.seeds))
            for run, prefix in zip(runs, prefixes) for loss in run.config.losses]
    if names is None:
        return made
    if len(names) != len(made) or len(set(names)) != len(names):
        raise UserError(f"--names gives {len(names)} names{' with repeats' if len(set(names)) != len(names) else ''}; "
                        f"the folders hold {len(made)} columns: {', '.join(c.label for c in made)}")
    return [replace(column, label=name) for column, name in zip(made, names)]


def _values(runs: list[RunMetrics]) -> dict[tuple, list[float]]:
    """Every value by (folder, loss, clip, metric, iteration), over seeds."""
    values = defaultdict(list)
    for run in runs:
        for row in run.rows:
            values[(run.folder, row["loss"], row["clip"], row["metric"], row["iteration"])].append(row["value"])
    return values


def _iterations_to_final(runs: list[RunMetrics]) -> dict[tuple, list[float]]:
    """Each run's iterations to within 1 dB of its final log-spectral distance, over seeds."""
    points = defaultdict(list)
    for run in runs:
        for row in run.rows:
            if row["metric"] == LSD_OVERALL.key:
                points[(run.folder, row["loss"], row["clip"], row["seed"])].append((row["iteration"], row["value"]))
    values = defaultdict(list)
    for (folder, loss, clip, _), series in points.items():
        values[(folder, loss, clip, ITERATIONS_TO_FINAL.key, None)].append(iterations_to_final(series))
    return values


def checkpoints_asked(runs: list[RunMetrics], at: list[int] | None) -> list[int]:
    """``at``, each measured in some folder; by default the last checkpoint every folder measured."""
    measured = [{row["iteration"] for row in run.rows} for run in runs]
    if at is None:
        common = set.intersection(*measured)
        if not common:
            raise UserError("the folders share no measured checkpoint; choose some with --at")
        return [max(common)]
    for iteration in at:
        if not any(iteration in its for its in measured):
            everywhere = sorted(set.union(*measured))
            raise UserError(f"--at {iteration}: no folder measured that checkpoint (measured: "
                            f"{', '.join(map(str, everywhere))})")
    return list(at)


def compare(runs: list[RunMetrics], at: list[int] | None = None, names: list[str] | None = None) -> list[Table]:
    """A table per measure that some folder holds, at each checkpoint of ``at`` (and the per-run
    quantity once); a clip's row only where some column has a value (STOI on speech clips)."""
    cols = columns(runs, names)
    clips = list(dict.fromkeys(row["clip"] for run in runs for row in run.rows))
    values = _values(runs) | _iterations_to_final(runs)
    metrics = {key[3] for key in values}
    tables = []
    for measure in COMPARED:
        if measure.key not in metrics:
            continue
        for iteration in [None] if measure.per_run else checkpoints_asked(runs, at):
            table = Table(measure, iteration, cols)
            for clip in clips:
                row = [mean_interval(values.get((c.folder, c.loss, clip, measure.key, iteration), [])) for c in cols]
                if any(e.n for e in row):
                    table.cells[clip] = row
            if table.cells:
                tables.append(table)
    return tables


def _cell(table: Table, clip: str, index: int) -> str:
    estimate = table.cells[clip][index]
    text = str(estimate)
    if index in table.best_columns(clip):
        return f"**{text}**"
    best = table.cells[clip][table.best_columns(clip)[0]] if table.best_columns(clip) else None
    return f"{text} {APART}" if best is not None and apart(best, estimate) else text


def focus_line(table: Table, label: str) -> str:
    index = next(i for i, c in enumerate(table.columns) if c.label == label)
    wins = [clip for clip in table.cells if index in table.best_columns(clip)]
    beaten = [f"{clip} (by {', '.join(table.columns[i].label for i in table.beaten_apart(clip, index))})"
              for clip in table.cells if table.beaten_apart(clip, index)]
    return (f"{label}: the best mean in {len(wins)} of {len(table.cells)} rows; beaten with intervals apart in "
            f"{len(beaten)}{': ' + '; '.join(beaten) if beaten else ''}")


OVER_CLIPS = "mean over clips"


def over_clips_row(table: Table) -> list[float] | None:
    """Every column's mean of its per-clip means, over the clips where every column has a finite
    mean; ``None`` with fewer than two such clips."""
    clips = [clip for clip, row in table.cells.items() if all(math.isfinite(e.mean) for e in row)]
    if len(clips) < 2:
        return None
    return [sum(table.cells[clip][i].mean for clip in clips) / len(clips) for i in range(len(table.columns))]


def _over_clips_line(table: Table) -> list[str]:
    means = over_clips_row(table)
    if means is None:
        return []
    best = min(means) if table.measure.lower_is_better else max(means)
    cells = [f"**{m:.3g}**" if m == best else f"{m:.3g}" for m in means]
    return [f"| {OVER_CLIPS} | " + " | ".join(cells) + " |"]


def format_markdown(tables: list[Table], focus: str | None = None, over_clips: bool = False) -> str:
    """The tables as Markdown, a legend first (the columns: their folders and seeds)."""
    if not tables:
        return "no measures to compare"
    lines = ["Mean ± half-width of the 95 % Student-t interval over seeds (one seed: the mean alone). "
             f"**Bold**: the best mean of the row; {APART}: the best beats it with the intervals apart.", ""]
    lines += [f"- `{c.label}`: {c.loss} in {c.folder} ({c.seeds} seed{'s' if c.seeds != 1 else ''})"
              for c in tables[0].columns]
    if over_clips:
        lines += [f"- {OVER_CLIPS}: each column's mean of its clips' means, over the clips every column measured"]
    for table in tables:
        direction = "lower" if table.measure.lower_is_better else "higher"
        when = "" if table.iteration is None else f" at iteration {table.iteration}"
        lines += ["", f"### {table.measure.name}{when} ({direction} is better)", "",
                  "| clip | " + " | ".join(c.label for c in table.columns) + " |",
                  "|---" * (len(table.columns) + 1) + "|"]
        lines += [f"| {clip} | " + " | ".join(_cell(table, clip, i) for i in range(len(table.columns))) + " |"
                  for clip in table.cells]
        if over_clips:
            lines += _over_clips_line(table)
        if focus is not None:
            lines += ["", focus_line(table, focus)]
    return "\n".join(lines)


def focus_label(runs: list[RunMetrics], focus: str, names: list[str] | None = None) -> str:
    """The column ``focus`` names: a column's label, or a loss in a single column."""
    labels = [c.label for c in columns(runs, names)]
    if focus in labels:
        return focus
    matching = [c.label for c in columns(runs, names) if c.loss == focus]
    if len(matching) == 1:
        return matching[0]
    if matching:
        raise UserError(f"--focus {focus!r} is in several folders; name one column: {', '.join(matching)}")
    raise UserError(f"--focus {focus!r} is no column; the columns: {', '.join(labels)}")


def compare_folders(folders: list[Path], at: list[int] | None = None, focus: str | None = None,
                    names: list[str] | None = None, over_clips: bool = False) -> str:
    """``pal compare``: the folders' measures side by side, as Markdown; ``names`` relabel the
    columns; ``over_clips`` ends each table with the mean over its clips."""
    runs = read_runs(folders)
    label = focus_label(runs, focus, names) if focus is not None else None
    return format_markdown(compare(runs, at, names), label, over_clips)
