"""A record's image as a file of the site: which records have one, and its size (feed enclosures carry it).

Here, below both `build` and `dispatch`: `publisher build` and the feeds
dispatch must give every enclosure the same size, or each would undo the
other's feed files.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from publisher.site.files import file_stat

if TYPE_CHECKING:
    from publisher.site.plain import PlainRecord
    from publisher.site.records import Record

__all__ = ["image_sizes", "site_image"]


def site_image(record: Record | PlainRecord) -> str | None:
    """The record's image `src` when it is a file of the site (feeds give its size), not a URL."""
    return record.image.src if record.image and "://" not in record.image.src else None


def image_sizes(root: Path, sources: Iterable[str | None]) -> dict[str, int]:
    """The size in bytes of each image file of the site that records use (feed enclosures carry it)."""
    sizes = {}
    for src in sources:
        if src and src not in sizes:
            stat = file_stat(str(root / src.lstrip("/")))
            if stat is not None:
                sizes[src] = stat.size
    return sizes
