"""The masking-aware loss against numbers a correct psychoacoustic model meets (issue 6).

Signals are built here from their definitions (sines, band-limited noise by FFT masking), and
levels follow the loss's calibration: a full-scale sine is 96 dB SPL, so a signal of mean square
``s`` has intensity ``2 s`` times that of full scale.
"""

import math

import numpy as np
import pytest
import torch

from perceptual_audio_loss import MaskedLoss, build_loss
from perceptual_audio_loss.losses import TargetLoss
from perceptual_audio_loss.masking import band_edges_bark, window_length
from perceptual_audio_loss.scales import (
    critical_band_rate_to_hz,
    hz_to_critical_band_rate,
    threshold_in_quiet_db,
)

RATE = 44100


def as_batch(*signals) -> torch.Tensor:
    return torch.tensor(np.stack(signals), dtype=torch.float32)


def band_noise(low_hz, high_hz, rms, length, rate=RATE, seed=0):
    """Gaussian noise with every FFT bin outside ``[low_hz, high_hz]`` zeroed, scaled to ``rms``."""
    spectrum = np.fft.rfft(np.random.default_rng(seed).standard_normal(length))
    spectrum[(np.fft.rfftfreq(length, 1 / rate) < low_hz) | (np.fft.rfftfreq(length, 1 / rate) > high_hz)] = 0
    noise = np.fft.irfft(spectrum, length)
    return noise * rms / np.sqrt(np.mean(noise ** 2))


def sine(hz, amplitude, length, rate=RATE):
    return amplitude * np.sin(2 * np.pi * hz * np.arange(length) / rate)


def rms_of_dbfs(dbfs):
    return 10 ** (dbfs / 20)


@pytest.fixture(scope="module")
def loss():
    return MaskedLoss(RATE)


def cost(loss, target, probe):
    return loss(as_batch(target + probe), as_batch(target)).item()


# -- the scales the model stands on ------------------------------------------------------------

# Zwicker (1961), "Subdivision of the audible frequency range into critical bands", JASA 33:
# the upper edges of critical bands 1..24 in Hz.
ZWICKER_BAND_EDGES_HZ = [100, 200, 300, 400, 510, 630, 770, 920, 1080, 1270, 1480, 1720, 2000, 2320,
                         2700, 3150, 3700, 4400, 5300, 6400, 7700, 9500, 12000, 15500]


def test_critical_band_rate_follows_zwickers_table():
    bark = hz_to_critical_band_rate(ZWICKER_BAND_EDGES_HZ)
    np.testing.assert_allclose(bark, np.arange(1, 25), atol=0.25)
    np.testing.assert_allclose(critical_band_rate_to_hz(bark), ZWICKER_BAND_EDGES_HZ, rtol=1e-4)


def test_threshold_in_quiet_is_terhardts_formula_clamped():
    for hz in (100.0, 1000.0, 3300.0, 8000.0):
        khz = hz / 1000
        by_hand = 3.64 * khz ** -0.8 - 6.5 * math.exp(-0.6 * (khz - 3.3) ** 2) + 1e-3 * khz ** 4
        assert threshold_in_quiet_db(hz) == pytest.approx(by_hand, abs=1e-9)
    assert threshold_in_quiet_db(20000.0) == threshold_in_quiet_db(15000.0)
    assert threshold_in_quiet_db(5.0) == threshold_in_quiet_db(20.0)


def test_windows_are_the_nearest_powers_of_two():
    assert [window_length(rate, 0.023) for rate in (11025, 22050, 44100, 48000)] == [256, 512, 1024, 1024]
    assert [window_length(rate, 0.006) for rate in (11025, 22050, 44100, 48000)] == [64, 128, 256, 256]


def test_bands_are_half_a_bark_from_zero_to_nyquist():
    edges = band_edges_bark(RATE)
    assert edges[0] == 0 and edges[-1] == pytest.approx(hz_to_critical_band_rate(RATE / 2))
    np.testing.assert_allclose(np.diff(edges)[:-1], 0.5)


@pytest.mark.parametrize("rate", [11025, 48000])
def test_a_full_scale_sine_is_96_db_spl_at_both_resolutions(rate):
    loss = MaskedLoss(rate)
    signal = torch.tensor(sine(1000.0, 1.0, rate, rate), dtype=torch.float32)[None]
    for resolution in loss.resolutions:
        frames = resolution.band_energy(resolution.spectrum(signal))[0, 10:-10].sum(-1)
        np.testing.assert_allclose(10 * torch.log10(frames).numpy(), 96.0, atol=0.01)


