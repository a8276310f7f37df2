"""A record with a start time as an iCalendar (.ics) file, for "Add to calendar".

Pure: the same record gives the same bytes. Times are written in UTC (a
record's fixed UTC offset is no IANA zone a calendar could name), DTSTAMP is
the record's own last change, never the clock.
"""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlsplit

from publisher.render.markdown import body_html_and_text, record_url
from publisher.render.plaintext import first_sentence
from publisher.site.records import Record
from publisher.site.settings import SiteSettings

PRODID = "-//publisher//newsletter issues//EN"


def calendar_url(record: Record, site: SiteSettings) -> str:
    """Where `build` publishes the record's .ics: next to its single issue."""
    return f"{site.url}/newsletters/{record.id}.ics"


def event_uid(record: Record, site: SiteSettings) -> str:
    """A stable, globally unique id: the record id at the site's host."""
    return f"{record.id}@{urlsplit(site.url).hostname}"


def description(record: Record, site: SiteSettings) -> str:
    """The record's summary, or the first sentence of its body."""
    if record.summary:
        return record.summary
    return first_sentence(body_html_and_text(record, site)[1])


def _utc(when: dt.datetime) -> dt.datetime:
    return when.astimezone(dt.UTC)


def render_ics(record: Record, site: SiteSettings) -> bytes:
    """One VCALENDAR holding the record's VEVENT; ValueError when it has no `starts`."""
    if record.starts is None:
        raise ValueError(f"record {record.id!r} has no start time")
    import icalendar  # here: ~40 ms to import, which a build of records without a start time need not pay

    calendar = icalendar.Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    event = icalendar.Event()
    event.add("uid", event_uid(record, site))
    event.add("dtstamp", _utc(record.updated_or_published))
    event.add("created", _utc(record.published))
    event.add("last-modified", _utc(record.updated_or_published))
    event.add("dtstart", _utc(record.starts))
    if record.ends is not None:
        event.add("dtend", _utc(record.ends))
    event.add("summary", " ".join(record.title.split()))
    if record.location:
        event.add("location", record.location)
    event.add("url", record_url(record, site))
    text = description(record, site)
    if text:
        event.add("description", text)
    event.add("status", "CANCELLED" if record.status == "cancelled" else "CONFIRMED")
    if record.language:
        event["summary"].params["LANGUAGE"] = record.language
    calendar.add_component(event)
    data: bytes = calendar.to_ical()
    return data
