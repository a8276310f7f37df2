"""What a bounce or complaint does to a subscriber, once it is matched to what we sent.

The policy (issue 14): a hard bounce (5.x.x, ``Action: failed``) makes the
subscriber ``bounced``; soft bounces (4.x.x, ``delayed``) do so once there have
been ``[bounces] soft_limit`` of them within ``soft_window`` days; a complaint
makes them ``complained``. Each is suppressed for good: no import, no plain
``add`` and no send reaches them again.

A report acts only through the ledger: its Message-ID (ours, one per dispatch
and recipient) or its VERP address (``bounces+TOKEN@domain``, a token signed
with ``PUBLISHER_SECRET`` naming the ledger row) must name a message the
ledger marks as sent, and the subscriber acted on is that message's recipient,
never the address the report names. So a forged report, a report for an
address never mailed, or a malformed one is counted as unmatched and changes
nothing.
"""

from __future__ import annotations

import datetime as dt
import struct
from collections import Counter
from collections.abc import Iterable, Mapping

from publisher.audience import reports, subscribers, tokens
from publisher.audience.mailbox import Mailbox, open_mailbox
from publisher.audience.reports import Notice, Report
from publisher.site.bounce_settings import BouncesSettings
from publisher.site.config import Site
from publisher.store import feedback
from publisher.store.database import Database
from publisher.store.dispatches import Store

VERP_PURPOSE = b"verp"
VERP_PREFIX = "bounces+"
COMPLAINT_WARNING = 0.001  # 0.1 %: Google's advice for bulk senders is to stay under it
COMPLAINT_ALARM = 0.003  # 0.3 %: past it, Gmail and Yahoo reject or spam-folder a bulk sender's mail
_SEVERITY = {"complaint": 3, "hard": 2, "soft": 1}

__all__ = [
    "Applied",
    "apply",
    "match",
    "rates_note",
    "read_mailbox",
    "read_site_mailbox",
    "verp_address",
    "verp_delivery",
]


def verp_address(secret: str, delivery_id: int, domain: str) -> str:
    """The envelope sender for one ledger row: ``bounces+<signed row id>@domain`` (52 characters before the @)."""
    return f"{VERP_PREFIX}{tokens.sign(secret, VERP_PURPOSE, struct.pack('>Q', delivery_id))}@{domain}"


def verp_delivery(secret: str, address: str) -> int | None:
    """The ledger row a VERP address names, when `secret` signed it; None for any other address."""
    local = address.strip().strip("<>").rpartition("@")[0]
    if not local.lower().startswith(VERP_PREFIX):
        return None
    payload = tokens.signed_payload(secret, VERP_PURPOSE, local[len(VERP_PREFIX) :])
    if payload is None or len(payload) != 8:
        return None
    return int(struct.unpack(">Q", payload)[0])


def match(db: Database, report: Report, secret: str | None) -> tuple[str, str] | None:
    """The (dispatch, recipient) `report` answers, by a signed VERP address first, then by Message-ID."""
    if secret:
        for address in report.to:
            delivery = verp_delivery(secret, address)
            found = feedback.delivery(db, delivery) if delivery is not None else None
            if found is not None:
                return found
    for message_id in report.message_ids:
        found = feedback.sent_to(db, message_id)
        if found is not None:
            return found
    return None


class Applied(Counter[str]):
    """What was done: ``bounced``, ``complained``, ``soft`` (still active), ``unmatched``, ``repeated``."""


def _worst(notices: Iterable[Notice]) -> Notice | None:
    return max(notices, key=lambda notice: _SEVERITY.get(notice.kind, 0), default=None)


def _soft_limit_reached(store: Store, target: str, now: dt.datetime, settings: BouncesSettings) -> bool:
    since = now - dt.timedelta(days=settings.soft_window)
    return feedback.soft_count(store, target, since) >= settings.soft_limit


def apply(
    store: Store,
    report: Report,
    *,
    source: str,
    now: dt.datetime,
    settings: BouncesSettings,
    secret: str | None,
) -> Applied:
    """Keep `report`'s event and act on it (see the module's policy); returns what it did."""
    done = Applied()
    notice = _worst(report.notices)
    found = match(store, report, secret) if notice is not None else None
    if notice is None or found is None:
        done["unmatched"] += 1
        return done
    dispatch_id, target = found
    key = f"{source}:{report.report_id}:{target}:{notice.kind}"
    event = feedback.Event(dispatch_id, target, notice.kind, notice.status, source, key, now)
    if not feedback.keep(store, event, now):
        done["repeated"] += 1
        return done
    if notice.kind == "complaint":
        subscribers.mark_complained(store, target, now)
        done["complained"] += 1
    elif notice.kind == "hard" or _soft_limit_reached(store, target, now, settings):
        subscribers.mark_bounced(store, target, now)
        done["bounced"] += 1
    else:
        done["soft"] += 1
    return done


def read_mailbox(
    store: Store, mailbox: Mailbox, *, now: dt.datetime, settings: BouncesSettings, secret: str | None
) -> Applied:
    """Read what is new in `mailbox` once: act on each report and set it aside; leave anything else.

    Counts ``reports`` (set aside, matched or not) and ``other`` (left where it
    was) beside what `apply` counts.
    """
    done = Applied()
    for key, data in mailbox.new():
        report = reports.read(data)
        if report is None:
            done["other"] += 1
            continue
        done["reports"] += 1
        done.update(apply(store, report, source="mailbox", now=now, settings=settings, secret=secret))
        mailbox.set_aside(key)
    return done


def read_site_mailbox(store: Store, site: Site, now: dt.datetime) -> Applied:
    """`publisher bounces` and each tick of the clock: the site's mailbox read once, then closed.

    Raises MailboxUnavailable when it cannot be opened (nothing has changed then).
    """
    mailbox = open_mailbox(site)
    try:
        secret = site.secret("PUBLISHER_SECRET")
        return read_mailbox(store, mailbox, now=now, settings=site.settings.bounces, secret=secret)
    finally:
        mailbox.close()


def summary(done: Applied) -> str:
    """One line saying what a read of the mailbox did (``publisher bounces``, the clock's log)."""
    parts = [
        f"{done['reports']} report(s) read",
        f"{done['bounced']} bounced",
        f"{done['complained']} complained",
        f"{done['soft']} soft bounce(s) below the limit",
        f"{done['unmatched']} unmatched",
    ]
    if done["repeated"]:
        parts.append(f"{done['repeated']} seen before")
    parts.append(f"{done['other']} other message(s) left in the mailbox")
    return ", ".join(parts)


def rates_note(found: Mapping[str, int], sent: int) -> str | None:
    """A dispatch's bounce and complaint rates, as `plan` shows them; None when nothing came back.

    Complaints past 0.1 % of the messages sent carry a warning, past 0.3 % an alarm
    (the bulk-sender limit of Gmail and Yahoo).
    """
    bounced = found.get("hard", 0) + found.get("soft", 0)
    complaints = found.get("complaint", 0)
    if not sent or not (bounced or complaints):
        return None
    rate = complaints / sent
    note = f"bounces {bounced} ({bounced / sent:.2%}), complaints {complaints} ({rate:.2%})"
    if rate > COMPLAINT_ALARM:
        return note + ": ALARM, complaints past 0.3 %"
    if rate > COMPLAINT_WARNING:
        return note + ": warning, complaints past 0.1 %"
    return note
