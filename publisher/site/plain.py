"""A record file's common case, validated without pydantic: what a rebuild after one edit parses.

Importing pydantic and building the record's model costs a rebuild more than the rest of it.
`plain_record` checks the same rules as `publisher.site.records.Record` (the rules themselves are
`publisher.site.rules`, shared with the model) for the records most sites hold: plain text fields,
dates, tags, an image, hashtags. It answers None whenever it is not certain (a key it does not
handle, a value of any unusual type or shape, any problem at all), and its caller then parses the
file with the model, which words every problem as before. So it must never accept what the model
refuses, and what it accepts is what the model makes: `tests/test_plain_record.py` holds it to that.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from publisher.site.front_matter import FrontMatter
from publisher.site.rules import HASHTAG, TAG, absolute_url, aware, check_language, clean_text, image_problems

#: What pydantic's `str_strip_whitespace` strips: Rust's `str::trim`, the Unicode White_Space characters.
#: Python's `str.strip` strips these and \x1c-\x1f too; where the two differ, the model decides.
_TRIMMED = "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a" + (
    "\u2028\u2029\u202f\u205f\u3000"
)
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # Record.id's pattern, anchored by fullmatch
_STATUSES = frozenset(("draft", "published", "cancelled"))
#: The front matter keys handled here; any other (people, links, unknown ones) is the model's to judge.
_KEYS = frozenset(
    [
        "id",
        "title",
        "published",
        "summary",
        "url",
        "updated",
        "language",
        "starts",
        "ends",
        "location",
        "organisers",
        "tags",
        "image",
        "social",
        "status",
    ]
)
_ENCODER = msgspec.json.Encoder()
T = TypeVar("T")


class _Unsure(Exception):
    """A value the quick path does not judge: the model will."""


class PlainImage(msgspec.Struct, frozen=True):
    """A record's `image`, as `publisher.site.records.Image` holds it."""

    src: str
    alt: str
    credit: str | None = None


class PlainSocial(msgspec.Struct, frozen=True):
    """A record's `social` with hashtags only (own network texts are the model's to check)."""

    hashtags: tuple[str, ...] = ()
    x: None = None
    mastodon: None = None
    bluesky: None = None


class PlainRecord(msgspec.Struct, frozen=True):
    """A record as `publisher.site.records.Record` holds it, for the fields the quick path handles."""

    id: str
    title: str
    published: dt.datetime
    summary: str | None = None
    body: str = ""
    url: str | None = None
    updated: dt.datetime | None = None
    language: str | None = None
    starts: dt.datetime | None = None
    ends: dt.datetime | None = None
    location: str | None = None
    organisers: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    image: PlainImage | None = None
    social: PlainSocial = msgspec.field(default_factory=PlainSocial)
    status: str = "published"
    source: str = ""
    lines: dict[str, int] = msgspec.field(default_factory=dict)

    @property
    def updated_or_published(self) -> dt.datetime:
        return self.updated or self.published

    def line(self, field: str) -> int:
        return self.lines.get(field, 1)

    def blob(self) -> str:
        """The JSON `Record.model_validate_json` makes this record from (as `build.stored.record_blob`)."""
        dumped = {
            "id": self.id,
            "title": self.title,
            "published": self.published,
            "summary": self.summary,
            "body": self.body,
            "url": self.url,
            "updated": self.updated,
            "language": self.language,
            "starts": self.starts,
            "ends": self.ends,
            "location": self.location,
            "organisers": self.organisers,
            "tags": self.tags,
            "image": self.image,
            "people": (),
            "links": (),
            "social": self.social,
            "status": self.status,
            "source": self.source,
            "lines": self.lines,
        }
        return _ENCODER.encode(dumped).decode()


def plain_record(data: bytes, path: Path, root: Path | None, shown: str) -> PlainRecord | None:
    """The record in a file's bytes when it is of the common case and valid; None when the model must say.

    Read as `publisher.site.records.load_record` reads it (UTF-8 with or without a byte-order mark,
    universal newlines, `id` from the file's name), with the same front matter parser.
    """
    try:
        return _record(data, path, root, shown)
    except Exception:  # an _Unsure, or anything unforeseen: either way, not certain
        return None


