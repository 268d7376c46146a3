"""The FFT filter bank, the fused loss and cached targets against their reference paths."""

import numpy as np
import pytest
import torch

from perceptual_audio_loss import PerceptualLoss, build_loss
from perceptual_audio_loss.losses import TargetLoss
from perceptual_audio_loss.perceptual import choose_method, fft_length

SAMPLE_RATE = 11025


def odd_part(n):
    while n % 2 == 0:
        n //= 2
    return n


@pytest.mark.parametrize("n", [1, 2, 100, 1001, 4097, 8705, 12345])
def test_fft_length_is_the_shortest_fast_length(n):
    length = fft_length(n)
    assert length >= n and odd_part(length) in (1, 3, 5, 7, 9, 15)
    # Brute force: no shorter length of that form exists.
    assert not any(odd_part(m) in (1, 3, 5, 7, 9, 15) for m in range(n, length))


def test_fft_length_at_the_seed_settings_is_not_the_next_power_of_two():
    assert fft_length(8192 + 512 + 1) == 9216 < 16384


def test_auto_method_rule():
    assert choose_method("auto", 512, 1) == "fft"
    assert choose_method("auto", 32, 1) == "direct"
    assert choose_method("auto", 64, 1) == "fft"
    assert choose_method("auto", 512, 64) == "direct"
    assert choose_method("direct", 512, 1) == "direct"
    with pytest.raises(ValueError, match="method"):
        PerceptualLoss(SAMPLE_RATE, n_bands=4, taps=16, method="winograd")


@pytest.fixture(scope="module")
def seed_pair():
    return PerceptualLoss(SAMPLE_RATE, method="direct"), PerceptualLoss(SAMPLE_RATE, method="fft")


def test_fft_features_equal_direct_at_the_seed_settings(seed_pair):
    direct, fast = seed_pair
    x = torch.randn(2, 1, 8192, generator=torch.Generator().manual_seed(0))
    reference, features = direct.features(x), fast.features(x)
    assert features.shape == reference.shape == (2, 512, 8192 + 512 + 1)
    # Stated tolerance: within 2e-6 of the feature map's largest value (float32 FFT rounding).
    assert (features - reference).abs().max() <= 2e-6 * reference.abs().max()


def test_fft_loss_and_gradient_equal_direct(seed_pair):
    direct, fast = seed_pair
    rng = torch.Generator().manual_seed(1)
    target = torch.randn(1, 8192, generator=rng)
    x_direct = (0.5 * target + 0.5 * torch.randn(1, 8192, generator=rng)).requires_grad_(True)
    x_fast = x_direct.detach().clone().requires_grad_(True)
    value_direct, value_fast = direct(x_direct, target), fast(x_fast, target)
    value_direct.backward()
    value_fast.backward()
    assert value_fast.item() == pytest.approx(value_direct.item(), rel=1e-5)
    assert ((x_fast.grad - x_direct.grad).norm() / x_direct.grad.norm()).item() < 1e-4


@pytest.mark.parametrize("stride", [1, 2, 3, 7])
@pytest.mark.parametrize("length", [1, 999, 1024])
def test_fft_equals_direct_in_float64_for_any_stride_and_length(stride, length):
    options = dict(n_bands=16, taps=64, stride=stride, similarity="mse")
    direct = PerceptualLoss(SAMPLE_RATE, method="direct", **options).double()
    fast = PerceptualLoss(SAMPLE_RATE, method="fft", **options).double()
    x = torch.randn(3, length, dtype=torch.float64)
    torch.testing.assert_close(fast.features(x), direct.features(x), rtol=1e-10, atol=1e-10)


def test_cached_target_equals_recomputed_per_item():
    loss = PerceptualLoss(SAMPLE_RATE, n_bands=32, taps=128)
    targets, outputs = torch.randn(3, 1, 2048), torch.randn(3, 1, 2048)
    cached = TargetLoss(loss, targets)(outputs)
    expected = torch.stack([loss(o[None], t[None]) for o, t in zip(outputs, targets)])
    torch.testing.assert_close(cached, expected, rtol=1e-6, atol=1e-7)
    mse = TargetLoss(build_loss("mse", SAMPLE_RATE), targets)(outputs)
    torch.testing.assert_close(mse, ((outputs - targets) ** 2).mean(dim=(1, 2)))


def test_fused_loss_item_does_not_depend_on_the_batch():
    loss = PerceptualLoss(SAMPLE_RATE)
    targets, outputs = torch.randn(3, 1, 8192), torch.randn(3, 1, 8192)
    batch = loss.against(outputs, loss.target_features(targets), reduction="none")
    single = loss.against(outputs[1:2], loss.target_features(targets[1:2]), reduction="none")
    assert torch.equal(batch[1:2], single)


@pytest.mark.parametrize("similarity", ["cosine", "mse"])
@pytest.mark.parametrize("stride", [1, 3])
def test_fused_path_value_and_gradient_equal_direct(similarity, stride):
    options = dict(similarity=similarity, stride=stride, n_bands=128, taps=256)
    direct = PerceptualLoss(SAMPLE_RATE, method="direct", **options)
    fused = PerceptualLoss(SAMPLE_RATE, method="fft", **options)
    rng = torch.Generator().manual_seed(2)
    target = torch.randn(2, 1, 4096, generator=rng)
    x_direct = (0.5 * target + 0.5 * torch.randn(2, 1, 4096, generator=rng)).requires_grad_(True)
    x_fused = x_direct.detach().clone().requires_grad_(True)
    value_direct, value_fused = direct(x_direct, target), fused(x_fused, target)
    value_direct.backward()
    value_fused.backward()
    assert value_fused.item() == pytest.approx(value_direct.item(), rel=1e-5)
    assert ((x_fused.grad - x_direct.grad).norm() / x_direct.grad.norm()).item() < 1e-4


@pytest.mark.slow
def test_fused_path_in_float64_is_exact():
    options = dict(n_bands=16, taps=64, stride=2)
    direct = PerceptualLoss(SAMPLE_RATE, method="direct", **options).double()
    fused = PerceptualLoss(SAMPLE_RATE, method="fft", **options).double()
    x = torch.randn(2, 999, dtype=torch.float64, requires_grad=True)
    target = torch.randn(2, 999, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda v: fused(v, target), (x,), eps=1e-6, atol=1e-7)
    torch.testing.assert_close(fused(x, target), direct(x, target), rtol=1e-12, atol=1e-12)


def test_the_target_gets_a_gradient_only_when_it_asks_for_one():
    loss = PerceptualLoss(SAMPLE_RATE, n_bands=16, taps=64)
    x = torch.randn(1, 500, requires_grad=True)
    target = torch.randn(1, 500, requires_grad=True)
    loss(x, target).backward()
    assert target.grad is not None and torch.isfinite(target.grad).all()
    constant = torch.randn(1, 500)
    loss(x, constant).backward()
    assert constant.grad is None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_fused_loss_on_cuda_matches_the_cpu():
    loss = PerceptualLoss(SAMPLE_RATE)
    x, target = torch.randn(2, 1, 8192), torch.randn(2, 1, 8192)
    on_gpu = loss.to("cuda")(x.cuda(), target.cuda()).cpu()
    assert on_gpu.item() == pytest.approx(loss.cpu()(x, target).item(), rel=1e-5)
