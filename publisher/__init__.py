"""publisher: event records to feeds, newsletters and social posts, on a timeline."""

from __future__ import annotations

__version__ = "0.1.0"
