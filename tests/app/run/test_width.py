"""The generator's hidden width (--width): the post's 32 by default, part of a run's identity when
changed, and folders recorded before the setting existed still read (and resume) as 32."""

import json

import soundfile

from pal.cli import main
from pal.clips import builtin_clip
from pal.run.config import ExperimentConfig
from pal.run.folder import RunFolder


def hand_count(width: int) -> int:
    """The generator's weights counted from the post's architecture: bias-free Conv1d layers
    128 -> w (kernel 3), w -> w (15), four w -> w (25), w -> 1 (25)."""
    return 128 * width * 3 + width * width * 15 + 4 * width * width * 25 + width * 1 * 25


def run(out, *flags) -> int:
    try:
        return main(["run", "drums", "--losses", "mse", "--iterations", "2", "--checkpoint-every", "1",
                     "--out", str(out), "--no-progress", *flags])
    except SystemExit as exit:  # the parser's refusal of a value that is not an integer
        return exit.code


def test_a_run_of_width_8_trains_generators_of_that_size_and_records_it(tmp_path):
    out = tmp_path / "run"
    assert run(out, "--width", "8") == 0
    state = RunFolder(out).load_state()
    assert sum(weight.numel() for weight in state["weights"]) == hand_count(8) == 10_632
    recorded = json.loads((out / "config.json").read_text())
    assert recorded["width"] == 8 and recorded["identity"]["width"] == 8
    assert RunFolder(out).read_config().width == 8
    assert "8 channels in each hidden layer" in (out / "report.html").read_text()


def test_the_default_is_the_posts_32_and_stays_out_of_the_identity():
    from pal.run.generator import seeded_generator_and_latent

    assert ExperimentConfig().width == 32 and "width" not in ExperimentConfig().identity()
    assert ExperimentConfig(width=8).identity()["width"] == 8
    model, _ = seeded_generator_and_latent(0)
    assert sum(p.numel() for p in model.parameters()) == hand_count(32)


def test_a_folder_recorded_before_the_setting_reads_as_32_and_resumes(tmp_path, stop_after_saving, capsys):
    out = tmp_path / "run"
    stop_after_saving(1)
    try:
        run(out)
    except KeyboardInterrupt:
        pass
    recorded = json.loads((out / "config.json").read_text())
    del recorded["width"]  # as pal wrote it before --width existed
    (out / "config.json").write_text(json.dumps(recorded))
    assert RunFolder(out).read_config().width == 32
    assert run(out, "--width", "8") == 2  # another width is another configuration
    assert "different configuration" in capsys.readouterr().err
    assert run(out) == 0  # the same command resumes it
    assert RunFolder(out).load_state()["iteration"] == 2
    assert sum(weight.numel() for weight in RunFolder(out).load_state()["weights"]) == hand_count(32)


def test_a_width_out_of_range_is_one_line_naming_the_flag(tmp_path, capsys):
    for width in ("0", "1025", "2.5"):
        code = run(tmp_path / "run", "--width", width)
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and "--width" in err, err
    assert not (tmp_path / "run").exists()
    config = tmp_path / "config.toml"
    config.write_text("width = 0\n")
    assert main(["run", "drums", "--config", str(config), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "'width' must be an integer from 1 to 1024" in err and err.count("\n") == 1


def test_a_sweep_takes_the_width_to_its_shards(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    samples, rate = builtin_clip("drums")
    soundfile.write(str(data / "drums.wav"), samples, rate)
    out = tmp_path / "sweep"
    assert main(["sweep", str(data), "--out", str(out), "--losses", "mse", "--seeds", "0", "--iterations", "1",
                 "--checkpoint-every", "1", "--width", "8", "--no-progress"]) == 0
    assert json.loads((out / "sweep.json").read_text())["settings"]["width"] == 8
    shards = [folder for folder in (out / "shards").iterdir() if (folder / "config.json").is_file()]
    assert shards and all(RunFolder(shard).read_config().width == 8 for shard in shards)
    assert all(RunFolder(shard).read_identity()["width"] == 8 for shard in shards)
