"""Every registered library loss on CUDA, where the CPU has a test and the GPU had none.

Against the CPU's float64 (the exact answer, for float32's purposes) and the CPU itself; and the
contract's properties on CUDA: batch independence, prepared targets, reductions, dtypes, silence,
and repeatable bits (which a resumed run on CUDA needs). Skipped without a CUDA device; run by
``scripts/gpu-check`` (``pytest -k cuda``).

The bounds come from float32 rounding, unit roundoff u = 2^-24 = 6e-8. A loss is a few FFTs,
elementwise steps and sums over n ~ 1e5 terms, each off by about u log2(n) = 1e-6 relative
at worst in any summation order; on the CPU the float32 result is within 1e-7 (values) and
6e-7 (gradients, norm-wise) of float64 for every registered loss. Bounds: 1e-5 relative on
values, 1e-4 on gradients (the README's FFT-against-direct bounds), 10 to 100 times that. In
float64 the same code is within 1e-9 of the CPU (u = 1e-16: any larger gap is a different
computation, not rounding).
"""

import pytest
import torch

from perceptual_audio_loss import LOSSES, MaskedLoss, PerceptualLoss, PreparedTargetLoss, build_loss
from perceptual_audio_loss.losses import TargetLoss

from silences import SILENT_CASES, silenced

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")

RATE = 11025
LENGTH = 2048
NAMES = sorted(LOSSES)
VALUE_BOUND = 1e-5  # relative, float32 against the exact value or another device's float32
GRADIENT_BOUND = 1e-4  # relative, norm-wise
FLOAT64_BOUND = 1e-9
CUDA = "cuda"


@pytest.fixture(scope="module", params=NAMES)
def name(request):
    return request.param


def pair(shape, seed=0, device="cpu", dtype=torch.float32):
    generator = torch.Generator().manual_seed(seed)
    target = 0.3 * torch.randn(*shape, generator=generator)
    input = target + 0.1 * torch.randn(*shape, generator=generator)
    return input.to(device, dtype), target.to(device, dtype)


def relative(a, b):
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def value_and_gradient(loss, input, target):
    input = input.detach().clone().requires_grad_()
    value = loss(input, target)
    value.sum().backward()
    return value.detach(), input.grad


def test_cuda_float32_is_within_rounding_of_the_cpus_float64(name):
    x, y = pair((2, 2, LENGTH))
    exact, exact_gradient = value_and_gradient(build_loss(name, RATE), x.double(), y.double())
    value, gradient = value_and_gradient(build_loss(name, RATE).to(CUDA), x.to(CUDA), y.to(CUDA))
    assert value.device.type == CUDA and value.dtype == torch.float32
    assert relative(value, exact) < VALUE_BOUND
    assert relative(gradient, exact_gradient) < GRADIENT_BOUND


def test_cuda_float32_matches_the_cpus_float32(name):
    x, y = pair((2, 2, LENGTH), seed=1)
    cpu, cpu_gradient = value_and_gradient(build_loss(name, RATE), x, y)
    cuda, cuda_gradient = value_and_gradient(build_loss(name, RATE).to(CUDA), x.to(CUDA), y.to(CUDA))
    assert relative(cuda, cpu) < VALUE_BOUND
    assert relative(cuda_gradient, cpu_gradient) < GRADIENT_BOUND


def test_cuda_float64_is_the_cpus_computation(name):
    x, y = pair((2, 2, LENGTH), seed=2, dtype=torch.float64)
    cpu, cpu_gradient = value_and_gradient(build_loss(name, RATE), x, y)
    cuda, cuda_gradient = value_and_gradient(build_loss(name, RATE).to(CUDA), x.to(CUDA), y.to(CUDA))
    assert cuda.dtype == torch.float64
    assert relative(cuda, cpu) < FLOAT64_BOUND
    assert relative(cuda_gradient, cpu_gradient) < FLOAT64_BOUND


@pytest.mark.parametrize("make", [PerceptualLoss, MaskedLoss], ids=["perceptual", "masked"])
def test_cuda_at_44100_stereo_matches_the_cpu(make):
    """A training-sized call, (4, 2, 1 s) at 44.1 kHz: whatever the CUDA path batches or splits."""
    x, y = pair((4, 2, 44100), seed=3)
    cpu, cpu_gradient = value_and_gradient(make(44100), x, y)
    cuda, cuda_gradient = value_and_gradient(make(44100).to(CUDA), x.to(CUDA), y.to(CUDA))
    assert relative(cuda, cpu) < VALUE_BOUND
    assert relative(cuda_gradient, cpu_gradient) < GRADIENT_BOUND


