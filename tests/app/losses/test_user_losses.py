"""A user's own loss (from a file or a module) and registered losses with options, in `pal run`."""

import csv
import json

import numpy as np
import pytest
import soundfile

from perceptual_audio_loss import PerceptualLoss
from pal.cli import main
from pal.listening.design import load_stimuli
from pal.losses.specs import parse_option_value

from helpers import first_loss, original, untrained_output

USER_LOSS = '''
import torch
from torch import nn


class LogSpectralL1(nn.Module):
    """A user's loss: L1 between log-magnitude spectra, times ``scale``."""

    def __init__(self, sample_rate, scale=1.0):
        super().__init__()
        self.scale = scale

    def forward(self, input, target):
        def spectrum(x):
            x = x.reshape(-1, x.shape[-1])
            window = torch.hann_window(512, dtype=x.dtype, device=x.device)
            return torch.stft(x, 512, 128, window=window, return_complex=True).abs()

        return self.scale * (torch.log(spectrum(input) + 1e-5) - torch.log(spectrum(target) + 1e-5)).abs().mean()


def factory(sample_rate):
    return LogSpectralL1(sample_rate, scale=2.0)
'''


@pytest.fixture
def user_file(tmp_path):
    path = tmp_path / "somewhere" / "my_loss.py"
    path.parent.mkdir()
    path.write_text(USER_LOSS)
    return path


@pytest.mark.slow
def test_a_users_loss_is_trained_measured_paged_and_offered_to_listeners(tmp_path, user_file):
    out = tmp_path / "run"
    losses = f"mse,{user_file}:LogSpectralL1:scale=0.5,{user_file}:factory,perceptual:taps=128:n_bands=64"
    assert main(["run", "speech", "--losses", losses, "--iterations", "4", "--checkpoint-every", "2",
                 "--out", str(out), "--no-progress"]) == 0
    labels = ["mse", "my_loss.py:LogSpectralL1:scale=0.5", "my_loss.py:factory", "perceptual:taps=128:n_bands=64"]
    config = json.loads((out / "config.json").read_text())
    assert config["losses"] == labels
    assert config["loss_sources"][labels[1]]["options"] == {"scale": 0.5}
    assert config["loss_sources"][labels[3]]["options"] == {"taps": 128, "n_bands": 64}
    assert config["loss_sources"][labels[1]]["target"] == str(user_file.resolve())
    runs = json.loads((out / "runs.json").read_text())
    assert all(run["status"] == "finished" for run in runs) and len(runs) == 4
    # The first recorded loss is the untrained generator's, computed here independently.
    exec_globals = {}
    exec(compile(USER_LOSS, "user", "exec"), exec_globals)
    output, target = untrained_output(), original(out, "speech")
    assert first_loss(out, "speech", labels[1]) == pytest.approx(
        exec_globals["LogSpectralL1"](11025, scale=0.5)(output, target).item(), rel=1e-5)
    assert first_loss(out, "speech", labels[2]) == pytest.approx(
        2.0 * exec_globals["LogSpectralL1"](11025)(output, target).item(), rel=1e-5)
    assert first_loss(out, "speech", labels[3]) == pytest.approx(
        PerceptualLoss(11025, taps=128, n_bands=64)(output, target).item(), rel=1e-5)
    measured = {row["loss"] for row in csv.DictReader((out / "metrics.csv").open())}
    assert measured == set(labels)
    page = (out / "report.html").read_text()
    assert str(user_file.resolve()) in page and "scale=0.5" in page and "taps=128" in page
    stimuli = load_stimuli(out, "mushra")
    assert set(labels) <= set(stimuli.rated_conditions)
    preference = load_stimuli(out, "preference", compare=[labels[1], "mse"])
    assert set(preference.rated_conditions) == {labels[1], "mse"}


