"""Every registered library loss against the contract of ``perceptual_audio_loss.contract``.

A loss gets these tests by being registered. Each property is checked against an independent
computation: channels against the loss of each channel alone, reduced dtypes against float32 on
the same (rounded) samples, reductions against the per-item values, prepared targets against the
plain call.
"""

import pytest
import torch

import perceptual_audio_loss
from perceptual_audio_loss import (
    LOSSES,
    AuditorySpectrogramLoss,
    MaskedLoss,
    PerceptualLoss,
    PreparedTargetLoss,
    auditory_spectrogram_loss,
    build_loss,
    masked_loss,
    perceptual_loss,
)

from silences import SILENT_CASES, silenced

RATE = 11025
LENGTH = 2048
NAMES = sorted(LOSSES)
REDUCED = [torch.float16, torch.bfloat16]
REDUCED_IDS = ["float16", "bfloat16"]


# Beside the defaults, settings that change a loss's shapes inside (a floor per band and frame).
SETTINGS = [(name, {}) for name in NAMES] + [("auditory", {"masking": "simultaneous", "fine": 0})]


@pytest.fixture(scope="module", params=SETTINGS,
                ids=[name + "".join(f":{k}={v}" for k, v in kwargs.items()) for name, kwargs in SETTINGS])
def loss(request):
    name, kwargs = request.param
    return build_loss(name, RATE, **kwargs)


def pair(shape, seed=0):
    generator = torch.Generator().manual_seed(seed)
    target = 0.3 * torch.randn(*shape, generator=generator)
    return target + 0.1 * torch.randn(*shape, generator=generator), target


def per_item(loss, input, target):
    """The loss's per-item values, whatever its own reduction."""
    return torch.stack([loss(input[i : i + 1], target[i : i + 1]).reshape(()) for i in range(input.shape[0])])


def relative(a, b):
    return float((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-30))


def value_and_gradient(loss, input, target):
    input = input.detach().clone().requires_grad_()
    value = loss(input, target)
    value.backward()
    return value.detach(), input.grad


def test_every_library_loss_is_registered():
    assert {"mse", "l1", "perceptual", "perceptual-mse", "masked", "masked+perceptual"} <= set(NAMES)


def test_batch_of_time_equals_batch_of_one_channel(loss):
    x, y = pair((2, LENGTH))
    torch.testing.assert_close(loss(x, y), loss(x[:, None], y[:, None]), rtol=1e-6, atol=1e-7)


def test_channels_are_independent_signals_averaged(loss):
    x, y = pair((2, 2, LENGTH))
    expected = torch.stack([per_item(loss, x[:, c], y[:, c]) for c in range(2)]).mean(0)
    torch.testing.assert_close(per_item(loss, x, y), expected, rtol=1e-5, atol=1e-7)


def test_an_item_does_not_depend_on_its_batch_mates(loss):
    x, y = pair((3, 1, LENGTH))
    together = loss(x, y)
    assert together.item() == pytest.approx(per_item(loss, x, y).mean().item(), rel=1e-5, abs=1e-8)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_reductions_reduce_the_per_item_values(reduction):
    x, y = pair((3, 2, LENGTH))
    for name in NAMES:
        items = per_item(build_loss(name, RATE), x, y)
        result = build_loss(name, RATE, reduction=reduction)(x, y)
        expected = {"mean": items.mean(), "sum": items.sum(), "none": items}[reduction]
        assert result.shape == expected.shape, name
        torch.testing.assert_close(result, expected, rtol=1e-5, atol=1e-7, msg=name)


def test_an_unknown_reduction_is_refused_by_name():
    for name in NAMES:
        with pytest.raises(ValueError, match="reduction"):
            build_loss(name, RATE, reduction="average")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_every_float_dtype_in_and_out(loss, dtype):
    x, y = pair((2, 2, LENGTH))
    x, y = x.to(dtype), y.to(dtype)
    value, gradient = value_and_gradient(loss, x, y)
    assert value.dtype == dtype and gradient.dtype == dtype
    assert torch.isfinite(value).all() and torch.isfinite(gradient).all()
    # Against float32 on the very same samples: only the result's rounding differs.
    reference, reference_gradient = value_and_gradient(loss, x.float(), y.float())
    tolerance = 1e-2 if dtype in REDUCED else 1e-4
    assert relative(value, reference) < tolerance
    assert relative(gradient, reference_gradient) < tolerance


