"""The compiled kernels of the fused path: against the torch path, the direct path and float64;
determinism, the reused workspace, and the fallback without a compiler."""

import copy
import pickle
import re
import warnings

import pytest
import torch

from perceptual_audio_loss import PerceptualLoss, _native
from perceptual_audio_loss.perceptual import Path

SAMPLE_RATE = 11025
NATIVE = _native.native_kernels()
needs_native = pytest.mark.skipif(NATIVE is None, reason="no C compiler: the compiled kernels are not built")


@pytest.fixture
def torch_path(monkeypatch):
    """Runs the loss on its torch path (as on a machine without a compiler)."""
    monkeypatch.setattr(_native, "native_kernels", lambda: None)


def value_and_gradient(loss, x, target, reduction="none"):
    x = x.detach().clone().requires_grad_(True)
    value = loss.against(x, loss.target_features(target), reduction=reduction)
    value.sum().backward()
    return value.detach(), x.grad


def pair(length, seed, batch=2):
    rng = torch.Generator().manual_seed(seed)
    target = torch.randn(batch, 1, length, generator=rng)
    return 0.5 * target + 0.5 * torch.randn(batch, 1, length, generator=rng), target


def relative(a, b):
    return ((a - b).norm() / b.norm()).item()


@needs_native
@pytest.mark.parametrize("stride", [2, 3, 7])
def test_decimated_features_equal_the_direct_strided_output(stride):
    """Folding the spectrum before the inverse FFT gives the samples at the stride."""
    options = dict(n_bands=24, taps=128, stride=stride)
    x = torch.randn(2, 1, 1001)
    reference = PerceptualLoss(SAMPLE_RATE, method="direct", **options).features(x)
    compiled = PerceptualLoss(SAMPLE_RATE, method="fft", **options)
    features = compiled.target_features(x)
    assert compiled._compiled_plan(x[:, 0]).n_fft % stride == 0
    assert features.shape == reference.shape
    assert (features - reference).abs().max() <= 2e-6 * reference.abs().max()


@needs_native
@pytest.mark.parametrize("similarity", ["cosine", "mse"])
@pytest.mark.parametrize("stride", [1, 3])
def test_compiled_kernels_equal_the_torch_path(similarity, stride, monkeypatch):
    options = dict(n_bands=64, taps=256, stride=stride, similarity=similarity)
    x, target = pair(3000, seed=3)
    value_native, grad_native = value_and_gradient(PerceptualLoss(SAMPLE_RATE, **options), x, target)
    monkeypatch.setattr(_native, "native_kernels", lambda: None)
    value_torch, grad_torch = value_and_gradient(PerceptualLoss(SAMPLE_RATE, **options), x, target)
    torch.testing.assert_close(value_native, value_torch, rtol=1e-5, atol=0)
    assert relative(grad_native, grad_torch) < 1e-4


@needs_native
@pytest.mark.parametrize("similarity", ["cosine", "mse"])
def test_compiled_float32_gradient_equals_the_float64_gradient(similarity):
    """The float64 torch path is gradchecked (test_fast_paths); the float32 kernels are checked against it."""
    options = dict(n_bands=32, taps=128, stride=2, similarity=similarity)
    x, target = pair(999, seed=4)
    value_64, grad_64 = value_and_gradient(PerceptualLoss(SAMPLE_RATE, **options).double(), x.double(), target.double())
    value_32, grad_32 = value_and_gradient(PerceptualLoss(SAMPLE_RATE, **options), x, target)
    torch.testing.assert_close(value_32.double(), value_64, rtol=1e-5, atol=0)
    assert relative(grad_32.double(), grad_64) < 1e-4


def test_gradcheck_of_the_torch_path_at_stride_3_with_mse(torch_path):
    loss = PerceptualLoss(SAMPLE_RATE, n_bands=8, taps=32, stride=3, similarity="mse").double()
    x = torch.randn(2, 200, dtype=torch.float64, requires_grad=True)
    target = loss.target_features(torch.randn(2, 200, dtype=torch.float64))
    assert torch.autograd.gradcheck(lambda v: loss.against(v, target, reduction="none"), (x,), eps=1e-6, atol=1e-7)


@needs_native
def test_repeated_calls_and_thread_counts_give_identical_bits():
    loss = PerceptualLoss(SAMPLE_RATE, n_bands=64, taps=256)
    x, target = pair(2048, seed=5)
    threads = torch.get_num_threads()
    try:
        results = []
        for count in (1, 2, 1, 3):
            torch.set_num_threads(count)
            results.append(value_and_gradient(loss, x, target))
    finally:
        torch.set_num_threads(threads)
    for value, gradient in results[1:]:
        assert torch.equal(value, results[0][0]) and torch.equal(gradient, results[0][1])


@needs_native
def test_a_per_call_target_equals_a_prepared_one_bit_for_bit():
    loss = PerceptualLoss(SAMPLE_RATE, n_bands=48, taps=128)
    x, target = pair(1500, seed=8)
    for _ in range(2):  # the second call reuses the workspace
        assert torch.equal(loss(x, target), loss.against(x, loss.target_features(target)))


