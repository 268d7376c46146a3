"""One writer per folder: a run or sweep folder another process writes is refused in
one line naming that process, by a second writer and by the readers (report, listen, summarize)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from pal.cli import main
from pal.core.locks import LOCK_FILE, check_not_being_written, writing

PAL = str(Path(sys.executable).with_name("pal"))


def one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


@pytest.mark.parametrize("command", [
    ["run", "drums", "--losses", "mse", "--iterations", "2", "--checkpoint-every", "2", "--no-progress", "--out"],
    ["report"],
    ["listen", "--results"],
    ["listen"],
])
def test_a_run_folder_being_written_is_refused(command, tmp_path, capsys):
    folder = tmp_path / "run"
    with writing(folder, "run"):
        arguments = [*command, str(folder)] if command[0] == "run" else [command[0], str(folder), *command[1:]]
        assert main(arguments) == 2
        err = one_line(capsys)
    assert f"process {os.getpid()} is writing this run folder" in err
    assert sorted(p.name for p in folder.iterdir()) == [LOCK_FILE]  # the refused command wrote nothing


@pytest.mark.parametrize("command", ["sweep", "summarize"])
def test_a_sweep_folder_being_written_is_refused(command, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    soundfile.write(data / "a.wav", 0.1 * np.sin(np.arange(9000) / 5.0), 11025)
    folder = tmp_path / "sweep"
    with writing(folder, "sweep"):
        arguments = ["sweep", str(data), "--out", str(folder), "--iterations", "2", "--checkpoint-every", "2",
                     "--no-progress"] if command == "sweep" else ["summarize", str(folder)]
        assert main(arguments) == 2
        assert f"process {os.getpid()} is writing this sweep folder" in one_line(capsys)


def test_the_lock_is_free_again_when_its_holder_is_done(tmp_path):
    folder = tmp_path / "run"
    with writing(folder, "run"):
        pass
    assert (folder / LOCK_FILE).read_text() == ""  # no stale holder named
    check_not_being_written(folder, "run")
    with writing(folder, "run"):  # a second writer, later, is welcome
        pass


def test_a_refused_new_folder_is_not_left_behind(tmp_path):
    folder = tmp_path / "new"
    with pytest.raises(RuntimeError):
        with writing(folder, "run"):
            raise RuntimeError("the command failed before writing anything")
    assert not folder.exists()


@pytest.mark.slow
def test_a_second_pal_run_waits_for_nothing_and_a_killed_holder_frees_the_folder(tmp_path, capsys):
    out = tmp_path / "run"
    holder = subprocess.Popen([PAL, "run", "drums", "--losses", "perceptual", "--iterations", "100000",
                               "--checkpoint-every", "100000", "--no-progress", "--out", str(out)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not ((out / "runs.json").exists() and (out / LOCK_FILE).read_text().strip()):
            assert time.monotonic() < deadline and holder.poll() is None
            time.sleep(0.2)
        same = ["run", "drums", "--losses", "perceptual", "--iterations", "100000", "--checkpoint-every", "100000",
                "--no-progress", "--out", str(out)]
        assert main(same) == 2
        assert f"process {holder.pid} is writing this run folder" in one_line(capsys)
        assert main([*same, "--force"]) == 2  # --force does not take a folder from its writer
        one_line(capsys)
        assert main(["report", str(out)]) == 2
        one_line(capsys)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert main(["report", str(out)]) == 0  # the kernel released the lock with the process
    assert "interrupted" in (out / "report.html").read_text()
