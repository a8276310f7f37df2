"""`publisher.toml`'s settings: the pydantic models that validate it, and reading it.

`publisher.site.config` holds the site (`Site`, `load_site`) and imports this
module only when the settings must be validated: a build whose `publisher.toml`
is as its last build validated it needs no pydantic (`Site.plain`).
"""

from __future__ import annotations

import difflib
import ipaddress
import re
import tomllib
import zoneinfo
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from publisher.errors import InvalidInput, Problem, relative
from publisher.site.bounce_settings import BouncesSettings
from publisher.site.rules import absolute_url, check_language
from publisher.site.section import Section

CHANNELS = ("email", "feeds", "x", "mastodon", "bluesky")


class SiteSettings(Section):
    title: str = Field(min_length=1)
    url: str
    language: str = "en"
    timezone: str = "UTC"
    author: str | None = None
    logo: str | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return absolute_url(value).rstrip("/")

    @field_validator("language")
    @classmethod
    def _language(cls, value: str) -> str:
        return check_language(value)

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        check_timezone(value)
        return value

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)


class FeedSettings(Section):
    max_items: int = Field(default=50, ge=1)
    by_tag: bool = True
    by_language: bool = True


class BuildSettings(Section):
    """`[build]`: `previews` is how many of the newest records get their issue and posts written."""

    previews: int = 50

    @field_validator("previews", mode="before")
    @classmethod
    def _previews(cls, value: Any) -> Any:
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"must be a positive integer (got {value!r})")
        return value


class NewsletterList(Section):
    """One list as readers see it: `id` is the internal name (rules, CSV files, ``List-Id``), never shown.

    `name` and `description` are what the preferences page shows; a list given
    as a bare string shows its id as its name until the site gives it one.
    """

    id: str = Field(min_length=1)
    name: str = ""
    description: str = ""

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if any(c.isspace() or c in "<>,;|" for c in value):
            raise ValueError(f"a list id has no spaces, '<', '>', ',', ';' or '|' (got {value!r})")
        return value

    @property
    def public_name(self) -> str:
        return self.name.strip() or self.id


