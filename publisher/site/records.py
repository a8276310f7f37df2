"""Event records: Markdown files with YAML front matter, loaded and validated.

A record is immutable once loaded. Every problem in a file is collected and
reported as ``path:line: field: message`` through :class:`InvalidInput`.
"""

from __future__ import annotations

import datetime as dt
import difflib
from collections.abc import Iterable
from functools import partial
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from publisher.errors import InvalidInput, Problem, relative
from publisher.site.files import record_files as record_files  # re-exported: records are found here
from publisher.site.files import record_names, shown_paths
from publisher.site.front_matter import FrontMatter
from publisher.site.loaded import LoadedRecords
from publisher.site.rules import FIRST_YEAR as FIRST_YEAR
from publisher.site.rules import HASHTAG, TAG, absolute_url, aware, check_language, image_problems
from publisher.site.rules import IMAGE_SUFFIXES as IMAGE_SUFFIXES
from publisher.site.rules import LAST_YEAR as LAST_YEAR
from publisher.site.rules import NETWORKS as NETWORKS
from publisher.site.rules import clean_text as clean_text
from publisher.site.rules import is_image_file as is_image_file
from publisher.site.rules import unique_ids as unique_ids
from publisher.site.rules import valid_language as valid_language


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Image(_Strict):
    src: str = Field(min_length=1)
    alt: str = Field(min_length=1)
    credit: str | None = None


class Person(_Strict):
    name: str = Field(min_length=1)
    role: str | None = None
    handles: dict[str, str] = Field(default_factory=dict)


class Link(_Strict):
    title: str = Field(min_length=1)
    url: str
    language: str | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return absolute_url(value)

    @field_validator("language")
    @classmethod
    def _language(cls, value: str | None) -> str | None:
        return None if value is None else check_language(value)


class NetworkText(_Strict):
    """A record's own text for one network, and the follow-ups of a thread."""

    text: str | None = None
    thread: tuple[str, ...] = ()

    @field_validator("text", mode="before")
    @classmethod
    def _clean(cls, value: Any) -> Any:
        return clean_text(value)

    @field_validator("thread", mode="before")
    @classmethod
    def _clean_thread(cls, value: Any) -> Any:
        return [clean_text(part) for part in value] if isinstance(value, list | tuple) else value

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"text": value} if isinstance(value, str) else value


