"""Bad input: one clear line on stderr, exit status 2, no traceback, no run folder left behind."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from conftest import sine
from perceptual_audio_loss.cli import main


@pytest.fixture
def inputs(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    soundfile.write(str(folder / "tone.wav"), sine(440, 1.5, 22050), 22050)
    soundfile.write(str(folder / "silence.wav"), np.zeros(22050), 22050)
    soundfile.write(str(folder / "short.wav"), sine(440, 0.2, 22050), 22050)
    (folder / "notes.wav").write_text("not audio")
    (folder / "empty").mkdir()
    (tmp_path / "a-file").write_text("x")
    return folder


BAD = {
    "missing file": ["{in}/nope.wav"],
    "undecodable file": ["{in}/notes.wav"],
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


def test_an_existing_run_is_kept_unless_forced(inputs, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["run", str(inputs / "tone.wav"), "--iterations", "2", "--checkpoint-every", "1", "--losses", "mse",
            "--out", str(out), "--no-progress"]
    assert main(args) == 0
    before = (out / "clips/tone/mse/iter-0002.wav").read_bytes()
    capsys.readouterr()
    assert main(args) == 2
    assert "--force" in capsys.readouterr().err
    assert (out / "clips/tone/mse/iter-0002.wav").read_bytes() == before
    assert main(args + ["--force"]) == 0


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


def test_the_console_script_exits_2_without_a_traceback(tmp_path):
    pal = Path(sys.executable).with_name("pal")
    result = subprocess.run([str(pal), "run", str(tmp_path / "nothing.wav"), "--out", str(tmp_path / "r")],
                            capture_output=True, text=True, env=os.environ | {"PYTHONWARNINGS": "ignore"})
    assert result.returncode == 2
    assert result.stderr.strip() == f"pal: error: {tmp_path / 'nothing.wav'}: no such file"
