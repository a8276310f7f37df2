"""Sites, subscribers and commands for the dispatch and scheduler tests.

A test site is a copy of the bundled example (the `example_site` fixture) whose
timeline is replaced by the rules a test names; its mail goes to a `MailServer`
through ``PUBLISHER_EMAIL_URL`` in the environment the commands run with.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import os
from collections.abc import Iterable, Mapping, Sequence
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from publisher.audience import subscribers
from publisher.audience.rows import Incoming
from publisher.cli.main import cli
from publisher.site.config import Site, load_site
from publisher.store.dispatches import Store, open_store
from tests.smtp_support import MailServer

SECRET = "test-secret-for-unsubscribe-links"
PARIS = "2018-02-09-south-south-cooperation-paris"
PARIS_DUE = dt.datetime(2018, 2, 9, 17, 0, tzinfo=dt.UTC)  # published 18:00+01:00; the news rule sends then
CONSENT = dt.datetime(2018, 1, 1, tzinfo=dt.UTC)
NEWS_RULE = """
[[timeline]]
when = "published"
channel = "email"
list = "news"
"""


def configure(site_dir: Path, rules: str = NEWS_RULE, extra: str = "", email: str = "") -> None:
    """Keep the example's settings, replace its timeline with `rules`.

    `extra` (whole tables) goes before the rules; `email` (keys) goes into the ``[email]`` table.
    """
    path = site_dir / "publisher.toml"
    head = path.read_text(encoding="utf-8").split("[[timeline]]", 1)[0]
    head = head.replace("[email]\n", "[email]\n" + email, 1)
    path.write_text(head + extra + rules, encoding="utf-8")


def environment(server: MailServer | None = None, **more: str) -> dict[str, str]:
    """The variables a command runs with: the secret, and the server's URL when there is one."""
    env = {"PUBLISHER_SECRET": SECRET, **more}
    if server is not None:
        env["PUBLISHER_EMAIL_URL"] = server.url()
    return env


def full_environment(env: Mapping[str, str]) -> dict[str, str]:
    """`env` over this process's environment, without any PUBLISHER_* setting of the machine running the tests."""
    base = {key: value for key, value in os.environ.items() if not key.startswith("PUBLISHER_")}
    return {**base, **env}


def site_of(site_dir: Path, env: Mapping[str, str]) -> Site:
    return load_site(site_dir, full_environment(env))


def store_of(site_dir: Path, env: Mapping[str, str]) -> Store:
    return open_store(site_of(site_dir, env).database_url)


def add_people(
    site_dir: Path, env: Mapping[str, str], emails: Iterable[str], lists: Sequence[str] = ("news",)
) -> list[str]:
    """Subscribe every address (active, named after its local part) in one transaction; returns them."""
    people = [Incoming(address, address.split("@")[0].title(), None, tuple(lists)) for address in emails]
    store = store_of(site_dir, env)
    try:
        subscribers.save(store, people, CONSENT, "test")
    finally:
        store.close()
    return [person.email for person in people]


def readers(count: int, prefix: str = "reader") -> list[str]:
    return [f"{prefix}{number:05d}@example.org" for number in range(count)]


def command(site_dir: Path, env: Mapping[str, str], *args: str) -> Result:
    """`publisher --site SITE ARGS...` run in this process, with `env` (and no other PUBLISHER_* setting)."""
    unset: dict[str, str | None] = {key: None for key in os.environ if key.startswith("PUBLISHER_")}
    return CliRunner().invoke(cli, ["--site", str(site_dir), *args], env={**unset, **env}, catch_exceptions=False)


def at(moment: dt.datetime) -> str:
    return moment.isoformat()


def plan_json(site_dir: Path, env: Mapping[str, str], now: dt.datetime) -> dict[str, Any]:
    import json

    result = command(site_dir, env, "--json", "plan", "--now", at(now))
    assert result.exit_code == 0, result.output
    lines = json.loads(result.stdout)["dispatches"]
    return {line["id"]: line for line in lines}


def parsed(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def parts(message: EmailMessage) -> tuple[str, str]:
    """The (text, html) of a newsletter message."""
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    return str(text.get_content()), str(html.get_content())  # type: ignore[attr-defined]  # EmailMessage parts
