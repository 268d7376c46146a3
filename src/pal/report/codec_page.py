"""The codec run's page: the judges' table, the data and capacity charts, the listening test's
results (once ``pal listen --results`` has written them), and every test file with each model's
decode, click to play (the codec folder's page, :attr:`pal.codec.folder.CodecFolder.page`)."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ..codec.folder import CodecFolder, CodecRecord, data_name, model_label
from ..codec.segments import seconds_of
from ..codec.questions import answers
from ..codec.table import Row, Setting, per_seed_means, results_table, settings_of
from ..codec.train import CodecModel
from ..core.files import atomic_write_text
from ..core.names import link
from ..measures.registry import MRSTFT, VISQOL, Measure
from ..measures.stats import mean_interval
from .charts import Series, line_chart
from .page import LOSS_COLOURS, collect_listening
from .templates import templates

# The data and capacity charts' measure: ViSQOL where it was judged, else the MR-STFT distance.
CHART_MEASURES = (VISQOL, MRSTFT)


def build_codec_page(out: str | Path) -> Path:
    """Write the page of the codec run in ``out``; return its path."""
    folder = CodecFolder(Path(out))
    config, statuses, rows = folder.read_records()
    settings = settings_of(config)
    table = results_table(config, rows, settings)
    colours = {loss: LOSS_COLOURS[i % len(LOSS_COLOURS)] for i, loss in enumerate(config.losses)}
    key = next((m for m in CHART_MEASURES if any(r["metric"] == m.key for r in rows)), None)
    page = templates().get_template("codec_page.html").render(
        config=config, run_name=folder.root.resolve().name,
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        unfinished=[model_label(s.model) for s in statuses if s.status != "finished"],
        train_summary=_corpus_summary(config.train_files), test_summary=_corpus_summary(config.test_files),
        settings=settings, table=table, judges_note=_judges_note(table),
        data_chart=data_charts(config, rows, key, colours) if key else "<p class='meta'>no measures yet</p>",
        capacity_chart=capacity_charts(config, rows, key, colours) if key and len(config.width) > 1 else "",
        questions=answers(config, rows) if len(config.losses) > 1 and rows else None,
        listening=collect_listening(folder), files=_files(folder, config, settings))
    atomic_write_text(folder.page, page)
    return folder.page


def _corpus_summary(files: list[dict]) -> str:
    seconds = Counter()
    counts = Counter()
    for f in files:
        seconds[f["group"]] += f["seconds"]
        counts[f["group"]] += 1
    return ", ".join(f"{group} {counts[group]} files ({seconds[group]:.0f} s)" for group in counts)


def _judges_note(table: list[Row]) -> str:
    judged = sorted({row.measure.name.split(" ")[0] for row in table if row.measure.judge is not None})
    return f"judged here: {', '.join(judged)}" if judged else "no judge ran"


def _curve(config: CodecRecord, rows: list[dict], measure: Measure, group: str, settings: list[Setting]):
    """Means over seeds (with intervals) of ``measure`` for ``group`` along ``settings``."""
    key = measure.key
    means = per_seed_means(rows)
    estimates = [mean_interval([means[(group, key, s, seed)] for seed in config.seeds
                                if (group, key, s, seed) in means]) for s in settings]
    y = np.array([e.mean for e in estimates])
    half = np.array([0.0 if np.isnan(e.half_width) else e.half_width for e in estimates])
    return y, y - half, y + half


def _groups(config: CodecRecord) -> list[str]:
    return list(dict.fromkeys(f["group"] for f in config.test_files))


def data_charts(config: CodecRecord, rows: list[dict], key: Measure, colours: dict[str, str]) -> str:
    """Per test group: the measure against the seconds of training audio, a line per loss (first width)."""
    width = config.width[0]
    seconds = np.array([config.data_seconds[data_name(a)] for a in config.train_seconds])
    order = np.argsort(seconds)
    charts = []
    for group in _groups(config):
        series = []
        for loss in config.losses:
            settings = [Setting(loss, width, seconds_of(a)) for a in config.train_seconds]
            y, low, high = _curve(config, rows, key, group, settings)
            series.append(Series(loss, colours[loss], seconds[order], y[order], low[order], high[order], markers=True))
        charts.append(line_chart(series, f"{group}: {_title(key)} against training data (width {width})",
                                 "seconds of training audio", _title(key)))
    return "".join(charts)


def capacity_charts(config: CodecRecord, rows: list[dict], key: Measure, colours: dict[str, str]) -> str:
    """Per test group: the measure against width, a line per loss (the last amount of data)."""
    amount = seconds_of(config.train_seconds[-1])
    widths = np.array(sorted(config.width), dtype=float)
    charts = []
    for group in _groups(config):
        series = []
        for loss in config.losses:
            y, low, high = _curve(config, rows, key, group, [Setting(loss, int(w), amount) for w in widths])
            series.append(Series(loss, colours[loss], widths, y, low, high, markers=True))
        charts.append(line_chart(series, f"{group}: {_title(key)} against width ({data_name(amount)} data)",
                                 "width (channels of the first layer)", _title(key)))
    return "".join(charts)


def _title(measure: Measure) -> str:
    return measure.chart


def _files(folder: CodecFolder, config: CodecRecord, settings: list[Setting]) -> list[dict]:
    seed, last = config.seeds[0], config.steps
    files = []
    for f in config.test_files:
        decodes = []
        for s in settings:
            model = CodecModel(s.loss, s.width, s.train_seconds, seed)
            steps = folder.decodes_on_disk(model, f["name"])
            path = folder.decode(model, f["name"], steps[-1]) if steps else None
            decodes.append({"label": s.label + ("" if steps and steps[-1] == last else " (unfinished)"),
                            "src": link(folder.relative(path)) if path else None})
        files.append({"name": f["name"], "group": f["group"], "seconds": f["seconds"], "credit": f.get("credit", ""),
                      "original": link(folder.relative(folder.test_file(f["name"]))), "decodes": decodes})
    return files
