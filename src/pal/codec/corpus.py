"""Reading a corpus: every audio file of a folder, or of the built-in corpus, mono at one rate.

A corpus is a list of :class:`CorpusFile`, in a stable order (sorted by path). A file's
*group* is the first folder below the corpus's root that holds it (``speech/a.flac`` is in
``speech``), or ``all`` for a file at the root: the page and the claims table break results
down by group, and speech measures (STOI, PESQ, DNSMOS) score the ``speech`` group.

Everything a user can get wrong is one :class:`~pal.core.errors.UserError` naming the folder or
the file: a missing or empty folder, a folder with no audio, an unreadable or empty file, a
file with NaN or infinite samples, a corpus that is silent throughout.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from ..core.audio import AudioError, read_audio, resample, to_mono
from ..core.errors import UserError
from ..run.sources import AUDIO_SUFFIXES, audio_under

ROOT_GROUP = "all"  # the group of a file at the corpus's root
SILENCE = 1e-4  # a file whose every sample is below this (-80 dBFS) holds nothing to learn or judge
BUILTIN = "built-in"  # how a record names the built-in corpus
MANIFEST = "MANIFEST.tsv"


@dataclass(frozen=True)
class CorpusFile:
    """One file of a corpus, read: its name (its path below the root, without suffix), group,
    source, samples (float32, mono, at the corpus's rate), and the SHA-256 of those samples."""

    name: str
    group: str
    source: str
    samples: np.ndarray
    sha256: str
    credit: str = ""


def samples_sha256(samples: np.ndarray) -> str:
    """SHA-256 of float32 samples: two files with the same audio have the same hash."""
    return hashlib.sha256(np.ascontiguousarray(samples, dtype=np.float32).tobytes()).hexdigest()


def builtin_root() -> Path:
    """The built-in corpus's folder (``train/`` and ``test/``, each with ``speech``, ``music``, ``drums``)."""
    return Path(str(resources.files("pal.codec") / "data"))


def builtin_credits() -> dict[str, str]:
    """Each built-in file's credit by its path below the split (``speech/x.flac``), from the manifest."""
    path = builtin_root() / MANIFEST
    if not path.exists():
        return {}
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    return {row["path"].split("/", 1)[1]: row.get("credit", "") for row in rows if "/" in row.get("path", "")}


def read_corpus(folder: str | Path | None, split: str, sample_rate: int, flag: str) -> list[CorpusFile]:
    """Every audio file under ``folder`` (``None``: the built-in corpus's ``split``, ``train``
    or ``test``), mono and at ``sample_rate``; ``flag`` names the option in messages."""
    credits = {}
    if folder is None:
        root, credits = builtin_root() / split, builtin_credits()
        where = f"the built-in corpus's {split} files"
    else:
        root, where = Path(folder), f"{flag} {folder}"
    _check_folder(root, flag)
    paths = audio_under(root)
    if not paths:
        raise UserError(f"{where}: no audio files ({', '.join(sorted(AUDIO_SUFFIXES))})")
    files = [_read_file(path, root, sample_rate, credits) for path in paths]
    if all(float(np.max(np.abs(f.samples))) < SILENCE for f in files):
        raise UserError(f"{where}: every file is silent (no sample above {SILENCE:g}); nothing to learn or judge")
    return files


def _check_folder(root: Path, flag: str) -> None:
    if not root.exists():
        raise UserError(f"{flag} {root}: no such folder")
    if not root.is_dir():
        raise UserError(f"{flag} {root}: is a file, not a folder of audio")


def _read_file(path: Path, root: Path, sample_rate: int, credits: dict[str, str]) -> CorpusFile:
    samples, rate = read_audio(path)
    mono = to_mono(samples)
    if not np.all(np.isfinite(mono)):
        raise AudioError(f"{path}: holds NaN or infinite samples")
    mono = resample(mono, rate, sample_rate).astype(np.float32)
    if len(mono) == 0:
        raise AudioError(f"{path}: holds no samples at {sample_rate} Hz")
    relative = path.relative_to(root)
    group = relative.parts[0] if len(relative.parts) > 1 else ROOT_GROUP
    name = relative.with_suffix("").as_posix()
    return CorpusFile(name, group, str(path), mono, samples_sha256(mono), credits.get(relative.as_posix(), ""))


def same_folder(train: str | Path | None, test: str | Path | None) -> bool:
    """Whether two corpus options name one folder (``None`` twice is the built-in corpus's two splits)."""
    if train is None or test is None:
        return False
    return Path(train).resolve() == Path(test).resolve()


def shared_files(train: list[CorpusFile], test: list[CorpusFile]) -> list[tuple[CorpusFile, CorpusFile]]:
    """Each test file whose audio is also a training file's (same samples at the corpus's rate)."""
    by_hash = {f.sha256: f for f in train}
    return [(by_hash[f.sha256], f) for f in test if f.sha256 in by_hash]
