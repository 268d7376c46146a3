"""The auditory spectrogram loss against a slow numpy path written from its formula, and its parts
against values by hand."""

import math

import numpy as np
import pytest
import torch

from perceptual_audio_loss import AuditorySpectrogramLoss, build_loss
from perceptual_audio_loss.auditory import erb_band_matrix
from perceptual_audio_loss.scales import erb_rate_per_hz, hz_to_erb_rate

RATE = 11025


def test_erb_rate_by_hand():
    # Glasberg & Moore (1990) eq. 4: 21.4 log10(4.37 f/kHz + 1); at 1 kHz 21.4 log10(5.37).
    assert hz_to_erb_rate(0.0) == 0.0
    assert hz_to_erb_rate(1000.0) == pytest.approx(21.4 * math.log10(5.37))
    assert hz_to_erb_rate(5000.0) == pytest.approx(21.4 * math.log10(22.85))
    # ERBs per Hz against the ERB-rate's slope (a central difference): equal but for eq. 4's rounded
    # 21.4, whose exact value 1000 ln 10 / (24.7 x 4.37) makes them agree to rounding.
    hz = np.array([50.0, 1000.0, 5000.0])
    slope = (hz_to_erb_rate(hz + 0.01) - hz_to_erb_rate(hz - 0.01)) / 0.02
    assert np.allclose(erb_rate_per_hz(hz) * 21.4 / (1000 * math.log(10) / (24.7 * 4.37)), slope, rtol=1e-7)


