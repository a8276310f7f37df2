"""Social posts: one per record per network, length-checked with each network's rule.

(Contract stub: the dataclasses below are shared with the social channels.)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class PostImage:
    """An image to attach: `url` as published, `path` when it is a file of the site."""

    url: str
    alt: str
    path: Path | None = None


@dataclass(frozen=True)
class Post:
    """One post for one network; `thread` holds the follow-up parts, in order."""

    network: str
    record_id: str
    text: str
    language: str
    url: str | None = None
    images: tuple[PostImage, ...] = ()
    thread: tuple[str, ...] = ()
    length: int = 0
    limit: int = 0
