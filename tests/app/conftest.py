import csv
import shutil

import numpy as np
import pytest
import soundfile
import torch


@pytest.fixture
def write_audio(tmp_path):
    """Write a test signal: ``write_audio(name, samples, rate, subtype=None)`` -> path."""

    def write(name, samples, rate=22050, subtype=None, format=None):
        path = tmp_path / name
        soundfile.write(str(path), samples, rate, subtype=subtype, format=format)
        return path

    return write


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


@pytest.fixture(scope="session")
def listening_run(tmp_path_factory):
    """A finished two-clip, two-loss run (2 iterations) for the listening test to serve."""
    from pal.cli import main

    out = tmp_path_factory.mktemp("listen") / "run"
    assert main(["run", "speech", "drums", "--losses", "mse,perceptual", "--iterations", "2",
                 "--checkpoint-every", "1", "--out", str(out), "--no-progress"]) == 0
    return out


@pytest.fixture
def run(listening_run, tmp_path):
    """A copy of :func:`listening_run` that a test may damage."""
    copy = tmp_path / "run"
    shutil.copytree(listening_run, copy)
    return copy


@pytest.fixture
def stop_after_saving(monkeypatch):
    """``stop_after_saving(i)``: the next ``pal run`` in this process is interrupted (as by Ctrl-C)
    right after it saves its training state at iteration ``i``; later runs save as usual."""
    import pal.run.folder as runfolder

    original_save = runfolder.save_state

    def arm(iteration: int) -> None:
        def save_then_die(path, state):
            original_save(path, state)
            if state["iteration"] == iteration:
                monkeypatch.setattr(runfolder, "save_state", original_save)
                raise KeyboardInterrupt

        monkeypatch.setattr(runfolder, "save_state", save_then_die)

    return arm