def test_white_noise_level_follows_its_mean_square():
    loss = MaskedLoss(RATE, full_scale_db=92.0)
    noise = torch.from_numpy(np.random.default_rng(1).standard_normal(RATE) * 0.01).float()[None]
    expected_db = 92.0 + 10 * math.log10(2 * 0.01 ** 2)
    for resolution in loss.resolutions:
        level = 10 * torch.log10(resolution.band_energy(resolution.spectrum(noise))[0, 10:-10].sum(-1).mean())
        assert level.item() == pytest.approx(expected_db, abs=0.1)


def test_spreading_and_offsets_match_the_formulas_for_one_masker():
    loss = MaskedLoss(RATE)
    bands = len(loss.centres_bark)
    masker, level_db = 17, 70.0  # band 17 spans 8.5-9 Bark, about 1.08 kHz
    energy = torch.zeros(1, 1, bands)
    energy[0, 0, masker] = 10 ** (level_db / 10)
    z = loss.centres_bark.numpy()
    f_c = critical_band_rate_to_hz(z[masker])
    for tonality, offset_db in ((1.0, 14.5 + z[masker]), (0.0, 5.5)):
        threshold = loss._simultaneous(energy, torch.full((1, 1, bands), tonality), torch.zeros(1, 1, 1))[0, 0].numpy()
        for maskee in (masker - 4, masker - 1, masker, masker + 1, masker + 4):
            dz = z[maskee] - z[masker]
            slope = 27.0 if dz < 0 else 24 + 230 / f_c - 0.2 * level_db
            expected_db = level_db - slope * abs(dz) - offset_db
            assert 10 * math.log10(threshold[maskee]) == pytest.approx(expected_db, abs=1e-3)
        # computed at a scale (as for a target far past full scale): the level that sets the slope
        # is the true one, and the threshold comes back at that scale
        scale = 2.0**-40
        scaled = loss._simultaneous(energy * scale, torch.full((1, 1, bands), tonality),
                                    torch.full((1, 1, 1), math.log(scale)))[0, 0].numpy()
        assert scaled / scale == pytest.approx(threshold, rel=1e-4)


