"""Ratings in SQLite, in the run folder: ``listening.sqlite``. Every SQL statement is here.

A session records what it rated: the checkpoint, and for a codec run the width and the training
data (``all``, ``30s``; both NULL for a pal run), so that results never pool different sounds. A
store written before those two columns existed gains them (NULL) when a server opens it.

One connection per operation, WAL journal and ``synchronous=FULL``: two raters writing at once
each get their own transaction, and a rating acknowledged to a browser survives the server being
killed. Writes that check and insert run inside ``BEGIN IMMEDIATE``, so a check cannot go stale
before its insert.

A store the disk will not let us use (full, read-only, an I/O error) is refused as such: at
start-up in one line (:class:`~pal.core.errors.UserError`), while serving as a :class:`Refused` with
status 507 (full) or 503; a failed transaction is rolled back, so ratings already stored stay.
"""

from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from ..core.errors import UserError

FILE_NAME = "listening.sqlite"

SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY, rater TEXT NOT NULL, mode TEXT NOT NULL, checkpoint INTEGER NOT NULL,
    created TEXT NOT NULL, width INTEGER, train_seconds TEXT);
CREATE TABLE IF NOT EXISTS items (
    token TEXT PRIMARY KEY, session TEXT NOT NULL REFERENCES sessions(id), clip TEXT NOT NULL,
    position INTEGER NOT NULL, condition TEXT NOT NULL, rated INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS plays (token TEXT PRIMARY KEY REFERENCES items(token));
CREATE TABLE IF NOT EXISTS ratings (
    session TEXT NOT NULL REFERENCES sessions(id), clip TEXT NOT NULL, condition TEXT NOT NULL,
    score REAL NOT NULL, submitted TEXT NOT NULL, PRIMARY KEY (session, clip, condition));
CREATE TABLE IF NOT EXISTS preferences (
    session TEXT NOT NULL REFERENCES sessions(id), clip TEXT NOT NULL, preferred TEXT NOT NULL,
    other TEXT NOT NULL, submitted TEXT NOT NULL, PRIMARY KEY (session, clip));
"""
# Columns added to ``sessions`` after the first stores were written, and their types.
SETTING_COLUMNS = {"width": "INTEGER", "train_seconds": "TEXT"}


def database_path(run_dir: Path) -> Path:
    return Path(run_dir) / FILE_NAME


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@contextmanager
def connect(path: Path, write: bool = False) -> Iterator[sqlite3.Connection]:
    """A connection for one operation; with ``write``, one immediate transaction."""
    connection = sqlite3.connect(str(path), timeout=30.0, isolation_level=None)
    try:
        connection.row_factory = sqlite3.Row
        connection.execute("PRAGMA synchronous=FULL")
        connection.execute("PRAGMA foreign_keys=ON")
        if not write:
            yield connection
            return
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield connection
        except BaseException:
            if connection.in_transaction:  # SQLite has already rolled back after some errors (a full disk)
                connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")
    finally:
        connection.close()


def is_disk_full(error: sqlite3.Error) -> bool:
    """Whether SQLite failed for want of space: the database or its journal could not grow, or
    the WAL index (``-shm``) could not be allocated."""
    return getattr(error, "sqlite_errorname", None) in ("SQLITE_FULL", "SQLITE_IOERR_SHMSIZE")


def _problem(error: sqlite3.Error) -> str:
    return f"the disk is full ({error})" if is_disk_full(error) else str(error)


def create(path: Path) -> None:
    """Create the tables if missing and switch the file to WAL (a property of the file).

    A file that is not a ratings database, or one the disk will not let us write, is one line
    at start-up (:class:`~pal.core.errors.UserError`), before any rater sees the test.
    """
    try:
        connection = sqlite3.connect(str(path), timeout=30.0, isolation_level=None)
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.executescript(SCHEMA)
            present = _session_columns(connection)
            for column, kind in SETTING_COLUMNS.items():
                if column not in present:  # a store of an earlier version: its sessions rated a pal run
                    connection.execute(f"ALTER TABLE sessions ADD COLUMN {column} {kind}")
        finally:
            connection.close()
    except sqlite3.Error as error:
        if is_disk_full(error):
            raise UserError(f"{path}: cannot open the ratings store: {_problem(error)}; free space and start "
                            "again (ratings already stored are kept)") from None
        raise UserError(f"{path}: the ratings store is damaged or cannot be written ({error}); move it away to "
                        "start a new one (its ratings stay in that file)") from None


def _session_columns(connection: sqlite3.Connection) -> set[str]:
    return {row[1] for row in connection.execute("PRAGMA table_info(sessions)").fetchall()}


def _rows(path: Path, query: str) -> list[dict]:
    """The rows of ``query`` as dicts; none when there is no database yet; one line if damaged.
    ``{setting}`` in ``query`` is the session's setting columns (NULL in a store that predates them)."""
    if not path.is_file():
        return []
    try:
        with connect(path) as connection:
            present = _session_columns(connection)
            setting = ", ".join(f"s.{c}" if c in present else f"NULL AS {c}" for c in SETTING_COLUMNS)
            return [dict(row) for row in connection.execute(query.format(setting=setting)).fetchall()]
    except sqlite3.Error as error:
        if is_disk_full(error):
            raise UserError(f"{path}: cannot read the ratings store: {_problem(error)}; free space and run "
                            "this again (its ratings are kept)") from None
        raise UserError(f"{path}: the ratings store is damaged ({error})") from None


def read_ratings(path: Path) -> list[dict]:
    """Every MUSHRA rating with its rater and setting: ``session, rater, checkpoint, width,
    train_seconds, clip, condition, score``."""
    return _rows(path, "SELECT r.session, s.rater, s.checkpoint, {setting}, r.clip, r.condition, r.score "
                       "FROM ratings r JOIN sessions s ON s.id = r.session "
                       "ORDER BY s.created, r.session, r.clip, r.condition")


def read_preferences(path: Path) -> list[dict]:
    """Every preference: ``session, rater, checkpoint, width, train_seconds, clip, preferred, other``."""
    return _rows(path, "SELECT p.session, s.rater, s.checkpoint, {setting}, p.clip, p.preferred, p.other "
                       "FROM preferences p JOIN sessions s ON s.id = p.session ORDER BY s.created, p.session, p.clip")


class Refused(Exception):
    """A request the store will not serve: ``status`` is the HTTP status the server answers with."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


INSUFFICIENT_STORAGE, UNAVAILABLE = 507, 503  # HTTP (RFC 4918, 11.5; RFC 9110, 15.6.4)


@contextmanager
def serving() -> Iterator[None]:
    """SQLite failing while the server runs (a full disk, an I/O error) as a :class:`Refused`."""
    try:
        yield
    except sqlite3.Error as error:
        status = INSUFFICIENT_STORAGE if is_disk_full(error) else UNAVAILABLE
        raise Refused(status, f"the ratings store cannot be used now: {_problem(error)}; ratings already "
                              "stored are kept") from None


def add_session(path: Path, session: str, rater: str, mode: str, checkpoint: int, items: list[tuple],
                width: int | None = None, train_seconds: str | None = None) -> None:
    """A new session, what it rates (``checkpoint``; a codec run's ``width`` and ``train_seconds``)
    and its items ``(token, session, clip, position, condition, rated)``."""
    with serving(), connect(path, write=True) as connection:
        connection.execute("INSERT INTO sessions (id, rater, mode, checkpoint, created, width, train_seconds) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?)", (session, rater, mode, checkpoint, now(), width, train_seconds))
        connection.executemany("INSERT INTO items VALUES (?, ?, ?, ?, ?, ?)", items)


def item_sound(path: Path, token: str) -> tuple[str, str] | None:
    """``(clip, condition)`` of the item behind ``token``, or ``None``."""
    with serving(), connect(path) as connection:
        row = connection.execute("SELECT clip, condition FROM items WHERE token = ?", (token,)).fetchone()
    return None if row is None else (row["clip"], row["condition"])


def mark_played(path: Path, session: str, token: str) -> None:
    with serving(), connect(path, write=True) as connection:
        if connection.execute("SELECT 1 FROM items WHERE token = ? AND session = ?", (token, session)).fetchone() is None:
            raise Refused(404, "no such item in this session")
        connection.execute("INSERT OR IGNORE INTO plays VALUES (?)", (token,))


def add_ratings(path: Path, session: str, clip: str, scores: dict[str, float]) -> int:
    """One MUSHRA screen's scores (item token -> score), each item played, once per screen."""
    with serving(), connect(path, write=True) as connection:
        items = _screen(connection, session, clip, "mushra")
        unknown = set(scores) - set(items)
        if unknown:
            raise Refused(422, f"unknown condition {sorted(unknown)[0]!r} for clip {clip!r}")
        if set(scores) != set(items):
            raise Refused(422, "every item of the screen needs a score")
        _check_fresh_and_played(connection, session, clip, items, "ratings")
        submitted = now()
        connection.executemany("INSERT INTO ratings VALUES (?, ?, ?, ?, ?)", [
            (session, clip, items[token], float(score), submitted) for token, score in scores.items()])
    return len(scores)


def add_preference(path: Path, session: str, clip: str, preferred: str) -> None:
    """One preference screen's choice (the preferred item's token), both items played, once."""
    with serving(), connect(path, write=True) as connection:
        items = _screen(connection, session, clip, "preference")
        if preferred not in items:
            raise Refused(422, f"unknown condition {preferred!r} for clip {clip!r}")
        _check_fresh_and_played(connection, session, clip, items, "preferences")
        other = next(condition for token, condition in items.items() if token != preferred)
        connection.execute("INSERT INTO preferences VALUES (?, ?, ?, ?, ?)",
                           (session, clip, items[preferred], other, now()))


def _screen(connection, session: str, clip: str, mode: str) -> dict[str, str]:
    """The rated items (token -> condition) of ``session``'s screen for ``clip``."""
    row = connection.execute("SELECT mode FROM sessions WHERE id = ?", (session,)).fetchone()
    if row is None:
        raise Refused(404, "no such session")
    if row["mode"] != mode:
        raise Refused(409, f"this session is a {row['mode']} test")
    items = dict(connection.execute("SELECT token, condition FROM items WHERE session = ? AND clip = ? AND rated = 1",
                                    (session, clip)).fetchall())
    if not items:
        raise Refused(422, f"unknown clip {clip!r}")
    return items


def _check_fresh_and_played(connection, session: str, clip: str, items: dict[str, str], table: str) -> None:
    if connection.execute(f"SELECT 1 FROM {table} WHERE session = ? AND clip = ?", (session, clip)).fetchone():
        raise Refused(409, f"clip {clip!r} is already rated in this session")
    played = {row[0] for row in connection.execute(
        f"SELECT token FROM plays WHERE token IN ({','.join('?' * len(items))})", list(items))}
    if played != set(items):
        raise Refused(409, "play every item before rating")
