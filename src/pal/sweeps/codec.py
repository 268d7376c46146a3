"""``pal sweep --codec GRID``: a codec grid (losses x widths x training data x seeds) cut into
shards, each a small ``pal codec`` run, on this machine or on Ray (:func:`pal.sweeps.run.run_codec_sweep`
runs them); then the shards merged into one
codec run folder at the sweep's root, which ``pal compare``, ``pal listen`` and the page read as
they read a ``pal codec`` folder.

The sweep folder (:mod:`pal.run.sweep_folder` spells the plan's, the shards' and their end
marker's names; :mod:`pal.codec.folder` the codec run's):

- ``SWEEP_FILE``, the plan: kind "codec", the grid's settings, the shards;
- ``SHARDS``/shard-NNNN/, one codec run folder per shard (a product of losses and seeds at one
  width and one amount of data), ``DONE_FILE`` written last;
- the merged codec run beside them: every model of the grid, its files linked from its shard.

A shard's numbers depend only on its settings and its torch threads (``--threads-per-task``),
never on where it runs, so the local and Ray executors write the same files.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from ..codec.config import CodecConfig
from ..codec.folder import MODELS, TEST, CodecFolder, ModelStatus
from ..codec.judging import JUDGED
from ..codec.train import CodecModel, every_model
from ..core import records
from ..core.errors import UserError
from ..core.files import atomic_write_bytes, atomic_write_text, failure
from ..run.config import COMMAND_LINE
from ..run.sweep_folder import DONE_FILE, SHARD_NAME, SHARDS, SWEEP_FILE
from .plan import own_settings

CODEC = "codec"  # the plan's kind


@dataclass
class CodecShard:
    """A shard: every (loss, seed) of its lists at one width and one amount of training data."""

    name: str
    losses: list[str]
    seeds: list[int]
    width: int
    train_seconds: object  # seconds, or "all"

    @property
    def runs(self) -> int:
        return len(self.losses) * len(self.seeds)

    def models(self) -> list[CodecModel]:
        return every_model([self.width], [self.train_seconds], self.losses, self.seeds)


def plan_codec_shards(grid: CodecConfig, runs_per_task: int) -> list[CodecShard]:
    """Cut the grid into shards of at most ``runs_per_task`` models (at least one): one width and
    one amount of data each, every loss and seed of it when they fit, else a loss at a time."""
    groups = []
    per_setting = len(grid.losses) * len(grid.seeds)
    for width in grid.width:
        for amount in grid.train_seconds:
            if runs_per_task >= per_setting:
                groups.append((grid.losses, grid.seeds, width, amount))
                continue
            step = max(1, runs_per_task)
            for loss in grid.losses:
                for i in range(0, len(grid.seeds), step):
                    groups.append(([loss], grid.seeds[i:i + step], width, amount))
    return [CodecShard(f"shard-{index:04d}", list(losses), list(seeds), width, amount)
            for index, (losses, seeds, width, amount) in enumerate(groups)]


def grid_settings(grid: CodecConfig) -> dict:
    """The grid as the plan records it: every setting, the folders absolute (a Ray node or a worker
    in another folder reads the same corpus), the losses resolved."""
    grid.validate()
    for name in ("train", "test"):
        if getattr(grid, name) is not None:
            setattr(grid, name, str(Path(getattr(grid, name)).resolve()))
    return asdict(grid)


def codec_plan(grid: CodecConfig, runs_per_task: int, threads_per_task: int) -> dict:
    checks = {declared.name: declared.metadata["check"] for declared in own_settings()}  # a window sweep's bounds
    for name, value in (("runs_per_task", runs_per_task), ("threads_per_task", threads_per_task)):
        checks[name](value, name, COMMAND_LINE)
    settings = grid_settings(grid)
    shards = plan_codec_shards(grid, runs_per_task)
    return {"kind": CODEC, "settings": settings, "runs_per_task": runs_per_task,
            "threads_per_task": threads_per_task, "shards": [asdict(s) for s in shards]}


# -- reading the plan back ------------------------------------------------------------------------

_SHARD_CHECKS = {"name": records.text, "losses": records.list_of(records.text, nonempty=True),
                 "seeds": records.list_of(records.integer(0), nonempty=True), "width": records.integer(1)}


def check_codec_plan(record: dict) -> dict:
    """A codec sweep's plan as :func:`codec_plan` writes it: the grid's settings through
    :class:`CodecConfig`'s checks, shards named ``shard-NNNN`` holding the grid's own values."""
    records.expect({"settings", "shards", "runs_per_task", "threads_per_task"} <= set(record),
                   "an object of settings, shards, runs_per_task and threads_per_task", sorted(record))
    for key in ("runs_per_task", "threads_per_task"):
        records.integer(1)(record[key])
    grid = grid_of(record)
    shards = [records.typed(CodecShard, s, _SHARD_CHECKS, f" of shard {i + 1}")
              for i, s in enumerate(records.list_of(lambda s: s, nonempty=True)(record["shards"]))]
    for shard in shards:
        records.expect(bool(SHARD_NAME.match(shard.name)), "a shard named shard-NNNN", shard.name)
        records.expect(set(shard.losses) <= set(grid.losses) and set(shard.seeds) <= set(grid.seeds)
                       and shard.width in grid.width and shard.train_seconds in grid.train_seconds,
                       f"losses, seeds, width and data of the grid in {shard.name}", asdict(shard))
    records.expect(len({s.name for s in shards}) == len(shards), "shards of different names",
                   [s.name for s in shards])
    return record


def grid_of(record: dict) -> CodecConfig:
    """The grid's :class:`CodecConfig` from a plan, every setting checked."""
    settings = record["settings"]
    records.expect(isinstance(settings, dict), "settings as an object", settings)
    known = {f.name for f in fields(CodecConfig)}
    records.expect(set(settings) <= known, f"settings among {', '.join(sorted(known))}", sorted(set(settings) - known))
    grid = CodecConfig(**settings)
    try:
        grid.validate()
    except UserError as error:
        raise records.BadValue(str(error)) from None
    return grid


