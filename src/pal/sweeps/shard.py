"""The sweep folder's records, and one shard: a small batched experiment into its own run folder.

The folder's names are :mod:`pal.run.sweep_folder`'s; this module reads and writes what they hold.
"""

from __future__ import annotations

import json
import time
import zipfile
from dataclasses import fields
from pathlib import Path

import numpy as np

from ..core.audio import Clip, clip_name
from ..core import records
from ..core.errors import UserError
from ..core.names import check_label
from ..run.folder import RunFolder
from ..run.sweep_folder import DONE_FILE, SHARD_NAME, SHARDS, SWEEP_FILE, TARGETS_FILE
from .plan import Shard, SweepSettings, Window


def read_record(sweep_dir: Path) -> dict:
    """The sweep's plan as saved, checked (:func:`check_plan`); one line naming the plan's file if
    the folder holds none or it is damaged in any way."""
    path = Path(sweep_dir) / SWEEP_FILE
    if not path.is_file():
        raise UserError(f"{sweep_dir}: not a sweep folder (no {SWEEP_FILE})")
    return records.parse_json(path, "sweep plan", check_plan)


def _settings(value) -> dict:
    """The plan's settings: every key a :class:`SweepSettings` field, each value through its
    declared check (the training settings' of :mod:`pal.run.config`, a sweep's own)."""
    from ..run.config import CHECKS
    from .plan import own_settings

    records.expect(isinstance(value, dict), "settings as an object", value)
    own = {declared.name: declared.metadata["check"] for declared in own_settings()}
    known = {f.name for f in fields(SweepSettings)}
    for key, setting in value.items():
        records.expect(key in known, f"a setting ({', '.join(sorted(known))})", key)
        check = CHECKS.get(key) or own.get(key)
        if key == "speech" and isinstance(setting, bool):
            continue  # plans from before speech took names
        if check is not None:
            try:
                check(setting, key, "settings")
            except UserError as error:
                raise records.BadValue(str(error)) from None
    for label, source in records.mapping(value=records.mapping())(value.get("loss_sources", {})).items():
        records.expect(source.get("label") == label, f"the record of loss {label!r}", source)
    for label in value.get("losses", []):
        _folder_name(label, "loss")
    return value


def _folder_name(name: str, what: str) -> None:
    try:
        check_label(name, what)
    except UserError as error:
        raise records.BadValue(str(error)) from None


_WINDOW_CHECKS = {"name": records.text, "source": records.text, "offset_samples": records.integer(),
                  "padded": records.boolean}
_SHARD_CHECKS = {"name": records.text, "windows": records.list_of(records.text, nonempty=True),
                 "losses": records.list_of(records.text, nonempty=True),
                 "seeds": records.list_of(records.integer(0), nonempty=True)}


def check_plan(record) -> dict:
    """The sweep plan as :func:`~pal.sweeps.run.prepare_folder` writes it: settings, windows with
    unique names that can name folders, shards named ``shard-NNNN`` whose windows, losses and
    seeds are the plan's (:class:`~pal.core.records.BadValue` otherwise); a codec sweep's plan
    by :func:`pal.sweeps.codec.check_codec_plan`."""
    from .codec import check_codec_plan, is_codec_plan

    if is_codec_plan(record):
        return check_codec_plan(record)
    records.expect(isinstance(record, dict) and {"settings", "windows", "shards"} <= set(record),
                   "an object of settings, windows and shards", record)
    settings = _settings(record["settings"])
    windows = [records.typed(Window, w, _WINDOW_CHECKS, f" of window {i + 1}")
               for i, w in enumerate(records.list_of(lambda w: w)(record["windows"]))]
    names = [w.name for w in windows]
    for name in names:
        _folder_name(name, "window")
    records.expect(len(set(names)) == len(names), "windows of different names",
                   next((n for n in names if names.count(n) > 1), None) if len(set(names)) != len(names) else None)
    shards = [records.typed(Shard, s, _SHARD_CHECKS, f" of shard {i + 1}")
              for i, s in enumerate(records.list_of(lambda s: s)(record["shards"]))]
    losses = set(settings.get("losses", SweepSettings().losses))
    seeds = set(settings.get("seeds", SweepSettings().seeds))
    for shard in shards:
        records.expect(bool(SHARD_NAME.match(shard.name)), "a shard named shard-NNNN", shard.name)
        records.expect(set(shard.windows) <= set(names), f"windows of the plan in {shard.name}", shard.windows)
        records.expect(set(shard.losses) <= losses, f"losses of the plan in {shard.name}", shard.losses)
        records.expect(set(shard.seeds) <= seeds, f"seeds of the plan in {shard.name}", shard.seeds)
    records.expect(len({s.name for s in shards}) == len(shards), "shards of different names",
                   [s.name for s in shards])
    return record


