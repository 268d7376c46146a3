"""The FFT filter bank, cached targets and batched training against their reference paths."""

import numpy as np
import pytest
import torch

from perceptual_audio_loss import PerceptualLoss, build_loss
from perceptual_audio_loss.generator import GeneratorStack, seeded_generator_and_latent
from perceptual_audio_loss.losses import TargetLoss
from perceptual_audio_loss.perceptual import choose_method, fft_length
from perceptual_audio_loss.train import RunSpec, train_batched, train_one

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


def stacked_slice(stack, layer, index):
    weight = stack.weights[layer]
    return weight.grad.view(stack.n_models, -1, *weight.shape[1:])[index]


@pytest.mark.parametrize("mode", ["looped", "grouped"])
def test_generator_stack_is_its_generators(mode):
    seeded = [seeded_generator_and_latent(seed) for seed in (0, 1, 2)]
    stack = GeneratorStack([model for model, _ in seeded], mode)
    latents = torch.cat([latent for _, latent in seeded])
    separate = torch.cat([model(latent) for model, latent in seeded])
    if mode == "looped":
        assert torch.equal(stack(latents), separate)
    else:
        torch.testing.assert_close(stack(latents), separate, rtol=1e-4, atol=1e-5)
    for index, (model, _) in enumerate(seeded):
        assert all(torch.equal(a, b) for a, b in zip(stack.unstack(index).parameters(), model.parameters()))


def short_targets():
    t = torch.arange(8192) / SAMPLE_RATE
    return torch.stack([torch.sin(2 * np.pi * 220 * t), torch.sign(torch.sin(2 * np.pi * 3 * t)) * 0.5]).unsqueeze(1)


SHORT_LOSSES = {"mse": build_loss("mse", SAMPLE_RATE), "p": PerceptualLoss(SAMPLE_RATE, n_bands=64, taps=128)}
MIXED_RUNS = [RunSpec(0, "mse", 0), RunSpec(1, "p", 1), RunSpec(1, "mse", 2), RunSpec(0, "p", 3)]


@pytest.mark.parametrize("mode", ["looped", "grouped"])
def test_every_generator_gets_its_own_gradient(mode):
    targets = short_targets()
    seeded = [seeded_generator_and_latent(run.seed) for run in MIXED_RUNS]
    stack = GeneratorStack([model for model, _ in seeded], mode)
    outputs = stack(torch.cat([latent for _, latent in seeded]))
    total = sum(TargetLoss(SHORT_LOSSES[run.loss], targets[run.target : run.target + 1])(outputs[i : i + 1])[0]
                for i, run in enumerate(MIXED_RUNS))
    total.backward()
    for index, (run, (model, latent)) in enumerate(zip(MIXED_RUNS, seeded)):
        SHORT_LOSSES[run.loss](model(latent), targets[run.target : run.target + 1]).backward()
        for layer, conv in enumerate(model.convs):
            mine = stacked_slice(stack, layer, index)
            if mode == "looped":
                assert torch.equal(mine, conv.weight.grad)
            else:
                assert ((mine - conv.weight.grad).norm() / conv.weight.grad.norm()).item() < 1e-4


def test_batched_training_is_bit_identical_to_one_by_one():
    targets = short_targets()
    batched = train_batched(targets, MIXED_RUNS, SHORT_LOSSES, iterations=4, checkpoint_every=2, stack_mode="looped")
    for run, result in zip(MIXED_RUNS, batched):
        alone = train_one(targets[run.target : run.target + 1], SHORT_LOSSES[run.loss], run.seed, 4, 2)
        assert result.losses == alone.losses
        for iteration in (2, 4):
            np.testing.assert_array_equal(result.checkpoints[iteration], alone.checkpoints[iteration])


def test_a_run_does_not_depend_on_its_batch_mates():
    targets = short_targets()
    together = train_batched(targets, MIXED_RUNS, SHORT_LOSSES, iterations=3, checkpoint_every=3)
    alone = train_batched(targets, MIXED_RUNS[1:2], SHORT_LOSSES, iterations=3, checkpoint_every=3)
    assert together[1].losses == alone[0].losses


def test_grouped_training_matches_one_by_one_within_rounding():
    targets = short_targets()
    batched = train_batched(targets, MIXED_RUNS, SHORT_LOSSES, iterations=3, checkpoint_every=3, stack_mode="grouped")
    for run, result in zip(MIXED_RUNS, batched):
        alone = train_one(targets[run.target : run.target + 1], SHORT_LOSSES[run.loss], run.seed, 3, 3)
        # The first loss is of the untrained generators: equal up to float32 rounding.
        assert result.losses[0] == pytest.approx(alone.losses[0], rel=1e-5)
        # Adam with beta1 = 0 moves every weight by about lr x sign(gradient), so rounding-level
        # gradient differences grow; after three updates they are still far below the signal.
        np.testing.assert_allclose(result.losses, alone.losses, rtol=1e-3)
        scale = np.abs(alone.checkpoints[3]).max()
        assert np.abs(result.checkpoints[3] - alone.checkpoints[3]).max() < 1e-2 * scale


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
def test_batched_training_on_cuda_matches_the_cpu():
    targets = short_targets()
    on_cpu = train_batched(targets, MIXED_RUNS, SHORT_LOSSES, iterations=2, checkpoint_every=2)
    on_gpu = train_batched(targets, MIXED_RUNS, SHORT_LOSSES, iterations=2, checkpoint_every=2, device="cuda")
    for cpu_run, gpu_run in zip(on_cpu, on_gpu):
        assert gpu_run.losses[0] == pytest.approx(cpu_run.losses[0], rel=1e-4)
        scale = np.abs(cpu_run.checkpoints[2]).max()
        assert np.abs(gpu_run.checkpoints[2] - cpu_run.checkpoints[2]).max() < 1e-2 * scale


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_fused_loss_on_cuda_matches_the_cpu():
    loss = PerceptualLoss(SAMPLE_RATE)
    x, target = torch.randn(2, 1, 8192), torch.randn(2, 1, 8192)
    on_gpu = loss.to("cuda")(x.cuda(), target.cuda()).cpu()
    assert on_gpu.item() == pytest.approx(loss.cpu()(x, target).item(), rel=1e-5)
