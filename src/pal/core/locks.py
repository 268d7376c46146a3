"""One writer per folder: an OS lock held for as long as a process writes a run or sweep folder.

``pal run`` and ``pal sweep`` hold :func:`writing` on their folder (a sweep's shards each on their
own run folder); a second writer is refused in one line naming the holder's process. ``pal
report``, ``pal summarize`` and ``pal listen`` call :func:`check_not_being_written` and refuse
while a writer holds the folder, rather than read half-written records. The lock is ``flock`` on
a hidden file in the folder, so the kernel releases it when its process ends, however it ends;
the file itself stays and means nothing when no process holds it. Where ``fcntl`` is missing
(Windows), folders are not locked.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .errors import UserError

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Linux or macOS
    fcntl = None

LOCK_FILE = ".pal-lock"


def _holder(path: Path) -> str:
    try:
        pid = path.read_text(encoding="utf-8").strip()
    except OSError:
        pid = ""
    return f"process {pid}" if pid.isdigit() else "another process"


@contextmanager
def writing(folder: Path, what: str) -> Iterator[None]:
    """Hold ``folder`` (created if missing) for writing, or refuse in one line if another process does."""
    folder = Path(folder)
    if fcntl is None:
        yield
        return
    created = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle = open(folder / LOCK_FILE, "a+", encoding="utf-8")
    except OSError as error:
        raise UserError(f"{folder}: cannot write the {what} folder ({error.strerror or error})") from None
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"{folder}: {_holder(folder / LOCK_FILE)} is writing this {what} folder; "
                            "wait for it to finish or stop it") from None
        try:  # unbuffered: a full disk fails here, not again when the handle closes
            os.ftruncate(handle.fileno(), 0)
            os.write(handle.fileno(), str(os.getpid()).encode())
        except OSError as error:
            raise UserError(f"{folder}: cannot write the {what} folder ({error.strerror or error})") from None
        try:
            yield
        finally:
            if Path(handle.name).exists():
                handle.truncate(0)  # no stale holder named once this process has let go
    except BaseException:
        # A folder this call created and left holding nothing but the lock is removed again.
        if created and folder.is_dir() and [p.name for p in folder.iterdir()] == [LOCK_FILE]:
            handle.close()
            (folder / LOCK_FILE).unlink(missing_ok=True)
            folder.rmdir()
        raise
    finally:
        handle.close()  # releases the lock


def check_not_being_written(folder: Path, what: str) -> None:
    """Refuse (one line) while another process holds ``folder`` for writing."""
    path = Path(folder) / LOCK_FILE
    if fcntl is None or not path.is_file():
        return
    try:
        handle = open(path, encoding="utf-8")
    except OSError:
        return
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"{folder}: {_holder(path)} is writing this {what} folder; "
                            "run this again when it has finished") from None