def test_an_item_on_cuda_does_not_depend_on_its_batch_mates(name):
    """Within rounding, not promised bit for bit: a batched CUDA path may sum in another order.
    The bound is the float32 one; an item that read its batch-mates would be off by far more."""
    loss = build_loss(name, RATE, reduction="none").to(CUDA)
    x, y = pair((4, 1, LENGTH), seed=4, device=CUDA)
    together, together_gradient = value_and_gradient(loss, x, y)
    for i in range(len(x)):
        alone, alone_gradient = value_and_gradient(loss, x[i : i + 1], y[i : i + 1])
        assert relative(together[i : i + 1], alone) < VALUE_BOUND
        assert relative(together_gradient[i : i + 1], alone_gradient) < GRADIENT_BOUND


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_reductions_on_cuda_reduce_the_per_item_values(reduction):
    x, y = pair((3, 2, LENGTH), seed=5, device=CUDA)
    for name in NAMES:
        items = build_loss(name, RATE, reduction="none").to(CUDA)(x, y)
        result = build_loss(name, RATE, reduction=reduction).to(CUDA)(x, y)
        expected = {"mean": items.mean(), "sum": items.sum(), "none": items}[reduction]
        assert items.shape == (3,) and result.shape == expected.shape, name
        assert result.device.type == CUDA, name
        torch.testing.assert_close(result, expected, rtol=VALUE_BOUND, atol=1e-7, msg=name)


def test_a_prepared_target_on_cuda_gives_the_plain_value(name):
    loss = build_loss(name, RATE).to(CUDA)
    if not isinstance(loss, PreparedTargetLoss):
        pytest.skip("this loss has no prepared-target protocol")
    x, y = pair((2, 2, LENGTH), seed=6, device=CUDA)
    prepared = loss.target_features(y)
    torch.testing.assert_close(loss.against(x, prepared), loss(x, y), rtol=1e-6, atol=1e-7)
    per_item = torch.stack([loss(x[i : i + 1], y[i : i + 1]).reshape(()) for i in range(len(x))])
    torch.testing.assert_close(loss.against(x, prepared, reduction="none"), per_item, rtol=VALUE_BOUND, atol=1e-7)


def test_targets_fixed_on_cuda_give_each_items_plain_value(name):
    """:class:`TargetLoss`, as the experiment trains: targets prepared once on the device."""
    loss = build_loss(name, RATE).to(CUDA)
    outputs, targets = pair((3, 1, LENGTH), seed=7, device=CUDA)
    fixed = TargetLoss(loss, targets)(outputs)
    expected = torch.stack([loss(o[None], t[None]).reshape(()) for o, t in zip(outputs, targets)])
    assert fixed.device.type == CUDA
    torch.testing.assert_close(fixed, expected, rtol=VALUE_BOUND, atol=1e-7)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_every_float_dtype_in_and_out_on_cuda(name, dtype):
    loss = build_loss(name, RATE).to(CUDA)
    x, y = pair((2, 2, LENGTH), seed=8, device=CUDA, dtype=dtype)
    value, gradient = value_and_gradient(loss, x, y)
    assert value.dtype == dtype and gradient.dtype == dtype
    assert torch.isfinite(value).all() and torch.isfinite(gradient).all()
    # Against float32 on the very same samples: only the result's rounding differs (a half type
    # keeps 8 or 11 bits, so 1e-2; float64's own result is within float32's bounds of float32's).
    reference, reference_gradient = value_and_gradient(loss, x.float(), y.float())
    tolerance = 1e-2 if dtype != torch.float64 else GRADIENT_BOUND
    assert relative(value, reference) < tolerance
    assert relative(gradient, reference_gradient) < tolerance


@pytest.mark.parametrize("case", SILENT_CASES)
def test_silence_on_cuda_gives_a_finite_value_and_gradient(name, case):
    loss = build_loss(name, RATE).to(CUDA)
    x, y = silenced(case, *pair((2, 2, LENGTH), seed=9, device=CUDA))
    value, gradient = value_and_gradient(loss, x, y)
    assert torch.isfinite(value).all() and torch.isfinite(gradient).all()


def test_repeated_calls_on_cuda_give_identical_bits(name):
    """What a resumed run on CUDA needs to equal an uninterrupted one: no atomics, no
    order that changes from call to call."""
    loss = build_loss(name, RATE).to(CUDA)
    x, y = pair((3, 2, LENGTH), seed=10, device=CUDA)
    first, first_gradient = value_and_gradient(loss, x, y)
    for _ in range(2):
        value, gradient = value_and_gradient(loss, x, y)
        assert torch.equal(value, first) and torch.equal(gradient, first_gradient)


def test_two_calls_on_cuda_before_one_backward_keep_their_own_graphs(name):
    """A path that reuses buffers (a workspace, a captured graph) must not let a second call
    overwrite what the first one's backward reads."""
    loss = build_loss(name, RATE).to(CUDA)
    (x1, y1), (x2, y2) = pair((2, 1, LENGTH), seed=11, device=CUDA), pair((2, 1, LENGTH), seed=12, device=CUDA)
    _, gradient_1 = value_and_gradient(loss, x1, y1)
    _, gradient_2 = value_and_gradient(loss, x2, y2)
    a, b = x1.clone().requires_grad_(), x2.clone().requires_grad_()
    (loss(a, y1) + loss(b, y2)).backward()
    assert torch.equal(a.grad, gradient_1) and torch.equal(b.grad, gradient_2)
