"""Five synthetic clips, made deterministically: the stand-ins used before the recordings.

Built in as ``synthetic-speech``, ``synthetic-piano``, ``synthetic-band``, ``synthetic-hiphop``
and ``synthetic-drums`` (see :mod:`pal.clips.builtin`); useful where a test needs a clip whose
content is known by construction. They stand in for the post's five recordings (speech ending
in "practice", Bach piano, a full band mix, a hip-hop track with voice, a drum kit). The two
spoken phrases are small synthetic-speech files shipped in ``data/`` (see its README for how
they were made); every instrument is synthesised here. Each clip is 2 s at 22050 Hz and
arranged so that the middle 0.74 s (the window the experiment takes) holds what matters: the
sibilant, a snare crack, the voice.
"""

from __future__ import annotations

from importlib import resources

import numpy as np
import soundfile
from scipy import signal

RATE = 22050
DURATION = 2.0


def _time(seconds: float) -> np.ndarray:
    return np.arange(int(round(seconds * RATE))) / RATE


def _place(track: np.ndarray, sound: np.ndarray, at_seconds: float, gain: float = 1.0) -> None:
    start = int(round(at_seconds * RATE))
    end = min(len(track), start + len(sound))
    track[start:end] += gain * sound[: end - start]


def _empty() -> np.ndarray:
    return np.zeros(int(DURATION * RATE))


def _phrase(name: str) -> np.ndarray:
    with resources.files(__package__).joinpath("data", f"{name}.flac").open("rb") as handle:
        samples, rate = soundfile.read(handle, dtype="float64")
    assert rate == RATE, f"{name}.flac is at {rate} Hz, expected {RATE}"
    return samples


def _active_span(samples: np.ndarray, threshold: float = 0.01) -> np.ndarray:
    """Trim leading and trailing silence (RMS below ``threshold`` of the peak RMS, 20 ms frames)."""
    frame = RATE // 50
    rms = np.sqrt([np.mean(samples[i : i + frame] ** 2) for i in range(0, len(samples), frame)])
    active = np.flatnonzero(rms > threshold * rms.max())
    return samples[active[0] * frame : (active[-1] + 1) * frame]


def _bandpass(x: np.ndarray, low_hz: float, high_hz: float, order: int = 4) -> np.ndarray:
    sos = signal.butter(order, [low_hz, high_hz], btype="bandpass", fs=RATE, output="sos")
    return signal.sosfilt(sos, x)


def _highpass(x: np.ndarray, cutoff_hz: float, order: int = 4) -> np.ndarray:
    sos = signal.butter(order, cutoff_hz, btype="highpass", fs=RATE, output="sos")
    return signal.sosfilt(sos, x)


def _lowpass(x: np.ndarray, cutoff_hz: float, order: int = 4) -> np.ndarray:
    sos = signal.butter(order, cutoff_hz, btype="lowpass", fs=RATE, output="sos")
    return signal.sosfilt(sos, x)


def _sawtooth(frequency_hz: np.ndarray | float, seconds: float, max_harmonics: int = 60) -> np.ndarray:
    """Band-limited sawtooth by additive synthesis (no aliasing), frequency may glide."""
    t = _time(seconds)
    frequency = np.broadcast_to(np.asarray(frequency_hz, dtype=np.float64), t.shape)
    phase = 2 * np.pi * np.cumsum(frequency) / RATE
    out = np.zeros_like(t)
    for k in range(1, max_harmonics + 1):
        audible = k * frequency < RATE / 2
        out += audible * np.sin(k * phase) / k
    return out


# --- drums -----------------------------------------------------------------------------------


def kick(seconds: float = 0.35) -> np.ndarray:
    t = _time(seconds)
    frequency = 45 + 85 * np.exp(-t / 0.04)  # pitch drop 130 -> 45 Hz
    body = np.sin(2 * np.pi * np.cumsum(frequency) / RATE) * np.exp(-t / 0.12)
    click = np.exp(-t / 0.002) * 0.3
    return body + click


def snare(rng: np.random.Generator, seconds: float = 0.25) -> np.ndarray:
    t = _time(seconds)
    rattle = _bandpass(rng.standard_normal(len(t)), 1500, 9000) * np.exp(-t / 0.07)
    shell = np.sin(2 * np.pi * 185 * t) * np.exp(-t / 0.04)
    return 0.8 * rattle / np.abs(rattle).max() + 0.5 * shell


def hihat(rng: np.random.Generator, seconds: float = 0.08, open_hat: bool = False) -> np.ndarray:
    t = _time(0.3 if open_hat else seconds)
    hiss = _highpass(rng.standard_normal(len(t)), 6500)
    return 0.35 * hiss / np.abs(hiss).max() * np.exp(-t / (0.09 if open_hat else 0.018))


def tom(pitch_hz: float, seconds: float = 0.4) -> np.ndarray:
    t = _time(seconds)
    frequency = pitch_hz * (1 + 0.4 * np.exp(-t / 0.03))
    return np.sin(2 * np.pi * np.cumsum(frequency) / RATE) * np.exp(-t / 0.15)


# --- pitched instruments ---------------------------------------------------------------------


def midi_hz(note: float) -> float:
    """Equal temperament, A4 = MIDI 69 = 440 Hz."""
    return 440.0 * 2 ** ((note - 69) / 12)


