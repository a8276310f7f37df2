"""How far the plan looks from its ``now``: a light module, so that what only needs the window's size
(a build choosing which previews to write from a plan it kept) reads it without importing the planner and
the settings' models it validates (pydantic, APScheduler).

Past dispatches are planned if due after ``now - LOOKBACK`` (exclusive); future
digests up to ``now + HORIZON`` (inclusive); future single dispatches all.
"""

from __future__ import annotations

import datetime as dt

LOOKBACK = dt.timedelta(days=7)
HORIZON = dt.timedelta(days=35)
