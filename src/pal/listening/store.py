"""Ratings in SQLite, in the run folder: ``listening.sqlite``.

One connection per operation, WAL journal and ``synchronous=FULL``: two raters writing at once
each get their own transaction, and a rating acknowledged to a browser survives the server being
killed. Writes that check and insert run inside ``BEGIN IMMEDIATE``, so a check cannot go stale
before its insert.
"""

from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

FILE_NAME = "listening.sqlite"

SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY, rater TEXT NOT NULL, mode TEXT NOT NULL, checkpoint INTEGER NOT NULL,
    created TEXT NOT NULL);
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
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")
    finally:
        connection.close()


def create(path: Path) -> None:
    """Create the tables if missing and switch the file to WAL (a property of the file)."""
    connection = sqlite3.connect(str(path), timeout=30.0, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.executescript(SCHEMA)
    finally:
        connection.close()


def _rows(path: Path, query: str) -> list[dict]:
    """The rows of ``query`` as dicts; none when there is no database yet."""
    if not path.is_file():
        return []
    with connect(path) as connection:
        return [dict(row) for row in connection.execute(query).fetchall()]


def read_ratings(path: Path) -> list[dict]:
    """Every MUSHRA rating with its rater: ``session, rater, checkpoint, clip, condition, score``."""
    return _rows(path, "SELECT r.session, s.rater, s.checkpoint, r.clip, r.condition, r.score FROM ratings r "
                       "JOIN sessions s ON s.id = r.session ORDER BY s.created, r.session, r.clip, r.condition")


def read_preferences(path: Path) -> list[dict]:
    """Every preference: ``session, rater, checkpoint, clip, preferred, other``."""
    return _rows(path, "SELECT p.session, s.rater, s.checkpoint, p.clip, p.preferred, p.other FROM preferences p "
                       "JOIN sessions s ON s.id = p.session ORDER BY s.created, p.session, p.clip")
