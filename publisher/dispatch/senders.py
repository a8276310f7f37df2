"""The channel → sender table: which function sends a dispatch of each channel.

The one place that knows every sender. The runner looks a dispatch's sender up
here and imports no sender itself; the senders import what they share from
`publisher.dispatch.context`, never the runner: no import circle. A channel
with no sender (a stored row from a newer version, a typo) is refused with
`UnknownChannel`, never sent as something else.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from publisher.dispatch import email, feeds, social
from publisher.dispatch.context import Outcome, Runner
from publisher.errors import UnknownChannel
from publisher.timeline.plan import Dispatch

Sender = Callable[[Runner, Dispatch], Outcome]

SENDERS: Mapping[str, Sender] = {
    "email": email.send,
    "feeds": feeds.publish,
    "x": social.post,
    "mastodon": social.post,
    "bluesky": social.post,
}


def sender_for(channel: str) -> Sender:
    """The function that sends a dispatch of `channel`; `UnknownChannel` when there is none."""
    try:
        return SENDERS[channel]
    except KeyError:
        known = ", ".join(SENDERS)
        raise UnknownChannel(f"no sender for the channel {channel!r} (known: {known})") from None
