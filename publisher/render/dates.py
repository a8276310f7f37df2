"""Dates and times written in a reader's language, with Babel.

A bare ``en`` is written as international English (CLDR ``en_001``: "9 February
2018"), the form a think tank's readers around the world expect; a tag with a
region (``en-US``) gets that region's form ("February 9, 2018").
"""

from __future__ import annotations

import datetime as dt
import re
from functools import lru_cache

from babel import Locale, UnknownLocaleError
from babel.dates import DateTimePattern, format_time, get_date_format, parse_pattern

_BARE = {"en": "en_001"}
_FIELDS = ("y", "M", "d")


@lru_cache(maxsize=64)
def locale_for(language: str) -> Locale:
    """The Babel locale for a BCP 47 tag; unknown tags fall back to English."""
    tag = _BARE.get(language.lower(), language)
    try:
        return Locale.parse(tag, sep="-" if "-" in tag else "_")
    except (UnknownLocaleError, ValueError):
        try:
            return Locale.parse(tag.split("-")[0])
        except (UnknownLocaleError, ValueError):
            return Locale.parse(_BARE["en"])


def long_date(when: dt.date, language: str) -> str:
    """'9 February 2018', '9 de febrero de 2018': a datetime in its own offset."""
    pattern, locale = _long_date_pattern(language)
    return pattern.apply(when.date() if isinstance(when, dt.datetime) else when, locale)  # as format_date does


@lru_cache(maxsize=64)
def _long_date_pattern(language: str) -> tuple[DateTimePattern, Locale]:
    """What `format_date(format="long")` looks up for every date, looked up once per language."""
    locale = locale_for(language)
    return parse_pattern(get_date_format("long", locale=locale)), locale


@lru_cache(maxsize=64)
def text_direction(language: str) -> str:
    """'ltr' or 'rtl': how the language is written."""
    return str(locale_for(language).text_direction)


def short_time(when: dt.datetime, language: str) -> str:
    """The time of day in the datetime's own offset: '09:00', '9:00 am'."""
    return format_time(when, format="short", tzinfo=when.tzinfo, locale=locale_for(language))


def utc_offset(when: dt.datetime) -> str:
    """'UTC+01:00', 'UTC−05:00' (with a minus sign), 'UTC' for zero."""
    offset = when.utcoffset() or dt.timedelta(0)
    if not offset:
        return "UTC"
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes > 0 else "−"
    hours, rest = divmod(abs(minutes), 60)
    return f"UTC{sign}{hours:02d}:{rest:02d}"


def _widen(pattern: str) -> str:
    """CLDR's width adjustment: the abbreviated month (MMM) becomes the full one."""
    parts = re.split(r"('[^']*')", pattern)
    return "".join(
        part if part.startswith("'") else re.sub(r"(?<![ML])([ML])\1\1(?![ML])", r"\1\1\1\1", part) for part in parts
    )


def date_range(first: dt.date, last: dt.date, language: str) -> str:
    """'9–16 February 2018', '9 de febrero – 15 de marzo de 2018', one date when equal.

    Babel's own `format_interval` falls back to abbreviated months where CLDR has
    no full-month interval (most locales), so the abbreviated one is widened here.
    """
    locale = locale_for(language)
    if first > last:
        first, last = last, first
    formats = locale.interval_formats
    skeleton = "yMMMMd" if "yMMMMd" in formats else "yMMMd"
    pieces = formats.get(skeleton)
    for field, value_first, value_last in zip(_FIELDS, first.timetuple()[:3], last.timetuple()[:3], strict=True):
        if value_first != value_last and pieces and field in pieces:
            halves = pieces[field]
            return "".join(
                parse_pattern(_widen(half)).apply(day, locale) for half, day in zip(halves, (first, last), strict=True)
            )
    if first == last:
        return long_date(first, language)
    return f"{long_date(first, language)} – {long_date(last, language)}"


def event_when(starts: dt.datetime, ends: dt.datetime | None, language: str) -> str:
    """When an event happens, in its own offset.

    '9 February 2018, 09:00–18:00 (UTC+01:00)', or across days
    '21 May 2018, 08:00 – 22 May 2018, 17:00 (UTC−05:00)'.
    """
    start_text = f"{long_date(starts, language)}, {short_time(starts, language)}"
    if ends is None:
        return f"{start_text} ({utc_offset(starts)})"
    ends = ends.astimezone(starts.tzinfo)
    if ends.date() == starts.date():
        return f"{start_text}–{short_time(ends, language)} ({utc_offset(starts)})"
    end_text = f"{long_date(ends, language)}, {short_time(ends, language)}"
    return f"{start_text} – {end_text} ({utc_offset(starts)})"
