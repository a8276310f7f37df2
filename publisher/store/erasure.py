"""An address taken out of the ledger and the feedback kept on it, for someone who asked to be forgotten.

The rows stay (a dispatch's counts and rates must still add up) but name a
stand-in instead of the address: ``erased:`` and the first characters of the
keyed hash the audience keeps (`publisher.audience.erasure`), unique within
a dispatch as the address was. What else could point back at the person goes
too: the server's reply (it often quotes the address) and the Message-ID
(its digest is an unkeyed hash of the address).
"""

from __future__ import annotations

import sqlalchemy as sa

from publisher.store.tables import deliveries, feedback

__all__ = ["STAND_IN_PREFIX", "erase_targets"]

STAND_IN_PREFIX = "erased:"
D = deliveries.c
F = feedback.c


def erase_targets(connection: sa.Connection, address_key: str, stand_in: str) -> tuple[int, int]:
    """Ledger rows and feedback rows for the address whose lowercase form is `address_key` → `stand_in`.

    Runs in the caller's transaction (the subscriber row goes in the same one);
    returns how many (deliveries, feedback) rows changed.
    """
    if not stand_in.startswith(STAND_IN_PREFIX):
        raise ValueError(f"a stand-in starts with {STAND_IN_PREFIX!r} (got {stand_in!r})")
    changed = connection.execute(
        sa.update(deliveries)
        .where(sa.func.lower(D.target) == address_key)
        .values(target=stand_in, last_reply=None, message_id=None)
    ).rowcount
    noted = connection.execute(
        sa.update(feedback).where(sa.func.lower(F.target) == address_key).values(target=stand_in)
    ).rowcount
    return int(changed or 0), int(noted or 0)
