"""A sent issue and a bounce mailbox beside it, for the bounce and complaint tests.

`sent_issue` sends the Paris newsletter to real readers through a local SMTP
server and returns each reader's Message-ID as the server received it; `fill`
makes a report of tests/reports/ about one of those messages, and `drop`
delivers it into the site's bounce Maildir as an MTA would (tmp/ then new/).
"""

from __future__ import annotations

import datetime as dt
import email
import itertools
import os
from collections.abc import Mapping
from pathlib import Path

from publisher.audience import subscribers
from tests.dispatch_support import PARIS_DUE, add_people, at, command, configure, store_of
from tests.smtp_support import MailServer

REPORTS = Path(__file__).parent / "reports"
SOON = PARIS_DUE + dt.timedelta(minutes=30)
BOUNCES = """
[bounces]
mailbox = "maildir:bounces"
"""
_numbers = itertools.count()


def bounce_site(site: Path, extra: str = BOUNCES) -> Path:
    """Configure `site` with a bounce Maildir (``bounces/`` in the site) and return the Maildir."""
    configure(site, extra=extra)
    box = site / "bounces"
    for sub in ("tmp", "new", "cur"):
        (box / sub).mkdir(parents=True, exist_ok=True)
    return box


def sent_issue(site: Path, env: Mapping[str, str], server: MailServer, people: list[str]) -> dict[str, str]:
    """Send the Paris issue to `people`; each reader's Message-ID as it went out."""
    add_people(site, env, people)
    result = command(site, env, "run", "--once", "--now", at(SOON))
    assert result.exit_code == 0, result.output
    ids = {}
    for received in server.received:
        message = email.message_from_bytes(received.data)
        ids[received.recipients[0]] = str(message["Message-ID"])
    assert set(ids) == set(people)
    return ids


def fill(sample: str, recipient: str, message_id: str) -> bytes:
    """The report `sample` (a file of tests/reports/) about the message `message_id` sent to `recipient`."""
    text = (REPORTS / sample).read_text(encoding="utf-8").split("\n", 1)[1]
    filled = text.format(recipient=recipient, message_id=message_id, report_id=f"report{next(_numbers)}")
    return filled.replace("\n", "\r\n").encode("utf-8")


def expected(sample: str) -> tuple[str, str]:
    """(kind, status) a sample's first line says it must read as."""
    kind, status = (REPORTS / sample).read_text(encoding="utf-8").split("\n", 1)[0].removeprefix("# ").split()
    return kind, status


def drop(box: Path, data: bytes) -> str:
    """Deliver `data` into the Maildir `box` (written in tmp/, renamed into new/); its file name."""
    name = f"{1518285600 + next(_numbers)}.M{next(_numbers)}P{os.getpid()}.test"
    (box / "tmp" / name).write_bytes(data)
    os.rename(box / "tmp" / name, box / "new" / name)
    return name


def statuses(site: Path, env: Mapping[str, str], people: list[str]) -> dict[str, str]:
    store = store_of(site, env)
    try:
        found = subscribers.find(store, people)
    finally:
        store.close()
    return {person: found[person].status for person in people}
