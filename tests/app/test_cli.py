"""Bad input: one clear line on stderr, exit status 2, no traceback, no run folder left behind."""

import errno
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile

import pal.sweeps
from helpers import sine
from pal.cli import main
from pal.sweeps.run import SweepOutcome


@pytest.fixture
def inputs(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    soundfile.write(str(folder / "tone.wav"), sine(440, 1.5, 22050), 22050)
    soundfile.write(str(folder / "silence.wav"), np.zeros(22050), 22050)
    soundfile.write(str(folder / "short.wav"), sine(440, 0.2, 22050), 22050)
    with_nan = sine(440, 1.5, 22050)
    with_nan[100] = np.nan
    soundfile.write(str(folder / "nan.wav"), with_nan, 22050, subtype="FLOAT")
    with_inf = sine(440, 1.5, 22050)
    with_inf[100] = np.inf
    soundfile.write(str(folder / "inf.wav"), with_inf, 22050, subtype="DOUBLE")
    whole = (folder / "tone.wav").read_bytes()
    (folder / "truncated.wav").write_bytes(whole[: len(whole) // 2])
    (folder / "notes.wav").write_text("not audio")
    (folder / "empty.wav").write_bytes(b"")
    (folder / "empty").mkdir()
    (tmp_path / "a-file").write_text("x")
    (tmp_path / "wrong-type.toml").write_text('iterations = "many"\n')
    (tmp_path / "unknown-key.toml").write_text("iteratons = 10\n")
    (tmp_path / "not-toml.toml").write_text("iterations = = 3\n")
    return folder


BAD = {
    "missing file": ["{in}/nope.wav"],
    "undecodable file (text named .wav)": ["{in}/notes.wav"],
    "empty file": ["{in}/empty.wav"],
    "truncated WAV": ["{in}/truncated.wav"],
    "NaN samples": ["{in}/nan.wav"],
    "infinite samples": ["{in}/inf.wav"],
    "config file with a wrong type": ["{in}/tone.wav", "--config", "{tmp}/wrong-type.toml"],
    "config file with an unknown key": ["{in}/tone.wav", "--config", "{tmp}/unknown-key.toml"],
    "config file that is not TOML": ["{in}/tone.wav", "--config", "{tmp}/not-toml.toml"],
    "missing config file": ["{in}/tone.wav", "--config", "{tmp}/nope.toml"],
    "silent clip": ["{in}/silence.wav"],
    "clip shorter than the window": ["{in}/short.wav"],
    "folder with no audio": ["{in}/empty"],
    "unknown loss": ["{in}/tone.wav", "--losses", "mse,perceptal"],
    "zero iterations": ["{in}/tone.wav", "--iterations", "0"],
    "negative iterations": ["{in}/tone.wav", "--iterations", "-5"],
    "non-numeric iterations": ["{in}/tone.wav", "--iterations", "many"],
    "checkpoint interval zero": ["{in}/tone.wav", "--checkpoint-every", "0"],
    "checkpoint interval above iterations": ["{in}/tone.wav", "--iterations", "10", "--checkpoint-every", "20"],
    "unknown device": ["{in}/tone.wav", "--device", "tpu"],
    "output folder is a file": ["{in}/tone.wav", "--out", "{tmp}/a-file"],
}


@pytest.mark.parametrize("case", BAD)
def test_bad_input_is_one_line_and_exit_2(case, inputs, tmp_path, capsys):
    args = [a.format(**{"in": inputs, "tmp": tmp_path}) for a in BAD[case]]
    out = tmp_path / "run"
    if "--out" not in args:
        args += ["--out", str(out)]
    with pytest.raises(SystemExit) if case == "non-numeric iterations" else _no_exit():
        code = main(["run", *args, "--no-progress"])
        assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("pal"), err
    assert "Traceback" not in err
    assert not out.exists()


class _no_exit:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.mark.slow
def test_a_finished_run_is_kept_and_the_same_command_is_idempotent(inputs, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["run", str(inputs / "tone.wav"), "--iterations", "2", "--checkpoint-every", "1", "--losses", "mse",
            "--out", str(out), "--no-progress"]
    assert main(args) == 0
    checkpoint = out / "clips/tone/mse/seed-0/iter-0002.wav"
    before, mtime = checkpoint.read_bytes(), checkpoint.stat().st_mtime_ns
    capsys.readouterr()
    assert main(args) == 0
    assert "already finished" in capsys.readouterr().out
    assert checkpoint.read_bytes() == before and checkpoint.stat().st_mtime_ns == mtime
    assert main(args + ["--force"]) == 0
    assert checkpoint.read_bytes() == before  # trained again from the same seed


def test_a_foreign_folder_is_never_cleared(inputs, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    code = main(["run", str(inputs / "tone.wav"), "--iterations", "1", "--out", str(out), "--force",
                 "--checkpoint-every", "1", "--no-progress"])
    assert code == 2 and (out / "thesis.tex").read_text() == "precious"


def test_short_clip_is_padded_on_request(inputs, tmp_path):
    out = tmp_path / "run"
    code = main(["run", str(inputs / "short.wav"), "--pad", "--iterations", "1", "--checkpoint-every", "1",
                 "--losses", "mse", "--out", str(out), "--no-progress"])
    assert code == 0
    original, _ = soundfile.read(str(out / "clips/short/original.wav"))
    assert original[0] == 0 and original[-1] == 0 and np.abs(original).max() == pytest.approx(1.0)


@pytest.mark.slow
def test_the_console_script_exits_2_without_a_traceback(tmp_path):
    pal = Path(sys.executable).with_name("pal")
    result = subprocess.run([str(pal), "run", str(tmp_path / "nothing.wav"), "--out", str(tmp_path / "r")],
                            capture_output=True, text=True, env=os.environ | {"PYTHONWARNINGS": "ignore"})
    assert result.returncode == 2
    assert result.stderr.strip() == f"pal: error: {tmp_path / 'nothing.wav'}: no such file"


@pytest.mark.slow
def test_unusual_but_valid_files_all_work(tmp_path):
    folder = tmp_path / "odd"
    folder.mkdir()
    tone = sine(440, 1.2, 22050)
    soundfile.write(str(folder / "u8.wav"), tone, 22050, subtype="PCM_U8")
    soundfile.write(str(folder / "s24.wav"), tone, 22050, subtype="PCM_24")
    soundfile.write(str(folder / "f64.wav"), tone, 22050, subtype="DOUBLE")
    soundfile.write(str(folder / "six.wav"), np.stack([tone] * 6, axis=1), 22050, subtype="PCM_16")
    soundfile.write(str(folder / "k8.wav"), sine(440, 1.2, 8000), 8000)
    soundfile.write(str(folder / "k96.flac"), sine(440, 1.2, 96000), 96000)
    out = tmp_path / "run"
    assert main(["run", str(folder), "--losses", "mse", "--iterations", "1", "--checkpoint-every", "1",
                 "--out", str(out), "--no-progress"]) == 0
    assert sorted(p.name for p in (out / "clips").iterdir()) == ["f64", "k8", "k96", "s24", "six", "u8"]


@pytest.mark.parametrize("failure", [errno.ENOSPC, errno.EROFS])
def test_a_full_or_read_only_disk_is_one_line_and_leaves_nothing(failure, inputs, tmp_path, capsys, monkeypatch):
    """Simulated: the first fsync (full disk) or mkdir (read-only disk) fails as the kernel would."""
    def refuse(*args, **kwargs):
        raise OSError(failure, os.strerror(failure))

    monkeypatch.setattr(os, "fsync" if failure == errno.ENOSPC else "mkdir", refuse)
    out = tmp_path / "run"
    code = main(["run", str(inputs / "tone.wav"), "--iterations", "2", "--checkpoint-every", "1",
                 "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and os.strerror(failure) in err and "Traceback" not in err
    assert not out.exists()


def test_a_write_failure_mid_run_keeps_what_was_written(inputs, tmp_path, capsys, monkeypatch):
    import pal.run.folder as runfolder

    def disk_full(path, state):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(runfolder, "save_state", disk_full)
    out = tmp_path / "run"
    code = main(["run", str(inputs / "tone.wav"), "--losses", "mse", "--iterations", "4", "--checkpoint-every", "2",
                 "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "resume" in err and err.count("\n") == 1
    assert (out / "config.json").exists() and (out / "clips/tone/original.wav").exists()
    assert (out / "clips/tone/mse/seed-0/iter-0002.wav").exists()


def test_an_unreadable_file_is_refused(inputs, tmp_path, capsys, monkeypatch):
    locked = inputs / "locked.wav"
    locked.write_bytes((inputs / "tone.wav").read_bytes())
    locked.chmod(0)
    if os.geteuid() == 0:  # root reads anything: make the kernel's answer what a user would get
        real_access = os.access
        monkeypatch.setattr(os, "access", lambda path, mode: False if Path(path) == locked else real_access(path, mode))
    out = tmp_path / "run"
    assert main(["run", str(locked), "--out", str(out), "--no-progress"]) == 2
    assert capsys.readouterr().err == f"pal: error: {locked}: not readable (permission denied)\n"
    assert not out.exists()


def test_a_config_file_runs_and_flags_override_it(inputs, tmp_path):
    config = tmp_path / "experiment.toml"
    config.write_text(f'clips = ["{inputs / "tone.wav"}"]\nlosses = ["mse"]\niterations = 3\n'
                      f'checkpoint_every = 3\nseed = 4\nout = "{tmp_path / "from-file"}"\n')
    assert main(["run", "--config", str(config), "--iterations", "2", "--checkpoint-every", "1", "--no-progress"]) == 0
    import json
    saved = json.loads((tmp_path / "from-file" / "config.json").read_text())
    assert saved["iterations"] == 2 and saved["seeds"] == [4] and saved["losses"] == ["mse"]


def test_seed_and_seeds_together_are_refused(tmp_path, capsys):
    assert main(["run", "drums", "--seed", "1", "--seeds", "2", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--seed or --seeds" in err
    assert not (tmp_path / "out").exists()


WARNING_LOSS = '''
import warnings
import torch

class Warns(torch.nn.Module):
    def __init__(self, sample_rate):
        super().__init__()

    def forward(self, input, target):
        warnings.warn("a user's loss warning", UserWarning)
        return torch.nn.functional.mse_loss(input[..., :4], target[..., :4].reshape(-1)) * float("nan")
'''


def test_a_refusal_is_one_line_without_the_warnings_on_the_way(tmp_path):
    """The loss warns (and so does torch, on its broadcast and on pal turning the value into a
    number) before pal refuses its NaN: stderr is the refusal alone. In a process of its own, as
    pytest would catch the warnings itself."""
    (tmp_path / "warns.py").write_text(WARNING_LOSS)
    finished = subprocess.run([sys.executable, "-m", "pal.cli", "run", "drums", "--losses", "warns.py:Warns",
                               "--out", "out", "--no-progress"], cwd=tmp_path, capture_output=True, text=True)
    assert finished.returncode == 2
    assert finished.stderr.count("\n") == 1 and finished.stderr.startswith("pal: error: "), finished.stderr
    assert "returned nan" in finished.stderr


def test_warnings_of_a_command_that_succeeds_are_still_shown(tmp_path, monkeypatch):
    def warn_and_finish(args):
        warnings.warn("kept for after the command", UserWarning)
        return 0

    monkeypatch.setattr("pal.cli.command_summarize", warn_and_finish)
    with pytest.warns(UserWarning, match="kept for after the command"):
        assert main(["summarize", str(tmp_path)]) == 0


def test_a_failed_shards_reason_is_shown_without_progress(tmp_path, capsys, monkeypatch):
    reasons = {"shard-0001": "pal sweep: shard-0001: loss 'x.py:L' raised ValueError at iteration 3: boom"}
    monkeypatch.setattr(pal.sweeps, "run_sweep", lambda *args, **kwargs: SweepOutcome(2, 0, dict(reasons), "summary"))
    assert main(["sweep", str(tmp_path), "--out", str(tmp_path / "s"), "--no-progress"]) == 3
    err = capsys.readouterr().err
    assert f"shard-0001: {reasons['shard-0001']}" in err and "1 of 2 shard(s) failed" in err
