"""Newsletter issues: Jinja2 fills an MJML template, mjml-python compiles it once.

(Contract stub: the dataclass below is shared with the email channel.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# Per-recipient placeholders, filled after the one MJML compile of an issue.
NAME = "%%PUBLISHER_NAME%%"
UNSUBSCRIBE_URL = "%%PUBLISHER_UNSUBSCRIBE_URL%%"
EMAIL = "%%PUBLISHER_EMAIL%%"


@dataclass(frozen=True)
class Issue:
    """One newsletter edition, compiled once, with placeholders for each recipient."""

    id: str
    kind: Literal["single", "digest"]
    language: str
    subject: str
    preheader: str
    html: str
    text: str
    record_ids: tuple[str, ...]
    calendar: bytes | None = None
