"""The run folder: its layout, its records, and whether a command starts, resumes or refuses.

Layout::

    config.json                        the resolved configuration and each target's fingerprint
    runs.json                          each (clip, loss, seed) run's status: running, finished or failed
    metrics.csv                        every checkpoint's measures against its original (clip, loss, seed, ...)
    state.pt                           the training state, for resuming (torch.load weights_only)
    report.html                        the page (pal.report)
    clips/<clip>/original.wav          the target window, peak 1
    clips/<clip>/<loss>/seed-<n>/iter-0250.wav  the generator's output after 250 updates, peak-normalised
    clips/<clip>/<loss>/seed-<n>/peaks.json     each checkpoint's raw peak (raw output = file x peak)
    clips/<clip>/<loss>/seed-<n>/losses.csv     the loss after every update

Every file is written atomically (:mod:`pal.files`).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import torch

from .errors import UserError
from .files import atomic_write, atomic_write_text, remove_stale_temporaries

RUN_ENTRIES = ("config.json", "runs.json", "metrics.csv", "state.pt", "report.html", "clips")


def fingerprint(samples: np.ndarray) -> str:
    """SHA-256 of a target window's float32 samples: a changed file is a different run."""
    return hashlib.sha256(np.ascontiguousarray(samples, dtype=np.float32).tobytes()).hexdigest()


def run_path(out: Path, clip: str, loss: str, seed: int) -> Path:
    """The folder of one (clip, loss, seed) run."""
    return out / "clips" / clip / loss / f"seed-{seed}"


def checkpoint_name(iteration: int) -> str:
    return f"iter-{iteration:04d}.wav"


def checkpoint_iteration(path: Path) -> int:
    """Inverse of :func:`checkpoint_name`."""
    return int(path.stem.split("-")[1])


def checkpoint_iterations_on_disk(run_folder: Path) -> list[int]:
    return sorted(checkpoint_iteration(path) for path in run_folder.glob("iter-*.wav"))


def write_json(path: Path, value) -> None:
    atomic_write_text(path, json.dumps(value, indent=2) + "\n")


def read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: unreadable run record ({error})") from None


def write_losses_csv(path: Path, losses: list[float]) -> None:
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["iteration", "loss"])
    writer.writerows((i, repr(v)) for i, v in enumerate(losses, start=1))
    atomic_write_text(path, text.getvalue())


def read_losses_csv(path: Path) -> np.ndarray:
    """``(iterations, 2)`` array of (iteration, loss)."""
    return np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)


METRIC_COLUMNS = ("clip", "loss", "seed", "iteration", "metric", "value")


def write_metrics_csv(path: Path, rows: list[dict]) -> None:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=METRIC_COLUMNS)
    writer.writeheader()
    writer.writerows({**row, "value": repr(float(row["value"]))} for row in rows)
    atomic_write_text(path, text.getvalue())


def read_metrics_csv(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        return [{**row, "seed": int(row["seed"]), "iteration": int(row["iteration"]), "value": float(row["value"])}
                for row in csv.DictReader(handle)]


def save_state(path: Path, state: dict) -> None:
    atomic_write(path, lambda temporary: torch.save(state, temporary))


def load_state(path: Path) -> dict | None:
    if not path.exists():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a state file from elsewhere: say so, never unpickle code
        raise UserError(f"{path}: unreadable training state ({type(error).__name__}); "
                        "pass --force to start the run again") from None


def describe_difference(saved: dict, wanted: dict) -> str:
    changed = [key for key in wanted if saved.get(key) != wanted[key]]
    return ", ".join(f"{key} {saved.get(key)!r} -> {wanted[key]!r}" for key in changed[:3])


def open_run_folder(out: Path, identity: dict, force: bool) -> str:
    """Decide what ``out`` is for this command: ``"new"``, ``"resume"`` or ``"finished"``.

    A folder holding a run of a different configuration is refused unless ``force``, which then
    clears that run's own entries (never anything else); a non-empty folder that holds no run is
    always refused.
    """
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a folder")
    if not out.is_dir() or not any(out.iterdir()):
        return "new"
    config_path = out / "config.json"
    if not config_path.exists():
        raise UserError(f"{out}: folder is not empty and holds no run; choose another --out")
    saved = read_json(config_path).get("identity", {})
    if saved == identity and not force:
        remove_stale_temporaries(out)
        runs = read_json(out / "runs.json") if (out / "runs.json").exists() else []
        done = runs and all(run["status"] != "running" for run in runs)
        return "finished" if done else "resume"
    if not force:
        raise UserError(f"{out}: holds a run of a different configuration "
                        f"({describe_difference(saved, identity)}); pass --force to replace it")
    for entry in RUN_ENTRIES:
        target = out / entry
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    remove_stale_temporaries(out)
    return "new"