def shards_of(record: dict) -> list[CodecShard]:
    return [CodecShard(**s) for s in record["shards"]]


# -- one shard ------------------------------------------------------------------------------------


def shard_config(settings: dict, shard: CodecShard) -> CodecConfig:
    """The ``pal codec`` configuration one shard trains: the grid's, with the shard's models."""
    grid = CodecConfig(**settings)
    return CodecConfig(**(asdict(grid) | {
        "losses": shard.losses, "seeds": shard.seeds, "width": [shard.width], "train_seconds": [shard.train_seconds],
        "loss_sources": {label: grid.loss_sources[label] for label in shard.losses if label in grid.loss_sources}}))


def run_codec_shard(sweep_dir: str, shard: dict, record: dict) -> dict:
    """Train one shard into its codec run folder (resuming a partial one); return what happened.

    Runs in a worker (a local process or a Ray task) with the plan's torch threads."""
    import torch

    from ..codec.experiment import run_codec

    torch.set_num_threads(record["threads_per_task"])
    shard = CodecShard(**shard)
    folder = Path(sweep_dir) / SHARDS / shard.name
    if (folder / DONE_FILE).is_file():
        return {"shard": shard.name, "status": "skipped"}
    started = time.perf_counter()
    outcome = run_codec(shard_config(record["settings"], shard), folder, progress=False,
                        page=lambda out: CodecFolder(out).page)  # no page: the sweep writes one for all
    CodecFolder(folder).state.unlink(missing_ok=True)  # finished: the training state is no longer needed
    result = {"shard": shard.name, "status": "finished", "runs": shard.runs, "failed_runs": outcome.failed,
              "seconds": round(time.perf_counter() - started, 3)}
    atomic_write_text(folder / DONE_FILE, json.dumps(result, indent=2) + "\n")
    return result


# -- the whole sweep ------------------------------------------------------------------------------


def read_codec_plan(sweep_dir: Path) -> dict:
    """A codec sweep's plan as saved, checked (:func:`check_codec_plan`); one line naming the file
    if the folder holds none, or another kind of sweep's, or it is damaged."""
    path = Path(sweep_dir) / SWEEP_FILE
    if not path.is_file():
        raise UserError(f"{sweep_dir}: not a sweep folder (no {SWEEP_FILE})")
    if not is_codec_plan(records.read_json(path, "sweep plan")):
        raise UserError(f"{sweep_dir}: a sweep over audio windows, not a codec sweep")
    return records.parse_json(path, "sweep plan", check_codec_plan)


def prepare_codec_folder(out: Path, record: dict, force: bool) -> None:
    """Write the plan into ``out``, or check that the plan already there is this one."""
    plan = out / SWEEP_FILE
    if plan.is_file() and not force:
        if not is_codec_plan(records.read_json(plan, "sweep plan")):
            raise UserError(f"{out} holds a sweep over audio windows; use another --out, or --force to start "
                            "this codec sweep there")
        saved, planned = read_codec_plan(out), json.loads(json.dumps(record))
        if saved != planned:
            changed = [key for key in planned if saved.get(key) != planned[key]]
            raise UserError(f"{out} holds a different sweep ({', '.join(changed) or 'the plan'} differ); use "
                            "another --out, or --force to start this one there")
        return
    leftovers = [p for p in out.iterdir() if not p.name.startswith(".")]
    if leftovers and not force:
        raise UserError(f"{out}: folder exists and is not a sweep folder; use another --out")
    try:
        if force:
            for entry in leftovers:
                shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
        atomic_write_text(plan, json.dumps(record, indent=1) + "\n")
    except OSError as error:
        raise UserError(f"{out}: cannot write the sweep folder ({failure(error, out)})") from None


