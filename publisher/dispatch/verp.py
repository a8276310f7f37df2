"""VERP when sending (``[bounces] verp = true``): each recipient's envelope sender names its ledger row.

The MAIL FROM of each message is ``bounces+<token>@domain`` (`audience.bounces.verp_address`:
the ledger row's id signed with ``PUBLISHER_SECRET``), where ``domain`` is ``[bounces]
verp_domain`` or the domain of ``[newsletter] from``. A bounce goes back to the envelope
sender, so even one that quotes nothing of our message (no Message-ID) names the row it
answers, and `publisher bounces` acts on that row's recipient. Only the envelope changes:
the message's bytes (From, Sender, every header, the DKIM signature) are the same as without
VERP. The domain's mail must reach the bounce mailbox (``bounces+*@domain``: most servers
deliver a ``+tag`` to ``bounces@domain``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from email.message import EmailMessage

from publisher.audience.bounces import verp_address
from publisher.channels.email import Enveloped, Sendable
from publisher.site.config import Site

__all__ = ["enveloped", "verp_domain"]


def verp_domain(site: Site) -> str | None:
    """The domain of VERP addresses when ``[bounces] verp`` is on; None when it is off."""
    settings = site.settings.bounces
    if not settings.verp:
        return None
    return settings.verp_domain or site.settings.newsletter.from_.rpartition("@")[2].strip(" >").lower()


def enveloped(
    site: Site, secret: str, items: Iterable[tuple[int, EmailMessage | bytes, str]]
) -> Iterator[tuple[int, Sendable, str]]:
    """`items` (ledger row id, message, recipient) as they are, or each with its VERP envelope sender."""
    domain = verp_domain(site)
    for row_id, message, recipient in items:
        if domain is None:
            yield row_id, message, recipient
        else:
            yield row_id, Enveloped(message, verp_address(secret, row_id, domain)), recipient
