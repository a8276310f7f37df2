"""``[bounces]`` of ``publisher.toml``: the bounce mailbox, when soft bounces count, VERP, provider webhooks."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from publisher.site.section import Section

__all__ = ["IMAPS_URL", "SNS_URL", "BouncesSettings", "check_mailbox"]

# Production: https, and a host of Amazon SNS in any region (the China regions end in .amazonaws.com.cn).
SNS_URL = (
    r"https://sns\.[a-z]{2}(-gov)?-[a-z]+-\d+\.amazonaws\.com(\.cn)?"  # a region: us-east-1, us-gov-west-1, cn-north-1
)
_DOMAIN = re.compile(r"(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}")
_TOPIC = re.compile(r"arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_.-]{1,256}")


class BouncesSettings(Section):
    """``[bounces]``: where delivery reports and complaints come back, and when a soft bounce counts."""

    mailbox: str | None = None
    soft_limit: int = Field(default=3, ge=1)
    soft_window: int = Field(default=30, ge=1, description="days")
    # Amazon SES through SNS (POST /webhooks/ses): the topics taken, and where SNS's certificates and
    # subscription links may be (a regular expression matching scheme://host[:port] whole).
    sns_topics: tuple[str, ...] = ()
    sns_url: str = SNS_URL
    # VERP when sending: each recipient's MAIL FROM is bounces+<signed ledger row>@verp_domain (default:
    # the domain of [newsletter] from).
    verp: bool = False
    verp_domain: str | None = None

    @field_validator("mailbox")
    @classmethod
    def _mailbox(cls, value: str | None) -> str | None:
        if value is not None:
            check_mailbox(value)
        return value

    @field_validator("sns_topics")
    @classmethod
    def _topics(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for topic in value:
            if not _TOPIC.fullmatch(topic):
                raise ValueError(f"is an SNS topic ARN, arn:aws:sns:REGION:ACCOUNT:NAME (got {topic!r})")
        return value

    @field_validator("verp_domain")
    @classmethod
    def _verp_domain(cls, value: str | None) -> str | None:
        if value is not None and not _DOMAIN.fullmatch(value):
            raise ValueError(f"is a domain name, like example.org (got {value!r})")
        return value.lower() if value is not None else None

    @field_validator("sns_url")
    @classmethod
    def _sns_url(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"is not a regular expression ({exc}; got {value!r})") from None
        return value


# The one spelling of an IMAPS mailbox: checked here when publisher.toml is read, parsed with the same
# pattern when the mailbox is opened (`publisher.audience.mailbox`).
IMAPS_URL = re.compile(
    r"imaps://(?P<user>[^@/\s]+)@(?P<host>[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::(?P<port>\d{1,5}))?/(?P<folder>\S+)"
)


def check_mailbox(value: str) -> None:
    """A bounce mailbox is ``maildir:PATH`` or ``imaps://user@host[:port]/FOLDER`` (its password is never here)."""
    if value.startswith("maildir:"):
        if not value.removeprefix("maildir:").strip():
            raise ValueError("needs a folder after 'maildir:' (got 'maildir:')")
        return
    if value.startswith("imaps://"):
        if ":" in value.removeprefix("imaps://").partition("@")[0]:
            raise ValueError("carries no password: set PUBLISHER_BOUNCES_PASSWORD instead")
        if not IMAPS_URL.fullmatch(value):
            raise ValueError(f"is not imaps://user@host/FOLDER (got {value!r})")
        return
    raise ValueError(f"is not 'maildir:PATH' or 'imaps://user@host/FOLDER' (got {value!r})")
