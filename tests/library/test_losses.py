"""The library's registered losses and mel scale against values worked out by hand."""

import math

import numpy as np
import pytest
import torch

from perceptual_audio_loss import PerceptualLoss, build_loss
from perceptual_audio_loss.losses import UnknownLoss
from perceptual_audio_loss.scales import hz_to_mel_slaney, mel_filterbank, mel_slaney_to_hz

RATE = 11025


def test_slaney_mel_scale_by_hand():
    assert hz_to_mel_slaney(500.0) == pytest.approx(7.5)  # linear part: 200/3 Hz per mel
    assert hz_to_mel_slaney(6400.0) == pytest.approx(15 + 27)  # 27 mels per factor 6.4 above 1 kHz
    np.testing.assert_allclose(mel_slaney_to_hz(hz_to_mel_slaney([100.0, 999.0, 4000.0])), [100.0, 999.0, 4000.0])


@pytest.mark.parametrize("n_fft", [512, 1024, 2048])
def test_mel_filters_have_unit_area_and_none_is_empty(n_fft):
    bank = mel_filterbank(RATE, n_fft, 128)
    assert bank.shape == (128, n_fft // 2 + 1) and (bank.sum(axis=1) > 0).all()
    bin_hz = RATE / n_fft
    wide = (bank > 0).sum(axis=1) >= 8  # a triangle sampled by enough bins integrates to its area
    np.testing.assert_allclose(bank[wide].sum(axis=1) * bin_hz, 1.0, rtol=0.05)


def test_l1_and_perceptual_mse_by_hand():
    x, y = torch.randn(1, 1, 4096), torch.randn(1, 1, 4096)
    assert build_loss("l1", RATE)(x, y).item() == pytest.approx((x - y).abs().mean().item(), rel=1e-6)
    reference = PerceptualLoss(RATE, similarity="mse", method="direct")
    assert build_loss("perceptual-mse", RATE)(x, y).item() == pytest.approx(reference(x, y).item(), rel=1e-5)


def test_unknown_loss_names_the_known_ones():
    with pytest.raises(UnknownLoss, match="known losses: .*perceptual"):
        build_loss("perceptul", RATE)


@pytest.mark.slow
def test_importing_the_library_loads_no_experiment_dependency():
    import subprocess
    import sys

    code = ("import sys, perceptual_audio_loss as p; p.PerceptualLoss(11025, n_bands=4, taps=16); "
            "print([m for m in ('pal', 'matplotlib', 'jinja2', 'auraloss', 'pystoi', 'pesq', 'soundfile', 'fastapi') "
            "if m in sys.modules])")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "[]"