def piano_note(pitch_hz: float, seconds: float, velocity: float = 1.0) -> np.ndarray:
    """Additive piano-like tone: stretched partials (string inharmonicity), faster decay up high."""
    t = _time(seconds)
    inharmonicity = 4e-4  # order of a mid-range piano string's B (Fletcher, JASA 36, 1964)
    out = np.zeros_like(t)
    for k in range(1, 16):
        partial_hz = k * pitch_hz * np.sqrt(1 + inharmonicity * k * k)
        if partial_hz >= RATE / 2:
            break
        decay_s = 1.2 / (1 + 0.002 * partial_hz)
        out += np.sin(2 * np.pi * partial_hz * t) * np.exp(-t / decay_s) / k ** 1.1
    attack = np.minimum(1.0, t / 0.003)
    release = np.minimum(1.0, (seconds - t) / 0.02)
    return velocity * out * attack * release


def sung_vowel(pitch_hz: float, seconds: float, formants=((800, 80), (1150, 90), (2900, 120))) -> np.ndarray:
    """A sung "ah": glottal sawtooth with vibrato through resonators at the vowel's formants.

    Formant frequencies and bandwidths of /a/ for a soprano-range voice, after Peterson & Barney
    (1952), JASA 24, and Fant (1960), "Acoustic Theory of Speech Production".
    """
    t = _time(seconds)
    vibrato = 1 + 0.012 * np.sin(2 * np.pi * 5.5 * t)
    source = _sawtooth(pitch_hz * vibrato, seconds, max_harmonics=40)
    out = np.zeros_like(source)
    for centre_hz, bandwidth_hz in formants:
        radius = np.exp(-np.pi * bandwidth_hz / RATE)
        theta = 2 * np.pi * centre_hz / RATE
        out += signal.lfilter([1 - radius], [1, -2 * radius * np.cos(theta), radius * radius], source)
    envelope = np.minimum(1.0, t / 0.05) * np.minimum(1.0, (seconds - t) / 0.08)
    return out * envelope / np.abs(out).max()


# --- the five clips --------------------------------------------------------------------------


def speech() -> np.ndarray:
    """The word "practice", centred, so the window ends on its sibilant."""
    word = _active_span(_phrase("practice"))
    track = _empty()
    _place(track, word, (DURATION - len(word) / RATE) / 2)
    return track


def piano() -> np.ndarray:
    """A Bach-like phrase in G major (after the opening of the Partita No. 5, BWV 829)."""
    rng = np.random.default_rng(1685)  # Bach's birth year: a fixed seed for the velocities
    melody = [67, 71, 74, 79, 78, 74, 76, 72, 71, 74, 67, 69, 71, 72, 74, 79]
    bass = [43, 47, 50, 43, 48, 45, 50, 43]
    track = _empty()
    step = DURATION / len(melody)
    for i, note in enumerate(melody):
        _place(track, piano_note(midi_hz(note), 0.6, 0.8 + 0.2 * rng.random()), i * step)
    for i, note in enumerate(bass):
        _place(track, piano_note(midi_hz(note), 0.5, 0.7), i * 2 * step, gain=0.8)
    return track


def band() -> np.ndarray:
    """A full mix: bass, detuned synth chords, a sung vowel and a snare on the backbeat."""
    rng = np.random.default_rng(1986)
    track = _empty()
    beat = 0.5
    for i, note in enumerate([40, 40, 45, 45]):  # E2 E2 A2 A2
        tone = _lowpass(_sawtooth(midi_hz(note), beat * 0.95), 600)
        _place(track, tone * np.exp(-_time(beat * 0.95) / 0.4), i * beat, gain=0.5)
    for chord_start, chord in ((0.0, [64, 67, 71]), (1.0, [69, 72, 76])):  # Em, Am
        for note in chord:
            for detune in (-0.08, 0.08):
                _place(track, _lowpass(_sawtooth(midi_hz(note + detune), 1.0, 20), 3000), chord_start, 0.05)
    _place(track, sung_vowel(midi_hz(76), 0.9), 0.55, gain=0.45)
    _place(track, sung_vowel(midi_hz(74), 0.5), 1.45, gain=0.45)
    for at in (0.0, 1.25):
        _place(track, kick(), at, gain=0.7)
    for at in (0.75, 1.75):
        _place(track, snare(rng), at, gain=0.7)
    for i in range(16):
        _place(track, hihat(rng), i * beat / 2 + 0.25, gain=0.4)
    return track


def hiphop() -> np.ndarray:
    """A slow beat (90 BPM): kick, snare, swung hats, and the words "I get it" over it."""
    rng = np.random.default_rng(2016)
    track = _empty()
    beat = 60 / 90
    for at in (0.0, 0.75 * beat, 2 * beat + 0.25):
        _place(track, kick(0.45), at, gain=0.9)
    for at in (beat * 0.5, beat * 1.5):
        _place(track, snare(rng), at + 0.35, gain=0.6)
    for i in range(12):
        swing = 0.04 if i % 2 else 0.0
        _place(track, hihat(rng), i * beat / 4 + swing, gain=0.5)
    voice = _active_span(_phrase("i-get-it"))
    _place(track, voice, 0.65, gain=1.4)
    return track


def drums() -> np.ndarray:
    """A drum kit bar: kick, snare, hats and a tom fill across the middle."""
    rng = np.random.default_rng(1979)
    track = _empty()
    for at in (0.0, 0.5, 1.5):
        _place(track, kick(), at)
    _place(track, snare(rng), 0.25, gain=0.8)
    for at, pitch in ((0.75, 196), (0.875, 165), (1.0, 131), (1.125, 110)):
        _place(track, tom(pitch), at, gain=0.8)
    _place(track, snare(rng), 1.25, gain=0.8)
    for i in range(16):
        _place(track, hihat(rng, open_hat=(i == 7)), i * 0.125)
    return track
