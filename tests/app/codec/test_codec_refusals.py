"""Bad input to ``pal codec``: one line naming the cause, exit status 2, and nothing written."""

import shutil

import numpy as np
import pytest
import soundfile

from codec_corpus import quick_args, small_corpus
from pal.cli import main


def _silence(path, seconds=2.0):
    soundfile.write(str(path), np.zeros(int(16000 * seconds)), 16000)


def _tone(path, seconds):
    t = np.arange(int(16000 * seconds)) / 16000
    soundfile.write(str(path), 0.5 * np.sin(2 * np.pi * 440 * t), 16000)


def missing_folder(train, test):
    shutil.rmtree(train)


def empty_folder(train, test):
    shutil.rmtree(train)
    train.mkdir()


def no_audio(train, test):
    shutil.rmtree(train)
    train.mkdir()
    (train / "notes.txt").write_text("not audio")


def unreadable(train, test):
    (train / "music" / "broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk")


def zero_length(train, test):
    (train / "music" / "empty.flac").write_bytes(b"")


def silent_corpus(train, test):
    shutil.rmtree(train)
    (train / "speech").mkdir(parents=True)
    _silence(train / "speech" / "quiet.wav")


def shorter_than_a_segment(train, test):
    _tone(train / "music" / "blip.wav", 0.05)


def a_test_file_in_training(train, test):
    shutil.copy(test / "speech" / "practice.flac", train / "speech" / "copy.flac")


def silent_test_file(train, test):
    _silence(test / "music" / "silence.wav")


def short_test_file(train, test):
    _tone(test / "music" / "short.wav", 0.5)


CASES = {  # name: (what to do to the corpus, extra flags, what the line says)
    "missing folder": (missing_folder, [], "no such folder"),
    "empty folder": (empty_folder, [], "no audio files"),
    "folder with no audio": (no_audio, [], "no audio files"),
    "unreadable file": (unreadable, [], "cannot decode as audio"),
    "zero-length file": (zero_length, [], "empty file"),
    "silent corpus": (silent_corpus, [], "every file is silent"),
    "file shorter than a segment": (shorter_than_a_segment, [], "shorter than a training segment"),
    "test file also in training": (a_test_file_in_training, [], "the same audio as the training file"),
    "silent test file": (silent_test_file, [], "silent"),
    "test file too short to judge": (short_test_file, [], "too short to judge"),
    "train and test the same folder": (None, ["--test", "TRAIN"], "the same folder"),
    "train seconds beyond the corpus": (None, ["--train-seconds", "100"], "more than the training corpus holds"),
    "train seconds zero": (None, ["--train-seconds", "0"], "--train-seconds must be"),
    "train seconds not a number": (None, ["--train-seconds", "lots"], "--train-seconds must be"),
    "train seconds repeated": (None, ["--train-seconds", "3,3"], "--train-seconds must be"),
    "width zero": (None, ["--width", "0"], "--width must be"),
    "width too large": (None, ["--width", "257"], "--width must be"),
    "bottleneck zero": (None, ["--bottleneck", "0"], "--bottleneck must be"),
    "segment too short": (None, ["--segment-seconds", "0.01"], "--segment-seconds must be"),
    "rate too low": (None, ["--sample-rate", "4000"], "--sample-rate must be"),
    "unknown judge": (None, ["--judges", "ears"], "unknown judge 'ears'"),
    "a decoding loss": (None, ["--losses", "mulaw"], "decoding loss"),
    "unknown loss": (None, ["--losses", "nonsense"], "nonsense"),
    "checkpoints beyond the steps": (None, ["--checkpoint-every", "7"], "--checkpoint-every must be at most"),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_line_and_writes_nothing(case, tmp_path, capsys):
    train, test = small_corpus(tmp_path / "corpus")
    damage, flags, message = CASES[case]
    if damage is not None:
        damage(train, test)
    flags = [str(train) if flag == "TRAIN" else flag for flag in flags]
    out = tmp_path / "out"
    assert main(quick_args(train, test, out, *flags)) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith("pal: error: ") and message in error, error
    assert not out.exists()


def test_a_judge_asked_for_but_not_installed_names_its_extra(tmp_path, capsys, monkeypatch):
    import dataclasses

    from pal.codec import config

    absent = dataclasses.replace(config.CODEC_JUDGES["visqol"], installed=lambda: False)
    monkeypatch.setitem(config.CODEC_JUDGES, "visqol", absent)
    train, test = small_corpus(tmp_path / "corpus")
    out = tmp_path / "out"
    args = quick_args(train, test, out)
    args[args.index("--judges") + 1] = "visqol"
    assert main(args) == 2
    error = capsys.readouterr().err
    assert "ViSQOL is not installed" in error and "perceptual-audio-loss[judges]" in error
    assert not out.exists()


def test_another_runs_folder_is_refused_and_kept(tmp_path, capsys):
    train, test = small_corpus(tmp_path / "corpus")
    out = tmp_path / "out"
    assert main(quick_args(train, test, out)) == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert main(quick_args(train, test, out, "--steps", "9")) == 2
    assert "different configuration" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
