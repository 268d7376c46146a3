"""The built-in clips: the five recordings by default, the synthetic stand-ins under their own names.

Values are checked against the FLAC files read directly with soundfile and resampled with scipy
(not soxr, which ``pal`` uses), and against what ``clips/data/README.md`` documents.
"""

import re
from fractions import Fraction
from importlib import resources

import numpy as np
import pytest
import soundfile
from scipy import signal

from pal.core.audio import prepare_clip
from pal.clips import BUILTIN_CLIPS, DEFAULT_CLIPS, builtin_clip, synthetic

DATA = resources.files("pal.clips").joinpath("data")
README = DATA.joinpath("README.md").read_text(encoding="utf-8")

# As data/README.md documents them: the file behind each default clip and its sample rate.
RECORDINGS = {
    "speech": ("speech-selfish.flac", 16000),
    "piano": ("piano-bach-prelude.flac", 22050),
    "band": ("rock-song-instrumental.flac", 16000),
    "hiphop": ("beat-with-voice.flac", 16000),
    "drums": ("drum-kit-beat.flac", 22050),
}
CC_BY_SA_FILES = {"rock-song-instrumental.flac", "beat-with-voice.flac", "drum-kit-beat.flac"}
EXPERIMENT_RATE, WINDOW = 11025, 8192  # the post's rate and window


def read_file(file: str) -> tuple[np.ndarray, int]:
    with DATA.joinpath(file).open("rb") as handle:
        samples, rate = soundfile.read(handle, dtype="float64", always_2d=True)
    return samples, rate


def experiment_window(samples: np.ndarray, rate: int) -> np.ndarray:
    """The middle 8192 samples at 11025 Hz, resampled by scipy's polyphase filter."""
    ratio = Fraction(EXPERIMENT_RATE, rate)
    resampled = signal.resample_poly(samples, ratio.numerator, ratio.denominator)
    start = (len(resampled) - WINDOW) // 2
    return resampled[start : start + WINDOW]


def dbfs(rms: np.ndarray) -> np.ndarray:
    return 20 * np.log10(np.maximum(rms, 1e-12))


def test_the_default_set_is_the_five_recordings():
    assert DEFAULT_CLIPS == tuple(RECORDINGS)
    assert all(BUILTIN_CLIPS[name].default and BUILTIN_CLIPS[name].file == RECORDINGS[name][0] for name in RECORDINGS)


@pytest.mark.parametrize("name", list(RECORDINGS))
def test_a_default_clip_is_its_file_mono_two_seconds_at_its_documented_rate(name):
    file, documented_rate = RECORDINGS[name]
    samples, rate = builtin_clip(name)
    expected, file_rate = read_file(file)
    assert expected.shape[1] == 1 and samples.ndim == 1  # mono file, mono samples
    assert rate == file_rate == documented_rate == BUILTIN_CLIPS[name].rate
    assert len(samples) == 2 * rate
    assert np.all(np.isfinite(samples)) and np.abs(samples).max() <= 1.0
    np.testing.assert_array_equal(samples, expected[:, 0])


