"""One configuration: every setting declared once in ExperimentConfig; pal run's and pal sweep's
flags, their defaults and help, and the TOML keys come from those declarations."""

import pytest

from pal.cli import build_parser, main
from pal.run.config import CHECKS, ExperimentConfig, default_of, flagged_settings, settings_fields
from pal.sweeps import SweepSettings
from pal.sweeps.run import _recorded as recorded_sweep_settings
from pal.run.train import _adam


def options(command: str) -> dict:
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command")
    return {a.dest: a for a in subparsers.choices[command]._actions}


def test_run_and_sweep_take_the_same_training_flags_with_the_same_meaning():
    run, sweep = options("run"), options("sweep")
    shared = [declared.name for declared in flagged_settings("sweep")]
    assert {"losses", "seeds", "iterations", "checkpoint_every", "device", "speech", "pad", "learning_rate",
            "betas"} <= set(shared)
    for name in shared:
        assert run[name].option_strings == sweep[name].option_strings
        assert run[name].help == sweep[name].help and run[name].default is sweep[name].default is None


def test_every_default_lives_in_the_declaration():
    run = options("run")
    for declared in flagged_settings("run"):
        default = default_of(declared.name)
        if default is not None and not isinstance(default, bool):
            shown = ",".join(map(str, default)) if isinstance(default, list) else str(default)
            assert f"(default {shown})" in run[declared.name].help
    sweep = SweepSettings()
    for name in ("losses", "seeds", "iterations", "checkpoint_every", "device", "speech", "pad", "learning_rate",
                 "betas", "sample_rate", "window"):
        assert getattr(sweep, name) == getattr(ExperimentConfig(), name)


def test_the_toml_keys_are_the_declared_settings():
    assert set(CHECKS) == {declared.name for declared in settings_fields()}


def test_the_posts_optimiser_is_the_default_and_configurable():
    # the 2018 experiment's Adam: lr 1e-4, betas (0, 0.9)
    import torch

    weight = torch.nn.Parameter(torch.zeros(3))
    assert _adam([weight], None, None).defaults["lr"] == 1e-4
    assert _adam([weight], None, None).defaults["betas"] == (0.0, 0.9)
    assert _adam([weight], 3e-4, [0.5, 0.99]).defaults["betas"] == (0.5, 0.99)


def test_a_changed_optimiser_joins_the_identity_and_the_default_does_not():
    # folders written before the optimiser was configurable keep their identity, so they resume
    assert set(ExperimentConfig().identity()) == {"clips", "losses", "iterations", "checkpoint_every", "seeds",
                                                   "sample_rate", "window", "offset_seconds", "pad"}
    assert ExperimentConfig(learning_rate=3e-4).identity()["learning_rate"] == 3e-4
    assert ExperimentConfig(betas=[0.5, 0.9]).identity()["betas"] == [0.5, 0.9]


@pytest.mark.parametrize("flags, message", [
    (["--learning-rate", "nan"], "--learning-rate must be a finite number above 0 and at most 1, got nan"),
    (["--learning-rate", "0"], "--learning-rate must be a finite number above 0 and at most 1, got 0.0"),
    (["--betas", "1,0.9"], "--betas must be 2 values, each a finite number at least 0 and below 1, got '1,0.9'"),
    (["--betas", "0.1"], "--betas must be 2 values, each a finite number at least 0 and below 1, got '0.1'"),
])
def test_bad_optimiser_settings_are_one_line(flags, message, tmp_path, capsys):
    assert main(["run", "drums", "--out", str(tmp_path / "run"), *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_a_plan_saved_with_speech_as_true_or_false_reads_as_today():
    assert SweepSettings(speech=True).speech == ["*"] and SweepSettings(speech=False).speech == []
    saved = {"losses": ["mse"], "seeds": [0], "speech": False, "device": "cpu"}
    assert recorded_sweep_settings(SweepSettings(**saved)) == recorded_sweep_settings(
        SweepSettings(losses=["mse"], seeds=[0], speech=[], device="cpu"))


@pytest.mark.parametrize("learning_rate", [1e-4, 1e-3])
def test_the_configured_learning_rate_is_the_first_step(learning_rate):
    """With beta1 = 0, Adam's first step moves each weight by lr * g / (|g| + eps): at most lr,
    and lr itself wherever the gradient is not tiny."""
    import torch

    from perceptual_audio_loss import build_loss
    from pal.run.train import RunSpec, TrainHooks, TrainSettings, train_batched

    states = []
    target = torch.sin(torch.arange(8192) / 7.0).view(1, 1, -1)
    train_batched(target, [RunSpec(0, "mse", 0)], {"mse": build_loss("mse", 11025)},
                  TrainSettings(1, 1, learning_rate=learning_rate, betas=[0.0, 0.9]), TrainHooks(on_save=states.append))
    before = []
    train_batched(target, [RunSpec(0, "mse", 0)], {"mse": build_loss("mse", 11025)},
                  TrainSettings(1, 1, learning_rate=1e-30, betas=[0.0, 0.9]), TrainHooks(on_save=before.append))
    steps = torch.cat([(a - b).abs().flatten() for a, b in zip(states[0]["weights"], before[0]["weights"])])
    assert steps.max().item() == pytest.approx(learning_rate, rel=1e-3)
    assert (steps <= learning_rate * (1 + 1e-3)).all()


@pytest.mark.parametrize("flags, message", [
    (["--offset", "nan"], "--offset must be a finite number from 0 to 10000000, got nan"),
    (["--offset", "inf"], "--offset must be a finite number from 0 to 10000000, got inf"),
    (["--offset", "-1"], "--offset must be a finite number from 0 to 10000000, got -1.0"),
    (["--iterations", "1000000000000"], "--iterations must be an integer from 1 to 10000000"),
    (["--iterations", "0"], "--iterations must be an integer from 1 to 10000000"),
    (["--iterations", "1000000", "--checkpoint-every", "1"], "would write 1000000 checkpoints per run"),
])
def test_numbers_that_are_not_finite_or_not_sane_are_one_line_and_write_nothing(flags, message, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "drums", "--out", str(out), "--no-progress", *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not out.exists()


@pytest.mark.parametrize("toml", [
    "offset_seconds = nan\n", "offset_seconds = inf\n", "iterations = 100000000000\n", "learning_rate = -1.0\n",
    "betas = [0.5]\n", "iterations = 1e3\n", "= broken\n", "\x00",
])
def test_a_config_file_with_an_absurd_or_broken_value_is_one_line(toml, tmp_path, capsys):
    config = tmp_path / "bad.toml"
    config.write_text(toml)
    out = tmp_path / "run"
    assert main(["run", "drums", "--config", str(config), "--out", str(out), "--no-progress"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert not out.exists()
