"""Email URLs (where mail goes), reply-code classification, and the bytes put on the wire."""

from __future__ import annotations

from pathlib import Path

import pytest

from publisher.channels.email import EmailChannel, EmailUrlError, parse_email_url
from publisher.channels.mail_transport import classify, smtp_payload
from publisher.site.config import load_site

# -- the URL -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "kind", "host", "port", "user"),
    [
        ("smtp://127.0.0.1:2525", "smtp", "127.0.0.1", 2525, None),
        ("smtp://relay.example.org", "smtp", "relay.example.org", 25, None),
        (
            "smtp+starttls://news%40cepei.org@mail.example.org:587",
            "smtp+starttls",
            "mail.example.org",
            587,
            "news@cepei.org",
        ),
        ("SMTPS://news@mail.example.org", "smtps", "mail.example.org", 465, "news"),
        ("smtp://news@localhost:1025", "smtp", "localhost", 1025, "news"),
    ],
)
def test_smtp_urls_parse(url: str, kind: str, host: str, port: int, user: str | None) -> None:
    config = parse_email_url(url, password="pw" if user else None)
    assert (config.kind, config.host, config.port, config.username) == (kind, host, port, user)
    assert config.password == ("pw" if user else None)


def test_maildir_urls_are_taken_from_the_site_folder(tmp_path: Path) -> None:
    assert parse_email_url("maildir:outbox/mail", root=tmp_path).path == tmp_path / "outbox/mail"
    assert parse_email_url("maildir:/var/mail/news", root=tmp_path).path == Path("/var/mail/news")
    assert parse_email_url("maildir:///var/mail/news").path == Path("/var/mail/news")


@pytest.mark.parametrize(
    ("url", "password", "words"),
    [
        ("ftp://mail.example.org", None, "unknown scheme ftp:"),
        ("mail.example.org:25", None, "unknown scheme"),
        ("smtp://", None, "names no host"),
        ("smtp://mail.example.org:99999", None, "not a valid URL"),
        ("smtp://mail.example.org/inbox", None, "no path"),
        ("smtps://news@mail.example.org", None, "PUBLISHER_SMTP_PASSWORD is not set"),
        ("smtps://mail.example.org", "pw", "no user is named"),
        ("smtp://news@mail.example.org", "pw", "unencrypted"),
        ("maildir:", None, "names no folder"),
        ("", None, "is empty"),
    ],
)
def test_bad_urls_name_the_setting(url: str, password: str | None, words: str) -> None:
    with pytest.raises(EmailUrlError) as caught:
        parse_email_url(url, password=password)
    assert isinstance(caught.value, ValueError)
    (problem,) = caught.value.problems
    assert problem.field == "email.url"
    assert words in problem.message
    assert str(caught.value).startswith("publisher.toml:1: email.url: ")


def test_a_password_is_never_shown() -> None:
    with pytest.raises(EmailUrlError) as caught:
        parse_email_url("smtps://news:hunter2secret@mail.example.org")
    assert "hunter2secret" not in str(caught.value)
    assert "PUBLISHER_SMTP_PASSWORD" in str(caught.value)
    config = parse_email_url("smtps://news@mail.example.org", password="hunter2secret")
    assert "hunter2secret" not in repr(config)
    assert "hunter2secret" not in str(config)
    assert config.shown == "smtps://news@mail.example.org:465"


def test_reply_codes_are_classified() -> None:
    assert [classify(c) for c in (250, 251, 421, 450, 451, 452, 454, 471)] == ["sent"] * 2 + ["temporary"] * 6
    assert [classify(c) for c in (550, 551, 552, 553, 554)] == ["permanent"] * 5
    assert [classify(c) for c in (530, 535)] == ["auth", "auth"]


def test_the_payload_is_dot_stuffed_with_crlf_lines() -> None:
    assert smtp_payload(b".a\r\nb\r\n..c") == b"..a\r\nb\r\n...c\r\n.\r\n"
    assert smtp_payload(b"a\nb\r.c\r\n") == b"a\r\nb\r\n..c\r\n.\r\n"


def test_the_site_default_is_the_maildir_and_the_environment_overrides_it(example_site: Path) -> None:
    site = load_site(example_site, env={})
    channel = EmailChannel.from_site(site)
    assert channel.is_outbox and channel.config.path == site.root / "outbox/mail"
    env = {"PUBLISHER_EMAIL_URL": "smtps://news@mail.example.org", "PUBLISHER_SMTP_PASSWORD": "pw"}
    channel = EmailChannel.from_site(load_site(example_site, env=env))
    assert channel.config.shown == "smtps://news@mail.example.org:465" and channel.config.password == "pw"
    with pytest.raises(EmailUrlError, match=r"^PUBLISHER_EMAIL_URL:1: email.url: .*PUBLISHER_SMTP_PASSWORD"):
        EmailChannel.from_site(load_site(example_site, env={"PUBLISHER_EMAIL_URL": "smtps://news@mail.example.org"}))
