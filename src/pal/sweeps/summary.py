"""A sweep's results over the whole data set: one metrics table, the claims, paired comparisons.

Built only from the shards' run folders and the sweep's plan, so ``pal summarize`` can rebuild it
at any time, also while shards are still missing (it says how many).
"""

from __future__ import annotations

import csv
import io
import itertools
import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path


from ..measures.claims import claims_table, format_table
from ..measures.registry import CLAIMED, recorded_keys
from ..measures.stats import Estimate, binomial_p_value, mean_interval
from ..core.files import atomic_write_text
from ..report.templates import templates
from ..core.records import DamagedRecord
from ..run.folder import RunFolder
from ..run.sweep_folder import DONE_FILE, SWEEP_METRICS, SWEEP_PAGE
from .shard import read_record, shard_folder

ALL_CLIPS = "all clips"


@dataclass
class PairedComparison:
    metric: str
    lower_is_better: bool
    iteration: int
    first: str
    second: str
    wins: int  # clips where ``first`` is better, on the mean over its windows and seeds
    losses: int
    ties: int
    difference: Estimate  # first minus second, over clips

    @property
    def clips(self) -> int:
        return self.wins + self.losses + self.ties

    def p_value(self) -> float:
        """Two-sided sign test over the clips that are not ties."""
        return binomial_p_value(self.wins, self.wins + self.losses)

    def sentence(self) -> str:
        return (f"{self.first} beats {self.second} on {self.wins} of {self.clips} clips "
                f"({self.metric} at iteration {self.iteration}; mean difference {self.difference}; "
                f"sign test p = {self.p_value():.3g})")


def read_sweep(sweep_dir: Path) -> dict:
    return read_record(sweep_dir)


def metric_rows(sweep_dir: Path, record: dict) -> tuple[list[dict], int]:
    """Every finished shard's measures, one wide row per window × loss × seed × checkpoint."""
    windows = {w["name"]: w for w in record["windows"]}
    rate = record["settings"]["sample_rate"]
    wide: dict[tuple, dict] = {}
    finished = 0
    for shard in record["shards"]:
        folder = shard_folder(sweep_dir, shard["name"])
        if not (folder / DONE_FILE).is_file():
            continue
        finished += 1
        shard_run = RunFolder(folder)
        _, _, rows = shard_run.read_records()
        for row in rows:
            if row["clip"] not in shard["windows"] or row["loss"] not in shard["losses"]:
                raise DamagedRecord(shard_run.metrics, "table of measures",
                                    f"a row of window {row['clip']!r} and loss {row['loss']!r}, not of {shard['name']}")
            window = windows[row["clip"]]
            key = (row["clip"], row["loss"], row["seed"], row["iteration"])
            wide.setdefault(key, {
                "window": row["clip"], "source": window["source"],
                "offset_seconds": round(window["offset_samples"] / rate, 6),
                "loss": row["loss"], "seed": row["seed"], "iteration": row["iteration"],
                "shard": shard["name"],
            })[row["metric"]] = row["value"]
    return [wide[key] for key in sorted(wide)], finished


def per_clip_rows(rows: list[dict], metrics: list[str]) -> list[dict]:
    """Long rows averaged over each source clip's windows and seeds: the clip is the unit."""
    sums: dict[tuple, list[float]] = defaultdict(list)
    for row in rows:
        for metric in metrics:
            if metric in row and math.isfinite(row[metric]):
                sums[(row["source"], row["loss"], row["iteration"], metric)].append(row[metric])
    return [{"clip": ALL_CLIPS, "seed": source, "loss": loss, "iteration": iteration, "metric": metric,
             "value": sum(values) / len(values)} for (source, loss, iteration, metric), values in sorted(sums.items())]


def paired_comparisons(rows: list[dict], losses: list[str]) -> list[PairedComparison]:
    """For each claim's metric at the last checkpoint, each pair of losses compared on the same
    windows and seeds; differences averaged per clip, then counted and averaged over clips."""
    if not rows:
        return []
    last = max(row["iteration"] for row in rows)
    at_last = {(r["window"], r["seed"], r["loss"]): r for r in rows if r["iteration"] == last}
    comparisons = []
    for measure in CLAIMED:
        if measure.per_run:
            continue
        key = measure.key
        for first, second in itertools.combinations(losses, 2):
            per_clip: dict[str, list[float]] = defaultdict(list)
            for (window, seed, loss), row in at_last.items():
                other = at_last.get((window, seed, second))
                if loss != first or other is None or key not in row or key not in other:
                    continue
                difference = row[key] - other[key]
                if math.isfinite(difference):
                    per_clip[row["source"]].append(difference)
            if not per_clip:
                continue
            means = [sum(d) / len(d) for d in per_clip.values()]
            better = [(-m if measure.lower_is_better else m) for m in means]
            comparisons.append(PairedComparison(
                key, measure.lower_is_better, last, first, second,
                sum(b > 0 for b in better), sum(b < 0 for b in better), sum(b == 0 for b in better),
                mean_interval(means)))
    return comparisons


COLUMNS_FIRST = ["window", "source", "offset_seconds", "loss", "seed", "iteration", "shard"]


def metrics_csv_text(rows: list[dict]) -> str:
    metrics = sorted({key for row in rows for key in row} - set(COLUMNS_FIRST))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS_FIRST + metrics, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def summarize(sweep_dir: Path) -> str:
    """Write the sweep's metrics table and page; return the summary as text (a codec sweep's by
    :func:`pal.sweeps.codec.summarize_codec`, its page the merged codec run's)."""
    from .codec import is_codec_plan, summarize_codec

    sweep_dir = Path(sweep_dir)
    record = read_sweep(sweep_dir)
    if is_codec_plan(record):
        return summarize_codec(sweep_dir)[0]
    losses = record["settings"]["losses"]
    rows, finished = metric_rows(sweep_dir, record)
    atomic_write_text(sweep_dir / SWEEP_METRICS, metrics_csv_text(rows))
    metrics = sorted(recorded_keys(CLAIMED))
    table = claims_table(per_clip_rows(rows, metrics), losses) if rows else []
    comparisons = paired_comparisons(rows, losses)
    sources = sorted({w["source"] for w in record["windows"]})
    header = (f"sweep: {len(sources)} clip(s), {len(record['windows'])} window(s), {len(losses)} loss(es), "
              f"{len(record['settings']['seeds'])} seed(s); {finished} of {len(record['shards'])} shard(s) finished")
    text = "\n".join([
        header,
        format_table(table, losses, len(sources), unit="clip") if table else "no measures yet",
        *("  " + c.sentence() for c in comparisons),
    ])
    page = templates().get_template("sweep.html").render(
        metrics_file=SWEEP_METRICS, record=record, losses=losses, claims=table, comparisons=comparisons, header=header,
        shards=[dict(s, finished=(shard_folder(sweep_dir, s["name"]) / DONE_FILE).is_file()) for s in record["shards"]],
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), sources=sources,
    )
    atomic_write_text(sweep_dir / SWEEP_PAGE, page)
    return text
