"""What the raters said: MUSHRA means with 95 % intervals after post-screening, and preferences."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


from ..measures.stats import Estimate, binomial_p_value, mean_interval, wilson_interval
from .screens import REFERENCE, setting_note
from .text import one_line

# ITU-R BS.1534-3, 4.1.2 (post-screening): exclude an assessor who rates the hidden reference
# below 90 for more than 15 % of the test items.
HIDDEN_REFERENCE_MIN = 90.0
MAX_SHARE_BELOW = 0.15
ALL_CLIPS = "all clips"
MAX_PLOT_CONDITIONS_ACROSS = 12  # the plot grows no wider than a page beyond this many conditions


@dataclass
class MushraSummary:
    raters: int  # sessions with at least one rating
    dropped: list[str]  # rater names (and session ids) excluded by post-screening
    conditions: list[str]
    # clip (or ALL_CLIPS) -> condition -> estimate over the kept raters' ratings
    table: dict[str, dict[str, Estimate]] = field(default_factory=dict)


def failed_post_screening(ratings: list[dict]) -> set[str]:
    """Sessions whose hidden reference is below 90 on more than 15 % of their screens."""
    screens: dict[str, list[float]] = {}
    for row in ratings:
        if row["condition"] == REFERENCE:
            screens.setdefault(row["session"], []).append(row["score"])
    return {session for session, scores in screens.items()
            if sum(score < HIDDEN_REFERENCE_MIN for score in scores) > MAX_SHARE_BELOW * len(scores)}


def summarise_mushra(ratings: list[dict]) -> MushraSummary:
    dropped = failed_post_screening(ratings)
    kept = [row for row in ratings if row["session"] not in dropped]
    conditions = list(dict.fromkeys(row["condition"] for row in ratings))
    clips = list(dict.fromkeys(row["clip"] for row in ratings))
    names = {row["session"]: row["rater"] for row in ratings}
    summary = MushraSummary(len(names), sorted(f"{one_line(names[s])} ({s[:8]})" for s in dropped), conditions)
    for clip in [*clips, ALL_CLIPS]:
        summary.table[clip] = {
            condition: mean_interval([row["score"] for row in kept if row["condition"] == condition
                                      and clip in (ALL_CLIPS, row["clip"])])
            for condition in conditions
        }
    return summary


@dataclass
class PreferenceRow:
    clip: str
    first: str
    second: str
    first_count: int
    second_count: int

    @property
    def total(self) -> int:
        return self.first_count + self.second_count

    def share_interval(self) -> tuple[float, float, float]:
        """Share preferring ``first`` and its 95 % Wilson interval."""
        return wilson_interval(self.first_count, self.total)

    def p_value(self) -> float:
        """Two-sided exact binomial test against no preference."""
        return binomial_p_value(self.first_count, self.total)


def summarise_preferences(preferences: list[dict]) -> list[PreferenceRow]:
    if not preferences:
        return []
    pair = sorted({preferences[0]["preferred"], preferences[0]["other"]})
    rows = []
    for clip in [*dict.fromkeys(row["clip"] for row in preferences), ALL_CLIPS]:
        chosen = [row["preferred"] for row in preferences if clip in (ALL_CLIPS, row["clip"])]
        rows.append(PreferenceRow(clip, pair[0], pair[1], chosen.count(pair[0]), chosen.count(pair[1])))
    return rows


def format_mushra(summary: MushraSummary, checkpoint_note: str) -> str:
    lines = [f"MUSHRA, {checkpoint_note}: {summary.raters} rater(s); {len(summary.dropped)} dropped by "
             f"post-screening (hidden reference below {HIDDEN_REFERENCE_MIN:g} on more than "
             f"{MAX_SHARE_BELOW:.0%} of their screens){': ' + ', '.join(summary.dropped) if summary.dropped else ''}"]
    width = max(len(one_line(c)) for c in summary.conditions) if summary.conditions else 10
    for clip, estimates in summary.table.items():
        lines.append(f"{one_line(clip)}:")
        for condition, estimate in estimates.items():
            interval = "" if math.isnan(estimate.half_width) else f" ± {estimate.half_width:.1f}"
            mean = "n/a" if math.isnan(estimate.mean) else f"{estimate.mean:5.1f}{interval}"
            lines.append(f"  {one_line(condition):<{width}}  {mean:<14} n = {estimate.n}")
    return "\n".join(lines)


def format_preferences(rows: list[PreferenceRow], checkpoint_note: str) -> str:
    lines = [f"preference, {checkpoint_note}:"]
    for row in rows:
        share, low, high = row.share_interval()
        clip, first, second = one_line(row.clip), one_line(row.first), one_line(row.second)
        lines.append(f"  {clip}: {first} {row.first_count}, {second} {row.second_count}; "
                     f"{first} preferred {share:.0%} (95 % interval {low:.0%}-{high:.0%}), "
                     f"binomial p = {row.p_value():.3g}")
    return "\n".join(lines)


def read_results(run_dir) -> tuple[list[dict], list[dict]]:
    """``(ratings, preferences)`` stored for the run."""
    from .store import database_path, read_preferences, read_ratings

    path = database_path(run_dir)
    return read_ratings(path), read_preferences(path)


def setting_of(row: dict) -> tuple:
    """What a rating's session rated: ``(checkpoint, width, train_seconds)``, the last two None for a run."""
    return row["checkpoint"], row.get("width"), row.get("train_seconds")


