"""Writing a sent issue into the public archive: ``archive/`` in the site folder, beside ``feeds/``.

Only a dispatch that mailed its issue to someone writes here, so an issue not
yet sent never appears. The folder is plain files (``<issue id>.html``,
``index.html``, ``atom.xml``, and ``issues.json``, the list the other two are
made from): `publisher serve` serves it, and so can any static host. An
issue sent again (a resend, a second list) keeps the time it was first sent.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import logging
from pathlib import Path

from publisher.render.archive import FOLDER, ArchiveEntry, archive_feed, archive_index, archive_page, entry_for
from publisher.render.email import Issue
from publisher.site.config import Site
from publisher.site.files import write_file

__all__ = ["LIST_FILE", "archive_issue", "read_entries"]

LIST_FILE = "issues.json"
log = logging.getLogger("publisher.dispatch.archive")


def read_entries(folder: Path) -> dict[str, ArchiveEntry]:
    """The issues listed in ``issues.json`` (read as untrusted: a bad entry is left out, and logged)."""
    try:
        data = json.loads((folder / LIST_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("%s cannot be read (%s): the archive's index starts again", folder / LIST_FILE, exc)
        return {}
    entries: dict[str, ArchiveEntry] = {}
    for item in data if isinstance(data, list) else []:
        try:
            entry = ArchiveEntry.from_json(item)
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("%s: an entry is left out (%s)", folder / LIST_FILE, exc)
            continue
        entries[entry.id] = entry
    return entries


def archive_issue(site: Site, issue: Issue, sent_at: dt.datetime) -> Path:
    """Write `issue`'s page and the archive's index and feed; returns the page's path.

    Workers finishing two issues at once on one host take turns (a lock on the folder), so neither
    issue is lost from ``issues.json``. Workers on several hosts each write their own site folder's
    archive: publish the archive from one of them (DEPLOY.md).
    """
    folder = site.root / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    lock_file = site.root / ".publisher" / "archive.lock"  # beside the cache, never published with the archive
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with lock_file.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        return _write(site, folder, issue, sent_at)


def _write(site: Site, folder: Path, issue: Issue, sent_at: dt.datetime) -> Path:
    entries = read_entries(folder)
    first = entries.get(issue.id)
    entries[issue.id] = entry_for(issue, first.sent_at if first is not None else sent_at)
    page = folder / f"{issue.id}.html"
    settings = site.settings
    write_file(str(page), archive_page(issue, settings).encode("utf-8"))
    listed = [entry.to_json() for entry in sorted(entries.values(), key=lambda e: (e.sent_at, e.id))]
    write_file(str(folder / LIST_FILE), (json.dumps(listed, ensure_ascii=False, indent=1) + "\n").encode("utf-8"))
    write_file(str(folder / "index.html"), archive_index(list(entries.values()), settings).encode("utf-8"))
    write_file(str(folder / "atom.xml"), archive_feed(list(entries.values()), settings))
    return page
