"""Finding audio and naming clips: the one place ``pal run`` and ``pal sweep`` both use.

- :data:`AUDIO_SUFFIXES`: the file types read as audio.
- :func:`audio_under`: the audio files below a folder, in a stable order, skipping the folders
  ``pal`` itself writes (a run folder holds its configuration and its runs' records, a sweep
  folder its plan), so that an output folder inside a data folder is never read as input.
- :func:`unique_names`: ``speech``, ``speech-2``, ``speech-3`` ... for names that repeat.
"""

from __future__ import annotations

from pathlib import Path

from . import folder as runfolder
from .sweep_folder import SWEEP_FILE

AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff", ".au", ".w64", ".caf"})


def is_audio_file(path: Path) -> bool:
    return path.suffix.lower() in AUDIO_SUFFIXES and path.is_file()


def is_output_folder(folder: Path) -> bool:
    """Whether ``folder`` is a run or sweep folder written by pal (recognised by its records)."""
    markers = ((runfolder.CONFIG, runfolder.RUNS), (SWEEP_FILE,))
    return any(all((folder / name).is_file() for name in marker) for marker in markers)


def audio_under(folder: Path) -> list[Path]:
    """The audio files below ``folder``, sorted, outside pal's own run and sweep folders."""
    found = []
    for path in sorted(folder.rglob("*")):
        if is_audio_file(path) and not any(is_output_folder(parent) for parent in _parents_below(path, folder)):
            found.append(path)
    return found


def _parents_below(path: Path, root: Path) -> list[Path]:
    """The folders from ``root`` (included) down to ``path``'s own folder."""
    parents = []
    for parent in path.parents:
        parents.append(parent)
        if parent == root:
            break
    return parents


def no_audio_message(where: str) -> str:
    return f"{where}: no audio files ({', '.join(sorted(AUDIO_SUFFIXES))})"


def unique_names(names: list[str]) -> list[str]:
    """The names in order, a repeated one given ``-2``, ``-3``, ... (never clashing with another)."""
    taken: set[str] = set()
    unique = []
    for name in names:
        candidate, count = name, 1
        while candidate in taken:
            count += 1
            candidate = f"{name}-{count}"
        taken.add(candidate)
        unique.append(candidate)
    return unique
