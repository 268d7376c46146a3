"""A killed run resumes to the same bytes, every file is whole, bad input costs nothing."""

import csv
import json
import signal
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
import soundfile
import torch
from torch import nn

from pal.cli import main
from pal.losses.budget import Memory, waveform_bytes
from pal.losses.peers import PEER_LOSSES
from pal.losses.registry import REGISTERED, RegisteredLoss

PAL = str(Path(sys.executable).with_name("pal"))
FAULT_RUN = ["speech", "--losses", "mse,perceptual", "--iterations", "240", "--checkpoint-every", "40",
             "--no-progress"]


def decode_everything(folder: Path) -> int:
    """Open every file of a run folder as what it claims to be; hidden temporaries are not part of it."""
    count = 0
    for path in sorted(folder.rglob("*")):
        if path.is_dir() or path.name.startswith("."):
            continue
        suffix = path.suffix
        if suffix == ".wav":
            samples, _ = soundfile.read(str(path))
            assert samples.size > 0 and np.all(np.isfinite(samples)), path
        elif suffix == ".json":
            json.loads(path.read_text())
        elif suffix == ".csv":
            table = list(csv.reader(path.open()))
            assert len(table) > 1 and all(len(row) == len(table[0]) for row in table), path
        elif suffix == ".png":
            assert matplotlib.image.imread(str(path)).size > 0, path
        elif suffix == ".pt":
            state = torch.load(path, weights_only=True)
            assert state["iteration"] > 0
        elif suffix == ".html":
            assert path.read_text().rstrip().endswith("</html>"), path
        else:
            raise AssertionError(f"unexpected file {path}")
        count += 1
    return count


def run_pal(out: Path, kill_after: float | None = None) -> int | None:
    """Run `pal run`; kill it with SIGKILL after `kill_after` seconds if it is still running."""
    process = subprocess.Popen([PAL, "run", *FAULT_RUN, "--out", str(out)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        process.wait(timeout=kill_after if kill_after is not None else 300)
        return process.returncode
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGKILL)
        process.wait()
        return None


@pytest.mark.slow
def test_sigkill_at_several_moments_then_resume_is_bit_identical(tmp_path):
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    assert run_pal(reference) == 0
    kills = 0
    for delay in (1.0, 4.0, 5.5, 7.0, 8.5):  # start-up, then at different points of training
        if run_pal(killed, kill_after=delay) is not None:
            break  # it finished before the kill: nothing left to interrupt
        kills += 1
        if killed.exists():
            decode_everything(killed)
    assert kills >= 3
    assert run_pal(killed) == 0
    decode_everything(killed)
    names = sorted(p.relative_to(reference) for p in reference.rglob("*") if p.suffix in (".wav", ".csv"))
    assert names == sorted(p.relative_to(killed) for p in killed.rglob("*") if p.suffix in (".wav", ".csv"))
    for name in names:
        assert (killed / name).read_bytes() == (reference / name).read_bytes(), name
    runs = json.loads((killed / "runs.json").read_text())
    assert all(run["status"] == "finished" for run in runs)


@pytest.mark.slow
def test_resume_continues_from_the_saved_iteration(tmp_path, capsys, stop_after_saving):
    """In-process: stop after the state at iteration 4 is saved, then resume to the end."""
    args = ["run", "drums", "--losses", "mse", "--iterations", "8", "--checkpoint-every", "4",
            "--out", str(tmp_path / "run"), "--no-progress"]
    stop_after_saving(4)
    assert main(args) == 130
    runs = json.loads((tmp_path / "run" / "runs.json").read_text())
    assert runs[0]["status"] == "running"
    assert "interrupted" in (tmp_path / "run" / "report.html").read_text()
    capsys.readouterr()
    assert main(args) == 0
    assert "resumed after iteration 4" in capsys.readouterr().out
    uninterrupted = tmp_path / "straight"
    assert main([*args[:-3], "--out", str(uninterrupted), "--no-progress"]) == 0
    for name in ("clips/drums/mse/seed-0/iter-0004.wav", "clips/drums/mse/seed-0/iter-0008.wav", "clips/drums/mse/seed-0/losses.csv"):
        assert (tmp_path / "run" / name).read_bytes() == (uninterrupted / name).read_bytes()
    assert main(args) == 0
    assert "already finished" in capsys.readouterr().out


@pytest.mark.slow
def test_a_different_configuration_is_refused_unless_forced(tmp_path, capsys):
    out = str(tmp_path / "run")
    base = ["run", "drums", "--losses", "mse", "--checkpoint-every", "2", "--out", out, "--no-progress"]
    assert main([*base, "--iterations", "2"]) == 0
    kept = (tmp_path / "run/clips/drums/mse/seed-0/iter-0002.wav").read_bytes()
    capsys.readouterr()
    assert main([*base, "--iterations", "4"]) == 2
    err = capsys.readouterr().err
    assert "different configuration" in err and "iterations 2 -> 4" in err and err.count("\n") == 1
    assert (tmp_path / "run/clips/drums/mse/seed-0/iter-0002.wav").read_bytes() == kept
    assert main([*base, "--iterations", "4", "--force"]) == 0
    assert (tmp_path / "run/clips/drums/mse/seed-0/iter-0004.wav").exists()


_calls = {"n": 0}


def _nan_after_three(sample_rate: float) -> nn.Module:
    class NanAfterThree(nn.Module):
        def forward(self, input, target):
            _calls["n"] += 1
            value = ((input - target) ** 2).mean()
            return value * float("nan") if _calls["n"] > 3 else value

    return NanAfterThree()


@pytest.fixture
def nan_loss(monkeypatch):
    """A loss that turns NaN at its fourth call, registered for this test only."""
    monkeypatch.setitem(PEER_LOSSES, "test-nan-after-3", _nan_after_three)
    monkeypatch.setitem(REGISTERED, "test-nan-after-3", RegisteredLoss("test-nan-after-3", Memory(waveform_bytes)))
    _calls["n"] = 0


@pytest.mark.slow
def test_a_diverging_run_stops_alone_and_the_exit_status_says_so(tmp_path, capsys, nan_loss):
    out = tmp_path / "run"
    code = main(["run", "drums", "--losses", "mse,test-nan-after-3", "--iterations", "6", "--checkpoint-every", "2",
                 "--out", str(out), "--no-progress"])
    assert code == 3
    assert "test-nan-after-3/seed-0: loss became nan at iteration 4" in capsys.readouterr().err
    runs = {run["loss"]: run for run in json.loads((out / "runs.json").read_text())}
    assert runs["mse"]["status"] == "finished" and runs["mse"]["checkpoints"] == [2, 4, 6]
    assert runs["test-nan-after-3"]["status"] == "failed" and runs["test-nan-after-3"]["checkpoints"] == [2]
    recorded = np.loadtxt(out / "clips/drums/test-nan-after-3/seed-0/losses.csv", delimiter=",", skiprows=1, ndmin=2)
    assert len(recorded) == 4 and np.all(np.isfinite(recorded[:3, 1])) and np.isnan(recorded[3, 1])
    page = (out / "report.html").read_text()
    assert "failed: loss became nan at iteration 4" in page and "Not every run finished" in page
    # The healthy run is exactly what it is when trained alone.
    alone = tmp_path / "alone"
    assert main(["run", "drums", "--losses", "mse", "--iterations", "6", "--checkpoint-every", "2",
                 "--out", str(alone), "--no-progress"]) == 0
    assert (out / "clips/drums/mse/seed-0/iter-0006.wav").read_bytes() == (alone / "clips/drums/mse/seed-0/iter-0006.wav").read_bytes()