def setting_order(setting: tuple) -> tuple:
    """Smaller settings first: by width, then training data (``all`` the most), then checkpoint."""
    checkpoint, width, train_seconds = setting
    return (-1 if width is None else width, _data_seconds(train_seconds), checkpoint)


def _data_seconds(name: str | None) -> float:
    if name is None:
        return -1.0
    if name == "all":
        return math.inf
    try:
        return float(str(name).removesuffix("s"))
    except ValueError:  # not a name pal writes: after the others
        return math.inf


def results_text(ratings: list[dict], preferences: list[dict]) -> str | None:
    """What :func:`read_results` returned, as ``pal listen --results`` prints it; None when empty."""
    parts = []
    # Sessions at different checkpoints (or a codec run's widths or data) rated different sounds: never pooled.
    for setting in sorted({setting_of(row) for row in ratings}, key=setting_order):
        chosen = [row for row in ratings if setting_of(row) == setting]
        parts.append(format_mushra(summarise_mushra(chosen), setting_note(*setting)))
    for setting, pair in sorted({(setting_of(row), frozenset((row["preferred"], row["other"])))
                                 for row in preferences}, key=lambda key: (setting_order(key[0]), sorted(key[1]))):
        chosen = [row for row in preferences if setting_of(row) == setting and {row["preferred"], row["other"]} == pair]
        parts.append(format_preferences(summarise_preferences(chosen), setting_note(*setting)))
    return "\n\n".join(parts) if parts else None


def write_page_section(run_dir: Path) -> str | None:
    """The ratings' summary as text (``None`` without ratings), also written into the run (or codec
    run) folder with a plot of the MUSHRA means, where its page shows it. The plot shows the
    largest setting rated: the last checkpoint; of a codec run, the largest width and data."""
    from ..core.files import atomic_write_text
    from .design import listening_folder

    folder = listening_folder(run_dir)  # a sweep folder or any other is named, not "no ratings yet"
    folder.read_records()  # a damaged record is named before anything is written
    ratings, preferences = read_results(run_dir)
    text = results_text(ratings, preferences)
    if text is None:
        return None
    if ratings:
        latest = max({setting_of(row) for row in ratings}, key=setting_order)
        summary = summarise_mushra([row for row in ratings if setting_of(row) == latest])
        save_mushra_plot(summary.table, summary.conditions, ALL_CLIPS, folder.listening_image,
                         f"MUSHRA scores at {setting_note(*latest)}")
    atomic_write_text(folder.listening_summary, text)
    return text


def plot_text(text: str) -> str:
    """A clip or loss name as matplotlib shows it literally: on one line, and no pair of ``$`` taken
    for a formula (one that does not parse would fail the whole plot)."""
    return one_line(text).replace("$", r"\$")


def save_mushra_plot(table: dict, conditions: list[str], overall: str, path: Path, title: str) -> None:
    """Each condition's mean score with its 95 % interval: all clips in black, each clip beside it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..report.templates import save_figure

    # Wider with more conditions, up to a page's width; beyond that the labels stand upright.
    many = len(conditions) > MAX_PLOT_CONDITIONS_ACROSS
    width = 1.2 + 1.1 * min(len(conditions), MAX_PLOT_CONDITIONS_ACROSS)
    figure, axes = plt.subplots(figsize=(width, 3.0 + (1.5 if many else 0.0)), dpi=90)
    clips = [clip for clip in table if clip != overall]
    offsets = np.linspace(-0.3, 0.3, len(clips) + 1)
    for offset, clip in zip(offsets, [overall, *clips]):
        means = [table[clip][c].mean for c in conditions]
        errors = [0.0 if np.isnan(table[clip][c].half_width) else table[clip][c].half_width for c in conditions]
        style = {"color": "black", "marker": "s", "markersize": 6} if clip == overall else {"marker": "o", "markersize": 3, "alpha": 0.7}
        axes.errorbar(np.arange(len(conditions)) + offset, means, yerr=errors, linestyle="none", capsize=2,
                      label=plot_text(clip), **style)
    axes.set_xticks(np.arange(len(conditions)), [plot_text(c) for c in conditions], fontsize=7,
                    rotation=90 if many else 20)
    axes.set_ylim(0, 100)
    axes.set_ylabel("score (0-100)", fontsize=8)
    axes.set_title(title, fontsize=9)
    axes.grid(axis="y", alpha=0.3)
    axes.legend(fontsize=6, loc="lower left")
    save_figure(figure, path)


