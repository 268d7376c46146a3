"""Writing files whole or not at all.

Every file a run writes goes to a hidden temporary file beside its destination, is flushed and
fsynced, then renamed over the destination (atomic on POSIX filesystems), and the folder is
fsynced so the rename survives a power cut. A process killed mid-write leaves at most a hidden
``.<name>.tmp-*`` file, which :func:`remove_stale_temporaries` clears on the next run.

A write that fails (a full disk, a read-only one, an I/O error) raises the kernel's :class:`OSError`
naming the destination, never the temporary; :func:`failure` says it in a few words.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

TEMPORARY_MARK = ".tmp-"


def fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path`` atomically."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}{TEMPORARY_MARK}{os.getpid()}")
    try:
        try:
            yield temporary
            with open(temporary, "rb+") as handle:
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        finally:
            if temporary.exists():
                temporary.unlink()
        fsync_folder(path.parent)
    except OSError as error:  # the same kind (OSError picks the subclass from errno), naming the file
        raise OSError(error.errno, error.strerror or str(error), str(path)) from error


def failure(error: OSError, folder: Path | None = None) -> str:
    """``error`` in a few words for a one-line message: what the system said, then the file,
    relative to ``folder`` when inside it (``No space left on device: clips/...``)."""
    reason = error.strerror or str(error)
    if not error.filename:
        return reason
    path = Path(os.fsdecode(error.filename))
    if folder is not None and path.is_relative_to(folder):
        path = path.relative_to(folder)
    return f"{reason}: {path}"


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> None:
    """``write(temporary_path)`` then move the result to ``path`` atomically."""
    with atomic_path(path) as temporary:
        write(temporary)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    atomic_write(path, lambda temporary: temporary.write_bytes(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def remove_stale_temporaries(folder: Path) -> int:
    """Delete temporaries a killed process left under ``folder``; return how many."""
    removed = 0
    for leftover in folder.rglob(f".*{TEMPORARY_MARK}*"):
        leftover.unlink(missing_ok=True)
        removed += 1
    return removed