@pytest.mark.parametrize("n_fft", [64, 512, 2048])
def test_bands_hold_every_bins_power_once(n_fft):
    shares = erb_band_matrix(RATE, n_fft, 2.0)
    assert np.allclose(shares.sum(1), 1.0)
    assert (shares.sum(0) > 0).all()  # no band that no bin reaches
    assert np.array_equal(erb_band_matrix(RATE, n_fft, 0.0), np.eye(n_fft // 2 + 1))


def test_a_full_scale_sine_has_band_power_one():
    loss = AuditorySpectrogramLoss(RATE, longest_window_s=0.023, resolutions=1)
    t = torch.arange(RATE, dtype=torch.float64) / RATE
    sine = torch.sin(2 * math.pi * 1000.0 * t)[None]
    _, power = loss.resolutions[0].double().powers(sine)
    interior = power[0, 4:-4].sum(-1)  # frames away from the zero-padded ends
    assert torch.allclose(interior, torch.ones_like(interior), rtol=1e-3)


def reference(x, y, windows, bands_per_erb, compression, distance, weighting, fine=0.0, relative_floor_db=None,
              floor_db=-96.0, masking="none"):
    """The docstring's formula, frame by frame and bin by bin in numpy float64."""
    total = 0.0
    for n in windows:
        hop, window = n // 4, 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)
        scale = 4.0 / (n * np.sum(window**2))
        bin_hz = np.arange(n // 2 + 1) * RATE / n
        if bands_per_erb:
            rate = 21.4 * np.log10(4.37e-3 * bin_hz + 1) * bands_per_erb
            shares = np.array([[max(0.0, 1 - abs(r - c)) for c in range(int(np.ceil(rate[-1])) + 1)] for r in rate])
            shares = shares[:, shares.sum(0) > 0]
        else:
            shares = np.eye(n // 2 + 1)
        centres = bin_hz @ shares / shares.sum(0)
        weights = np.ones(shares.shape[1])
        if weighting == "a":
            f2 = np.maximum(centres, 1.0) ** 2
            r_a = 12200.0**2 * f2**2 / ((f2 + 20.6**2) * np.sqrt((f2 + 107.7**2) * (f2 + 737.9**2)) * (f2 + 12200.0**2))
            weights = 10 ** ((20 * np.log10(r_a) + 2.0) / 20)
            weights /= weights.mean()
        if weighting == "erb":
            weights = np.array([sum(shares[k, b] * (RATE / n) / (24.7 * (4.37e-3 * bin_hz[k] + 1))
                                    for k in range(len(bin_hz))) for b in range(shares.shape[1])])
            weights /= weights.mean()

        def powers(signal):
            padded = np.concatenate([np.zeros(n // 2), signal, np.zeros(n // 2)])
            frames = [padded[start:start + n] for start in range(0, len(padded) - n + 1, hop)]
            return np.array([np.abs(np.fft.rfft(f * window)) ** 2 * scale for f in frames])

        p, q = powers(x) @ shares, powers(y) @ shares
        floor = 10 ** (floor_db / 10)
        if relative_floor_db is not None:
            floor = max(floor, q.max() * 10 ** (relative_floor_db / 10))
        if masking == "simultaneous":  # per band i and frame: the maskers j's spread powers, added
            z = 13 * np.arctan(0.00076 * centres) + 3.5 * np.arctan((centres / 7500) ** 2)
            threshold = np.zeros_like(q)
            for i in range(len(z)):
                for j in range(len(z)):
                    above = z[i] - z[j]
                    spread_db = 27 * above if above < 0 else -(24 + 230 / max(centres[j], 1.0)) * above
                    threshold[:, i] += q[:, j] * 10 ** ((spread_db - 14.5 - z[j]) / 10)
            floor = np.maximum(threshold, floor)
        level = (lambda v: np.log(v + floor)) if compression == "log" else (lambda v: (v + floor) ** (1 / 3))
        if fine:
            total += fine * np.mean(np.abs(level(powers(x)) - level(powers(y))))
        if distance == "cosine":
            a, b = (level(p) - level(0.0)).ravel(), (level(q) - level(0.0)).ravel()
            total += 1 - a @ b / (np.linalg.norm(a) * np.linalg.norm(b))
            continue
        e, f = np.sqrt(p + floor * 1e-6), np.sqrt(q + floor * 1e-6)
        difference = np.abs(level(p) - level(q))
        if compression == "cube-root":
            difference /= level(q).mean()
        total += np.linalg.norm(e - f) / np.linalg.norm(f) + np.mean(difference * weights)
    return total / len(windows)


@pytest.mark.parametrize("options", [
    {},
    {"distance": "cosine"},
    {"compression": "cube-root"},
    {"weighting": "none"},
    {"bands_per_erb": 0},
    {"bands_per_erb": 0, "weighting": "erb", "relative_floor_db": None},
    {"resolutions": 1},
    {"fine": 0.5},
    {"fine": 0.0},
    {"relative_floor_db": None},
    {"relative_floor_db": -40.0, "distance": "cosine", "fine": 1.0},
    {"longest_window_s": 0.093, "resolutions": 2},
    {"masking": "simultaneous", "fine": 0.0},
    {"masking": "simultaneous", "fine": 0.0, "relative_floor_db": None, "distance": "cosine"},
], ids=["design", "cosine", "cube-root", "unweighted", "per-bin", "per-bin-erb-weighted", "one-window", "fine-half", "bands-alone",
        "absolute-floor", "relative-floor-cosine-fine", "long-windows", "masking", "masking-absolute-floor-cosine"])
def test_value_matches_the_formula_by_hand(options):
    generator = np.random.default_rng(5)
    x, y = generator.normal(0, 0.1, 2000), generator.normal(0, 0.1, 2000) * np.hanning(2000)
    loss = AuditorySpectrogramLoss(RATE, **options).double()
    value = float(loss(torch.from_numpy(x)[None], torch.from_numpy(y)[None]))
    longest = 2 ** round(math.log2(RATE * options.get("longest_window_s", 0.046)))
    windows = [longest // 2**k for k in range(options.get("resolutions", 4))]
    expected = reference(x, y, windows, options.get("bands_per_erb", 2.0), options.get("compression", "log"),
                         options.get("distance", "level"), options.get("weighting", "a"), options.get("fine", 1.0),
                         options.get("relative_floor_db", -60.0), masking=options.get("masking", "none"))
    assert value == pytest.approx(expected, rel=1e-7)


def test_gradient_matches_finite_differences():
    torch.manual_seed(0)
    loss = AuditorySpectrogramLoss(RATE, longest_window_s=0.006, resolutions=2).double()
    x = (0.1 * torch.randn(1, 64, dtype=torch.float64)).requires_grad_()
    y = 0.1 * torch.randn(1, 64, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda v: loss(v, y), (x,))
    assert torch.autograd.gradgradcheck(lambda v: loss(v, y), (x,))


def test_a_copy_20_db_too_quiet_costs_its_level():
    """By hand: spectral convergence ||0.1 E - E|| / ||E|| = 0.9, and every band's and every bin's
    log power is ln(100) too low (far above the floor); the bands alone without the bins."""
    x = 0.1 * torch.randn(1, 8192, generator=torch.Generator().manual_seed(1))
    assert float(AuditorySpectrogramLoss(RATE)(0.1 * x, x)) == pytest.approx(0.9 + 2 * math.log(100.0), rel=0.02)
    assert float(AuditorySpectrogramLoss(RATE, fine=0)(0.1 * x, x)) == pytest.approx(0.9 + math.log(100.0), rel=0.02)


def test_a_relative_floor_far_down_is_the_absolute_floor():
    """The runs made before the relative floor was the default: ``relative_floor_db=-300`` gives
    exactly what ``None`` (the -96 dB floor re full scale alone) gives."""
    generator = torch.Generator().manual_seed(2)
    x, y = torch.randn(2, 3000, generator=generator), torch.randn(2, 3000, generator=generator)
    absolute = AuditorySpectrogramLoss(RATE, relative_floor_db=None)(x, y)
    assert torch.equal(AuditorySpectrogramLoss(RATE, relative_floor_db=-300.0)(x, y), absolute)
    assert not torch.equal(AuditorySpectrogramLoss(RATE)(x, y), absolute)


def test_masking_spreads_as_the_masking_model_by_hand():
    """A masker at 1 kHz (8.51 Bark): 14.5 + 8.51 dB down in its own band; one Bark above it a
    further 24 + 230/1000 dB; one Bark below it a further 27 dB (BS.1387-1's slopes, Johnston's
    tone offset)."""
    from perceptual_audio_loss.auditory import simultaneous_masking_matrix
    from perceptual_audio_loss.scales import critical_band_rate_to_hz

    centres = critical_band_rate_to_hz(np.array([7.51, 8.51, 9.51]))
    gains_db = 10 * np.log10(simultaneous_masking_matrix(centres)[:, 1])
    own = -(14.5 + 8.51)
    assert gains_db == pytest.approx([own - 27.0, own, own - (24.0 + 230.0 / centres[1])], abs=0.01)


def test_a_tone_under_a_louder_tones_mask_costs_less_with_masking():
    """A probe tone 45 dB below a 1 kHz masker: at 1.1 kHz it lies under the masking threshold
    (about 23 dB below the masker in its band, 27 dB/Bark lower below, 24 dB/Bark above), so
    masking lowers its cost; at 3 kHz, about 7 Bark above, the mask has fallen far below the
    relative floor and the cost is the same either way."""
    t = torch.arange(8192, dtype=torch.float64) / RATE
    masker = 0.5 * torch.sin(2 * math.pi * 1000.0 * t)[None]
    plain = AuditorySpectrogramLoss(RATE, fine=0).double()
    masked = AuditorySpectrogramLoss(RATE, fine=0, masking="simultaneous").double()
    near, far = (0.5 * 10 ** (-45 / 20) * torch.sin(2 * math.pi * hz * t)[None] for hz in (1100.0, 3000.0))
    assert float(masked(masker + near, masker)) < 0.8 * float(plain(masker + near, masker))
    assert float(masked(masker + far, masker)) == pytest.approx(float(plain(masker + far, masker)), rel=1e-4)


def test_windows_halve_from_the_longest():
    assert [r.n_fft for r in build_loss("auditory", RATE).resolutions] == [512, 256, 128, 64]
    assert [r.n_fft for r in build_loss("auditory", 44100, longest_window_s=0.093, resolutions=3).resolutions] == [4096, 2048, 1024]


@pytest.mark.parametrize("name, value, kind", [
    ("compression", "cubic", ValueError),
    ("distance", 3, TypeError),
    ("bands_per_erb", -1.0, ValueError),
    ("floor_db", float("nan"), ValueError),
    ("resolutions", 0, ValueError),
    ("resolutions", 2.5, TypeError),
    ("longest_window_s", 2.0, ValueError),
    ("masking", "temporal", ValueError),
])
def test_bad_arguments_are_refused_by_name(name, value, kind):
    with pytest.raises(kind, match=f"^{name}"):
        AuditorySpectrogramLoss(RATE, **{name: value})


def test_masking_with_the_fine_term_is_refused_by_name():
    with pytest.raises(ValueError, match="^masking.*fine=0"):
        AuditorySpectrogramLoss(RATE, masking="simultaneous")
