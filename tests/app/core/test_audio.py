import numpy as np
import pytest
import soundfile

from helpers import sine
from pal.core.audio import AudioError, load_clip, prepare_clip, take_window
from pal.clips import BUILTIN_CLIPS, builtin_clip


def dominant_hz(samples, rate):
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return np.fft.rfftfreq(len(samples), 1 / rate)[spectrum.argmax()]


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 96000])
def test_any_rate_is_resampled_to_11025_keeping_pitch(write_audio, rate):
    clip = load_clip(write_audio("tone.wav", sine(1000, 1.5, rate), rate))
    assert clip.samples.shape == (8192,)
    assert np.abs(clip.samples).max() == pytest.approx(1.0)
    assert dominant_hz(clip.samples, 11025) == pytest.approx(1000, abs=2)


@pytest.mark.parametrize(
    "subtype, format", [("PCM_U8", "WAV"), ("PCM_16", "WAV"), ("PCM_24", "WAV"), ("DOUBLE", "WAV"), ("PCM_16", "FLAC"), ("VORBIS", "OGG")]
)
def test_encodings_decode(write_audio, subtype, format):
    suffix = {"WAV": "wav", "FLAC": "flac", "OGG": "ogg"}[format]
    clip = load_clip(write_audio(f"tone.{suffix}", sine(440, 1.0, 22050), 22050, subtype, format))
    assert dominant_hz(clip.samples, 11025) == pytest.approx(440, abs=2)


@pytest.mark.skipif("MP3" not in soundfile.available_formats(), reason="this libsndfile has no MP3")
def test_mp3_decodes(write_audio):
    clip = load_clip(write_audio("tone.mp3", sine(440, 1.0, 22050), 22050, "MPEG_LAYER_III", "MP3"))
    assert dominant_hz(clip.samples, 11025) == pytest.approx(440, abs=3)


def test_channels_are_averaged(write_audio):
    rate = 11025
    left, right = sine(500, 1.0, rate), sine(500, 1.0, rate, amplitude=-0.25)
    six = np.stack([left, right, left, right, left, right], axis=1)
    clip = load_clip(write_audio("six.wav", six, rate, "FLOAT"))
    middle = (len(left) - 8192) // 2
    expected = (left + right)[middle : middle + 8192] / 2
    np.testing.assert_allclose(clip.samples, expected / np.abs(expected).max(), atol=1e-6)


def test_window_is_the_middle_or_the_offset():
    ramp = np.arange(10000, dtype=float)
    window, offset, padded = take_window(ramp, 8192)
    assert offset == (10000 - 8192) // 2 and window[0] == offset and not padded
    window, offset, _ = take_window(ramp, 8192, offset=100)
    assert window[0] == 100
    with pytest.raises(AudioError, match="offset"):
        take_window(ramp, 8192, offset=5000)


def test_short_clip_is_refused_or_centred_in_silence():
    short = np.ones(1000)
    with pytest.raises(AudioError, match="--pad"):
        take_window(short, 8192)
    window, offset, padded = take_window(short, 8192, pad=True)
    assert padded and offset == -3596 and window.sum() == 1000 and window[3596] == 1 and window[3595] == 0


@pytest.mark.parametrize(
    "samples, message", [(np.zeros(20000), "silent"), (np.r_[np.ones(10000), np.nan, np.ones(9999)], "NaN")]
)
def test_unusable_samples_are_refused(samples, message):
    with pytest.raises(AudioError, match=message):
        prepare_clip("x", samples, 11025, "x.wav")


def test_file_problems_name_the_file(tmp_path):
    (tmp_path / "notes.wav").write_text("this is not audio\n")
    (tmp_path / "empty.wav").write_bytes(b"")
    for name, message in [("missing.wav", "no such file"), ("notes.wav", "cannot decode"), ("empty.wav", "empty")]:
        with pytest.raises(AudioError, match=message) as error:
            load_clip(tmp_path / name)
        assert name in str(error.value) and "\n" not in str(error.value)


def test_builtin_clips_are_deterministic_and_usable():
    for name in BUILTIN_CLIPS:
        first, rate = builtin_clip(name)
        again, _ = builtin_clip(name)
        np.testing.assert_array_equal(first, again)
        clip = prepare_clip(name, first, rate, name)
        # The window holds sound through most of its length, not a stray tail.
        frames = clip.samples.reshape(16, 512)
        assert (np.sqrt((frames ** 2).mean(axis=1)) > 0.01).sum() >= 12, name


def test_synthetic_speech_window_ends_on_the_sibilant():
    samples, rate = builtin_clip("synthetic-speech")
    clip = prepare_clip("synthetic-speech", samples, rate, "synthetic-speech")
    tail = clip.samples[-1024:]  # the last 93 ms
    spectrum = np.abs(np.fft.rfft(tail)) ** 2
    freqs = np.fft.rfftfreq(len(tail), 1 / 11025)
    # /s/ is a high-frequency fricative: most of the tail's energy lies above 3 kHz.
    assert spectrum[freqs > 3000].sum() > 0.5 * spectrum.sum()


def test_written_wav_reads_back_exactly_and_is_byte_reproducible(tmp_path):
    from pal.core.audio import write_wav

    samples = np.random.default_rng(0).standard_normal(1001).astype(np.float32) * 3  # beyond +-1 too
    write_wav(tmp_path / "a.wav", samples, 11025)
    write_wav(tmp_path / "b.wav", samples, 11025)
    info = soundfile.info(str(tmp_path / "a.wav"))
    assert (info.samplerate, info.channels, info.frames, info.subtype) == (11025, 1, 1001, "FLOAT")
    read, _ = soundfile.read(str(tmp_path / "a.wav"), dtype="float32")
    np.testing.assert_array_equal(read, samples)
    assert (tmp_path / "a.wav").read_bytes() == (tmp_path / "b.wav").read_bytes()
