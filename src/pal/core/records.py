"""Reading pal's records back as typed values, or refusing them in one line that names the file.

Every record pal writes (a run's configuration, statuses, measures, loss histories and
checkpoint peaks; a sweep's plan) is read through here by the module that owns its format and
spells its file's name (:mod:`pal.run.folder`, :mod:`pal.sweeps.shard`). Whatever the damage (an empty or
truncated file, bytes that are not UTF-8, JSON of the wrong shape, a field of the wrong type, a
value in a CSV that is not a number, nesting deep enough to exhaust Python's stack), the reader
raises :class:`DamagedRecord`: a :class:`~pal.core.errors.UserError` whose one line starts with the
file's path, so the command line says it and exits 2.

A field is declared with a *check*, a function ``check(value) -> value`` that raises
:class:`BadValue` saying what it expected; :func:`typed` builds a dataclass from a JSON object
with one check per field.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Callable, Iterator

from .errors import UserError


class DamagedRecord(UserError):
    """A record that is not what pal wrote; its message names the file."""

    def __init__(self, path: Path, what: str, problem: str):
        self.path = Path(path)
        super().__init__(f"{path}: damaged {what} ({problem})")


class BadValue(ValueError):
    """A field's check failed; the message says what was expected and what was there."""


Check = Callable[[object], object]


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def expect(condition: bool, expected: str, value) -> None:
    if not condition:
        raise BadValue(f"expected {expected}, found {_shown(value)}")


# -- checks --------------------------------------------------------------------------------------


def text(value) -> str:
    expect(isinstance(value, str), "text", value)
    return value


def integer(low: int | None = None, high: int | None = None) -> Check:
    def check(value) -> int:
        expect(isinstance(value, int) and not isinstance(value, bool), "an integer", value)
        expect(low is None or value >= low, f"an integer of at least {low}", value)
        expect(high is None or value <= high, f"an integer of at most {high}", value)
        return value

    return check


def number(value) -> float:
    """A JSON number; NaN and infinities are numbers pal writes (a diverged run's last loss)."""
    expect(isinstance(value, (int, float)) and not isinstance(value, bool), "a number", value)
    return value


def finite_number(value) -> float:
    """A JSON number that is finite: where pal never writes NaN or an infinity."""
    expect(math.isfinite(number(value)), "a finite number", value)
    return value


def boolean(value) -> bool:
    expect(isinstance(value, bool), "true or false", value)
    return value


def optional(check: Check) -> Check:
    return lambda value: None if value is None else check(value)


def one_of(*choices: str) -> Check:
    def check(value) -> str:
        expect(value in choices, " or ".join(choices), value)
        return value

    return check


def list_of(check: Check, unique: bool = False, nonempty: bool = False) -> Check:
    def checked(value) -> list:
        expect(isinstance(value, list), "a list", value)
        expect(not nonempty or value, "a list of at least one", value)
        items = [check(item) for item in value]
        expect(not unique or len(set(map(repr, items))) == len(items), "a list without repeats", value)
        return items

    return checked


def mapping(key: Check = text, value: Check = lambda v: v) -> Check:
    def checked(record) -> dict:
        expect(isinstance(record, dict), "an object", record)
        return {key(k): value(v) for k, v in record.items()}

    return checked


def typed(cls, record, checks: dict[str, Check], where: str = ""):
    """``cls(**record)`` with each field through its check; keys ``cls`` does not declare are
    ignored (a newer or older pal's), a declared field without a default must be present."""
    expect(isinstance(record, dict), f"an object{where}", record)
    values = {}
    for declared in fields(cls):
        if declared.name not in record:
            if declared.default is MISSING and declared.default_factory is MISSING:
                raise BadValue(f"{declared.name!r}{where} is missing")
            continue
        try:
            values[declared.name] = checks.get(declared.name, lambda v: v)(record[declared.name])
        except BadValue as error:
            raise BadValue(f"{declared.name!r}{where}: {error}") from None
    return cls(**values)


# -- files ---------------------------------------------------------------------------------------


def read_text(path: Path, what: str) -> str:
    try:
        data = Path(path).read_bytes()
    except IsADirectoryError:
        raise DamagedRecord(path, what, "a folder, not a file") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DamagedRecord(path, what, f"not text: byte {error.start} is not UTF-8") from None


def read_json(path: Path, what: str):
    """A JSON file's value; empty, truncated, not JSON or nested beyond reason: :class:`DamagedRecord`."""
    content = read_text(path, what)
    if not content.strip():
        raise DamagedRecord(path, what, "empty")
    try:
        return json.loads(content)
    except json.JSONDecodeError as error:
        raise DamagedRecord(path, what, f"not JSON: {error}") from None
    except RecursionError:
        raise DamagedRecord(path, what, "nested too deeply to be pal's") from None


def parse_json(path: Path, what: str, parse: Callable):
    """``parse(read_json(path))``, a :class:`BadValue` from it becoming :class:`DamagedRecord`."""
    try:
        return parse(read_json(path, what))
    except BadValue as error:
        raise DamagedRecord(path, what, str(error)) from None


def read_csv(path: Path, what: str, header: tuple[str, ...]) -> Iterator[tuple[int, dict]]:
    """``(line number, row)`` of a CSV file that must start with ``header``; every row must have
    exactly its columns, and the last must end its line, as pal writes every line (a file cut
    inside its last line, even inside a number that still reads as one, is cut). Damage (no header,
    another header, a short or long row, a last line without its end, NUL bytes): :class:`DamagedRecord`."""
    content = read_text(path, what)
    if not content.strip():
        raise DamagedRecord(path, what, "empty")
    if not content.endswith("\n"):
        raise DamagedRecord(path, what, f"line {len(content.splitlines())} is cut short: it has no line end")
    try:
        reader = csv.reader(content.splitlines())
        first = next(reader)
        if tuple(first) != header:
            raise DamagedRecord(path, what, f"line 1 is not the header {','.join(header)}")
        for row in reader:
            if len(row) != len(header):
                raise DamagedRecord(path, what, f"line {reader.line_num} has {len(row)} fields, not {len(header)}")
            yield reader.line_num, dict(zip(header, row))
    except csv.Error as error:
        raise DamagedRecord(path, what, f"not CSV: {error}") from None


def csv_value(path: Path, what: str, line: int, column: str, text_value: str, kind: type):
    """A CSV field as ``kind`` (``int`` or ``float``), or :class:`DamagedRecord` naming the line."""
    try:
        value = kind(text_value)
    except ValueError:
        raise DamagedRecord(path, what, f"line {line}: {column} {_shown(text_value)} is not "
                            f"{'an integer' if kind is int else 'a number'}") from None
    return value
