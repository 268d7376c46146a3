"""``pal compare`` on codec run folders: a Markdown table per measure, a row per test group, a
column per (folder, loss, width, data), each cell the mean over seeds of the group's mean over
its files at each model's last checkpoint, with its 95 % interval; the best mean in bold and †
where the best beats a cell with the intervals apart, as for ``pal run``'s folders."""

from __future__ import annotations

from pathlib import Path

from ..codec.folder import CodecFolder
from ..codec.questions import answers, answers_markdown
from ..codec.table import TABLE_MEASURES, Setting, per_seed_means, settings_of
from ..core.errors import UserError
from ..measures.stats import Estimate, apart, mean_interval
from .compare import APART


def is_codec_folder(folder: Path) -> bool:
    return CodecFolder(Path(folder)).is_run()


def _columns(folders: list[Path]) -> list[tuple[int, Setting, str]]:
    """``(folder index, setting, label)`` of every column, labels prefixed by the folder's name
    when several folders are compared."""
    columns = []
    for index, folder in enumerate(folders):
        config = CodecFolder(folder).read_config()
        prefix = f"{Path(folder).name}: " if len(folders) > 1 else ""
        columns += [(index, s, prefix + s.label) for s in settings_of(config)]
    return columns


def compare_any(folders: list[Path], at=None, focus=None, names=None, over_clips: bool = False) -> str:
    """``pal compare``: codec folders here, ``pal run`` folders by :func:`pal.report.compare.compare_folders`;
    the two are not mixed, and the run folders' options are refused for codec folders."""
    from .compare import compare_folders

    codec = [is_codec_folder(folder) for folder in folders]
    if not any(codec):
        return compare_folders(folders, at, focus, names, over_clips)
    if not all(codec):
        raise UserError("pal compare takes pal run folders or pal codec folders, not both: "
                        f"{', '.join(str(f) for f, c in zip(folders, codec) if c)} hold codec runs")
    for flag, given in (("--at", at), ("--focus", focus), ("--over-clips", over_clips or None)):
        if given is not None:
            raise UserError(f"{flag} is for pal run folders; codec folders are compared at each model's "
                            "last checkpoint, a row per test group")
    return compare_codec_folders(folders, names)


def compare_codec_folders(folders: list[Path], names: list[str] | None = None) -> str:
    """The folders' measures side by side, as Markdown; ``names`` relabel the columns in order."""
    records = [CodecFolder(Path(f)).read_records() for f in folders]
    columns = _columns(folders)
    if names is not None and len(names) != len(columns):
        raise UserError(f"--names gives {len(names)} names for {len(columns)} columns "
                        f"({', '.join(label for _, _, label in columns)})")
    labels = names or [label for _, _, label in columns]
    means = [per_seed_means(rows) for _, _, rows in records]
    groups = list(dict.fromkeys(f["group"] for config, _, _ in records for f in config.test_files))
    lines = ["Each cell: the mean over seeds of the group's mean over its test files, at each model's last "
             "checkpoint, ± half-width of the 95 % Student-t interval over seeds (one seed: the mean alone). "
             f"**Bold**: the best mean of the row; {APART}: the best beats it with the intervals apart."]
    for measure in TABLE_MEASURES:
        table = {}
        for group in groups:
            row = [mean_interval([means[i][(group, measure.key, s, seed)] for seed in records[i][0].seeds
                                  if (group, measure.key, s, seed) in means[i]]) for i, s, _ in columns]
            if any(e.n for e in row):
                table[group] = row
        if not table:
            continue
        direction = "lower" if measure.lower_is_better else "higher"
        lines += ["", f"### {measure.name} ({direction} is better)", "",
                  "| group | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
        lines += [f"| {group} | " + " | ".join(_cells(row, measure.lower_is_better)) + " |"
                  for group, row in table.items()]
    if len(lines) == 1:
        return "no measures to compare"
    if len(folders) == 1 and len(records[0][0].losses) > 1:  # one grid: what it answers (pal.codec.questions)
        lines += ["", "### What the grid answers", "", answers_markdown(answers(records[0][0], records[0][2]))]
    return "\n".join(lines)


def _cells(row: list[Estimate], lower_is_better: bool) -> list[str]:
    finite = [i for i, e in enumerate(row) if e.n]
    if not finite:
        return [str(e) for e in row]
    best = (min if lower_is_better else max)(finite, key=lambda i: row[i].mean)
    return [f"**{e}**" if i == best else (f"{e} {APART}" if apart(row[best], e) else str(e))
            for i, e in enumerate(row)]
