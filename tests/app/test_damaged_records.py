"""Every record, every kind of damage: one line naming the file, exit 2, no
traceback, nothing already written lost; ``pal report`` still rebuilds a finished run's page
when what is damaged is only a table the page can leave out.

The cases are generated: each record file (a run's ``config.json``, ``runs.json``, ``metrics.csv``,
a run's ``losses.csv`` and ``peaks.json``, ``state.pt``; a sweep's ``sweep.json`` and a shard's
``metrics.csv``; a TOML config) crossed with each damage that can befall it (empty, binary
garbage, truncated, the wrong JSON shape, a field of the wrong type, a bad value in a CSV, nesting
deep enough to exhaust Python's stack), each read by the command that reads it.
"""

import io
import json
import shutil
from pathlib import Path

import pytest
import torch

from pal.cli import main
from pal.sweeps import SweepSettings, run_sweep

GARBAGE = b"\x00\x01not what pal wrote\xff\xfe" * 40
DEEP = b"[" * 200_000 + b"]" * 200_000  # deeper than Python's recursion limit, as JSON


def finished_run_command(out: Path) -> list[str]:
    return ["run", "speech", "drums", "--losses", "mse,perceptual", "--iterations", "2", "--checkpoint-every", "1",
            "--out", str(out), "--no-progress"]


def interrupted_run_command(out: Path, seed: int = 0) -> list[str]:
    return ["run", "drums", "--losses", "mse", "--iterations", "4", "--checkpoint-every", "1", "--seed", str(seed),
            "--out", str(out), "--no-progress"]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_nothing_lost(before: dict[str, bytes], after: dict[str, bytes], damaged: str, rebuilt=()) -> None:
    """Every file there before is there after, unchanged, but the damaged one (left as it was
    damaged) and what the command rebuilds from the records (the page and its images)."""
    assert set(before) <= set(after), f"lost: {set(before) - set(after)}"
    for name, content in before.items():
        if name != damaged and not name.endswith(".png") and name not in rebuilt:
            assert after[name] == content, f"{name} changed"


def every_damage(records: dict) -> list[tuple[str, str]]:
    """``(file, damage)`` for each damage of each file of ``records`` (file -> damage -> edit)."""
    return [(name, damage) for name, damages in records.items() for damage in damages]


def damage_in(folder: Path, name: str, edit) -> tuple[Path, dict[str, bytes]]:
    """``folder / name`` rewritten by ``edit(content)``; its path and a snapshot of the folder after."""
    path = folder / name
    path.write_bytes(edit(path.read_bytes()))
    return path, snapshot(folder)


def one_line_naming(capsys, path: Path) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("pal: error: "), err
    assert "Traceback" not in err
    assert str(path) in err, err
    return err


# -- the damage ----------------------------------------------------------------------------------