@pytest.mark.parametrize("name", list(RECORDINGS))
def test_a_default_clips_window_is_full_of_sound_and_is_what_pal_trains_on(name):
    samples, rate = read_file(RECORDINGS[name][0])
    window = experiment_window(samples[:, 0], rate)
    # data/README.md measured -18.5 to -10.1 dBFS over the window and every 50 ms frame above
    # -33.2 dBFS; a window of mostly silence would be far below both floors.
    assert dbfs(np.sqrt(np.mean(window ** 2))) > -25
    hop = EXPERIMENT_RATE // 20
    frames = window[: WINDOW // hop * hop].reshape(-1, hop)
    assert dbfs(np.sqrt(np.mean(frames ** 2, axis=1))).min() > -40
    # pal's target (soxr, then scaled to peak 1) is the same stretch of sound.
    target = prepare_clip(name, *builtin_clip(name), name).samples
    assert np.corrcoef(target, window)[0, 1] > 0.999


def test_the_real_speech_window_ends_on_its_fricative():
    samples, rate = builtin_clip("speech")
    tail = prepare_clip("speech", samples, rate, "speech").samples[-2048:]  # the last 186 ms: the /ʃ/ of "selfish"
    spectrum = np.abs(np.fft.rfft(tail)) ** 2
    frequencies = np.fft.rfftfreq(len(tail), 1 / EXPERIMENT_RATE)
    # /ʃ/ is a fricative whose energy lies above the vowels', with its spectral peak around 3-4 kHz
    # (Jongman, Wayland & Wong, JASA 108, 2000); the README measured 94 % above 2 kHz.
    assert spectrum[frequencies > 2000].sum() > 0.8 * spectrum.sum()


@pytest.mark.parametrize("kind", ["speech", "piano", "band", "hiphop", "drums"])
def test_a_synthetic_clip_keeps_its_own_name_outside_the_default_set(kind):
    name = f"synthetic-{kind}"
    assert name in BUILTIN_CLIPS and name not in DEFAULT_CLIPS and not BUILTIN_CLIPS[name].default
    samples, rate = builtin_clip(name)
    assert rate == 22050 and samples.shape == (2 * 22050,) and np.all(np.isfinite(samples))
    np.testing.assert_array_equal(samples, getattr(synthetic, kind)())  # the synthesis of that kind
    assert kind in BUILTIN_CLIPS  # the plain name is the recording's


def test_the_built_in_names_are_the_two_sets_and_pal_run_lists_them(capsys):
    from pal.cli import main

    assert set(BUILTIN_CLIPS) == set(RECORDINGS) | {f"synthetic-{kind}" for kind in RECORDINGS}
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    for name in BUILTIN_CLIPS:
        assert re.search(rf"(?<![\w-]){re.escape(name)}\b", help_text), name


def test_the_licence_readme_names_every_audio_file_with_its_licence():
    files = sorted(entry.name for entry in DATA.iterdir() if entry.name.endswith(".flac"))
    assert set(files) >= {file for file, _ in RECORDINGS.values()} | {"practice.flac", "i-get-it.flac"}
    table = re.findall(r"^\| `([^`]+\.flac)` \| `([^`]+)` \| (.+) \|$", README, flags=re.MULTILINE)
    licences = {file: (clip, licence) for file, clip, licence in table}
    for file in files:
        assert file in licences, f"{file} has no row in the licence table of data/README.md"
        clip, licence = licences[file]
        assert BUILTIN_CLIPS[clip].file == file or clip.startswith("synthetic-")
        expected = "CC BY-SA 3.0" if file in CC_BY_SA_FILES else ("Public domain" if clip == "speech" else "MIT")
        assert expected in licence, (file, licence)


def test_the_cc_by_sa_clips_carry_their_licence_text_and_uri():
    legal_code = DATA.joinpath("LICENSE-CC-BY-SA-3.0.txt").read_text(encoding="utf-8")
    assert legal_code.startswith("Creative Commons Attribution-ShareAlike 3.0 Unported")
    assert "You must include a copy of, or the Uniform Resource\nIdentifier (URI) for, this License" in legal_code
    for name, (file, _) in RECORDINGS.items():
        # The file's row in the README's table of recordings quotes its attribution line.
        [attribution] = [found.group(1) for line in README.splitlines() if line.startswith(f"| `{file}` |")
                         for found in [re.search(r'(?:Credit|Attribution): "([^"]+)"', line)] if found]
        attribution = attribution.replace("*", "")  # the README's italics
        credit = BUILTIN_CLIPS[name].credit
        assert attribution in credit, name
        if file in CC_BY_SA_FILES:
            assert "CC BY-SA 3.0, https://creativecommons.org/licenses/by-sa/3.0/" in credit


def test_a_built_in_clips_credit_goes_with_it_onto_the_page():
    from pal.run.config import ExperimentConfig
    from pal.run.experiment import load_clips

    [clip] = load_clips(ExperimentConfig(clips=["band"]))
    assert clip.name == "band" and "Reno Project" in clip.source and "creativecommons.org" in clip.source


def test_pal_run_fits_the_recordings_when_given_no_clips():
    from pal.run.config import ExperimentConfig

    assert ExperimentConfig().clips == list(DEFAULT_CLIPS)
