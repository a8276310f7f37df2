"""`publisher check`: every record, the settings, the timeline and every render, in memory."""

from __future__ import annotations

import datetime as dt
import urllib.parse
from pathlib import Path
from typing import Any

from publisher.build.builder import Progress, check_site
from publisher.build.images import check_images
from publisher.channels.email import EmailChannel
from publisher.channels.email_url import EmailUrlError
from publisher.channels.signing import site_signer
from publisher.channels.social import refuse_plain_http
from publisher.errors import InvalidInput, Problem
from publisher.site.config import CONFIG_FILE, Site
from publisher.site.files import record_names, shown_paths
from publisher.site.front_matter import FrontMatter
from publisher.site.settings import key_line
from publisher.timeline.plan import validate_rules

COMMENTED = ("title", "summary")  # text a person types, where a `#` is meant as text


def cut_by_comments(site: Site) -> list[Problem]:
    """A warning for each title or summary an unquoted ` #` cut short: YAML reads the rest as a comment.

    `title: C# for beginners # part 1` gives the title "C# for beginners"; nothing else says so.
    """
    found = []
    names = record_names(site.events)
    for (name, _), shown in zip(names, shown_paths(site.events, site.root, names), strict=True):
        try:
            text = (site.events / name).read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError):
            continue  # the record checks say why
        if " #" not in text:
            continue
        front = FrontMatter(text)
        lines = text.splitlines()
        for key in COMMENTED:
            value, line = front.data.get(key), front.lines.get(key)
            if not isinstance(value, str) or line is None or line > len(lines):
                continue
            raw = lines[line - 1].split(":", 1)[-1].strip()
            if raw[:1] not in ("'", '"', "|", ">") and " #" in raw:
                kept = raw.split(" #", 1)[0].strip()
                message = f"an unquoted ' #' starts a YAML comment: it reads as {kept!r}; put the {key} in quotes"
                found.append(Problem(shown, line, key, message))
    return found


def channel_problems(site: Site, config_text: str) -> list[Problem]:
    """What `run` would refuse when it opens the channels: the email URL, DKIM, the social API URLs, the logo.

    Nothing is opened or sent: the email channel is only configured, as `run` configures it first.
    """
    found: list[Problem] = []
    try:
        EmailChannel.from_site(site)
    except EmailUrlError as exc:  # the URL first: then the DKIM settings, which from_site reads after it
        found += exc.problems
        try:
            site_signer(site)
        except InvalidInput as signer:
            found += signer.problems
    except InvalidInput as exc:
        found += exc.problems
    for section, key in (("mastodon", "instance"), ("bluesky", "service")):
        try:
            refuse_plain_http(site, section, key)
        except InvalidInput as exc:
            found += exc.problems
    logo = site.settings.site.logo
    if logo and not _logo_is_there(site, logo):
        message = f"is neither an http(s) URL nor a file in the site (got {logo!r})"
        found.append(Problem(CONFIG_FILE, key_line(config_text, ["site", "logo"]), "site.logo", message))
    return found


def _logo_is_there(site: Site, logo: str) -> bool:
    """An http(s) URL, or a file of the site (published under the site's URL, as a record's image is)."""
    parts = urllib.parse.urlsplit(logo)
    if parts.scheme in ("http", "https"):
        return bool(parts.hostname)
    path = logo.lstrip("/")
    return not parts.scheme and ".." not in Path(path).parts and (site.root / path).is_file()


def check_everything(
    site: Site, progress: Progress | None = None, *, now: dt.datetime | None = None, every: bool = False
) -> dict[str, Any]:
    """Raise InvalidInput listing every problem; return counts when all is well.

    Records (drafts too) are parsed, and drafts' posts rendered, so a draft's
    own post text that is too long is reported before it is published; the
    issues and posts `build` would write at `now` (every record's with
    `every`) and every feed are rendered in memory, and nothing is written.
    A local image that is not an image is a problem; a remote one that cannot
    be had is a warning (its posts go out without it), under "warnings", as is
    a title or summary that an unquoted `#` cut short.
    """
    config_text = (site.root / CONFIG_FILE).read_text(encoding="utf-8")
    problems: list[Problem] = list(validate_rules(site.settings, CONFIG_FILE, config_text))
    try:
        manifest = check_site(site, progress, now=now, every=every)
    except InvalidInput as exc:
        problems.extend(exc.problems)
    problems.extend(channel_problems(site, config_text))
    images = check_images(site, revalidate=True)
    problems.extend(images.errors)
    images.warnings = sorted([*images.warnings, *cut_by_comments(site)])
    if problems:
        raise InvalidInput(problems)
    summary: dict[str, Any] = {
        "records": manifest.records + manifest.drafts,
        "drafts": manifest.drafts,
        "outputs": manifest.files,
    }
    if images.warnings:  # the key is there only when there is something to say
        summary["warnings"] = [str(warning) for warning in images.warnings]
    return summary
