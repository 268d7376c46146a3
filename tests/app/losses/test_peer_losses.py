"""The peer losses (auraloss's, as its users call it) against values worked out by hand."""

import math

import pytest
import torch

from pal.losses.specs import LossSpec, build_loss

RATE = 11025


@pytest.mark.parametrize("name", ["mrstft", "mel-mrstft"])
def test_multi_resolution_losses_of_a_doubled_signal(name):
    # Magnitudes (and their mel projections, linear) double: spectral convergence 1, log distance ln 2.
    x = torch.randn(1, 1, 8192, generator=torch.Generator().manual_seed(0))
    loss = build_loss(LossSpec(name, "registered", name), RATE)
    assert loss(2 * x, x).item() == pytest.approx(1 + math.log(2), rel=1e-5)
    assert loss(x, x).item() == 0.0


def hand_log_mel(signal, length: int, bands: int):
    """``log10(max(1e-5, mel @ |STFT|))`` in numpy, one frame at a time: reflect padding, periodic
    Hann, hop of a quarter window (DAC's MelSpectrogramLoss as its conf/base.yml sets it)."""
    import numpy as np

    from pal.losses.mel import mel_basis

    padded = np.pad(signal, length // 2, mode="reflect")
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(length) / length)
    frames = [padded[i : i + length] * window for i in range(0, len(padded) - length + 1, length // 4)]
    magnitude = np.abs(np.fft.rfft(np.stack(frames), axis=1)).T
    return np.log10(np.maximum(1e-5, mel_basis(RATE, length, bands) @ magnitude))


def test_dac_mel_is_dacs_seven_published_scales_on_a_whole_clip():
    # DAC conf/base.yml: windows 32..2048 with 5..320 mel bands; the longest fits 8192 samples.
    windows, bands = (32, 64, 128, 256, 512, 1024, 2048), (5, 10, 20, 40, 80, 160, 320)
    generator = torch.Generator().manual_seed(0)
    x, y = torch.randn(1, 1, 8192, generator=generator), 0.5 * torch.randn(1, 1, 8192, generator=generator)
    expected = sum(abs(hand_log_mel(x.double().flatten().numpy(), n, m)
                       - hand_log_mel(y.double().flatten().numpy(), n, m)).mean() for n, m in zip(windows, bands))
    loss = build_loss(LossSpec("dac-mel", "registered", "dac-mel"), RATE)
    assert loss(x, y).item() == pytest.approx(expected, rel=1e-4)
    assert loss(x, x).item() == 0.0


def test_perceptual_plus_mrstft_is_the_plain_sum_item_by_item():
    from auraloss.freq import MultiResolutionSTFTLoss
    from perceptual_audio_loss import PerceptualLoss
    from perceptual_audio_loss.losses import TargetLoss

    generator = torch.Generator().manual_seed(0)
    x, y = 0.1 * torch.randn(3, 1, 8192, generator=generator), 0.1 * torch.randn(3, 1, 8192, generator=generator)
    blend = build_loss(LossSpec("perceptual+mrstft", "registered", "perceptual+mrstft"), RATE)
    alone = [PerceptualLoss(RATE)(x[i : i + 1], y[i : i + 1]).item()
             + MultiResolutionSTFTLoss()(x[i : i + 1], y[i : i + 1]).item() for i in range(3)]
    assert blend(x[:1], y[:1]).item() == pytest.approx(alone[0], rel=1e-5)
    # As training applies it: each item's value its own, whatever else is in the batch.
    assert TargetLoss(blend, y)(x).tolist() == pytest.approx(alone, rel=1e-5)
    assert blend(x, y).item() == pytest.approx(sum(alone) / 3, rel=1e-5)


def test_a_run_trains_with_both_new_peers(tmp_path):
    from auraloss.freq import MultiResolutionSTFTLoss
    from helpers import first_loss, original, untrained_output
    from perceptual_audio_loss import PerceptualLoss

    from pal.cli import main
    from pal.losses.mel import MultiScaleMelLoss

    out = tmp_path / "run"
    assert main(["run", "speech", "--losses", "dac-mel,perceptual+mrstft", "--iterations", "2",
                 "--checkpoint-every", "1", "--out", str(out), "--no-progress"]) == 0
    target, start = original(out, "speech"), untrained_output()
    assert first_loss(out, "speech", "dac-mel") == pytest.approx(MultiScaleMelLoss(RATE)(start, target).item(),
                                                                 rel=1e-5)
    expected = PerceptualLoss(RATE)(start, target).item() + MultiResolutionSTFTLoss()(start, target).item()
    assert first_loss(out, "speech", "perceptual+mrstft") == pytest.approx(expected, rel=1e-5)
    runs = (out / "runs.json").read_text()
    assert runs.count('"finished"') == 2