class NewsletterSettings(Section):
    """``[newsletter]``; `lists` holds the list ids, `offered` each list's public name and description.

    In the file, ``lists`` takes bare ids (``["news", "weekly"]``) or tables
    (``{id = "news", name = "News from Cepei", description = "…"}``), mixed as
    the site likes; the rest of publisher reads the ids from `lists`.
    """

    from_: str = Field(default="newsletter@example.org", alias="from")
    reply_to: str | None = None
    footer: str = ""
    lists: tuple[str, ...] = ("news",)
    offered: tuple[NewsletterList, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _lists(cls, data: Any) -> Any:
        if not isinstance(data, dict) or "lists" not in data:
            return data
        if "offered" in data:
            raise ValueError("'offered' is not a key of [newsletter]: give each list's name and description in lists")
        raw = data["lists"]
        if not isinstance(raw, list | tuple) or not raw:
            raise ValueError("lists: needs at least one list")
        offered = [
            NewsletterList(id=one) if isinstance(one, str) else NewsletterList.model_validate(one) for one in raw
        ]
        ids = [one.id for one in offered]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ValueError(f"lists: {repeated[0]!r} is given twice")
        return {**data, "lists": tuple(ids), "offered": tuple(offered)}

    def model_post_init(self, context: Any) -> None:
        if not self.offered:  # the default list, or settings made in code with ids only
            object.__setattr__(self, "offered", tuple(NewsletterList(id=name) for name in self.lists))

    def about(self, list_id: str) -> NewsletterList:
        """The public face of list `list_id` (its id as name when the site gives none)."""
        return next((one for one in self.offered if one.id == list_id), NewsletterList(id=list_id))

    @field_validator("from_", "reply_to")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is not None and ("\n" in value or "\r" in value or "@" not in value):
            raise ValueError(f"is not an email address (got {value!r})")
        return value


class EmailSettings(Section):
    url: str = "maildir:outbox/mail"
    username: str | None = None
    connections: int = Field(default=4, ge=1, le=64)
    rate: float | None = Field(default=None, gt=0, description="messages per second, all connections")
    retry_budget: float = Field(default=3600.0, gt=0, description="seconds to keep retrying 4xx")
    dkim_selector: str | None = None
    dkim_domain: str | None = None
    dkim_key: str | None = None


class DatabaseSettings(Section):
    url: str = "sqlite:///.publisher/publisher.db"


QUEUE_SCHEMES = ("redis", "rediss", "amqp", "amqps")


class QueueSettings(Section):
    url: str = "none"

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        """The file's queue is refused by every command, `check` too (PUBLISHER_QUEUE_URL when it is used)."""
        scheme = value.strip().partition("://")[0].lower()
        if value.strip().lower() != "none" and scheme not in QUEUE_SCHEMES:
            raise ValueError(f"must be none, redis://… or amqp://… (got a {scheme or 'bare'!r} URL)")
        return value


class WebSettings(Section):
    """How `publisher serve` runs: the reverse proxies whose X-Forwarded-For it believes, its worker threads."""

    trusted_proxies: tuple[str, ...] = ()  # addresses or networks ("127.0.0.1", "10.0.0.0/8")
    threads: int = Field(default=8, ge=1, le=256)

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for address in value:
            try:
                ipaddress.ip_network(address, strict=False)
            except ValueError:
                raise ValueError(f"is an IP address or network (got {address!r})") from None
        return value


class XSettings(Section):
    api_url: str = "https://api.x.com"
    upload_url: str | None = None
    media_route: Literal["v2", "v1.1"] = "v2"


class MastodonSettings(Section):
    instance: str = "https://mastodon.social"
    visibility: Literal["public", "unlisted", "private", "direct"] = "public"


class BlueskySettings(Section):
    service: str = "https://bsky.social"


class SocialSettings(Section):
    # Fetch a post's image from a private, loopback or link-local address (tests, closed networks).
    allow_private_images: bool = False


class UtmSettings(Section):
    enabled: bool = False
    medium: str = "social"
    email_medium: str = "email"


class TimelineRule(Section):
    when: str | None = None
    cron: str | None = None
    timezone: str | None = None
    channel: Literal["email", "feeds", "x", "mastodon", "bluesky"]
    list: str | None = None
    review: bool = False
    grace: str | None = None
    name: str | None = None

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str | None) -> str | None:
        if value is not None:
            check_timezone(value)
        return value


class SchedulerSettings(Section):
    grace: str = "6 hours"
    poll: float = Field(default=60.0, gt=0)