def truncated(content: bytes) -> bytes:
    """Cut inside the first data line of a CSV, before its last field (a cut inside a number
    can leave a shorter number, which nothing but a checksum could tell); half of anything else."""
    lines = content.splitlines()
    if len(lines) > 2 and b"," in lines[1]:
        return lines[0] + b"\n" + lines[1][: lines[1].index(b",") + 1]
    return content[: len(content) // 2]


def json_edit(change):
    def damage(content: bytes) -> bytes:
        value = json.loads(content)
        change(value)
        return json.dumps(value).encode()

    return damage


def csv_field(column: str, bad: str, metric: str | None = None):
    """The first data row's ``column`` (of the first row of ``metric``) replaced by ``bad``."""

    def damage(content: bytes) -> bytes:
        lines = content.decode().splitlines()
        header = lines[0].split(",")
        row = next(i for i, line in enumerate(lines[1:], 1) if metric is None or f",{metric}," in line)
        fields = lines[row].split(",")
        fields[header.index(column)] = bad
        lines[row] = ",".join(fields)
        return ("\n".join(lines) + "\n").encode()

    return damage


def csv_row(change):
    """The first data row's fields changed by ``change(fields) -> fields`` (one missing, one more)."""

    def damage(content: bytes) -> bytes:
        lines = content.decode().splitlines()
        lines[1] = ",".join(change(lines[1].split(",")))
        return ("\n".join(lines) + "\n").encode()

    return damage


def cut_in_last_number(content: bytes) -> bytes:
    """The last line cut inside its last number: what is left still reads as a (shorter) number,
    and only the missing line end tells."""
    return content.rstrip(b"\r\n")[:-1]


COMMON = {"empty": lambda c: b"", "garbage": lambda c: GARBAGE, "truncated": truncated}
CSV = {"cut inside the last number": cut_in_last_number, "a field missing": csv_row(lambda f: f[:-1]),
       "a field more": csv_row(lambda f: f + ["1"])}


def _set(key, value, index=None):
    def change(record):
        (record[index] if index is not None else record)[key] = value

    return change


def _first_shard_name(value):
    def change(record):
        record["shards"][0]["name"] = value

    return change


RUN_RECORDS = {
    "config.json": {**COMMON, "wrong shape": lambda c: b"[]", "deep": lambda c: DEEP,
                    "iterations as text": json_edit(_set("iterations", "2")),
                    "checkpoint every 0": json_edit(_set("checkpoint_every", 0)),
                    "losses not a list": json_edit(_set("losses", {"mse": 1})),
                    "a clip that cannot name a folder": json_edit(_set("clip_names", ["speech", ""])),
                    "identity not an object": json_edit(_set("identity", [1]))},
    "runs.json": {**COMMON, "wrong shape": lambda c: b'{"runs": []}', "deep": lambda c: DEEP,
                  "a run not an object": lambda c: b"[1, 2]",
                  "checkpoints as text": json_edit(_set("checkpoints", "1,2", 0)),
                  "a checkpoint the run never saves": json_edit(_set("checkpoints", [1, 999], 0)),
                  "a checkpoint list of lists": json_edit(_set("checkpoints", [[1]], 0)),
                  "an unknown status": json_edit(_set("status", "done", 0)),
                  "a seed as text": json_edit(_set("seed", "0", 0)),
                  "a loss the run does not hold": json_edit(_set("loss", "l1", 0))},
    "metrics.csv": {**COMMON, **CSV, "wrong shape": lambda c: b'{"clip": "speech"}\n',
                    "value not a number": csv_field("value", "abc"),
                    "nan where the measure is finite": csv_field("value", "nan", metric="lsd_overall_db"),
                    "inf where the measure is finite": csv_field("value", "inf", metric="mrstft"),
                    "-inf for an SNR": csv_field("value", "-inf", metric="snr_db"),
                    "iteration not an integer": csv_field("iteration", "1.5"),
                    "seed as text": csv_field("seed", "zero"),
                    "a checkpoint the run never saves": csv_field("iteration", "7")},
    "clips/speech/mse/seed-0/losses.csv": {**COMMON, **CSV, "wrong shape": lambda c: b"[1, 2, 3]\n",
                                           "loss not a number": csv_field("loss", "0.1x"),
                                           "iteration not an integer": csv_field("iteration", "one")},
}
PEAKS = {"clips/speech/mse/seed-0/peaks.json": {**COMMON, "wrong shape": lambda c: b"[1.0]",
                                               "a peak that is not finite": json_edit(_set("1", float("nan"))),
                                               "a peak as text": json_edit(_set("1", "loud"))}}
# Tables the page can be built without: pal report rebuilds it, names them, and exits 2.
PAGE_WITHOUT = {"metrics.csv", "clips/speech/mse/seed-0/losses.csv"}


@pytest.mark.parametrize("name, damage", every_damage(RUN_RECORDS))
def test_pal_report_on_a_damaged_record(run, name, damage, capsys):
    page = run / "report.html"
    page.write_text("the page before")
    path, before = damage_in(run, name, RUN_RECORDS[name][damage])
    assert main(["report", str(run)]) == 2
    err = one_line_naming(capsys, path)
    assert "damaged" in err
    assert_nothing_lost(before, snapshot(run), name, rebuilt=("report.html",))
    if name in PAGE_WITHOUT:  # rebuilt, and it says what it left out
        text = page.read_text()
        assert "the page before" not in text and "Damaged records" in text and name.split("/")[-1] in text
        assert "rebuilt without it" in err
    else:
        assert page.read_text() == "the page before"


def _listen_without_serving(monkeypatch):
    import pal.listening.server as server

    monkeypatch.setattr(server, "serve", lambda *args: pytest.fail("a damaged run was served"))


# Every reader of a finished run's records but pal report (above, which may rebuild the page
# without a table): the command's arguments after the run folder, and what it must not touch.
READERS = {
    "pal compare": lambda run: ["compare", str(run)],
    "pal listen": lambda run: ["listen", str(run)],
    "pal listen --results": lambda run: ["listen", str(run), "--results"],
    "the same pal run": finished_run_command,
}
EVERY_RUN_RECORD = {**RUN_RECORDS, **PEAKS}


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("name, damage", every_damage(EVERY_RUN_RECORD))
def test_every_reader_refuses_every_damaged_run_record(run, reader, name, damage, capsys, monkeypatch):
    """One line naming the file (and the line, in a table), exit 2, the folder untouched."""
    _listen_without_serving(monkeypatch)
    path, before = damage_in(run, name, EVERY_RUN_RECORD[name][damage])
    assert main(READERS[reader](run)) == 2
    err = one_line_naming(capsys, path)
    assert "damaged" in err
    if name.endswith(".csv") and damage not in COMMON and damage != "wrong shape":
        assert "line " in err, err
    assert snapshot(run) == before


def test_a_damaged_run_record_is_replaced_with_force(run, capsys):
    (run / "config.json").write_bytes(b"[]")
    assert main(finished_run_command(run)) == 2
    assert "--force" in capsys.readouterr().err
    assert main([*finished_run_command(run), "--force"]) == 0
    assert json.loads((run / "config.json").read_text())["losses"] == ["mse", "perceptual"]


# -- a resume's records: the training state and the checkpoints' peaks ------------------------------


def _state_bytes(value) -> bytes:
    buffer = io.BytesIO()
    torch.save(value, buffer)
    return buffer.getvalue()


def _state_edit(change):
    def damage(content: bytes) -> bytes:
        state = torch.load(io.BytesIO(content), weights_only=True)
        change(state)
        return _state_bytes(state)

    return damage


RESUME_RECORDS = {
    "state.pt": {**COMMON, "wrong shape": lambda c: _state_bytes([1, 2, 3]),
                 "latents as a list": _state_edit(_set("latents", [0.0])),
                 "an iteration past the run": _state_edit(_set("iteration", 99)),
                 "a history of other runs": _state_edit(lambda s: s.update(history=torch.zeros(2, 5))),
                 "failures of a run that is not there": _state_edit(_set("failures", [[7, 1, "x"]]))},
    "clips/drums/mse/seed-0/peaks.json": {**COMMON, "wrong shape": lambda c: b"[1.0]",
                                          "a peak that is not finite": json_edit(_set("1", float("nan"))),
                                          "a peak as text": json_edit(_set("1", "loud")),
                                          "an iteration that is not one": json_edit(_set("x", 1.0))},
}


@pytest.fixture
def interrupted(tmp_path, capsys, stop_after_saving):
    out = tmp_path / "run"
    stop_after_saving(2)
    assert main(interrupted_run_command(out)) == 130
    capsys.readouterr()
    return out


@pytest.mark.parametrize("name, damage", every_damage(RESUME_RECORDS))
def test_a_resume_on_a_damaged_record(interrupted, name, damage, capsys):
    path, before = damage_in(interrupted, name, RESUME_RECORDS[name][damage])
    assert main(interrupted_run_command(interrupted)) == 2
    one_line_naming(capsys, path)
    # The resume rewrites its records (the same) and may write checkpoints past the saved state
    # before it reaches the damaged record; nothing there before is lost or changed.
    assert_nothing_lost(before, snapshot(interrupted), name, rebuilt=("report.html", "runs.json"))


def test_a_training_state_of_another_run_is_refused(interrupted, tmp_path, capsys, stop_after_saving):
    other = tmp_path / "other"
    stop_after_saving(2)
    assert main(interrupted_run_command(other, seed=1)) == 130  # the same shape: one run, 4 iterations
    capsys.readouterr()
    shutil.copy(other / "state.pt", interrupted / "state.pt")
    before = snapshot(interrupted)
    assert main(interrupted_run_command(interrupted)) == 2
    err = one_line_naming(capsys, interrupted / "state.pt")
    assert "another run" in err and "--force" in err
    assert_nothing_lost(before, snapshot(interrupted), "state.pt", rebuilt=("runs.json",))


# -- a sweep's plan and a shard's measures -----------------------------------------------------------


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    from pal.clips import builtin_clip
    import soundfile

    data = tmp_path_factory.mktemp("data")
    samples, rate = builtin_clip("drums")
    soundfile.write(str(data / "drums.wav"), samples, rate)
    out = tmp_path_factory.mktemp("sweep") / "sweep"
    settings = SweepSettings(losses=["mse"], seeds=[0], iterations=2, checkpoint_every=1, runs_per_task=1)
    outcome = run_sweep([str(data)], settings, out, "local", workers=1, progress=False)
    assert not outcome.failed
    return out


SWEEP_RECORDS = {
    "sweep.json": {**COMMON, "wrong shape": lambda c: b"[]", "deep": lambda c: DEEP,
                   "settings not an object": json_edit(_set("settings", "mse")),
                   "an unknown setting": json_edit(lambda r: r["settings"].update(colour="red")),
                   "iterations as text": json_edit(lambda r: r["settings"].update(iterations="2")),
                   "a window without a name": json_edit(lambda r: r["windows"][0].pop("name")),
                   "a shard named as a path": json_edit(_first_shard_name("../../elsewhere")),
                   "a shard of a window not planned": json_edit(lambda r: r["shards"][0].update(windows=["x"])),
                   "shards not a list": json_edit(_set("shards", {"shard-0000": {}}))},
    "shards/shard-0000/metrics.csv": {**COMMON, **CSV, "wrong shape": lambda c: b"[]\n",
                                      "nan where the measure is finite": csv_field("value", "nan", metric="mrstft"),
                                      "value not a number": csv_field("value", "n/a"),
                                      "a window of another shard": csv_field("clip", "piano")},
}


@pytest.mark.parametrize("name, damage", every_damage(SWEEP_RECORDS))
def test_pal_summarize_on_a_damaged_record(sweep, tmp_path, name, damage, capsys):
    copy = tmp_path / "sweep"
    shutil.copytree(sweep, copy)
    path, before = damage_in(copy, name, SWEEP_RECORDS[name][damage])
    assert main(["summarize", str(copy)]) == 2
    err = one_line_naming(capsys, path)
    assert "damaged" in err
    assert_nothing_lost(before, snapshot(copy), name)
    assert not (tmp_path / "elsewhere").exists()


# -- a TOML config: refused before any folder is made ------------------------------------------------


TOML = {
    "no clips": b"clips = []\n",
    "no losses": b"losses = []\n",
    "an empty clip name": b'clips = ["drums", " "]\n',
    "nested arrays": b"iterations = " + b"[" * 100_000 + b"]" * 100_000 + b"\n",
    "nested tables": b"x = " + b"{a = " * 100_000 + b"1" + b"}" * 100_000 + b"\n",
    "garbage": GARBAGE,
    "truncated": b'losses = ["mse", "perc',
}


@pytest.mark.parametrize("case", TOML)
def test_a_damaged_toml_config_is_one_line_and_no_folder(tmp_path, case, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "experiment.toml"
    config.write_bytes(TOML[case])
    assert main(["run", "--config", str(config), "--out", str(tmp_path / "out"), "--iterations", "1",
                 "--checkpoint-every", "1", "--no-progress"]) == 2
    one_line_naming(capsys, config)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["experiment.toml"]
