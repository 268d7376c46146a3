"""``pal run`` on CUDA where the CPU has a test: a resumed run, a user's loss, the starting point.

Skipped without a CUDA device; run by ``scripts/gpu-check`` (``pytest -k cuda``). The training
itself against the CPU's is ``test_train_batched.test_batched_training_on_cuda_matches_the_cpu``.
"""

import json

import pytest
import torch

from perceptual_audio_loss import build_loss
from pal.cli import main

from helpers import first_loss, original, untrained_output

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")

CUDA = "cuda"

USER_LOSS = '''
import torch
from torch import nn


class SpectralL1(nn.Module):
    """A user's loss, written for any device: L1 between log-magnitude spectra."""

    def __init__(self, sample_rate):
        super().__init__()

    def forward(self, input, target):
        def spectrum(x):
            x = x.reshape(-1, x.shape[-1])
            window = torch.hann_window(512, dtype=x.dtype, device=x.device)
            return torch.stft(x, 512, 128, window=window, return_complex=True).abs()

        return (torch.log(spectrum(input) + 1e-5) - torch.log(spectrum(target) + 1e-5)).abs().mean()
'''


def test_pal_run_on_cuda_with_a_users_loss_starts_where_the_cpu_starts(tmp_path):
    """The first recorded loss is of the untrained generator, the same weights on either device:
    on CUDA it is the CPU's value within float32 rounding (1e-5 relative, as derived in
    test_train_batched), for library losses and a user's loss from a file alike."""
    user_file = tmp_path / "my_loss.py"
    user_file.write_text(USER_LOSS)
    out = tmp_path / "run"
    assert main(["run", "drums", "--losses", f"mse,perceptual,masked,{user_file}:SpectralL1", "--iterations", "2",
                 "--checkpoint-every", "2", "--device", CUDA, "--out", str(out), "--no-progress"]) == 0
    assert json.loads((out / "config.json").read_text())["resolved_device"].startswith(CUDA)
    runs = json.loads((out / "runs.json").read_text())
    assert len(runs) == 4 and all(run["status"] == "finished" for run in runs)
    output, target = untrained_output(), original(out, "drums")
    namespace = {}
    exec(compile(USER_LOSS, "user", "exec"), namespace)
    on_the_cpu = {name: build_loss(name, 11025)(output, target).item() for name in ("mse", "perceptual", "masked")}
    on_the_cpu["my_loss.py:SpectralL1"] = namespace["SpectralL1"](11025)(output, target).item()
    for label, expected in on_the_cpu.items():
        assert first_loss(out, "drums", label) == pytest.approx(expected, rel=1e-5), label


def test_resume_on_cuda_is_bit_identical_to_an_uninterrupted_cuda_run(tmp_path, capsys, stop_after_saving):
    """Interrupted after the state at iteration 4 is saved, then resumed: every checkpoint and
    record equals, byte for byte, those of the same command run straight through on CUDA."""
    command = ["run", "drums", "--losses", "mse,perceptual", "--iterations", "8", "--checkpoint-every", "4",
               "--device", CUDA, "--no-progress"]
    resumed, straight = tmp_path / "resumed", tmp_path / "straight"
    stop_after_saving(4)
    assert main([*command, "--out", str(resumed)]) == 130
    capsys.readouterr()
    assert main([*command, "--out", str(resumed)]) == 0
    assert "resumed after iteration 4" in capsys.readouterr().out
    assert main([*command, "--out", str(straight)]) == 0
    names = sorted(path.relative_to(straight) for path in straight.rglob("*") if path.suffix in (".wav", ".csv"))
    checkpoints = [str(name) for name in names if name.name.startswith("iter-")]
    assert len(checkpoints) == 4  # two losses, iterations 4 and 8
    assert names == sorted(path.relative_to(resumed) for path in resumed.rglob("*") if path.suffix in (".wav", ".csv"))
    for name in names:
        assert (resumed / name).read_bytes() == (straight / name).read_bytes(), name
