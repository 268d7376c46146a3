"""``pal sweep`` as a whole: check the settings, plan (or find the saved plan), run the shards, summarise.

The sweep folder's layout is written down (and spelled) in :mod:`pal.sweeps.shard`.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..core.errors import UserError
from ..core.files import atomic_write_bytes, atomic_write_text, failure
from ..core.locks import writing
from .plan import MAX_THREADS, Shard, SweepSettings, find_audio, own_settings, plan_shards, plan_windows
from ..run.sweep_folder import DONE_FILE, SHARDS, SWEEP_FILE, TARGETS_FILE
from .shard import is_finished, load_plan
from .summary import summarize

EXECUTORS = ("local", "ray")


@dataclass
class SweepOutcome:
    shards: int
    skipped: int  # finished by an earlier invocation
    failed: dict[str, str] = field(default_factory=dict)  # shard -> reason
    summary: str = ""
    page: Path | None = None  # a codec sweep's merged page (a window sweep's is SWEEP_PAGE)


class SweepProgress:
    """A line on every change: shards done / running / failed, across every worker or node."""

    def __init__(self, total: int, already: int, enabled: bool):
        self.total, self.done, self.running, self.failed = total, already, 0, 0
        self.enabled = enabled

    def started(self, name: str) -> None:
        self.running += 1

    def finished(self, name: str, result: dict) -> None:
        self.running -= 1
        self.done += 1
        self._line(f"{name} finished in {result.get('seconds', 0):.0f} s")

    def lost(self, name: str, reason: str) -> None:
        self.running -= 1
        self.failed += 1
        self._line(f"{name} failed: {reason}")

    def _line(self, event: str) -> None:
        if self.enabled:
            print(f"shards: {self.done}/{self.total} done, {self.running} running or queued, {self.failed} failed "
                  f"({event})", file=sys.stderr, flush=True)


def check_settings(settings: SweepSettings, executor: str, workers: int | None) -> None:
    from ..run.config import COMMAND_LINE, custom_loss_sources
    from ..losses.specs import check_size

    # On Ray the GPUs are the cluster's, not this machine's: the driver checks only the name.
    config = settings.experiment(device=settings.device if executor == "local" else "cpu")
    config.validate()
    for spec in config.loss_specs():  # each shard builds the losses; options too large are refused here, at once
        check_size(spec, config.sample_rate, config.window)
    settings.losses, settings.loss_sources = config.losses, custom_loss_sources(config.loss_sources)
    settings.learning_rate, settings.betas, settings.width = config.learning_rate, config.betas, config.width
    if settings.device not in ("cpu", "auto") and not settings.device.startswith("cuda"):
        raise UserError(f"--device must be auto, cpu or cuda[:N], got {settings.device!r}")
    for declared in own_settings():
        declared.metadata["check"](getattr(settings, declared.name), declared.name, COMMAND_LINE)
    check_executor(executor, workers)


def check_executor(executor: str, workers: int | None) -> None:
    """The executor by name, and the shards at once (``None``: as many as the CPUs allow)."""
    from ..run.config import COMMAND_LINE, Number

    if workers is not None:
        Number(int, 1, MAX_THREADS)(workers, "workers", COMMAND_LINE)
    if executor not in EXECUTORS:
        raise UserError(f"unknown executor {executor!r}; choose one of {', '.join(EXECUTORS)}")


@dataclass(frozen=True)
class SweepOverrides:
    """The refusals the user lifted: ``force`` (``--force``) replaces a different sweep in the
    folder; ``many_windows`` (``--allow-many-windows``) lets a clip be cut into
    :data:`~pal.sweeps.plan.MANY_WINDOWS` windows or more."""

    force: bool = False
    many_windows: bool = False


def prepare_folder(out: Path, settings: SweepSettings, data: list[str],
                   overrides: SweepOverrides = SweepOverrides()) -> tuple:
    """Plan the sweep into ``out``, or check that the plan already there is this one.

    Returns the plan as :func:`~pal.sweeps.shard.load_plan` would read it back.
    """
    force = overrides.force
    windows, targets = plan_windows(find_audio(data), settings, overrides.many_windows)
    shards = plan_shards(windows, settings)
    record = {"settings": _recorded(settings), "windows": [asdict(w) for w in windows],
              "shards": [asdict(s) for s in shards]}
    plan = (record, {w.name: w for w in windows}, targets, shards)
    if (out / SWEEP_FILE).is_file() and not force:
        saved, _, saved_targets, _ = load_plan(out)
        # Plans saved before a setting existed, or in its old form, compare as they mean now.
        saved = saved | {"settings": _recorded(SweepSettings(**saved["settings"]))}
        same_targets = saved_targets.keys() == targets.keys() and all(
            np.array_equal(saved_targets[name], targets[name]) for name in targets)
        if saved != record or not same_targets:
            changed = [key for key in record if saved.get(key) != record[key]] or ["the clips' contents"]
            raise UserError(f"{out} holds a different sweep ({', '.join(changed)} differ); use another --out, "
                            "or --force to start this one there")
        return plan
    # Here there is no plan, or --force. An earlier attempt may have left the targets alone.
    leftovers = [p for p in out.iterdir() if p.name != TARGETS_FILE and not p.name.startswith(".")] if out.is_dir() else []
    if not force and (leftovers or (out.exists() and not out.is_dir())):
        raise UserError(f"{out}: folder exists and is not a sweep folder; use another --out")
    buffer = io.BytesIO()
    np.savez(buffer, **targets)
    try:
        if force and (out / SHARDS).exists():
            shutil.rmtree(out / SHARDS)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(out / TARGETS_FILE, buffer.getvalue())
        atomic_write_text(out / SWEEP_FILE, json.dumps(record, indent=1) + "\n")  # last: the plan is complete
    except OSError as error:
        raise UserError(f"{out}: cannot write the sweep folder ({failure(error, out)})") from None
    return plan


def _recorded(settings: SweepSettings) -> dict:
    recorded = asdict(settings)
    if not settings.loss_sources:  # as plans were written before losses took options
        del recorded["loss_sources"]
    return recorded


def run_sweep(data: list[str], settings: SweepSettings, out: Path, executor: str = "local",
              address: str | None = None, workers: int | None = None, progress: bool = True,
              overrides: SweepOverrides = SweepOverrides()) -> SweepOutcome:
    """Plan (or re-check) the sweep, run every unfinished shard, then summarise the whole sweep.

    ``overrides``: the refusals lifted (``--force``, ``--allow-many-windows``).
    """
    check_settings(settings, executor, workers)
    if workers is None:
        workers = max(1, (os.cpu_count() or 1) // settings.threads_per_task)
    if executor == "ray":  # an unreachable cluster is one line at once, before the folder is touched
        from .executors import check_ray_address

        check_ray_address(address)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: folder exists and is not a sweep folder; use another --out")
    with writing(out, "sweep"):  # one writer: a second pal sweep on this folder is refused
        return _run_locked(data, settings, out, executor, address, workers, progress, overrides)


def _run_locked(data, settings, out, executor, address, workers, progress, overrides) -> SweepOutcome:
    record, windows, targets, shards = prepare_folder(out, settings, data, overrides)
    todo = [shard for shard in shards if not is_finished(out, shard)]
    outcome = SweepOutcome(len(shards), len(shards) - len(todo))
    bar = SweepProgress(len(shards), outcome.skipped, progress)
    if progress:
        print(f"sweep: {len(windows)} window(s) of {len({w.source for w in windows.values()})} clip(s), "
              f"{sum(s.runs for s in shards)} runs in {len(shards)} shard(s); {outcome.skipped} already finished; "
              f"{executor} executor", file=sys.stderr, flush=True)

    def on_ray(on_failed) -> None:
        from .executors import run_ray

        run_ray(out, todo, (record, windows, targets), address, workers, bar.started, bar.finished, on_failed)

    _run_shards(out, todo, executor, workers, settings.threads_per_task, outcome, bar, on_ray)
    outcome.summary = summarize(out)
    return outcome


def _run_shards(out: Path, todo: list, executor: str, workers: int, threads: int, outcome: SweepOutcome,
                bar: SweepProgress, on_ray) -> None:
    """Every shard of ``todo`` by the executor: local worker processes, or ``on_ray(failed)``;
    each failure recorded in ``outcome``."""

    def failed(name: str, reason: str) -> None:
        outcome.failed[name] = reason
        bar.lost(name, reason)

    if not todo:
        return
    if executor == "local":
        from .executors import run_local

        run_local(out, todo, workers, threads, bar.started, bar.finished, failed)
    else:
        on_ray(failed)


def run_codec_sweep(grid, out: Path, executor: str = "local", address: str | None = None,
                    workers: int | None = None, runs_per_task: int = 8, threads_per_task: int = 1,
                    progress: bool = True, force: bool = False) -> SweepOutcome:
    """``pal sweep --codec``: plan the grid (a :class:`pal.codec.config.CodecConfig`; or re-check
    the saved plan), run every unfinished shard, merge them into one codec run folder
    (:mod:`pal.sweeps.codec`)."""
    from . import codec

    check_executor(executor, workers)
    record = codec.codec_plan(grid, runs_per_task, threads_per_task)
    codec.check_shard_inputs(record)
    if executor == "ray":
        from .executors import check_ray_address

        check_ray_address(address)
    workers = workers or max(1, (os.cpu_count() or 1) // threads_per_task)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: a file, not a sweep folder; use another --out")
    with writing(out, "sweep"):
        codec.prepare_codec_folder(out, record, force)
        shards = codec.shards_of(record)
        todo = [s for s in shards if not (out / SHARDS / s.name / DONE_FILE).is_file()]
        outcome = SweepOutcome(len(shards), len(shards) - len(todo))
        bar = SweepProgress(len(shards), outcome.skipped, progress)
        if progress:
            print(f"codec sweep: {sum(s.runs for s in shards)} models in {len(shards)} shard(s); {outcome.skipped} "
                  f"already finished; {executor} executor", file=sys.stderr, flush=True)

        def on_ray(on_failed) -> None:
            from .executors import run_ray_tasks

            calls = {s.name: (str(out.resolve()), asdict(s), record) for s in todo}
            gpus = 1 if str(record["settings"]["device"]).startswith("cuda") else 0
            run_ray_tasks(codec.run_codec_shard, calls, threads_per_task, gpus, address, workers,
                          bar.started, bar.finished, on_failed)

        _run_shards(out, todo, executor, workers, threads_per_task, outcome, bar, on_ray)
        outcome.summary, outcome.page = codec.summarize_codec(out)
    return outcome


__all__ = ["EXECUTORS", "Shard", "SweepOutcome", "SweepOverrides", "SweepSettings", "run_codec_sweep", "run_sweep",
           "summarize"]