def test_a_steady_tone_is_tonal_and_white_noise_is_not(loss):
    tone = torch.tensor(sine(1000.0, 0.3, RATE // 2), dtype=torch.float32)[None]
    noise = torch.from_numpy(np.random.default_rng(2).standard_normal(RATE // 2) * 0.1).float()[None]
    long = loss.resolutions[0]
    band = int(np.searchsorted(loss.band_edges_hz, 1000.0)) - 1
    assert loss._tonality(long, long.spectrum(tone))[0, 4:-4, band].min() > 0.95
    assert loss._tonality(long, long.spectrum(noise))[0, 4:-4].mean() < 0.1


# -- issue 6, test 1: zero, sign and gradients -------------------------------------------------


def test_identical_signals_cost_nothing_and_the_loss_is_never_negative(loss):
    rng = np.random.default_rng(3)
    x = as_batch(0.1 * rng.standard_normal(8000), sine(440, 0.5, 8000))
    assert loss(x, x).item() < 1e-5
    for _ in range(5):
        assert loss(x + 0.01 * torch.randn_like(x), x).item() >= 0
    assert loss(x, torch.zeros_like(x)).item() >= 0


@pytest.mark.parametrize("case", ["equal", "silent target", "silent input"])
def test_gradients_are_finite_and_the_target_gets_none(loss, case):
    signal = as_batch(band_noise(200, 4000, 0.1, 6000))
    silence = torch.zeros_like(signal)
    input, target = {"equal": (signal, signal), "silent target": (signal, silence), "silent input": (silence, signal)}[case]
    input = input.clone().requires_grad_(True)
    target = target.clone().requires_grad_(True)
    loss(input, target).backward()
    assert torch.isfinite(input.grad).all()
    assert target.grad is None


def test_gradient_matches_finite_differences():
    loss = MaskedLoss(11025)
    rng = np.random.default_rng(4)
    target = torch.from_numpy(band_noise(200, 3000, 0.1, 400, rate=11025)).double()[None]
    features = loss.target_features(target)
    input = (target + 0.01 * torch.from_numpy(rng.standard_normal(400))).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: loss.against(x, features), (input,), eps=1e-6, atol=1e-6, rtol=1e-3)


# -- test 2: noise under the mask --------------------------------------------------------------


def noise_under_the_mask(loss, target, low_hz, high_hz, below_db):
    """Noise whose energy in every band inside ``[low_hz, high_hz]`` is ``below_db`` under the
    lowest threshold that band has at any resolution and frame."""
    lowest = torch.stack([mask[0].min(0).values for mask in loss._threshold_intensities(as_batch(target))[1]]).min(0).values.numpy()
    edges, full_scale = loss.band_edges_hz, 10 ** (96.0 / 10)
    noise = np.zeros(len(target))
    for band, (low, high) in enumerate(zip(edges[:-1], edges[1:])):
        if low >= low_hz and high <= high_hz:
            mean_square = lowest[band] * 10 ** (-below_db / 10) / full_scale / 2
            noise += band_noise(low, high, math.sqrt(mean_square), len(target), seed=100 + band)
    return noise


def test_noise_under_the_mask_costs_a_hundredth_of_the_same_noise_where_nothing_masks_it(loss):
    target = band_noise(100, 2000, rms_of_dbfs(-20), RATE // 2, seed=5)
    hidden = noise_under_the_mask(loss, target, 100, 2000, below_db=20)
    exposed = band_noise(7000, 8000, np.sqrt(np.mean(hidden ** 2)), len(target), seed=6)
    assert cost(loss, target, hidden) <= 0.01 * cost(loss, target, exposed)
    audible = cost(loss, target, exposed)
    assert abs(cost(loss, target, exposed + hidden) - audible) < 0.01 * audible


# -- tests 3-5: simultaneous masking by a tone -------------------------------------------------

TONE = sine(1000.0, 0.3, RATE // 2)
PROBE_RMS = 0.3 / math.sqrt(2) * 10 ** (-30 / 20)  # 30 dB below the tone's power


def narrow_probe(centre_hz, seed):
    return band_noise(centre_hz * 0.95, centre_hz * 1.05, PROBE_RMS, len(TONE), seed=seed)


def test_probes_cost_more_the_further_above_the_tone(loss):
    near, middle, far = (cost(loss, TONE, narrow_probe(hz, seed)) for seed, hz in enumerate((1100, 1500, 4000)))
    assert near < middle < far
    assert far >= 10 * near


def test_masking_spreads_further_upward_than_downward(loss):
    # 716 Hz and 1354 Hz are 2 Bark below and above 1 kHz on Zwicker & Terhardt's scale.
    assert hz_to_critical_band_rate([716, 1354]) - hz_to_critical_band_rate(1000) == pytest.approx([-2, 2], abs=0.01)
    below, above = cost(loss, TONE, narrow_probe(716, 7)), cost(loss, TONE, narrow_probe(1354, 8))
    assert below >= 2 * above


def test_a_tone_masks_less_than_noise_of_equal_power(loss):
    noise_masker = band_noise(950, 1050, np.sqrt(np.mean(TONE ** 2)), len(TONE), seed=9)
    probe = narrow_probe(1100, seed=10)
    under_tone = loss.noise_to_mask_ratio_db(as_batch(TONE + probe), as_batch(TONE)).item()
    under_noise = loss.noise_to_mask_ratio_db(as_batch(noise_masker + probe), as_batch(noise_masker)).item()
    assert under_tone >= under_noise + 8


# -- test 6: temporal masking ------------------------------------------------------------------


def test_forward_masking_outlasts_backward_masking_and_fades(loss):
    length, onset = int(0.8 * RATE), int(0.3 * RATE)
    offset = onset + int(0.1 * RATE)
    target = np.zeros(length)
    target[onset:offset] = band_noise(1000, 3000, rms_of_dbfs(-20), offset - onset, seed=11)
    probe_length = int(0.005 * RATE)
    burst = band_noise(1000, 3000, 1.0, probe_length, seed=12) * np.hanning(probe_length)
    burst *= rms_of_dbfs(-50) / np.sqrt(np.mean(burst ** 2))

    def probe_starting(start):
        probe = np.zeros(length)
        probe[start : start + probe_length] = burst
        return probe

    def ms(milliseconds):
        return int(milliseconds / 1000 * RATE)

    before = cost(loss, target, probe_starting(onset - ms(10) - probe_length))
    after = {gap: cost(loss, target, probe_starting(offset + ms(gap))) for gap in (10, 40, 150)}
    alone = cost(loss, np.zeros(length), probe_starting(ms(100)))
    assert before >= 10 * after[10]
    assert after[40] <= 0.5 * alone
    assert after[150] >= 0.8 * alone


# -- test 7: the threshold in quiet ------------------------------------------------------------


def test_a_silent_target_hides_only_what_is_below_the_threshold_in_quiet(loss):
    silence = np.zeros(RATE // 2)
    noise = np.random.default_rng(13).standard_normal(len(silence))
    assert cost(loss, silence, noise * rms_of_dbfs(-110)) < 1e-3
    assert cost(loss, silence, noise * rms_of_dbfs(-60)) > 1


# -- test 8: the sample rate -------------------------------------------------------------------


def multisine(rate, length, low_hz, high_hz, count, rms, seed):
    """A sum of ``count`` sines at random frequencies and phases: the same signal at any rate."""
    rng = np.random.default_rng(seed)
    hz, phase = rng.uniform(low_hz, high_hz, count), rng.uniform(0, 2 * np.pi, count)
    x = np.sin(2 * np.pi * hz[:, None] * np.arange(length) / rate + phase[:, None]).sum(0)
    return x * rms / np.sqrt(np.mean(x ** 2))


def harmonics(rate, length):
    t = np.arange(length) / rate
    return sum(0.3 / k * np.sin(2 * np.pi * 220 * k * t) for k in range(1, 18))


@pytest.mark.parametrize("kind", ["harmonic target", "noise target"])
def test_the_same_signals_cost_the_same_at_every_sample_rate(kind):
    values = []
    for rate in (11025, 22050, 44100, 48000):
        length = rate // 2
        if kind == "harmonic target":
            target = harmonics(rate, length)
        else:
            target = multisine(rate, length, 200, 4000, 400, 0.1, seed=14)
        error = multisine(rate, length, 300, 5000, 400, 0.003, seed=15)
        values.append(MaskedLoss(rate)(as_batch(target + error), as_batch(target)).item())
    assert max(values) <= 1.1 * min(values), values


# -- test 9: shapes ----------------------------------------------------------------------------


def test_batch_of_time_and_batch_of_mono_agree_and_odd_lengths_work(loss):
    rng = np.random.default_rng(16)
    target = as_batch(band_noise(100, 5000, 0.1, 4411), band_noise(300, 900, 0.05, 4411))
    input = target + 0.003 * torch.from_numpy(rng.standard_normal((2, 4411))).float()
    flat = loss(input, target)
    assert torch.equal(flat, loss(input[:, None], target[:, None]))
    per_item = MaskedLoss(RATE, reduction="none")(input[:, None], target[:, None])
    assert per_item.shape == (2,) and torch.allclose(per_item.mean(), flat)
    assert torch.allclose(MaskedLoss(RATE, reduction="sum")(input, target), per_item.sum())


def test_a_clip_shorter_than_the_long_window(loss):
    assert window_length(RATE, 0.023) == 1024
    target = as_batch(sine(1000, 0.3, 700))
    probe = as_batch(sine(4000, 0.01, 700))
    assert loss(target, target).item() == 0
    assert loss(target + probe, target).item() > 1


def test_mask_has_a_threshold_per_band_and_frame(loss):
    target = as_batch(TONE[:8192], np.zeros(8192))[:, None]
    mask = loss.threshold_db(target)
    bands, frames = len(loss.band_edges_hz) - 1, 8192 // loss.hop() + 1
    assert mask.shape == (2, 1, bands, frames)
    quiet = threshold_in_quiet_db(np.linspace(loss.band_edges_hz[:-1], loss.band_edges_hz[1:], 17)).min(0)
    np.testing.assert_allclose(mask[1, 0, :, 5].numpy(), quiet, atol=1e-3)  # silence: only the floor
    band = int(np.searchsorted(loss.band_edges_hz, 1000.0)) - 1
    assert mask[0, 0, band, 5] > 50  # under an 85.5 dB tone


def test_an_item_does_not_depend_on_its_batch_mates():
    loss = build_loss("masked", 11025)
    targets = torch.randn(4, 1, 8192) * 0.1
    outputs = torch.randn(4, 1, 8192) * 0.1
    together = TargetLoss(loss, targets)(outputs)
    assert together.shape == (4,)
    for index in range(4):
        assert torch.equal(together[index], TargetLoss(loss, targets[index : index + 1])(outputs[index : index + 1])[0])


def test_bad_shapes_are_refused(loss):
    with pytest.raises(ValueError, match="differ"):
        loss(torch.zeros(1, 100), torch.zeros(1, 101))
    with pytest.raises(ValueError, match="batch"):
        loss(torch.zeros(100), torch.zeros(100))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_matches_cpu():
    target = as_batch(band_noise(100, 4000, 0.1, 20000), TONE[:20000])
    input = target + 0.01 * torch.randn_like(target)
    on_cpu = MaskedLoss(RATE)(input, target)
    on_gpu = MaskedLoss(RATE).to("cuda")(input.cuda(), target.cuda()).cpu()
    assert on_gpu.item() == pytest.approx(on_cpu.item(), rel=1e-4)
