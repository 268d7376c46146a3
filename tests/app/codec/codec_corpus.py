"""Small corpora for the codec's tests, from the built-in clips' recordings (2 s each): four
files to train on in two groups, two distinct recordings to test on."""

import shutil
from pathlib import Path

from pal.clips import builtin

DATA = Path(builtin.__file__).parent / "data"
TRAIN = {"speech": ["speech-selfish.flac"], "music": ["piano-bach-prelude.flac", "rock-song-instrumental.flac",
                                                      "drum-kit-beat.flac"]}
TEST = {"speech": ["practice.flac"], "music": ["beat-with-voice.flac"]}


def small_corpus(root: Path) -> tuple[Path, Path]:
    """``(train, test)`` folders under ``root``."""
    for split, groups in (("train", TRAIN), ("test", TEST)):
        for group, names in groups.items():
            (root / split / group).mkdir(parents=True, exist_ok=True)
            for name in names:
                shutil.copy(DATA / name, root / split / group / name)
    return root / "train", root / "test"


def quick_args(train: Path, test: Path, out: Path, *more: str) -> list[str]:
    """``pal codec`` on the small corpus: two losses, one width of 4, 6 steps, no judges."""
    return ["codec", "--train", str(train), "--test", str(test), "--out", str(out), "--losses", "mse,mrstft",
            "--width", "4", "--bottleneck", "2", "--train-seconds", "3,all", "--steps", "6", "--checkpoint-every", "3",
            "--batch-size", "2", "--segment-seconds", "0.1", "--judges", "none", "--no-progress", *more]
