"""The public archive of sent issues: each issue's web page, the index, and an Atom feed of issues.

Pure, as all of render: the dispatch that sent an issue hands it here and
writes what comes back (`publisher.dispatch.archive`). An issue's page is the
very HTML its readers got, with the personal parts made neutral: no name
("Hello,"), no "sent to" address, the site's own unsubscribe and preferences
pages instead of the reader's signed links, and without the "View in your
browser" link to itself.

    page = archive_page(issue)
    index, feed = archive_index(entries, settings), archive_feed(entries, settings)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape as xml_escape
from xml.sax.saxutils import quoteattr

from markupsafe import Markup, escape

from publisher.render.email import Issue, archive_url, personalise
from publisher.render.message import preview_unsubscribe_url
from publisher.site.settings import Settings

__all__ = ["ArchiveEntry", "archive_feed", "archive_index", "archive_page", "entry_for"]

FOLDER = "archive"


@dataclass(frozen=True)
class ArchiveEntry:
    """One sent issue as the index and the feed list it (kept in ``archive/issues.json``)."""

    id: str
    title: str
    summary: str
    language: str
    sent_at: dt.datetime

    def to_json(self) -> dict[str, str]:
        return {**vars(self), "sent_at": self.sent_at.isoformat()}

    @classmethod
    def from_json(cls, data: dict[str, str]) -> ArchiveEntry:
        """Raises (KeyError, TypeError, ValueError) on a malformed entry: the file is read as untrusted."""
        sent_at = dt.datetime.fromisoformat(data["sent_at"])
        if sent_at.tzinfo is None:
            raise ValueError("sent_at needs a UTC offset")
        return cls(str(data["id"]), str(data["title"]), str(data["summary"]), str(data["language"]), sent_at)


def entry_for(issue: Issue, sent_at: dt.datetime) -> ArchiveEntry:
    return ArchiveEntry(issue.id, issue.subject, issue.preheader, issue.language, sent_at)


def archive_page(issue: Issue, settings: Settings) -> str:
    """The issue as a web page: the email's HTML with every personal part made neutral (see the module)."""
    html, _ = personalise(issue, name="", unsubscribe_url=preview_unsubscribe_url(settings), email="")
    return html.replace(issue.web_link, "") if issue.web_link else html


def _newest_first(entries: Sequence[ArchiveEntry]) -> list[ArchiveEntry]:
    return sorted(entries, key=lambda entry: (entry.sent_at, entry.id), reverse=True)


def archive_index(entries: Sequence[ArchiveEntry], settings: Settings) -> str:
    """``archive/index.html``: every sent issue, newest first, linking its page (relative: any host serves it)."""
    site = settings.site
    rows = "\n".join(
        Markup('<li><a href="{}.html">{}</a> <small>{}</small><br>{}</li>').format(
            entry.id, entry.title, entry.sent_at.astimezone(site.zone).date().isoformat(), entry.summary
        )
        for entry in _newest_first(entries)
    )
    title = escape(f"{site.title}: newsletter archive")
    feed = escape(f"{site.url}/{FOLDER}/atom.xml")
    return (
        f'<!DOCTYPE html>\n<html lang="{escape(site.language)}">\n<head>\n<meta charset="utf-8">\n'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">\n<title>{title}</title>\n'
        f'<link rel="alternate" type="application/atom+xml" href="{feed}" title="{title}">\n</head>\n'
        f'<body style="font-family:system-ui,sans-serif;max-width:40em;margin:2em auto;padding:0 1em;">\n'
        f'<h1>{title}</h1>\n<ul>\n{rows}\n</ul>\n<p><a href="{feed}">Atom feed</a></p>\n</body>\n</html>\n'
    )


def _time(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def archive_feed(entries: Sequence[ArchiveEntry], settings: Settings) -> bytes:
    """``archive/atom.xml``: one entry per sent issue, newest first; `updated` is the newest send, never the clock."""
    site = settings.site
    ordered = _newest_first(entries)
    feed_url = f"{site.url}/{FOLDER}/atom.xml"
    updated = _time(ordered[0].sent_at) if ordered else "1970-01-01T00:00:00Z"
    parts = [
        '<?xml version="1.0" encoding="utf-8"?>',
        f'<feed xmlns="http://www.w3.org/2005/Atom" xml:lang={quoteattr(site.language)}>',
        f"<id>{xml_escape(feed_url)}</id>",
        f"<title>{xml_escape(site.title)}: newsletter archive</title>",
        f"<updated>{updated}</updated>",
        f'<link rel="self" type="application/atom+xml" href={quoteattr(feed_url)}/>',
        f'<link rel="alternate" type="text/html" href={quoteattr(f"{site.url}/{FOLDER}/")}/>',
        f"<author><name>{xml_escape(site.author or site.title)}</name></author>",
    ]
    for entry in ordered:
        page = archive_url(site.url, entry.id)
        parts += [
            f"<entry xml:lang={quoteattr(entry.language)}>",
            f"<id>{xml_escape(page)}</id>",
            f"<title>{xml_escape(entry.title)}</title>",
            f"<updated>{_time(entry.sent_at)}</updated>",
            f'<link rel="alternate" type="text/html" href={quoteattr(page)}/>',
            f"<summary>{xml_escape(entry.summary)}</summary>",
            "</entry>",
        ]
    parts.append("</feed>")
    return ("\n".join(parts) + "\n").encode("utf-8")
