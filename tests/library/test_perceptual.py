import numpy as np
import pytest
import torch

from perceptual_audio_loss import PerceptualLoss, perceptual_loss
from perceptual_audio_loss.scales import band_weights

SAMPLE_RATE = 11025
SMALL = dict(n_bands=12, taps=32)


def reference_features(x: np.ndarray, loss: PerceptualLoss) -> np.ndarray:
    """Slow path: numpy cross-correlation band by band, then the formula of the post."""
    filters = loss.filters.squeeze(1).double().numpy()
    taps = filters.shape[1]
    padded = np.pad(x, taps)
    bands = np.stack([np.correlate(padded, f, mode="valid") for f in filters])
    weights = band_weights(loss.band_centres_hz.double().numpy().astype(np.float64))[:, None]
    return np.log(1 + loss.log_factor * np.maximum(bands, 0)) * weights


def test_features_match_a_numpy_reference():
    loss = PerceptualLoss(SAMPLE_RATE, **SMALL).double()
    x = np.random.default_rng(0).standard_normal(300)
    features = loss.features(torch.from_numpy(x)[None]).squeeze(0).numpy()
    expected = reference_features(x, loss)
    assert features.shape == (12, 300 + 32 + 1)
    np.testing.assert_allclose(features, expected, rtol=1e-6, atol=1e-6)


def test_cosine_loss_is_minus_the_cosine_of_flattened_features():
    loss = PerceptualLoss(SAMPLE_RATE, **SMALL).double()
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal(256), rng.standard_normal(256)
    fa, fb = reference_features(a, loss).ravel(), reference_features(b, loss).ravel()
    expected = -fa @ fb / (np.linalg.norm(fa) * np.linalg.norm(fb))
    got = loss(torch.from_numpy(a)[None], torch.from_numpy(b)[None])
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_mse_similarity_is_the_mean_squared_feature_difference():
    loss = PerceptualLoss(SAMPLE_RATE, similarity="mse", **SMALL).double()
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal(256), rng.standard_normal(256)
    expected = np.mean((reference_features(a, loss) - reference_features(b, loss)) ** 2)
    assert loss(torch.from_numpy(a)[None], torch.from_numpy(b)[None]).item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("similarity, minimum", [("cosine", -1.0), ("mse", 0.0)])
def test_a_signal_against_itself_is_the_minimum_with_finite_gradient(similarity, minimum):
    loss = PerceptualLoss(SAMPLE_RATE, similarity=similarity, n_bands=64, taps=128)
    target = torch.randn(2, 2048)
    same = target.clone().requires_grad_(True)
    value = loss(same, target)
    value.backward()
    assert value.item() == pytest.approx(minimum, abs=1e-5)
    assert torch.isfinite(same.grad).all()
    for other in (torch.randn(2, 2048), 0.5 * target + 0.1 * torch.randn(2, 2048)):
        assert loss(other, target).item() > minimum + 1e-4


def test_silent_input_has_a_finite_gradient():
    loss = PerceptualLoss(SAMPLE_RATE, **SMALL)
    silent = torch.zeros(1, 512, requires_grad=True)
    loss(silent, torch.randn(1, 512)).backward()
    assert torch.isfinite(silent.grad).all()


