"""What the timeline plans a record by: its id, status and dates (`Planned`).

A `Record` is one; so are a build's summary of a record (`build.cache.Source`,
its dates as timestamps made into times) and `site.dated.Dated`, what `plan`
reads from the kept records' header. It lives in `site` so that what keeps
records (`site.loaded`) can name it without importing the timeline.
"""

from __future__ import annotations

import datetime as dt
from typing import Protocol


class Planned(Protocol):
    """What the plan reads of a record."""

    @property
    def id(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def published(self) -> dt.datetime: ...
    @property
    def starts(self) -> dt.datetime | None: ...
    @property
    def ends(self) -> dt.datetime | None: ...
