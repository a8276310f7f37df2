"""`publisher check`: every record, the settings, the timeline and every render, in memory."""

from __future__ import annotations

import datetime as dt
from typing import Any

from publisher.build.builder import Progress, check_site
from publisher.build.images import check_images
from publisher.errors import InvalidInput, Problem
from publisher.site.config import CONFIG_FILE, Site
from publisher.timeline.plan import validate_rules


def check_everything(
    site: Site, progress: Progress | None = None, *, now: dt.datetime | None = None, every: bool = False
) -> dict[str, Any]:
    """Raise InvalidInput listing every problem; return counts when all is well.

    Records (drafts too) are parsed, and drafts' posts rendered, so a draft's
    own post text that is too long is reported before it is published; the
    issues and posts `build` would write at `now` (every record's with
    `every`) and every feed are rendered in memory, and nothing is written.
    A local image that is not an image is a problem; a remote one that cannot
    be had is a warning (its posts go out without it), under "warnings".
    """
    config_text = (site.root / CONFIG_FILE).read_text(encoding="utf-8")
    problems: list[Problem] = list(validate_rules(site.settings, CONFIG_FILE, config_text))
    try:
        manifest = check_site(site, progress, now=now, every=every)
    except InvalidInput as exc:
        problems.extend(exc.problems)
    images = check_images(site, revalidate=True, local=True)
    problems.extend(images.errors)
    if problems:
        raise InvalidInput(problems)
    summary: dict[str, Any] = {
        "records": manifest.records + manifest.drafts,
        "drafts": manifest.drafts,
        "outputs": len(manifest.outputs),
    }
    if images.warnings:  # the key is there only when there is something to say
        summary["warnings"] = [str(warning) for warning in images.warnings]
    return summary
