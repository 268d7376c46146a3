"""Plain helpers the application's tests import by name (``from helpers import sine``); fixtures
stay in conftest.py. tests/app is on pytest's ``pythonpath`` (pyproject.toml), so a test in any
package folder finds this module and ``browser``."""

import csv
import json
from pathlib import Path

import numpy as np
import soundfile
import torch


def sine(hz, seconds, rate, amplitude=0.5):
    t = np.arange(int(seconds * rate)) / rate
    return amplitude * np.sin(2 * np.pi * hz * t)


def first_loss(out, clip, label, seed=0) -> float:
    """The first loss a ``pal run`` in ``out`` recorded for (clip, label, seed): the untrained generator's."""
    with open(out / "clips" / clip / label / f"seed-{seed}" / "losses.csv") as handle:
        return float(next(csv.DictReader(handle))["loss"])


def untrained_output(seed=0) -> torch.Tensor:
    """The output ``(1, 1, T)`` of the generator of ``seed`` before any update, on the CPU."""
    from pal.run.generator import seeded_generator_and_latent

    model, latent = seeded_generator_and_latent(seed)
    with torch.no_grad():
        return model(latent).reshape(1, 1, -1)


def original(out, clip) -> torch.Tensor:
    """The clip's target as the run in ``out`` wrote it, ``(1, 1, T)``."""
    samples, _ = soundfile.read(str(out / "clips" / clip / "original.wav"), dtype="float32")
    return torch.from_numpy(samples).reshape(1, 1, -1)


def shard_contents(sweep_dir) -> dict[str, bytes]:
    """Every file of every shard of a sweep folder; wall-clock seconds, which no two runs share,
    taken out of the records that hold them."""
    contents = {}
    for path in sorted((Path(sweep_dir) / "shards").rglob("*")):
        if not path.is_file():
            continue
        data = path.read_bytes()
        if path.name in ("runs.json", "done.json"):
            data = json.dumps(_without_seconds(json.loads(data)), sort_keys=True).encode()
        contents[str(path.relative_to(sweep_dir))] = data
    return contents


def _without_seconds(value):
    if isinstance(value, dict):
        return {k: _without_seconds(v) for k, v in value.items() if k != "seconds"}
    if isinstance(value, list):
        return [_without_seconds(v) for v in value]
    return value
