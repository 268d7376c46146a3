"""Sweeps: planning, shards, resuming, the local and Ray executors giving the same folders."""

import csv
import json
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from pal.clips import builtin_clip
from helpers import shard_contents
from pal.cli import main
from pal.sweeps import SweepSettings, run_sweep
from pal.sweeps.plan import Window, find_audio, plan_shards, window_offsets

SETTINGS = dict(losses=["mse", "l1"], seeds=[0, 1], windows_per_clip=2, iterations=150, checkpoint_every=50,
                runs_per_task=4)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    for name in ("piano", "drums"):
        samples, rate = builtin_clip(name)
        soundfile.write(str(folder / f"{name}.wav"), samples, rate)
    return folder


@pytest.fixture(scope="module")
def local_sweep(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "sweep"
    outcome = run_sweep([str(data)], SweepSettings(**SETTINGS), out, "local", workers=2, progress=False)
    assert not outcome.failed and outcome.shards == 4
    return out


# -- planning ------------------------------------------------------------------------------------


def test_data_from_files_folders_and_lists(tmp_path, data):
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    (nested / "piano.wav").write_bytes((data / "piano.wav").read_bytes())
    listing = tmp_path / "list.txt"
    listing.write_text(f"# my clips\n\n{data / 'drums.wav'}\na\n")
    found = find_audio([str(listing), str(data / "piano.wav")])
    assert found == [(data / "drums.wav").resolve(), (nested / "piano.wav").resolve(), (data / "piano.wav").resolve()]
    listing.write_text("missing.wav\n")
    assert main(["sweep", str(listing), "--out", str(tmp_path / "s")]) == 2


def test_windows_spread_evenly_and_one_is_the_middle():
    assert window_offsets(20000, 8192, 1) == [(20000 - 8192) // 2]
    assert window_offsets(20000, 8192, 3) == [round(11808 / 6), round(11808 / 2), round(11808 * 5 / 6)]


def test_shards_hold_whole_windows_when_they_can():
    windows = [Window(f"w{i}", "x.wav", 0) for i in range(5)]
    settings = SweepSettings(losses=["mse", "l1"], seeds=[0, 1], runs_per_task=8)
    shards = plan_shards(windows, settings)
    assert [s.windows for s in shards] == [["w0", "w1"], ["w2", "w3"], ["w4"]]
    assert all(s.losses == ["mse", "l1"] and s.seeds == [0, 1] for s in shards)
    small = plan_shards(windows[:1], SweepSettings(losses=["mse", "l1"], seeds=[0, 1, 2], runs_per_task=2))
    assert [(s.losses, s.seeds) for s in small] == [(["mse"], [0, 1]), (["mse"], [2]), (["l1"], [0, 1]), (["l1"], [2])]
    assert sum(s.runs for s in small) == 6


@pytest.mark.parametrize("arguments, message", [
    (["--executor", "slurm"], "unknown executor"),
    (["--runs-per-task", "0"], "--runs-per-task"),
    (["--losses", "mse,nope"], "unknown loss"),
    (["--seeds", "a"], "each an integer"),
    (["--device", "tpu"], "device"),
    (["--executor", "ray", "--device", "tpu"], "--device"),
])
def test_bad_sweep_input_is_one_line(data, tmp_path, capsys, arguments, message):
    assert main(["sweep", str(data), "--out", str(tmp_path / "s"), *arguments]) == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1
    assert not (tmp_path / "s").exists()


# -- running and resuming ------------------------------------------------------------------------


@pytest.mark.slow
def test_metrics_table_has_a_row_per_window_loss_seed_and_checkpoint(local_sweep):
    rows = list(csv.DictReader((local_sweep / "metrics.csv").open()))
    assert len(rows) == 4 * 2 * 2 * 3  # windows x losses x seeds x checkpoints
    assert {r["window"] for r in rows} == {"piano.w0", "piano.w1", "drums.w0", "drums.w1"}
    assert all(float(r["snr_db"]) == float(r["snr_db"]) for r in rows)
    assert (local_sweep / "index.html").read_text().count("<tr>") > 4


@pytest.mark.slow
def test_paired_comparison_counts_clips_by_hand(local_sweep, capsys):
    rows = [r for r in csv.DictReader((local_sweep / "metrics.csv").open()) if r["iteration"] == "150"]
    by = {(r["window"], r["seed"], r["loss"]): float(r["lsd_high_db"]) for r in rows}
    wins = 0
    for clip in ("piano", "drums"):
        differences = [by[(w, s, "mse")] - by[(w, s, "l1")] for w in (f"{clip}.w0", f"{clip}.w1") for s in ("0", "1")]
        wins += np.mean(differences) < 0
    assert main(["summarize", str(local_sweep)]) == 0
    assert f"mse beats l1 on {wins} of 2 clips (lsd_high_db at iteration 150" in capsys.readouterr().out


@pytest.mark.slow
def test_rerunning_a_finished_sweep_skips_every_shard(data, local_sweep):
    before = {p: p.stat().st_mtime_ns for p in (local_sweep / "shards").rglob("*.wav")}
    outcome = run_sweep([str(data)], SweepSettings(**SETTINGS), local_sweep, "local", workers=2, progress=False)
    assert outcome.skipped == 4 and not outcome.failed
    assert before == {p: p.stat().st_mtime_ns for p in (local_sweep / "shards").rglob("*.wav")}


@pytest.mark.slow
def test_a_different_sweep_in_the_folder_is_refused(data, local_sweep, capsys):
    assert main(["sweep", str(data), "--out", str(local_sweep), "--losses", "mse", "--no-progress"]) == 2
    assert "holds a different sweep" in capsys.readouterr().err


def kill_when_training(sweep_dir: Path, process_marker: str, killed: list):
    """Wait until some shard is training, then SIGKILL the process running it."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for shard in sorted((sweep_dir / "shards").glob("shard-*")) if (sweep_dir / "shards").exists() else []:
            if (shard / "config.json").exists() and not (shard / "done.json").exists():
                for pid in _pids_matching(process_marker, shard.name):
                    os.kill(pid, signal.SIGKILL)
                    killed.append(shard.name)
                    return
        time.sleep(0.05)


def _pids_matching(marker: str, shard: str) -> list[int]:
    """Processes whose command line names both: the worker kind and the shard it runs."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if marker in command and shard in command:
                pids.append(int(entry.name))
    return pids


@pytest.mark.slow
def test_a_killed_local_worker_costs_its_shard_only(data, local_sweep, tmp_path):
    out = tmp_path / "sweep"
    killed = []
    killer = threading.Thread(target=kill_when_training, args=(out, "pal.sweeps.worker", killed))
    killer.start()
    first = run_sweep([str(data)], SweepSettings(**SETTINGS), out, "local", workers=2, progress=False)
    killer.join()
    assert len(killed) == 1 and set(first.failed) == set(killed) and "killed by signal 9" in first.failed[killed[0]]
    second = run_sweep([str(data)], SweepSettings(**SETTINGS), out, "local", workers=2, progress=False)
    assert not second.failed and second.skipped == 3
    assert shard_contents(out) == shard_contents(local_sweep)


@pytest.fixture(scope="module")
def ray_instance():
    if os.environ.get("CI"):
        import ray
    else:
        ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_ray_gives_the_same_folders_and_survives_a_killed_worker(data, local_sweep, tmp_path, ray_instance):
    out = tmp_path / "sweep"
    killed = []
    killer = threading.Thread(target=kill_when_training, args=(out, "ray::pal-", killed))
    killer.start()
    first = run_sweep([str(data)], SweepSettings(**SETTINGS), out, "ray", progress=False)
    killer.join()
    assert len(killed) == 1 and set(first.failed) == set(killed)
    assert not (out / "shards" / killed[0] / "done.json").exists()
    second = run_sweep([str(data)], SweepSettings(**SETTINGS), out, "ray", progress=False)
    assert not second.failed and second.skipped == 3
    assert shard_contents(out) == shard_contents(local_sweep)


USER_LOSS = """
from torch import nn


class MeanAbsolute(nn.Module):
    def __init__(self, sample_rate, power=1):
        super().__init__()
        self.power = power

    def forward(self, input, target):
        return (input - target).abs().pow(self.power).mean()
"""


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["local", "ray"])
def test_a_users_loss_sweeps_on_both_executors(data, tmp_path, executor, request):
    if executor == "ray":
        request.getfixturevalue("ray_instance")
    loss_file = tmp_path / "user_loss.py"
    loss_file.write_text(USER_LOSS)
    out = tmp_path / "sweep"
    code = main(["sweep", str(data), "--out", str(out), "--losses", f"mse,{loss_file}:MeanAbsolute:power=1",
                 "--seeds", "0", "--iterations", "2", "--checkpoint-every", "2", "--executor", executor,
                 "--no-progress"])
    assert code == 0
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert {row["loss"] for row in rows} == {"mse", "user_loss.py:MeanAbsolute:power=1"}
    record = json.loads((out / "sweep.json").read_text())
    source = record["settings"]["loss_sources"]["user_loss.py:MeanAbsolute:power=1"]
    assert source["target"] == str(loss_file) and source["options"] == {"power": 1}
    # L1 with power 1 is the registered l1: the user's runs trained exactly as l1's would.
    reference = tmp_path / "reference"
    assert main(["sweep", str(data), "--out", str(reference), "--losses", "mse,l1", "--seeds", "0",
                 "--iterations", "2", "--checkpoint-every", "2", "--no-progress"]) == 0
    for shard in sorted((out / "shards").iterdir()):
        for wav in shard.glob("clips/*/user_loss.py:MeanAbsolute:power=1/seed-0/iter-0002.wav"):
            twin = reference / "shards" / shard.name / str(wav.relative_to(shard)).replace(
                "user_loss.py:MeanAbsolute:power=1", "l1")
            assert wav.read_bytes() == twin.read_bytes()
