"""Our PerceptualLoss against zounds 1.57.0's own, the code the 2018 experiment ran.

The fixture (data/zounds_golden.npz; data/README.md says how tools/zounds/make-golden made it)
holds zounds' loss values and input gradients, computed in float64, for ten (input, target)
pairs of 8192 samples at 11025 Hz. Our loss runs in float32, as in training.

zounds takes the Nyquist frequency as ``11025 // 2 = 5512`` Hz (``SampleRate.nyquist`` divides
integers), and so do we (:func:`perceptual_audio_loss.filters.nyquist_hz`); taken as 5512.5 Hz
the value of one pair moved by 2.3e-4. With the same Nyquist the reference path designs zounds'
filters to 2e-10 of their peak, so it must match zounds to float32 rounding.
"""

from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
import torch

from perceptual_audio_loss import PerceptualLoss

GOLDEN = Path(__file__).parent / "data" / "zounds_golden.npz"
VALUE_TOLERANCE = 1e-4  # absolute, on a loss in [-1, 1]
SAME_FILTERS_VALUE_TOLERANCE = 1e-6  # float32 rounding only
MIN_GRADIENT_COSINE = 0.9999

with np.load(GOLDEN) as _golden:
    FIXTURE = {key: _golden[key] for key in _golden.files}
PAIRS = [str(name) for name in FIXTURE["names"]]
@lru_cache(maxsize=None)
def loss(sample_rate, method):
    """``method`` as PerceptualLoss takes it; ``fft-torch`` is the FFT path without the compiled
    kernels (what runs where no C compiler is)."""
    if method == "fft-torch":
        return PerceptualLoss(sample_rate, method="fft", compiled=False)
    return PerceptualLoss(sample_rate, method=method)


@lru_cache(maxsize=None)
def value_and_grad(sample_rate, method, pair):
    index = PAIRS.index(pair)
    x = torch.tensor(FIXTURE["inputs"][index][None], requires_grad=True)
    y = torch.tensor(FIXTURE["targets"][index][None])
    value = loss(sample_rate, method)(x, y)
    value.backward()
    return value.item(), x.grad[0].double().numpy()


def value_error(sample_rate, method, pair):
    value, _ = value_and_grad(sample_rate, method, pair)
    return abs(value - FIXTURE["value64"][PAIRS.index(pair)])


def gradient_cosine(sample_rate, method, pair):
    _, grad = value_and_grad(sample_rate, method, pair)
    reference = FIXTURE["grad64"][PAIRS.index(pair)].astype(np.float64)
    return float(grad @ reference / (np.linalg.norm(grad) * np.linalg.norm(reference)))


@pytest.mark.parametrize("method", ["fft", "fft-torch", "direct", "auto"])
@pytest.mark.parametrize("pair", PAIRS)
def test_value_matches_zounds(method, pair):
    assert value_error(11025, method, pair) <= VALUE_TOLERANCE


@pytest.mark.parametrize("method", ["fft", "fft-torch", "direct", "auto"])
@pytest.mark.parametrize("pair", PAIRS)
def test_gradient_points_where_zounds_does(method, pair):
    assert gradient_cosine(11025, method, pair) >= MIN_GRADIENT_COSINE


@pytest.mark.parametrize("pair", PAIRS)
def test_the_reference_path_is_zounds_to_float32_rounding(pair):
    assert value_error(11025, "direct", pair) <= SAME_FILTERS_VALUE_TOLERANCE
    assert gradient_cosine(11025, "direct", pair) >= MIN_GRADIENT_COSINE