def check_shard_inputs(record: dict) -> None:
    """What every shard would refuse, refused once before the folder is touched: the corpora, the
    losses and the amounts of data (read and built as ``pal codec`` does), the judges."""
    from ..codec.experiment import read_inputs

    grid = CodecConfig(**record["settings"])
    read_inputs(grid)
    grid.chosen_judges()


# -- the merged codec run -------------------------------------------------------------------------


def summarize_codec(sweep_dir: Path) -> tuple[str, Path | None]:
    """Merge the finished shards into one codec run folder at the sweep's root and write its page;
    return the summary (the table of every measure, as ``pal compare`` prints it) and the page."""
    from ..report.codec_compare import compare_codec_folders
    from ..report.codec_page import build_codec_page

    sweep_dir = Path(sweep_dir)
    record = read_codec_plan(sweep_dir)
    grid, shards = grid_of(record), shards_of(record)
    finished = [s for s in shards if (sweep_dir / SHARDS / s.name / DONE_FILE).is_file()]
    header = (f"codec sweep: {len(grid.losses)} loss(es) x {len(grid.width)} width(s) x {len(grid.train_seconds)} "
              f"amount(s) of data x {len(grid.seeds)} seed(s); {len(finished)} of {len(shards)} shard(s) finished")
    if not finished:
        return f"{header}\nno measures yet", None
    root = CodecFolder(sweep_dir)
    parts = {s.name: CodecFolder(sweep_dir / SHARDS / s.name) for s in finished}
    _merge(root, grid, finished, parts)
    return f"{header}\n{compare_codec_folders([sweep_dir])}", build_codec_page(sweep_dir)


def _merge(root: CodecFolder, grid: CodecConfig, finished: list[CodecShard], parts: dict[str, CodecFolder]) -> None:
    first = parts[finished[0].name]
    base = records.read_json(first.config, "codec configuration")
    merged_identity = base["identity"] | grid.identity()
    config = base | {key: value for key, value in asdict(grid).items() if key in base} | {
        "parameters": {}, "data_seconds": {}, "identity": merged_identity}
    statuses, rows_by_model, judged = {}, {}, {}
    for shard in finished:
        part = parts[shard.name]
        shard_record, shard_statuses, shard_rows = part.read_records()
        config["parameters"] |= shard_record.parameters
        config["data_seconds"] |= shard_record.data_seconds
        statuses |= {status.model: status for status in shard_statuses}
        for row in shard_rows:
            rows_by_model.setdefault(CodecModel(row["loss"], row["width"], row["train_seconds"], row["seed"]),
                                     []).append(row)
        if (part.root / JUDGED).is_file():
            judged |= records.read_json(part.root / JUDGED, "cache of judges' scores")
    models = every_model(grid.width, grid.train_seconds, grid.losses, grid.seeds)
    for name in (MODELS, TEST):  # links made by an earlier summary: made again from the shards
        if (root.root / name).is_dir():
            shutil.rmtree(root.root / name)
    _link_tree(first.root / TEST, root.root / TEST)
    for shard in finished:
        for model in shard.models():
            _link_tree(parts[shard.name].model(model), root.model(model))
    root.write_config(config)
    root.write_metrics([row for model in models for row in rows_by_model.get(model, [])])
    if judged:
        atomic_write_text(root.root / JUDGED, json.dumps(judged, indent=1, sort_keys=True) + "\n")
    root.write_runs([statuses.get(m) or ModelStatus(m.loss, m.width, m.train_seconds, m.seed) for m in models])


def _link_tree(source: Path, target: Path) -> None:
    """Every file under ``source`` at the same place under ``target``: a hard link where the file
    system allows, else a copy."""
    for path in sorted(source.rglob("*")):
        destination = target / path.relative_to(source)
        if path.is_dir():
            destination.mkdir(parents=True, exist_ok=True)
            continue
        destination.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, destination)
        except OSError:
            atomic_write_bytes(destination, path.read_bytes())


def is_codec_plan(record: dict) -> bool:
    return isinstance(record, dict) and record.get("kind") == CODEC


__all__ = ["CODEC", "CodecShard", "check_codec_plan", "codec_plan", "plan_codec_shards", "run_codec_shard",
           "summarize_codec"]
