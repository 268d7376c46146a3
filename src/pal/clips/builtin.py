"""The built-in clips: what ``pal run`` fits when given names instead of files.

The default set is five 2-second excerpts of real recordings, one per kind of clip in the 2018
post: speech ending on a fricative, an acoustic piano, a produced band mix, a beat with a voice,
a drum kit. They are FLAC files in ``data/``, kept at their own sample rates (the experiment
resamples every clip to 11025 Hz); ``data/README.md`` gives each one's source, author, licence
and the commands that cut it. The five synthetic stand-ins of :mod:`pal.clips.synthetic` stay
built in as ``synthetic-speech`` ... ``synthetic-drums``, outside the default set.

>>> DEFAULT_CLIPS
('speech', 'piano', 'band', 'hiphop', 'drums')
>>> BUILTIN_CLIPS["synthetic-drums"].default
False
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Callable

import numpy as np
import soundfile

from . import synthetic


@dataclass(frozen=True)
class BuiltinClip:
    """One built-in clip: how to get its samples, at which rate, and where it comes from.

    ``credit`` is the one-line attribution a copy of the clip must carry (its licence says so for
    the CC BY-SA recordings); ``default`` puts the clip in the set ``pal run`` fits when it is
    given no clips. ``file`` names the recording in ``data/`` (``None`` for a synthesised clip).
    """

    name: str
    rate: int
    credit: str
    default: bool
    load: Callable[[], np.ndarray]
    file: str | None = None


def read_recording(file: str, rate: int) -> np.ndarray:
    """A shipped recording's samples (mono float64), checked to be at its documented rate."""
    with resources.files(__package__).joinpath("data", file).open("rb") as handle:
        samples, file_rate = soundfile.read(handle, dtype="float64")
    if file_rate != rate:
        raise RuntimeError(f"built-in recording {file} is at {file_rate} Hz, its entry says {rate} Hz")
    return samples


def _recording(name: str, file: str, rate: int, credit: str) -> BuiltinClip:
    return BuiltinClip(name, rate, credit, True, lambda: read_recording(file, rate), file)


def _synthetic(kind: str, make: Callable[[], np.ndarray], what: str) -> BuiltinClip:
    credit = f"synthetic {what}, made by pal.clips.synthetic (this project's licence, MIT)"
    return BuiltinClip(f"synthetic-{kind}", synthetic.RATE, credit, False, make)


# Each recording's credit holds its attribution line in data/README.md word for word; the order
# is the default run's and its page's.
_ENTRIES = (
    _recording("speech", "speech-selfish.flac", 16000,
               "Speech: LibriVox recording of Jane Austen, Sense and Sensibility, ch. 1 (public domain), from the "
               "pocketsphinx 5.1.1 test data."),
    _recording("piano", "piano-bach-prelude.flac", 22050,
               "J. S. Bach, Prelude in C major BWV 846. Piano: MuseScore_General_HQ SoundFont v0.2.1, 'Grand Piano' "
               "(Splendid Grand samples, public domain), adaptation © 2018-2021 S. Christian Collins, MIT licence."),
    _recording("band", "rock-song-instrumental.flac", 16000,
               "'System' by Reno Project (2008), CC BY-SA 3.0, https://creativecommons.org/licenses/by-sa/3.0/ — "
               "excerpt 106.2–108.2 s, mixed to mono, faded and peak-normalised."),
    _recording("hiphop", "beat-with-voice.flac", 16000,
               "Beat: 'Morning Coffee' by Manolo Camp (2009), CC BY-SA 3.0, "
               "https://creativecommons.org/licenses/by-sa/3.0/; voice: LibriVox recording of Sense and Sensibility "
               "(public domain). Excerpts mixed together, faded and normalised; the mix is released under "
               "CC BY-SA 3.0."),
    _recording("drums", "drum-kit-beat.flac", 22050,
               "Drums: AVL Drumkits 'Black Pearl 4pc' by Glen MacArthur (2015), CC BY-SA 3.0, "
               "https://creativecommons.org/licenses/by-sa/3.0/ — rendered from a MIDI pattern with fluidsynth."),
    _synthetic("speech", synthetic.speech, "speech: the eSpeak NG word \"practice\""),
    _synthetic("piano", synthetic.piano, "piano: a Bach-like phrase by additive synthesis"),
    _synthetic("band", synthetic.band, "band: bass, synth chords, a sung vowel and a backbeat"),
    _synthetic("hiphop", synthetic.hiphop, "hip-hop: a 90 BPM beat under the eSpeak NG words \"I get it\""),
    _synthetic("drums", synthetic.drums, "drums: kick, snare, hats and a tom fill"),
)

BUILTIN_CLIPS: dict[str, BuiltinClip] = {entry.name: entry for entry in _ENTRIES}
DEFAULT_CLIPS: tuple[str, ...] = tuple(entry.name for entry in _ENTRIES if entry.default)


def builtin_clip(name: str) -> tuple[np.ndarray, int]:
    """The built-in clip ``name`` at its own rate: ``(samples, rate)``, mono float64."""
    entry = BUILTIN_CLIPS[name]
    return entry.load(), entry.rate