@needs_native
def test_two_calls_before_one_backward_keep_their_own_arrays():
    """The workspace hands an array out again only once no graph can read it."""
    loss = PerceptualLoss(SAMPLE_RATE, n_bands=32, taps=128)
    (x1, t1), (x2, t2) = pair(800, seed=9), pair(800, seed=10)
    _, grad_1 = value_and_gradient(loss, x1, t1, reduction="sum")
    _, grad_2 = value_and_gradient(loss, x2, t2, reduction="sum")
    a, b = x1.clone().requires_grad_(True), x2.clone().requires_grad_(True)
    total = loss.against(a, loss.target_features(t1), "sum") + loss.against(b, loss.target_features(t2), "sum")
    total.backward()
    assert torch.equal(a.grad, grad_1) and torch.equal(b.grad, grad_2)


@needs_native
def test_more_graphs_alive_than_the_workspace_keeps():
    """Four graphs at once: the workspace keeps two sets and the others get arrays of their own."""
    loss = PerceptualLoss(SAMPLE_RATE, n_bands=32, taps=128)
    pairs = [pair(600, seed=20 + i) for i in range(4)]
    alone = [value_and_gradient(loss, x, t, reduction="sum")[1] for x, t in pairs]
    inputs = [x.clone().requires_grad_(True) for x, _ in pairs]
    sum(loss.against(x, loss.target_features(t), "sum") for x, (_, t) in zip(inputs, pairs)).backward()
    assert all(torch.equal(x.grad, expected) for x, expected in zip(inputs, alone))
    assert len(loss._workspace._slots()) <= 3 * loss._workspace.SLOTS


@needs_native
def test_a_retained_graph_keeps_its_arrays_across_later_calls():
    loss = PerceptualLoss(SAMPLE_RATE, n_bands=32, taps=128)
    x, target = pair(800, seed=11)
    other, other_target = pair(800, seed=12)
    x = x.requires_grad_(True)
    value = loss(x, target)
    value.backward(retain_graph=True)
    first = x.grad.clone()
    for _ in range(2):  # later calls with their own backward, which free their arrays
        y = other.clone().requires_grad_(True)
        loss(y, other_target).backward()
    x.grad = None
    value.backward()
    assert torch.equal(x.grad, first)


def test_a_copied_or_pickled_loss_works():
    loss = PerceptualLoss(SAMPLE_RATE, n_bands=16, taps=64)
    x, target = pair(500, seed=13)
    expected = loss(x, target)
    for clone in (copy.deepcopy(loss), pickle.loads(pickle.dumps(loss))):
        assert torch.equal(clone(x, target), expected)


def test_without_a_compiler_the_torch_path_runs_after_one_warning(monkeypatch, tmp_path):
    monkeypatch.delenv(_native.ENVIRONMENT_SWITCH, raising=False)
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    _native.native_kernels.cache_clear()
    try:
        with pytest.warns(RuntimeWarning, match="torch path"):
            assert _native.native_kernels() is None
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # said once only
            loss = PerceptualLoss(SAMPLE_RATE, n_bands=16, taps=64)
            x, target = pair(500, seed=6)
            assert loss.path_for(x) is Path.BATCHED
            value, _ = value_and_gradient(loss, x, target)
            assert torch.isfinite(value).all()
    finally:
        _native.native_kernels.cache_clear()


def test_the_environment_switch_turns_the_kernels_off(monkeypatch):
    monkeypatch.setenv(_native.ENVIRONMENT_SWITCH, "0")
    _native.native_kernels.cache_clear()
    try:
        assert _native.native_kernels() is None
    finally:
        _native.native_kernels.cache_clear()


def test_the_kernels_run_for_float32_on_the_cpu_only():
    loss = PerceptualLoss(SAMPLE_RATE, n_bands=16, taps=64)
    assert loss.path_for(torch.zeros(1, 100, dtype=torch.float64)) is Path.BATCHED
    assert PerceptualLoss(SAMPLE_RATE, n_bands=16, taps=64, method="direct").path_for(torch.zeros(1, 100)) is Path.DIRECT
    if NATIVE is not None:
        assert loss.path_for(torch.zeros(1, 100)) is Path.COMPILED


def test_the_c_source_numbers_the_similarities_as_the_python_side_does():
    """``_kernels.c`` cannot import ``SIMILARITY_CODES``: its enum is read back and compared."""
    enum = re.search(r"enum \{([^}]*)\};", _native.SOURCE.read_text()).group(1)
    numbered = {name.strip(): int(code) for name, code in (item.split("=") for item in enum.split(","))}
    assert numbered == {name.upper(): code for name, code in _native.SIMILARITY_CODES.items()}


@needs_native
def test_rows_take_the_frames_from_the_output_s_width():
    filtered, weights = torch.randn(2, 40), torch.ones(2, 1)
    features = torch.empty(2, 30)
    NATIVE.rows(filtered, None, weights, "features", 0.0, features, None, None)
    torch.testing.assert_close(features, torch.log1p(filtered[:, :30].clamp_min(0.0)), rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="wide"):
        NATIVE.rows(filtered, None, weights, "features", 0.0, torch.empty(2, 41), None, None)