def test_seed_defaults():
    loss = PerceptualLoss(SAMPLE_RATE)
    assert loss.filters.shape == (512, 1, 512)
    assert loss.features(torch.randn(1, 8192)).shape == (1, 512, 8192 + 512 + 1)
    assert loss.band_centres_hz[0].item() == pytest.approx(1.0)
    assert loss.band_centres_hz[-1].item() == pytest.approx(SAMPLE_RATE // 2)  # zounds: the integer half


def test_stride_shortens_the_feature_map():
    loss = PerceptualLoss(SAMPLE_RATE, stride=4, **SMALL)
    assert loss.features(torch.randn(1, 1000)).shape[-1] == (1000 + 32) // 4 + 1


def test_shapes_batch_time_and_batch_channel_time_agree():
    loss = PerceptualLoss(SAMPLE_RATE, **SMALL)
    a, b = torch.randn(3, 500), torch.randn(3, 500)
    assert torch.equal(loss(a, b), loss(a[:, None], b[:, None]))
    # Stereo (issue 12): each channel on its own, a batch item's value their mean.
    stereo_a, stereo_b = torch.randn(3, 2, 500), torch.randn(3, 2, 500)
    by_channel = torch.stack([PerceptualLoss(SAMPLE_RATE, reduction="none", **SMALL)(stereo_a[:, c], stereo_b[:, c])
                              for c in range(2)])
    torch.testing.assert_close(loss(stereo_a, stereo_b), by_channel.mean(0).mean())
    with pytest.raises(ValueError, match="batch"):
        loss(torch.randn(3, 2, 2, 500), torch.randn(3, 2, 2, 500))
    with pytest.raises(ValueError, match="differ"):
        loss(torch.randn(3, 500), torch.randn(3, 400))


def test_reductions_and_batch_size_independence():
    loss = PerceptualLoss(SAMPLE_RATE, reduction="none", **SMALL)
    a, b = torch.randn(4, 500), torch.randn(4, 500)
    per_item = loss(a, b)
    assert per_item.shape == (4,)
    singles = torch.stack([loss(a[i : i + 1], b[i : i + 1])[0] for i in range(4)])
    torch.testing.assert_close(per_item, singles)
    assert PerceptualLoss(SAMPLE_RATE, reduction="sum", **SMALL)(a, b).item() == pytest.approx(per_item.sum().item(), rel=1e-5)
    assert PerceptualLoss(SAMPLE_RATE, **SMALL)(a, b).item() == pytest.approx(per_item.mean().item(), rel=1e-5)


def test_float64_follows_the_input():
    loss = PerceptualLoss(SAMPLE_RATE, **SMALL)
    a, b = torch.randn(1, 300, dtype=torch.float64), torch.randn(1, 300, dtype=torch.float64)
    assert loss(a, b).dtype == torch.float64
    assert loss.double().filters.dtype == torch.float64


@pytest.mark.parametrize("scale", ["bark", "mel", "linear"])
@pytest.mark.parametrize("weighting", ["a", "none"])
def test_every_option_builds_and_gives_a_finite_loss(scale, weighting):
    loss = PerceptualLoss(SAMPLE_RATE, scale=scale, weighting=weighting, log_factor=100, **SMALL)
    assert torch.isfinite(loss(torch.randn(2, 400), torch.randn(2, 400)))


def test_bad_options_are_refused():
    for kwargs, message in [
        (dict(similarity="l1"), "similarity"),
        (dict(reduction="max"), "reduction"),
        (dict(stride=0), "stride"),
        (dict(log_factor=0), "log_factor"),
        (dict(weighting="c"), "weighting"),
    ]:
        with pytest.raises(ValueError, match=message):
            PerceptualLoss(SAMPLE_RATE, **SMALL, **kwargs)


def test_state_dict_round_trip_and_functional_form():
    loss = PerceptualLoss(SAMPLE_RATE, **SMALL)
    clone = PerceptualLoss(SAMPLE_RATE, **SMALL)
    clone.load_state_dict(loss.state_dict())
    a, b = torch.randn(2, 300), torch.randn(2, 300)
    assert torch.equal(loss(a, b), clone(a, b))
    assert torch.equal(perceptual_loss(a, b, SAMPLE_RATE, **SMALL), loss(a, b))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_matches_cpu():
    loss = PerceptualLoss(SAMPLE_RATE, n_bands=64, taps=128)
    a, b = torch.randn(2, 2048), torch.randn(2, 2048)
    on_gpu = loss.to("cuda")(a.cuda(), b.cuda()).cpu()
    torch.testing.assert_close(on_gpu, loss.cpu()(a, b), rtol=1e-4, atol=1e-5)
