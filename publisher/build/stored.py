"""The build cache's files: JSON, read as untrusted.

A file of `.publisher/` may have been written by an older publisher, cut short
by a crash, or put there by anyone who can write the folder. So nothing in it
is ever run (no pickle), and everything read from it is checked for the shape
its reader expects: a file that is not JSON, of another version, or of another
shape reads as nothing (the build is then cold for what it held), never as an
error.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError

from publisher.site.records import Record

VERSION = 5  # of the cache's files: one of another version reads as empty
ENCODER = json.JSONEncoder(ensure_ascii=False, check_circular=False, separators=(",", ":"))
NOT_THE_SHAPE = (TypeError, ValueError, KeyError, IndexError, AttributeError, RecursionError)
T = TypeVar("T")


def load_json(path: Path) -> dict[str, Any]:
    """A cache file's content; {} when it is missing, not JSON, or of another version."""
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return {}
    return data if isinstance(data, dict) and data.get("version") == VERSION else {}


def save_json(path: Path, data: dict[str, Any]) -> None:
    """Write a cache file whole or not at all (a temporary file renamed over it), with the version.

    A cache that cannot be written (a read-only site, a full disk) is left as it was: the next build is
    cold for what it would have held, and `check` in a folder it may only read still checks.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(ENCODER.encode({"version": VERSION, **data}).encode("utf-8"))
        tmp.replace(path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def read_as(convert: Callable[[Any], T], value: Any, empty: T) -> T:
    """`convert(value)`, or `empty` when the value is not of the shape it expects (a file from elsewhere)."""
    try:
        return convert(value)
    except NOT_THE_SHAPE:
        return empty


def text(value: Any) -> str:
    """The value when it is text (else TypeError: a `read_as` conversion then gives up), as below."""
    if not isinstance(value, str):
        raise TypeError("not text")
    return value


def maybe_text(value: Any) -> str | None:
    return None if value is None else text(value)


def count(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError("not an integer")
    return value


def texts(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise TypeError("not a list")
    return tuple(text(v) for v in value)


def items_of(convert: Callable[[Any], T]) -> Callable[[Any], dict[str, T]]:
    """A conversion of a JSON object: text keys, each value by `convert`."""

    def items(value: Any) -> dict[str, T]:
        return {text(key): convert(item) for key, item in value.items()}

    return items


def moment_of(value: Any) -> float:
    """A timestamp (a JSON number that is no boolean)."""
    if not isinstance(value, float | int) or isinstance(value, bool):
        raise TypeError("not a time")
    return value


def record_blob(record: Record) -> str:
    """A record as JSON its model validates again, with where it came from (which its dump leaves out)."""
    dumped = record.model_dump_json()
    where = ENCODER.encode({"source": record.source, "lines": record.lines})
    return f"{dumped[:-1]},{where[1:]}"


def record_of(blob: str) -> Record | None:
    """The record a `record_blob` holds; None when it holds none (then its file is parsed again)."""
    try:
        return Record.model_validate_json(blob)
    except (ValidationError, ValueError):
        return None
