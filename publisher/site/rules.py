"""The rules a record's fields follow that need no model: dates, languages, URLs, tags, unique ids.

Apart from the record's pydantic model (`publisher.site.records`) so that what
reads records without validating them again (a build's cache, its quick parse
of an edited file: `publisher.site.plain`) never imports pydantic; the model
uses these same functions, so the rules and their words cannot drift apart.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable
from pathlib import Path, PurePath
from typing import Any, TypeVar

from publisher.errors import Problem

NETWORKS = ("x", "mastodon", "bluesky")
#: Record times and `--now` stay this far from the calendar's ends (years 1 and 9999), so that a rule's
#: offset, a digest's window or a time zone never moves a date the plan computes off the calendar.
FIRST_YEAR, LAST_YEAR = 1000, 8999
T = TypeVar("T")

_LANGUAGE = re.compile(
    r"^(?P<lang>[a-zA-Z]{2,3})(-[a-zA-Z]{4})?(-(?:[a-zA-Z]{2}|\d{3}))?(-(?:[a-zA-Z0-9]{5,8}|\d[a-zA-Z0-9]{3}))*$"
)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".avif", ".svg")  # what `image.src` may name
URL = re.compile(r"^https?://[^\s/$.?#][^\s]*$", re.IGNORECASE)
_KNOWN_LANGUAGES: dict[str, bool] = {}


def valid_language(tag: str) -> bool:
    """A well-formed BCP 47 tag whose primary language is one Babel knows."""
    match = _LANGUAGE.match(tag)
    if not match:
        return False
    lang = match.group("lang").lower()
    if lang not in _KNOWN_LANGUAGES:
        from babel import localedata

        _KNOWN_LANGUAGES[lang] = localedata.exists(lang)
    return _KNOWN_LANGUAGES[lang]


def check_language(tag: str) -> str:
    """`tag` when `valid_language`, else ValueError with the one message every place shows.

    Used by publisher.toml's `site.language`, a record's and a network text's `language`, and
    subscriber rows, so the rule and its words cannot drift apart.
    """
    if not valid_language(tag):
        raise ValueError(f"is not a BCP 47 language tag (got {tag!r})")
    return tag


_NONCHARACTERS = str.maketrans("", "", "\ufeff\ufffe\uffff")
TAG = re.compile(r"[\w][\w.-]*")
HASHTAG = re.compile(r"\w+")


def clean_text(value: Any) -> Any:
    """Text without byte-order marks and noncharacters (editors leave them; X refuses them).

    Looked for before `translate`, which copies the text character by character (a record's whole body).
    """
    if isinstance(value, str) and ("\ufeff" in value or "\ufffe" in value or "\uffff" in value):
        return value.translate(_NONCHARACTERS)
    return value


def absolute_url(value: str) -> str:
    """`value` when it is an absolute http(s) URL, else ValueError (a record's URLs and `site.url`)."""
    if not URL.match(value):
        raise ValueError(f"must be an absolute http(s) URL (got {value!r})")
    return value


def aware(value: dt.datetime | dt.date | str) -> dt.datetime:
    if isinstance(value, dt.datetime):
        parsed = value
    elif isinstance(value, dt.date):
        raise ValueError(f"needs a time with a UTC offset or time zone (got {value.isoformat()!r})")
    else:
        try:
            parsed = dt.datetime.fromisoformat(str(value).strip())
        except ValueError:
            raise ValueError(f"is not a date and time (got {value!r})") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValueError(f"needs a UTC offset or time zone (got {str(value)!r})")
    if not FIRST_YEAR <= parsed.year <= LAST_YEAR:
        raise ValueError(f"is out of the years publisher can plan, {FIRST_YEAR} to {LAST_YEAR} (got {str(value)!r})")
    return parsed


def is_image_file(src: str) -> bool:
    """Whether a site file's name is an image's: only those are published with the output and posted."""
    return PurePath(src).suffix.lower() in IMAGE_SUFFIXES


def image_problems(image: Any, shown: str, line: int, root: Path | None) -> list[Problem]:
    """An image `src` is an absolute http(s) URL or an image file inside the site (not through a link out
    of it: its bytes would be posted to a network; nor another file, which `build --out` would publish)."""
    src = image.get("src") if isinstance(image, dict) else None
    if not isinstance(src, str) or not src.strip() or URL.match(src):
        return []
    if "://" in src or src.startswith(("/", "\\")) or ".." in Path(src).parts:
        return [Problem(shown, line, "image.src", f"is neither an http(s) URL nor a file in the site (got {src!r})")]
    if not is_image_file(src):
        suffixes = ", ".join(IMAGE_SUFFIXES)
        return [Problem(shown, line, "image.src", f"is not an image file (one of {suffixes}; got {src!r})")]
    if root is not None and not (root / src).is_file():
        return [Problem(shown, line, "image.src", f"no such file in the site (got {src!r})")]
    if root is not None and not (root / src).resolve().is_relative_to(root.resolve()):  # a symlink out
        return [Problem(shown, line, "image.src", f"leads out of the site folder, through a link (got {src!r})")]
    return []


def unique_ids(
    items: Iterable[T], *, id_of: Callable[[T], str], shown: Callable[[T], str], id_line: Callable[[T], int]
) -> tuple[list[T], list[Problem]]:
    """The items with the first of each id (in the order given), and a problem for each later one.

    Items are records, or what a build knows of them before parsing (`build.cache.Source`): `id_of` and
    `shown` (the path in messages) are read from each, `id_line` only from a duplicate (it may have
    to parse the file), so the same rule and message hold for `load_records` and `publisher build`.
    """
    items = list(items)
    if len(set(map(id_of, items))) == len(items):
        return items, []  # the common case, at a tenth of the cost of the loop below
    kept: list[T] = []
    problems: list[Problem] = []
    seen: dict[str, T] = {}
    for item in items:
        first = seen.setdefault(id_of(item), item)
        if first is item:
            kept.append(item)
            continue
        problems.append(Problem(shown(item), id_line(item), "id", f"{id_of(item)!r} is already used by {shown(first)}"))
    return kept, problems
