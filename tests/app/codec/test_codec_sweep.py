"""``pal sweep --codec GRID``: the grid cut into shards, each a pal codec run, merged into one codec
run folder; the local and Ray executors writing the same files."""

import csv
import os
from pathlib import Path

import pytest

from codec_corpus import small_corpus
from helpers import shard_contents
from pal.cli import main
from pal.codec.config import CodecConfig
from pal.codec.folder import CodecFolder
from pal.codec.train import CodecModel
from pal.sweeps.codec import plan_codec_shards
from pal.sweeps.run import run_codec_sweep

GRID = """
train = "{train}"
test = "{test}"
losses = ["mse", "l1"]
seeds = [0, 1]
width = [2]
bottleneck = 2
train_seconds = [3, "all"]
steps = 4
checkpoint_every = 2
batch_size = 2
segment_seconds = 0.1
judges = ["none"]
"""


@pytest.fixture(scope="module")
def grid(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("codec-grid")
    train, test = small_corpus(root / "corpus")
    path = root / "grid.toml"
    path.write_text(GRID.format(train=train, test=test))
    return path


@pytest.fixture(scope="module")
def local_sweep(grid, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("codec-local") / "sweep"
    assert main(["sweep", "--codec", str(grid), "--out", str(out), "--runs-per-task", "2", "--workers", "2",
                 "--no-progress"]) == 0
    return out


def test_shards_are_one_width_and_data_each_and_hold_every_model_once():
    grid = CodecConfig(losses=["mse", "l1", "mrstft"], seeds=[0, 1], width=[2, 4], train_seconds=[3.0, "all"])
    for per_task, expected in ((6, 4), (100, 4), (2, 12), (1, 24)):
        shards = plan_codec_shards(grid, per_task)
        assert len(shards) == expected
        assert all(shard.runs <= max(per_task, 1) for shard in shards)
        models = [m for shard in shards for m in shard.models()]
        assert sorted(models, key=repr) == sorted(
            (CodecModel(l, w, None if t == "all" else t, s) for w in (2, 4) for t in (3.0, "all")
             for l in ("mse", "l1", "mrstft") for s in (0, 1)), key=repr)
        assert len(set(models)) == len(models)


@pytest.mark.slow
def test_the_merged_folder_is_every_shards_models_and_measures(local_sweep):
    folder = CodecFolder(local_sweep)
    config, statuses, rows = folder.read_records()  # strict readers: every record of the run checked
    assert [s.model for s in statuses] == config.models() and len(statuses) == 8
    assert all(s.status == "finished" for s in statuses)
    shards = sorted((local_sweep / "shards").iterdir())
    assert len(shards) == 4
    merged = {}
    for shard in shards:
        part = CodecFolder(shard)
        for row in part.read_metrics():
            merged.setdefault(CodecModel(row["loss"], row["width"], row["train_seconds"], row["seed"]), []).append(row)
        for model in part.read_config().models():  # each decode is its shard's, byte for byte
            for name in part.read_config().file_names():
                for step in (2, 4):
                    assert folder.decode(model, name, step).read_bytes() == part.decode(model, name, step).read_bytes()
    # The merged table is each model's rows from its shard, in the grid's order of models.
    assert rows == [row for model in config.models() for row in merged[model]]
    assert config.losses == ["mse", "l1"] and config.width == [2] and config.train_seconds == [3.0, "all"]
    page = folder.page.read_text()
    from pal.codec.questions import best_cells

    for entry in best_cells(config, rows):  # the page's answers are the questions' own
        assert f"<tr><td>{entry.loss}</td><td>{len(entry.best)} of {entry.total}</td>" in page
    for model in config.models():  # the page plays the first seed's decodes
        assert (folder.relative(folder.decode(model, config.file_names()[0], 4)) in page) == (model.seed == 0)


@pytest.mark.slow
def test_compare_and_summarize_read_the_merged_folder(local_sweep, capsys):
    capsys.readouterr()
    assert main(["compare", str(local_sweep)]) == 0
    table = capsys.readouterr().out
    assert "mse w2 3s" in table and "l1 w2 all" in table
    assert main(["summarize", str(local_sweep)]) == 0
    out = capsys.readouterr().out
    assert "4 of 4 shard(s) finished" in out and f"page: {local_sweep / 'report.html'}" in out


@pytest.mark.slow
def test_rerunning_skips_every_shard_and_another_grid_is_refused(grid, local_sweep, tmp_path, capsys):
    outcome = run_codec_sweep(CodecConfig(**_settings(grid)), local_sweep, runs_per_task=2, progress=False)
    assert outcome.skipped == 4 and not outcome.failed
    other = tmp_path / "other.toml"
    other.write_text(grid.read_text().replace('["mse", "l1"]', '["mse"]'))
    capsys.readouterr()
    before = sorted(p.relative_to(local_sweep) for p in local_sweep.rglob("*"))
    assert main(["sweep", "--codec", str(other), "--out", str(local_sweep), "--runs-per-task", "2",
                 "--no-progress"]) != 0
    err = capsys.readouterr().err
    assert "holds a different sweep" in err and len(err.strip().splitlines()) == 1
    assert sorted(p.relative_to(local_sweep) for p in local_sweep.rglob("*")) == before


def _settings(grid: Path) -> dict:
    from pal.run.config import read_config_file

    return read_config_file(grid, CodecConfig)


@pytest.mark.parametrize("arguments, message", [
    (["some.wav"], "audio to sweep are for window sweeps"),
    (["--losses", "mse"], "--losses are for window sweeps"),
    (["--windows-per-clip", "3"], "--windows-per-clip are for window sweeps"),
])
def test_window_sweep_flags_with_a_grid_are_one_line(grid, tmp_path, capsys, arguments, message):
    code = main(["sweep", "--codec", str(grid), "--out", str(tmp_path / "s"), *arguments])
    err = capsys.readouterr().err
    assert code != 0 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("grid_text, message", [
    ('losses = ["mse"]\nwindow = 8192\n', "unknown key 'window'"),
    ('losses = ["mulaw"]\n', "a decoding loss"),
    ('train = "{missing}"\n', "no such"),
    ('width = [0]\n', "width"),
    ('train_seconds = [100000]\n', "train-seconds"),
])
def test_a_bad_grid_is_one_line_before_the_folder_is_touched(tmp_path, capsys, grid_text, message):
    path = tmp_path / "grid.toml"
    path.write_text(grid_text.format(missing=tmp_path / "missing"))
    code = main(["sweep", "--codec", str(path), "--out", str(tmp_path / "s"), "--no-progress"])
    err = capsys.readouterr().err
    assert code != 0 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "s").exists()


def test_a_sweep_without_audio_or_grid_is_one_line(tmp_path, capsys):
    assert main(["sweep", "--out", str(tmp_path / "s")]) != 0
    assert "or --codec GRID" in capsys.readouterr().err


def test_pal_codec_takes_the_grid_file_as_its_config(grid, tmp_path):
    from pal.codec.experiment import run_codec  # noqa: F401 (the same module pal codec runs)

    out = tmp_path / "codec"
    assert main(["codec", "--config", str(grid), "--out", str(out), "--steps", "2", "--checkpoint-every", "2",
                 "--no-progress"]) == 0
    config = CodecFolder(out).read_config()
    assert config.losses == ["mse", "l1"] and config.seeds == [0, 1] and config.steps == 2  # the flag over the file


@pytest.fixture(scope="module")
def ray_instance():
    if os.environ.get("CI"):
        import ray
    else:
        ray = pytest.importorskip("ray")
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_ray_writes_the_same_files_as_the_local_executor(grid, local_sweep, tmp_path, ray_instance):
    out = tmp_path / "sweep"
    outcome = run_codec_sweep(CodecConfig(**_settings(grid)), out, "ray", runs_per_task=2, progress=False)
    assert not outcome.failed and outcome.shards == 4
    assert shard_contents(out) == shard_contents(local_sweep)
    assert (out / "metrics.csv").read_bytes() == (local_sweep / "metrics.csv").read_bytes()
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert {(r["loss"], r["train_seconds"], r["seed"]) for r in rows} == {
        (l, t, s) for l in ("mse", "l1") for t in ("3s", "all") for s in ("0", "1")}


def test_the_research_grid_file_is_the_issues_grid():
    """conf/codec-grid.toml: every peer that trains a codec on its own, our losses but the post's
    (6.8x MR-STFT's step; its own file), 3 seeds, 2 widths, 3 amounts of data, and a valid config."""
    from pal.losses.peers import PEER_LOSSES
    from pal.run.config import read_config_file

    root = Path(__file__).resolve().parents[3]
    settings = read_config_file(root / "conf" / "codec-grid.toml", CodecConfig)
    settings.pop("out")
    grid = CodecConfig(**settings)
    grid.validate()
    alone = {name for name in PEER_LOSSES if "+" not in name and name != "mulaw"}  # mulaw decodes classes
    assert alone <= set(grid.losses) and {"mse", "l1", "auditory", "masked"} <= set(grid.losses)
    assert len(grid.seeds) == 3 and len(grid.width) >= 2 and len(grid.train_seconds) >= 3
    assert grid.train is None and grid.test is None  # the built-in corpus