def _record(data: bytes, path: Path, root: Path | None, shown: str) -> PlainRecord:
    text = data.decode("utf-8-sig")
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    front = FrontMatter(text)
    if front.error or front.problems or front.unreadable or not _KEYS.issuperset(front.data):
        raise _Unsure
    given = front.data
    source = _trim(_str(shown))
    lines = {**front.lines, "body": front.body_line}
    if any(key != key.strip() for key in lines):  # (never, for the keys handled here: the model would strip them)
        raise _Unsure
    record = PlainRecord(
        id=_identifier(given.get("id", path.stem)),
        title=_not_empty(_text(given.get("title"))),
        published=_datetime(given.get("published")),
        summary=_optional(_text, given, "summary"),
        body=_text(front.body),
        url=_optional(_url, given, "url"),
        updated=_optional(_datetime, given, "updated"),
        language=_optional(_language, given, "language"),
        starts=_optional(_datetime, given, "starts"),
        ends=_optional(_datetime, given, "ends"),
        location=_optional(_text, given, "location"),
        organisers=tuple(_trim(item) for item in _strings(given.get("organisers", []))),
        tags=tuple(_tag(item) for item in _strings(given.get("tags", []))),
        image=_image(given.get("image"), shown, front.lines.get("image.src", 1), root),
        social=_social(given.get("social", {})),
        status=_status(given.get("status", "published")),
        source=source,
        lines=lines,
    )
    _consistent(record)
    return record


def _consistent(record: PlainRecord) -> None:
    """Record's model-level rules."""
    if not record.summary and not record.body.strip():
        raise _Unsure
    if record.starts and record.ends and record.ends < record.starts:
        raise _Unsure
    if record.updated and record.updated < record.published:
        raise _Unsure


def _str(value: Any) -> str:
    if type(value) is not str:
        raise _Unsure
    return value


def _trim(value: str) -> str:
    """`value` stripped as pydantic strips it, when Python's strip (which strips more) strips the same."""
    trimmed = value.strip(_TRIMMED)
    if trimmed != value.strip():
        raise _Unsure
    return trimmed


def _not_empty(value: str) -> str:
    if not value:
        raise _Unsure
    return value


def _optional(check: Callable[[Any], T], given: dict[str, Any], key: str) -> T | None:
    value = given.get(key)
    return None if value is None else check(value)


def _text(value: Any) -> str:
    """A text field whose validator drops byte-order marks and noncharacters before it is stripped."""
    return _trim(_str(clean_text(value)))


def _identifier(value: Any) -> str:
    identifier = _trim(_str(value))
    if not _ID.fullmatch(identifier):
        raise _Unsure
    return identifier


def _url(value: Any) -> str:
    return absolute_url(_trim(_str(value)))


def _language(value: Any) -> str:
    return check_language(_trim(_str(value)))


def _tag(value: str) -> str:
    tag = _trim(value)
    if not TAG.fullmatch(tag):
        raise _Unsure
    return tag


def _strings(value: Any) -> list[str]:
    """A list of strings (what YAML gives for a tuple of strings)."""
    if type(value) is not list or not all(type(item) is str for item in value):
        raise _Unsure
    return value


def _datetime(value: Any) -> dt.datetime:
    """An aware date and time, read by the model's own rule, with an offset in whole minutes.

    Offsets with seconds are rare enough to leave to the model (and to its JSON).
    """
    if type(value) is not dt.datetime and type(value) is not str:
        raise _Unsure
    moment = aware(value)
    offset = moment.utcoffset()
    if type(moment) is not dt.datetime or type(moment.tzinfo) is not dt.timezone or offset is None:
        raise _Unsure
    if offset.microseconds or offset.seconds % 60:
        raise _Unsure
    return moment


def _image(value: Any, shown: str, line: int, root: Path | None) -> PlainImage | None:
    if value is None:
        return None
    if type(value) is not dict or not {"src", "alt"} <= value.keys() <= {"src", "alt", "credit"}:
        raise _Unsure
    if image_problems(value, shown, line, root):
        raise _Unsure
    credit = value.get("credit")
    return PlainImage(
        src=_not_empty(_trim(_str(value["src"]))),
        alt=_not_empty(_trim(_str(value["alt"]))),
        credit=None if credit is None else _trim(_str(credit)),
    )


def _social(value: Any) -> PlainSocial:
    if type(value) is not dict or not value.keys() <= {"hashtags"}:
        raise _Unsure
    hashtags = tuple(_trim(tag).lstrip("#") for tag in _strings(value.get("hashtags", [])))
    if not all(HASHTAG.fullmatch(tag) for tag in hashtags):
        raise _Unsure
    return PlainSocial(hashtags)


def _status(value: Any) -> str:
    if type(value) is not str or value not in _STATUSES:
        raise _Unsure
    return value
