"""`publisher init` and `publisher new`: the files a team starts from."""

from __future__ import annotations

import datetime as dt
import json
import re
import unicodedata
from pathlib import Path

from publisher.errors import InvalidInput, Problem
from publisher.site.config import CONFIG_FILE, Site

SITE_TOML = """\
# publisher settings. Secrets never live here: they come from PUBLISHER_* variables.

[site]
title = {title}
url = "https://example.org"
language = "en"
timezone = "UTC"

[newsletter]
from = "News <news@example.org>"
footer = "Your organisation · street, city, country"
lists = ["news"]

[email]
url = "maildir:outbox/mail"   # nothing is sent for real until this is an smtp:// URL

[[timeline]]
when = "published"
channel = "feeds"

[[timeline]]
when = "published"
channel = "email"
list = "news"
"""

SAMPLE_RECORD = """\
---
title: {title}
summary: The first record of this site. Edit it, or delete it and write your own.
published: {published}
language: en
status: draft   # a draft is never sent nor in the feeds; change to `published` when it is yours
tags: [news]
---
Records are Markdown files with YAML front matter, one per news item or meeting.
Run `publisher check` to validate them and `publisher build` to render them.
"""

NEW_RECORD = """\
---
title: {title}
summary: One or two sentences for feeds, the newsletter preheader and posts.
published: {published}
language: {language}
status: draft   # change to `published` when it is ready
tags: []
---
Write the body here, in Markdown.
"""


def slug(text: str) -> str:
    """A file-name-safe form of a title: 'Informe 2030: ¿qué sigue?' → 'informe-2030-que-sigue'."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:60].rstrip("-") or "record"


def _quoted(text: str) -> str:
    """A double-quoted string that TOML and YAML both read back as `text`."""
    return json.dumps(text, ensure_ascii=False)


def init_site(directory: Path, now: dt.datetime) -> list[Path]:
    """Write a new site into `directory`: settings, one sample record dated `now`, an empty templates/.

    The sample is a draft: a site's first `run` with SMTP set must not mail "edit it, or delete it" to the list.
    """
    config = directory / CONFIG_FILE
    if config.exists():
        raise InvalidInput([Problem(str(config), 1, "file", "already exists; choose an empty folder")])
    if directory.exists() and not directory.is_dir():
        raise InvalidInput([Problem(str(directory), 1, "folder", "is a file; choose a new or empty folder")])
    title = directory.resolve().name.replace("-", " ").replace("_", " ").strip().title() or "News"
    (directory / "events").mkdir(parents=True, exist_ok=True)
    (directory / "templates").mkdir(exist_ok=True)
    config.write_text(SITE_TOML.format(title=_quoted(title)), encoding="utf-8")
    sample = directory / "events" / f"{now:%Y-%m-%d}-welcome.md"
    published = now.replace(microsecond=0).isoformat()
    sample.write_text(SAMPLE_RECORD.format(title=_quoted(f"Welcome to {title}"), published=published), encoding="utf-8")
    return [config, sample, directory / "templates"]


def new_record(site: Site, title: str, now: dt.datetime) -> Path:
    """A new draft record dated `now` in the site's time zone."""
    if not title.strip():
        raise InvalidInput([Problem("command line", 1, "title", "must not be empty")])
    local = now.astimezone(site.settings.site.zone).replace(microsecond=0)
    path = site.events / f"{local:%Y-%m-%d}-{slug(title)}.md"
    if path.exists():
        raise InvalidInput([Problem(str(path), 1, "file", "already exists; choose another title")])
    path.parent.mkdir(parents=True, exist_ok=True)
    text = NEW_RECORD.format(
        title=_quoted(" ".join(title.split())), published=local.isoformat(), language=site.settings.site.language
    )
    path.write_text(text, encoding="utf-8")
    return path
