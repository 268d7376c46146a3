"""The sweep folder's layout, and one shard: a small batched experiment into its own run folder.

The sweep folder (this module spells every name in it; :mod:`pal.runfolder` spells a shard's)::

    sweep.json            the plan: settings, windows (source, offset), shards
    targets.npz           every window's target samples, as the shards train on them
    shards/shard-NNNN/    one run folder per shard (as pal run writes, without a page), done.json last
    (metrics table)       every run's measures, one row per window x loss x seed x checkpoint, named as a run's
    index.html            the sweep page: claims over the data set, paired comparisons, shards
"""

from __future__ import annotations

import json
import time
import zipfile
from pathlib import Path

import numpy as np

from ..audio import Clip, clip_name
from ..errors import UserError
from ..runfolder import METRICS, RunFolder
from .plan import Shard, SweepSettings, Window

SWEEP_FILE = "sweep.json"
TARGETS_FILE = "targets.npz"
SHARDS = "shards"
DONE_FILE = "done.json"
SWEEP_METRICS = METRICS  # the sweep's table has the name of a run's
SWEEP_PAGE = "index.html"


def read_record(sweep_dir: Path) -> dict:
    """The sweep's plan as saved; one line if the folder holds none or it is damaged."""
    path = Path(sweep_dir) / SWEEP_FILE
    if not path.is_file():
        raise UserError(f"{sweep_dir}: not a sweep folder (no {SWEEP_FILE})")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: damaged sweep plan ({error})") from None


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

    from ..experiment import run_experiment
    from ..files import atomic_write_text

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
    outcome = run_experiment(config, folder, progress=False, clips=clips, page=False)
    RunFolder(folder).state.unlink(missing_ok=True)  # finished: the training state is no longer needed
    result = {"shard": shard.name, "status": "finished", "runs": shard.runs, "failed_runs": outcome.failed,
              "seconds": round(time.perf_counter() - started, 3)}
    atomic_write_text(folder / DONE_FILE, json.dumps(result, indent=2) + "\n")
    return result


def shard_clips(shard: Shard, windows: dict[str, Window], targets: dict[str, np.ndarray]) -> list[Clip]:
    return [Clip(name, targets[name], windows[name].source, windows[name].offset_samples, windows[name].padded)
            for name in shard.windows]


def load_plan(sweep_dir: Path) -> tuple[dict, dict[str, Window], dict[str, np.ndarray], list[Shard]]:
    """The plan a sweep saved: ``(sweep.json, windows by name, targets by name, shards)``."""
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