def test_a_users_loss_from_a_module(tmp_path, monkeypatch):
    package = tmp_path / "mylosses"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "spectral.py").write_text(USER_LOSS)
    monkeypatch.chdir(tmp_path)  # found as `python -m` would find it: from the working folder
    out = tmp_path / "run"
    assert main(["run", "drums", "--losses", "mylosses.spectral:factory", "--iterations", "2",
                 "--checkpoint-every", "2", "--out", str(out), "--no-progress"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["losses"] == ["mylosses.spectral:factory"]
    assert config["loss_sources"]["mylosses.spectral:factory"]["kind"] == "module"
    assert len(config["loss_sources"]["mylosses.spectral:factory"]["sha256"]) == 64


@pytest.mark.slow
def test_a_changed_loss_file_is_refused_on_resume(tmp_path, user_file, capsys):
    command = ["run", "drums", "--losses", f"{user_file}:factory", "--iterations", "2", "--checkpoint-every", "2",
               "--out", str(tmp_path / "run"), "--no-progress"]
    assert main(command) == 0
    assert main(command) == 0  # unchanged: already finished
    user_file.write_text(USER_LOSS.replace("scale=2.0", "scale=3.0"))
    capsys.readouterr()
    assert main(command) == 2
    err = capsys.readouterr().err
    assert "different configuration" in err and err.count("\n") == 1


BAD_FILES = {
    "not_a_module.py": ("def factory(sample_rate):\n    return 3\n", "factory", "not a torch.nn.Module"),
    "no_rate.py": ("from torch import nn\nclass L(nn.Module):\n    def __init__(self):\n        super().__init__()\n",
                   "L", "cannot be called as L(sample_rate)"),
    "one_argument.py": ("from torch import nn\nclass L(nn.Module):\n    def __init__(self, rate):\n        super().__init__()\n"
                        "    def forward(self, x):\n        return x.sum()\n", "L", "forward must take (input, target)"),
    "raises.py": ("from torch import nn\nclass L(nn.Module):\n    def __init__(self, rate):\n        super().__init__()\n"
                  "    def forward(self, x, y):\n        raise RuntimeError('boom')\n", "L", "raised RuntimeError on a noise pair: boom"),
    "not_scalar.py": ("from torch import nn\nclass L(nn.Module):\n    def __init__(self, rate):\n        super().__init__()\n"
                      "    def forward(self, x, y):\n        return (x - y).abs()\n", "L", "not a single value"),
    "broken.py": ("def (:\n", "L", "SyntaxError"),
}


@pytest.mark.parametrize("spec, message", [
    ("{dir}/missing.py:L", "no such file"),
    ("{dir}/not_a_module.py", "name the class or factory"),
    ("{dir}/not_a_module.py:nothing", "has no 'nothing'"),
    ("{dir}/not_a_module.py:factory:scale", "is not key=value"),
    ("no_such_package.losses:L", "no module named 'no_such_package'"),
    ("perceptul", "unknown loss 'perceptul'"),
    ("perceptual:bogus=1", "unexpected keyword argument 'bogus'"),
    ("perceptual:similarity=euclid", "similarity"),
    ("perceptual:taps=nan", "not a finite number"),
    ("mse,mse", "twice"),
    *[(f"{{dir}}/{name}:{attribute}", message) for name, (_, attribute, message) in BAD_FILES.items()],
])
def test_a_bad_loss_spec_is_one_line_and_writes_nothing(tmp_path, capsys, spec, message):
    for name, (source, _, _) in BAD_FILES.items():
        (tmp_path / name).write_text(source)
    out = tmp_path / "run"
    assert main(["run", "drums", "--losses", spec.format(dir=tmp_path), "--iterations", "2",
                 "--checkpoint-every", "2", "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize("text, value", [("3", 3), ("-2", -2), ("0.5", 0.5), ("1e-3", 1e-3), ("true", True),
                                         ("False", False), ("mse", "mse")])
def test_option_values_are_read_as_numbers_booleans_or_strings(text, value):
    parsed = parse_option_value(text)
    assert parsed == value and type(parsed) is type(value)


@pytest.mark.slow
def test_a_users_loss_trains_reproducibly(tmp_path, user_file):
    """The probe call before training leaves no trace: two runs write the same bytes."""
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        assert main(["run", "drums", "--losses", f"{user_file}:factory", "--iterations", "2", "--checkpoint-every", "2",
                     "--out", str(out), "--no-progress"]) == 0
    wav = "clips/drums/my_loss.py:factory/seed-0/iter-0002.wav"
    assert (a / wav).read_bytes() == (b / wav).read_bytes()
    assert np.all(np.isfinite(soundfile.read(str(a / wav))[0]))