class Settings(Section):
    site: SiteSettings
    feeds: FeedSettings = Field(default_factory=FeedSettings)
    build: BuildSettings = Field(default_factory=BuildSettings)
    newsletter: NewsletterSettings = Field(default_factory=NewsletterSettings)
    email: EmailSettings = Field(default_factory=EmailSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    queue: QueueSettings = Field(default_factory=QueueSettings)
    web: WebSettings = Field(default_factory=WebSettings)
    x: XSettings = Field(default_factory=XSettings)
    mastodon: MastodonSettings = Field(default_factory=MastodonSettings)
    bluesky: BlueskySettings = Field(default_factory=BlueskySettings)
    social: SocialSettings = Field(default_factory=SocialSettings)
    utm: UtmSettings = Field(default_factory=UtmSettings)
    scheduler: SchedulerSettings = Field(default_factory=SchedulerSettings)
    timeline: tuple[TimelineRule, ...] = ()
    bounces: BouncesSettings = Field(default_factory=BouncesSettings)


def key_line(text: str, loc: list[str]) -> int:
    """The line of a dotted key in TOML text (best effort: tomllib keeps no positions).

    `loc` is the key's path as pydantic gives it (``["timeline", "0", "channel"]``); 1 when not found.
    Every problem in publisher.toml is reported at its line with this, here and by the timeline and
    the queue, which check their own sections.
    """
    lines = text.splitlines()
    section: list[str] = []
    table_index: dict[str, int] = {}
    wanted_section = [p for p in loc[:-1] if not p.isdigit()]
    wanted_index = next((int(p) for p in loc if p.isdigit()), None)
    best = 1
    for number, raw in enumerate(lines, start=1):
        stripped = raw.split("#", 1)[0].strip()
        header = re.fullmatch(r"\[\[?\s*([\w.-]+)\s*\]\]?", stripped)
        if header:
            section = header.group(1).split(".")
            if stripped.startswith("[["):
                table_index[header.group(1)] = table_index.get(header.group(1), -1) + 1
            if section == loc[: len(section)] or (section == wanted_section and loc[-1] == section[-1]):
                best = number
            continue
        key = re.match(r"([\w-]+)\s*=", stripped)
        if not key or not loc:
            continue
        same_table = section == wanted_section
        if wanted_index is not None and section:
            same_table = same_table and table_index.get(".".join(section)) == wanted_index
        if same_table and key.group(1) == loc[-1]:
            return number
        if same_table and wanted_index is not None:
            best = best if best > 1 else number
    return best


def check_timezone(name: str) -> None:
    """ValueError unless `name` is a time zone `zoneinfo` can load.

    A key that names a folder of the tz database ("America", "Europe", "Etc") is
    opened as a file by zoneinfo, which raises IsADirectoryError (an OSError, not a
    ValueError: CPython's Lib/zoneinfo/_common.py, ``load_tzdata``); so does one it
    may not read.
    """
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"is not an IANA time zone (got {name!r})") from None


def _problems(exc: ValidationError, text: str, shown: str) -> list[Problem]:
    problems = []
    for error in exc.errors():
        loc = [str(p) for p in error["loc"]]
        if loc and loc[-1] == "from_":
            loc[-1] = "from"
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            parent: Any = Settings
            for part in loc[:-1]:
                if part.isdigit():
                    continue
                info = getattr(parent, "model_fields", {}).get(part)
                args = getattr(info.annotation, "__args__", None) if info else None
                parent = args[0] if args else (info.annotation if info else None)
            names = list(getattr(parent, "model_fields", {}))
            close = difflib.get_close_matches(loc[-1], names, n=1)
            message = "unknown key" + (f" (did you mean {close[0]!r}?)" if close else "")
        elif error["type"] == "missing":
            message = "is required"
        problems.append(Problem(shown, key_line(text, loc), ".".join(loc), message))
    return problems


def load_settings(path: Path, root: Path | None = None) -> Settings:
    """Read and validate one `publisher.toml`."""
    return read_settings(path, root)[0]


def read_settings(path: Path, root: Path | None = None) -> tuple[Settings, bytes, dict[str, Any]]:
    """One `publisher.toml` validated, with its bytes and its TOML data (what `Site` keeps of it)."""
    shown = relative(path, root)
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8-sig")
    except FileNotFoundError:
        raise InvalidInput(
            [Problem(shown, 1, "file", f"not found in {path.parent} (run `publisher init DIR` to start a site)")]
        ) from None
    except IsADirectoryError:
        raise InvalidInput([Problem(shown, 1, "file", "is a folder, not the settings file")]) from None
    except UnicodeDecodeError as exc:
        raise InvalidInput([Problem(shown, 1, "file", f"is not UTF-8 text ({exc.reason})")]) from None
    except OSError as exc:
        raise InvalidInput([Problem(shown, 1, "file", f"cannot be read ({exc.strerror})")]) from None
    if "\r" in text:  # as read_text() reads it: universal newlines
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"line (\d+)", str(exc))
        line = int(match.group(1)) if match else 1
        raise InvalidInput([Problem(shown, line, "toml", str(exc))]) from None
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(_problems(exc, text, shown)) from None
    return settings, raw, data
