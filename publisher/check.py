"""`publisher check`: every record, the settings, the timeline and every render, in memory."""

from __future__ import annotations

from typing import Any

from publisher.build import render_record
from publisher.config import CONFIG_FILE, Site
from publisher.errors import InvalidInput, Problem
from publisher.records import load_records
from publisher.render import feeds, social
from publisher.timeline import validate_rules


def check_everything(site: Site) -> dict[str, Any]:
    """Raise InvalidInput listing every problem; return counts when all is well."""
    problems: list[Problem] = []
    records = load_records(site.events, site.root, drafts=True)
    config_text = (site.root / CONFIG_FILE).read_text(encoding="utf-8")
    problems.extend(validate_rules(site.settings, CONFIG_FILE, config_text))
    templates = site.templates if site.templates.is_dir() else None
    problems.extend(social.check_posts(records, site.settings, templates))
    if problems:
        raise InvalidInput(problems)
    live = [r for r in records if r.status != "draft"]
    outputs = sum(len(render_record(r, site.settings, templates)) for r in live)
    outputs += len(feeds.feed_set(live, site.settings))
    return {"records": len(records), "drafts": len(records) - len(live), "outputs": outputs}
