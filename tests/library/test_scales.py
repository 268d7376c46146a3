import numpy as np
import pytest

from perceptual_audio_loss.scales import (
    a_weighting_db,
    band_centres_hz,
    band_weights,
    bark_to_hz,
    erb_hz,
    hz_to_bark,
    hz_to_mel,
    mel_to_hz,
)

# A-weighting from IEC 61672-1:2013 Table 3, keyed by the one-third-octave index n of the exact
# base-10 frequency 1000 * 10^(n/10) Hz (the table's nominal 31.5 Hz is really 31.62 Hz).
# Values are rounded to 0.1 dB, so a correct curve is within 0.05 dB of them.
IEC_61672_A_WEIGHTING = {
    -15: -39.4, -13: -30.2, -10: -19.1, -7: -10.9, -3: -3.2,
    0: 0.0, 3: 1.2, 6: 1.0, 9: -1.1, 10: -2.5, 12: -6.6,
}


@pytest.mark.parametrize("index, expected_db", IEC_61672_A_WEIGHTING.items())
def test_a_weighting_matches_the_published_table(index, expected_db):
    assert a_weighting_db(1000.0 * 10 ** (index / 10)) == pytest.approx(expected_db, abs=0.05)


def test_bark_by_hand():
    # 6 asinh(1) = 6 ln(1 + sqrt 2)
    assert hz_to_bark(600.0) == pytest.approx(6 * np.log(1 + np.sqrt(2)))
    hz = np.array([1.0, 440.0, 5512.5])
    np.testing.assert_allclose(bark_to_hz(hz_to_bark(hz)), hz)


def test_mel_by_hand():
    # 2595 log10(2) at 700 Hz; 1000 Hz is close to 1000 mel by construction of the scale.
    assert hz_to_mel(700.0) == pytest.approx(2595 * np.log10(2))
    assert hz_to_mel(1000.0) == pytest.approx(1000.0, abs=0.5)
    np.testing.assert_allclose(mel_to_hz(hz_to_mel([50.0, 3000.0])), [50.0, 3000.0])


def test_erb_at_1khz_is_glasberg_and_moore():
    # 24.7 (4.37 + 1) = 132.6 Hz (Glasberg & Moore 1990).
    assert erb_hz(1000.0) == pytest.approx(24.7 * (4.37 * 1.0 + 1), rel=1e-3)


@pytest.mark.parametrize("scale, forward", [("bark", hz_to_bark), ("mel", hz_to_mel), ("linear", np.asarray)])
def test_band_centres_are_evenly_spaced_on_the_scale(scale, forward):
    centres = band_centres_hz(1.0, 5512.5, 40, scale)
    assert centres[0] == pytest.approx(1.0) and centres[-1] == pytest.approx(5512.5)
    steps = np.diff(forward(centres))
    np.testing.assert_allclose(steps, steps[0], rtol=1e-9)


def test_band_weights_are_shifted_a_weighting():
    centres = np.array([50.0, 1000.0, 3000.0])
    weights = band_weights(centres)
    assert weights.min() == pytest.approx(1.0)
    # The shift keeps dB differences: w(1 kHz) - w(50 Hz) = A(1 kHz) - A(50 Hz), about 30.2 dB.
    assert weights[1] - weights[0] == pytest.approx(a_weighting_db(1000.0) - a_weighting_db(50.0))
    np.testing.assert_array_equal(band_weights(centres, "none"), 1.0)


def test_bad_scale_arguments_are_refused():
    with pytest.raises(ValueError, match="unknown scale"):
        band_centres_hz(1, 100, 4, "erb")
    with pytest.raises(ValueError, match="low_hz"):
        band_centres_hz(100, 10, 4)
    with pytest.raises(ValueError, match="low_hz > 0"):
        band_weights(np.array([0.0, 100.0]))
