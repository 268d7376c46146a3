"""A codec folder with a damaged record: the same ``pal codec`` command refuses it in one line
naming the file, and leaves every byte of the folder as it was."""

import json

import pytest

from codec_corpus import quick_args, small_corpus
from pal.cli import main


def cut_last_line(path):
    data = path.read_bytes()
    path.write_bytes(data[:-3])


def not_json(path):
    path.write_text("{ not json")


def nan_value(path):
    lines = path.read_text().splitlines()
    fields = lines[1].split(",")
    fields[-1] = "nan"
    lines[1] = ",".join(fields)
    path.write_text("\n".join(lines) + "\n")


def extra_field(path):
    lines = path.read_text().splitlines()
    lines[1] += ",7"
    path.write_text("\n".join(lines) + "\n")


def wrong_models(path):
    runs = json.loads(path.read_text())
    path.write_text(json.dumps(runs[:-1]))


def garbage_state(path):
    path.write_bytes(b"not a torch file")


DAMAGE = {  # name: (file, what to do, what the line names)
    "metrics cut mid-line": ("metrics.csv", cut_last_line, "metrics.csv"),
    "metrics with nan": ("metrics.csv", nan_value, "metrics.csv"),
    "metrics with a field too many": ("metrics.csv", extra_field, "metrics.csv"),
    "runs not JSON": ("runs.json", not_json, "runs.json"),
    "runs of other models": ("runs.json", wrong_models, "runs.json"),
    "config not JSON": ("codec.json", not_json, "codec.json"),
    "loss history cut": ("models/mse/w4-all/seed-0/losses.csv", cut_last_line, "losses.csv"),
    "judges' cache not JSON": ("judged.json", not_json, "judged.json"),
}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    root = tmp_path_factory.mktemp("damaged")
    train, test = small_corpus(root / "corpus")
    out = root / "run"
    assert main(quick_args(train, test, out)) == 0
    (out / "judged.json").write_text("{}\n")
    return train, test, out


@pytest.mark.parametrize("case", DAMAGE)
def test_a_damaged_record_is_refused_and_the_folder_kept(case, finished, tmp_path, capsys):
    import shutil

    train, test, original = finished
    out = tmp_path / "run"
    shutil.copytree(original, out)
    name, damage, named = DAMAGE[case]
    damage(out / name)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    capsys.readouterr()
    assert main(quick_args(train, test, out)) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and named in error, error
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_a_damaged_state_is_refused_on_resume(tmp_path, capsys, monkeypatch):
    import pal.codec.folder as codec_folder

    train, test = small_corpus(tmp_path / "corpus")
    out = tmp_path / "run"
    original_save = codec_folder.save_state

    def save_then_die(path, state):
        original_save(path, state)
        raise KeyboardInterrupt

    monkeypatch.setattr(codec_folder, "save_state", save_then_die)
    assert main(quick_args(train, test, out)) == 130
    monkeypatch.setattr(codec_folder, "save_state", original_save)
    garbage_state(out / "state.pt")
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    capsys.readouterr()
    assert main(quick_args(train, test, out)) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "state.pt" in error and "--force" in error, error
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