class Social(_Strict):
    hashtags: tuple[str, ...] = ()
    x: NetworkText | None = None
    mastodon: NetworkText | None = None
    bluesky: NetworkText | None = None

    @field_validator("hashtags")
    @classmethod
    def _hashtags(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        cleaned = tuple(tag.lstrip("#") for tag in value)
        for tag in cleaned:
            if not HASHTAG.fullmatch(tag):
                raise ValueError(f"a hashtag is letters, digits and underscores (got {tag!r})")
        return cleaned

    def override(self, network: str) -> NetworkText | None:
        value: NetworkText | None = getattr(self, network)
        return value


class Record(_Strict):
    """One news item or meeting, as its author wrote it."""

    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    title: str = Field(min_length=1)
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
    image: Image | None = None
    people: tuple[Person, ...] = ()
    links: tuple[Link, ...] = ()
    social: Social = Field(default_factory=Social)
    status: Literal["draft", "published", "cancelled"] = "published"
    # Where the record came from: not front matter keys.
    source: str = Field(default="", exclude=True)
    lines: dict[str, int] = Field(default_factory=dict, exclude=True, repr=False)

    @field_validator("title", "summary", "body", "location", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        return clean_text(value)

    @field_validator("published", "updated", "starts", "ends", mode="before")
    @classmethod
    def _datetimes(cls, value: Any) -> Any:
        return None if value is None else aware(value)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else absolute_url(value)

    @field_validator("language")
    @classmethod
    def _language(cls, value: str | None) -> str | None:
        return None if value is None else check_language(value)

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for tag in value:
            if not TAG.fullmatch(tag):
                raise ValueError(f"a tag is letters, digits, '-', '_' or '.' (got {tag!r})")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Record:
        if not self.summary and not self.body.strip():
            raise ValueError("summary: a record needs a body or a summary")
        if self.starts and self.ends and self.ends < self.starts:
            raise ValueError("ends: is before starts")
        if self.updated and self.updated < self.published:
            raise ValueError("updated: is before published")
        return self

    @property
    def updated_or_published(self) -> dt.datetime:
        return self.updated or self.published

    def line(self, field: str) -> int:
        return self.lines.get(field, 1)


FIELDS = tuple(name for name in Record.model_fields if name not in ("source", "lines", "body"))
_FIELD_SET = frozenset(FIELDS)


def _hint(key: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(key, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _problems_from(exc: ValidationError, shown: str, front: FrontMatter) -> list[Problem]:
    problems = []
    for error in exc.errors():
        loc = [str(part) for part in error["loc"]]
        message = str(error["msg"]).removeprefix("Value error, ")
        if not loc and ": " in message:  # model-level check naming its field
            field, message = message.split(": ", 1)
            loc = [field]
        field = ".".join(loc) if loc else "record"
        if error["type"] == "extra_forbidden":
            parent = Record
            for part in loc[:-1]:
                annotation = getattr(parent, "model_fields", {}).get(part)
                parent = _model_of(annotation.annotation) if annotation else parent
            message = f"unknown key{_hint(loc[-1], getattr(parent, 'model_fields', {}))}"
        elif error["type"] == "missing":
            message = "is required"
        elif error["type"] == "string_too_short":
            message = "must not be empty"
        line = _line_for(loc, front)
        if loc == ["id"] and error["type"] == "string_pattern_mismatch":
            named = "id" not in front.data  # the id is the file's name
            message = _bad_id(str(error["input"]), named=named)
            line = 1 if named else line
        problems.append(Problem(shown, line, field, message))
    return problems


def _bad_id(value: str, *, named: bool) -> str:
    rule = "letters, digits, '.', '_' and '-', starting with a letter or a digit"
    if named:
        return f"the file's name {value!r} is not an id ({rule}): rename the file, or give the record an `id:`"
    return f"must be {rule} (got {value!r})"


def _model_of(annotation: Any) -> Any:
    for candidate in getattr(annotation, "__args__", ()) or (annotation,):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
        inner = _model_of(candidate) if getattr(candidate, "__args__", None) else None
        if inner is not None:
            return inner
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _line_for(loc: list[str], front: FrontMatter) -> int:
    if loc == ["body"]:
        return front.body_line
    for end in range(len(loc), 0, -1):
        line = front.lines.get(".".join(loc[:end]))
        if line is not None:
            return line
    return 2 if loc and loc[0] not in ("summary",) else front.body_line


def parse_record(text: str, path: Path, root: Path | None = None, *, shown: str | None = None) -> Record:
    """Parse one record's text; raise InvalidInput listing every problem in it.

    `shown` is the path as problems name it, when the caller already knows it
    (default: `path` relative to `root`).
    """
    shown = relative(path, root) if shown is None else shown
    front = FrontMatter(text)
    if front.error:
        raise InvalidInput([Problem(shown, front.error[0], "front matter", front.error[1])])
    problems = [Problem(shown, line, field, message) for line, field, message in front.problems]
    if front.unreadable:
        raise InvalidInput(problems)
    data = dict(front.data)
    for key in list(data):
        if key not in _FIELD_SET:
            hint = _hint(str(key), FIELDS)
            problems.append(Problem(shown, front.lines.get(str(key), 1), str(key), f"unknown key{hint}"))
            del data[key]
    data.setdefault("id", path.stem)
    data["body"] = front.body
    data["source"] = shown
    data["lines"] = {**front.lines, "body": front.body_line}
    problems.extend(image_problems(data.get("image"), shown, front.lines.get("image.src", 1), root))
    try:
        record = Record.model_validate(data)
    except ValidationError as exc:
        problems.extend(_problems_from(exc, shown, front))
        raise InvalidInput(problems) from None
    if problems:
        raise InvalidInput(problems)
    return record


def load_record(path: Path, root: Path | None = None, *, data: bytes | None = None, shown: str | None = None) -> Record:
    """One record file (`data`: its bytes, when already read); InvalidInput lists every problem in it."""
    shown = relative(path, root) if shown is None else shown
    if data is None:
        data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")  # a byte-order mark (Windows editors write one) is not part of the text
    except UnicodeDecodeError as exc:
        raise InvalidInput([Problem(shown, 1, "file", f"is not UTF-8 text ({exc.reason})")]) from None
    if "\r" in text:  # as read_text() reads it: universal newlines
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return parse_record(text, path, root, shown=shown)


def load_records(events: Path, root: Path | None = None, *, drafts: bool = False, keep: bool = False) -> list[Record]:
    """Every record under `events`, newest first; raise InvalidInput with all problems.

    Drafts are left out unless `drafts` is true; duplicate ids across files are
    problems, reported on both files. With `keep` (and a `root`), records whose
    files are unchanged since they were last parsed are taken from the site's
    `.publisher/records-loaded.json` (`publisher.site.loaded`): the same records,
    and the same problems, as parsing them all, in a fraction of the time.
    """
    problems: list[Problem] = []
    records: list[Record] = []
    names = record_names(events)
    kept = None
    if keep and root is not None:
        kept = LoadedRecords(root)
    parse = partial(_parse_file, root)
    for (name, _), shown in zip(names, shown_paths(events, root, names), strict=True):
        try:
            if kept is None:
                records.append(load_record(events / name, root, shown=shown))
            else:
                records.append(kept.load(events, name, shown, parse, Record.model_validate_json))
        except InvalidInput as exc:
            problems.extend(exc.problems)
    if kept is not None:
        kept.keep_only({name for name, _ in names})
        kept.save()
    records, duplicates = unique_ids(
        records, id_of=lambda r: r.id, shown=lambda r: r.source, id_line=lambda r: r.line("id")
    )
    problems.extend(duplicates)
    if problems:
        raise InvalidInput(problems)
    if not drafts:
        records = [r for r in records if r.status != "draft"]
    return sort_newest_first(records)


def _parse_file(root: Path | None, path: Path, shown: str, data: bytes) -> Record:
    return load_record(path, root, data=data, shown=shown)


def sort_newest_first(records: Iterable[Record]) -> list[Record]:
    """Newest first by publication time; the id breaks ties so the order is stable."""
    return sorted(records, key=lambda r: (r.published.timestamp(), r.id), reverse=True)