@pytest.mark.parametrize("dtype", REDUCED, ids=REDUCED_IDS)
def test_autocast_is_off_inside_the_loss(loss, dtype):
    """Float32 in under either half type's autocast, forward and backward inside it (as a training
    step under autocast may run): the float32 value and gradient, as if autocast were not there."""
    x, y = pair((2, 2, LENGTH))
    plain, plain_gradient = value_and_gradient(loss, x, y)
    with torch.autocast("cpu", dtype=dtype):
        inside, gradient = value_and_gradient(loss, x, y)
    assert inside.dtype == torch.float32 and gradient.dtype == torch.float32
    assert torch.isfinite(gradient).all()
    torch.testing.assert_close(inside, plain, rtol=1e-6, atol=1e-7)
    assert relative(gradient, plain_gradient) < 1e-6


@pytest.mark.parametrize("case", SILENT_CASES)
def test_silence_gives_a_finite_value_and_gradient(loss, case):
    x, y = silenced(case, *pair((2, 2, LENGTH)))
    value, gradient = value_and_gradient(loss, x, y)
    assert torch.isfinite(value).all() and torch.isfinite(gradient).all()


def test_a_prepared_target_gives_the_plain_value(loss):
    if not isinstance(loss, PreparedTargetLoss):
        pytest.skip("this loss has no prepared-target protocol")
    x, y = pair((2, 2, LENGTH))
    prepared = loss.target_features(y)
    torch.testing.assert_close(loss.against(x, prepared), loss(x, y), rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(loss.against(x, prepared, reduction="none"), per_item(loss, x, y), rtol=1e-5, atol=1e-7)


def test_bad_arguments_are_named(loss):
    x, _ = pair((1, LENGTH))
    with pytest.raises(TypeError, match="target"):
        loss(x, x.numpy())
    with pytest.raises(TypeError, match="input"):
        loss(x.long(), x)
    with pytest.raises(ValueError, match="input"):
        loss(x[0], x[0])
    with pytest.raises(ValueError, match="differ"):
        loss(x, x[:, :-1])


# Each loss module that takes a sample rate, its functional twin, and options that keep it small.
TWINS = [(PerceptualLoss, perceptual_loss, {"n_bands": 32, "taps": 128}), (MaskedLoss, masked_loss, {}),
         (AuditorySpectrogramLoss, auditory_spectrogram_loss, {"resolutions": 2})]


@pytest.mark.parametrize("module, function, options", TWINS, ids=[module.__name__ for module, _, _ in TWINS])
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_a_functional_twin_gives_its_module_s_value(module, function, options, reduction):
    x, y = pair((2, 2, LENGTH))
    expected = module(RATE, reduction=reduction, **options)(x, y)
    assert torch.equal(function(x, y, RATE, reduction=reduction, **options), expected)
    assert {module.__name__, function.__name__} <= set(perceptual_audio_loss.__all__)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", REDUCED, ids=REDUCED_IDS)
@pytest.mark.parametrize("make", [PerceptualLoss, MaskedLoss], ids=["perceptual", "masked"])
def test_stereo_44100_under_half_autocast_matches_float32(make, dtype):
    """The issues' case: (4, 2, 44100) float16 or bfloat16 under CPU autocast, within 1e-2 of
    float32 on the same (rounded) samples."""
    loss = make(44100)
    x, y = pair((4, 2, 44100), seed=3)
    with torch.autocast("cpu", dtype=dtype):
        value, gradient = value_and_gradient(loss, x.to(dtype), y.to(dtype))
    reference, reference_gradient = value_and_gradient(loss, x.to(dtype).float(), y.to(dtype).float())
    assert torch.isfinite(value) and torch.isfinite(gradient).all()
    assert relative(value, reference) < 1e-2 and relative(gradient, reference_gradient) < 1e-2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
@pytest.mark.parametrize("dtype", REDUCED, ids=REDUCED_IDS)
def test_cuda_autocast_matches_float32(loss, dtype):
    loss = loss.to("cuda")
    x, y = pair((2, 2, LENGTH))
    x, y = x.to("cuda", dtype), y.to("cuda", dtype)
    with torch.autocast("cuda", dtype=dtype):
        value, gradient = value_and_gradient(loss, x, y)
    reference, reference_gradient = value_and_gradient(loss, x.float(), y.float())
    assert relative(value, reference) < 1e-2 and relative(gradient, reference_gradient) < 1e-2
