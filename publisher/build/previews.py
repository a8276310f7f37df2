"""Which records a build writes previews for (newsletter issues and posts): where someone will look.

A feed shows its newest `[feeds] max_items`; nobody reads the issue or the
posts of a record ten years old that will never be sent. So `build` writes
them for the newest `[build] previews` records and for every record the
timeline still has something to do with at the build's `now`: a dispatch due
later, or one held for review (a `review = true` rule's dispatch in the plan's
look-back window, which may be waiting for approval). `build --all` writes
every record's.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from publisher.build.cache import Source
from publisher.errors import InvalidInput
from publisher.site.config import Site
from publisher.site.dated import Dated  # a record as the plan reads it, here from the build cache's row


def _moment(timestamp: float | None) -> dt.datetime | None:
    return None if timestamp is None else dt.datetime.fromtimestamp(timestamp, dt.UTC)


def preview_ids(live: Sequence[Source], site: Site, now: dt.datetime | None) -> set[str]:
    """The ids of the records (`live`: not drafts, newest first) whose previews a build writes.

    Without `now` (the library's default: every record counts as published)
    nothing is still to come, so only the newest count. Timeline rules that do
    not hold (`check` reports them) leave no way to know what is to come: every
    record's previews are written then, as before this rule.
    """
    settings = site.plain  # without pydantic, when the settings were kept
    wanted = {source.id for source in live[: settings["build"]["previews"]]}
    if now is None or not settings["timeline"]:
        return wanted
    from publisher.timeline.plan import plan  # here: a site without a timeline never loads it (nor APScheduler)

    planned = [
        Dated(
            s.id, s.status, dt.datetime.fromtimestamp(s.published, dt.UTC), _moment(s.starts), _moment(s.ends), s.shown
        )
        for s in live
    ]
    try:
        dispatches = plan(planned, site.settings, now)
    except InvalidInput:
        return {source.id for source in live}
    for dispatch in dispatches:
        if dispatch.due > now or dispatch.review:
            wanted.update(dispatch.record_ids)
    return wanted
