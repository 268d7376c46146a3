"""Damaged folders are named: every reader of a run or sweep folder says which file is
damaged, in one line with exit 2, or marks a damaged or missing checkpoint on the page; nothing is
reported as finished that is not there."""

import json

import numpy as np
import pytest

from pal.cli import main
from pal.core.errors import UserError
from pal.sweeps.shard import SWEEP_FILE, TARGETS_FILE, load_plan

GARBAGE = b"\x00\x01not what pal wrote\xff" * 40


def one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


@pytest.mark.parametrize("problem", ["missing", "damaged"])
def test_a_lost_checkpoint_is_marked_on_the_page_and_the_run_not_called_finished(run, problem, capsys):
    wav = run / "clips" / "speech" / "perceptual" / "seed-0" / "iter-0001.wav"
    if problem == "missing":
        wav.unlink()
    else:
        wav.write_bytes(GARBAGE)
    assert main(["report", str(run)]) == 0
    page = (run / "report.html").read_text()
    assert "clips/speech/perceptual/seed-0/iter-0001.wav is " + problem in page
    assert "Not every run finished" in page and "speech/perceptual" in page
    assert 'data-audio="clips/speech/perceptual/seed-0/iter-0001.wav"' not in page  # no silent player
    assert 'data-audio="clips/speech/perceptual/seed-0/iter-0002.wav"' in page  # the rest still play


@pytest.mark.parametrize("name, words", [
    ("clips/drums/original.wav", "missing or damaged"),
    ("runs.json", "damaged run record"),
    ("config.json", "damaged run configuration"),
])
@pytest.mark.parametrize("how", ["garbage", "empty"])
def test_a_damaged_record_is_one_line_naming_it(run, name, words, how, capsys):
    (run / name).write_bytes(GARBAGE if how == "garbage" else b"")
    assert main(["report", str(run)]) == 2
    err = one_line(capsys)
    assert name.split("/")[-1] in err and words in err


@pytest.mark.parametrize("command", [["listen", "--results"], ["listen", "--port", "0"]])
def test_a_damaged_ratings_store_is_one_line(run, command, capsys):
    (run / "listening.sqlite").write_bytes(GARBAGE)
    arguments = [command[0], str(run), *command[1:]]
    if command[1] == "--port":
        arguments = [command[0], str(run), "--port", "65431"]
    assert main(arguments) == 2
    err = one_line(capsys)
    assert "listening.sqlite" in err and "damaged" in err


def test_a_damaged_sweep_plan_is_one_line(tmp_path, capsys):
    (tmp_path / SWEEP_FILE).write_text("{ not json")
    assert main(["summarize", str(tmp_path)]) == 2
    assert "damaged sweep plan" in one_line(capsys)


@pytest.mark.parametrize("content", [GARBAGE, b""])
def test_damaged_sweep_targets_are_named(tmp_path, content):
    (tmp_path / SWEEP_FILE).write_text(json.dumps({"settings": {}, "windows": [], "shards": []}))
    (tmp_path / TARGETS_FILE).write_bytes(content)
    with pytest.raises(UserError, match="targets are missing or damaged"):
        load_plan(tmp_path)


def test_sweep_targets_without_a_planned_window_are_named(tmp_path):
    window = {"name": "a", "source": "a.wav", "offset_samples": 0}
    (tmp_path / SWEEP_FILE).write_text(json.dumps({"settings": {}, "windows": [window], "shards": []}))
    np.savez(tmp_path / TARGETS_FILE, b=np.zeros(4))
    with pytest.raises(UserError, match="lack window 'a'"):
        load_plan(tmp_path)


def test_a_resume_reverifies_the_checkpoints_it_keeps(tmp_path, capsys, stop_after_saving):
    out = tmp_path / "run"
    args = ["run", "drums", "--losses", "mse", "--iterations", "4", "--checkpoint-every", "1", "--out", str(out),
            "--no-progress"]
    stop_after_saving(2)
    assert main(args) == 130
    capsys.readouterr()
    kept = out / "clips" / "drums" / "mse" / "seed-0" / "iter-0001.wav"
    kept.write_bytes(GARBAGE)
    assert main(args) == 2
    err = one_line(capsys)
    assert "iter-0001.wav: damaged checkpoint" in err and "--force" in err
    assert main([*args, "--force"]) == 0