# -- one shard ----------------------------------------------------------------------------------


def shard_folder(sweep_dir: Path, shard: Shard | str) -> Path:
    """A shard's run folder, from the shard or its name."""
    return Path(sweep_dir) / SHARDS / (shard if isinstance(shard, str) else shard.name)


def is_finished(sweep_dir: Path, shard: Shard) -> bool:
    return (shard_folder(sweep_dir, shard) / DONE_FILE).is_file()


def run_shard(sweep_dir: str, shard: dict, clips: list[Clip], settings: dict) -> dict:
    """Train one shard into its run folder (resuming a partial one); return what happened.

    Runs in a worker: a local subprocess or a Ray task. Its torch threads are fixed, so a shard's
    numbers are the same wherever it runs.
    """
    import torch

    from ..run.experiment import run_experiment
    from ..core.files import atomic_write_text

    settings = SweepSettings(**settings)
    shard = Shard(**shard)
    torch.set_num_threads(settings.threads_per_task)
    if is_finished(Path(sweep_dir), shard):
        return {"shard": shard.name, "status": "skipped"}
    folder = shard_folder(Path(sweep_dir), shard)
    started = time.perf_counter()
    config = settings.experiment(
        clips=[clip.source for clip in clips], losses=shard.losses, seeds=shard.seeds,
        speech=[clip.name for clip in clips if "*" in settings.speech or clip_name(Path(clip.source)) in settings.speech],
        loss_sources={label: settings.loss_sources[label] for label in shard.losses if label in settings.loss_sources},
    )
    outcome = run_experiment(config, folder, progress=False, clips=clips)  # no page: the sweep has its own
    RunFolder(folder).state.unlink(missing_ok=True)  # finished: the training state is no longer needed
    result = {"shard": shard.name, "status": "finished", "runs": shard.runs, "failed_runs": outcome.failed,
              "seconds": round(time.perf_counter() - started, 3)}
    atomic_write_text(folder / DONE_FILE, json.dumps(result, indent=2) + "\n")
    return result


def shard_clips(shard: Shard, windows: dict[str, Window], targets: dict[str, np.ndarray]) -> list[Clip]:
    return [Clip(name, targets[name], windows[name].source, windows[name].offset_samples, windows[name].padded)
            for name in shard.windows]


def load_plan(sweep_dir: Path) -> tuple[dict, dict[str, Window], dict[str, np.ndarray], list[Shard]]:
    """The plan a sweep saved: ``(the plan record, windows by name, targets by name, shards)``."""
    record = read_record(sweep_dir)
    windows = {w["name"]: Window(**w) for w in record["windows"]}
    path = Path(sweep_dir) / TARGETS_FILE
    try:
        with np.load(path) as archive:
            targets = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise UserError(f"{path}: the sweep's targets are missing or damaged ({type(error).__name__}); "
                        "rerun the same pal sweep command with --force to plan it again") from None
    missing = [w for w in windows if w not in targets]
    if missing:
        raise UserError(f"{path}: the sweep's targets lack window {missing[0]!r}; rerun with --force")
    return record, windows, targets, [Shard(**s) for s in record["shards"]]
