"""A reader's own choices: one list left at a time, lists and language chosen, and the links every issue carries."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from publisher.audience import recipients, subscribers
from publisher.audience.preferences import (
    choose,
    leave_everything,
    leave_list,
    make_preferences_token,
    verify_preferences_token,
)
from publisher.audience.unsubscribe import make_token
from publisher.errors import InvalidInput
from publisher.render.email import render_issue
from publisher.render.letters import Letters
from publisher.site.config import load_site
from publisher.site.records import load_records
from publisher.site.settings import Settings, load_settings
from publisher.store.dispatches import Store
from tests import store_support
from tests.dispatch_support import PARIS, SECRET
from tests.store_support import NOW

OFFERED = ("news", "weekly")


@pytest.fixture(params=store_support.DATABASES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    for url in store_support.database_url(request.param, tmp_path):
        yield from store_support.opened(url)


def _on(store: Store, email_address: str, *lists: str) -> None:
    subscribers.add(store, email_address, name="Ana", lists=lists, now=NOW, source="test")


def test_leaving_one_list_keeps_the_others(store: Store) -> None:
    _on(store, "ana@example.org", "news", "weekly")
    left = leave_list(store, "Ana@Example.org", "news", NOW)
    assert left is not None and left.lists == ("weekly",) and left.status == "active"
    assert recipients.active_addresses(store, "news") == []
    assert recipients.active_addresses(store, "weekly") == ["ana@example.org"]


def test_leaving_the_last_list_is_leaving_everything_and_no_import_adds_them_back(store: Store) -> None:
    _on(store, "ana@example.org", "news")
    left = leave_list(store, "ana@example.org", "news", NOW)
    assert left is not None and left.status == "unsubscribed"
    again = subscribers.add(store, "ana@example.org", lists=["news"], now=NOW, source="import:x.csv")
    assert again.status == "unsubscribed"


def test_leaving_everything_is_a_second_explicit_step(store: Store) -> None:
    _on(store, "ana@example.org", "news", "weekly")
    leave_list(store, "ana@example.org", "news", NOW)
    gone = leave_everything(store, "ana@example.org", NOW)
    assert gone is not None and gone.suppressed
    assert recipients.active_addresses(store, "weekly") == []
    assert leave_list(store, "nobody@example.org", "news", NOW) is None


def test_choosing_lists_and_language_holds_for_the_next_dispatch(store: Store) -> None:
    _on(store, "ana@example.org", "news")
    chosen = choose(store, "ana@example.org", ["weekly"], "es", NOW, offered=OFFERED)
    assert chosen is not None and chosen.lists == ("weekly",) and chosen.language == "es"
    assert recipients.active_addresses(store, "news") == []
    assert recipients.contacts(store, ["ana@example.org"])["ana@example.org"].may_receive("weekly") is None
    with pytest.raises(InvalidInput) as bad:
        choose(store, "ana@example.org", ["secret-internal"], "not a tag!", NOW, offered=OFFERED)
    assert {p.field for p in bad.value.problems} == {"lists", "language"}
    none = choose(store, "ana@example.org", [], None, NOW, offered=OFFERED)
    assert none is not None and none.status == "unsubscribed"


def test_someone_who_left_is_not_subscribed_again_by_an_old_preferences_link(store: Store) -> None:
    """The link never expires and sits in every issue: coming back goes through /subscribe (double opt-in)."""
    _on(store, "ana@example.org", "news")
    left = leave_list(store, "ana@example.org", "news", NOW)
    assert left is not None and left.status == "unsubscribed"
    later = NOW + dt.timedelta(days=30)
    kept = choose(store, "ana@example.org", ["news", "weekly"], "es", later, offered=OFFERED)
    assert kept == left
    assert recipients.active_addresses(store, "news") == []


class Meanwhile:
    """`other` runs in another thread right after the next subscriber row is read, while that reader waits.

    The reader waits until `other` is done, or 1.5 s when `other` is blocked by it (a row locked
    for the change): either way both changes are made, in the order the store allows.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch, other: Callable[[], object]) -> None:
        self.other, self.done = other, threading.Event()
        self.failed: list[BaseException] = []
        self.thread: threading.Thread | None = None
        self.real = subscribers._subscriber
        monkeypatch.setattr(subscribers, "_subscriber", self.reading)

    def run(self) -> None:
        try:
            self.other()
        except BaseException as exc:  # the test must see it
            self.failed.append(exc)
        self.done.set()

    def reading(self, row: Any) -> subscribers.Subscriber:
        found = self.real(row)
        if self.thread is None:
            self.thread = threading.Thread(target=self.run)
            self.thread.start()
            self.done.wait(timeout=1.5)
        return found

    def join(self) -> None:
        assert self.thread is not None, "no row was read"
        self.thread.join()
        assert self.failed == []


def test_leaving_two_lists_at_once_leaves_everything(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two one-click unsubscribes at the same moment: neither may write back the list the other just left."""
    _on(store, "ana@example.org", "news", "weekly")
    meanwhile = Meanwhile(monkeypatch, lambda: leave_list(store, "ana@example.org", "weekly", NOW))
    leave_list(store, "ana@example.org", "news", NOW)
    meanwhile.join()
    found = subscribers.get(store, "ana@example.org")
    assert found is not None and found.status == "unsubscribed"
    assert recipients.active_addresses(store, "news") == recipients.active_addresses(store, "weekly") == []


def test_choosing_lists_never_undoes_an_unsubscribe_made_meanwhile(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    _on(store, "ana@example.org", "news", "weekly")
    meanwhile = Meanwhile(monkeypatch, lambda: leave_list(store, "ana@example.org", "news", NOW))
    choose(store, "ana@example.org", ["news", "weekly"], None, NOW, offered=OFFERED)
    meanwhile.join()
    assert recipients.active_addresses(store, "news") == []  # the unsubscribe, made last, holds


def test_a_bounced_address_is_not_made_active_by_its_preferences(store: Store) -> None:
    _on(store, "ana@example.org", "news")
    subscribers.mark_bounced(store, "ana@example.org", NOW)
    kept = choose(store, "ana@example.org", ["news"], None, NOW, offered=OFFERED)
    assert kept is not None and kept.status == "bounced"


def test_a_preferences_token_names_one_address_and_is_not_an_unsubscribe_token() -> None:
    token = make_preferences_token(SECRET, "ana@example.org")
    assert verify_preferences_token(SECRET, token) == "ana@example.org"
    assert verify_preferences_token("another secret", token) is None
    assert verify_preferences_token(SECRET, make_token(SECRET, "ana@example.org", "news")) is None
    assert verify_preferences_token(SECRET, token[:-1] + ("A" if token[-1] != "A" else "B")) is None


def _settings(tmp_path: Path, lists: str) -> Settings:
    path = tmp_path / "publisher.toml"
    path.write_text(f'[site]\ntitle = "T"\nurl = "https://t.example"\n\n[newsletter]\nlists = {lists}\n')
    return load_settings(path, tmp_path)


def test_lists_have_a_public_name_and_description(tmp_path: Path) -> None:
    news = _settings(tmp_path, '["news", { id = "weekly", name = "The week", description = "On Mondays." }]').newsletter
    assert news.lists == ("news", "weekly")
    assert news.about("weekly").public_name == "The week" and news.about("weekly").description == "On Mondays."
    assert news.about("news").public_name == "news"  # a bare id shows as it is until the site names it
    for bad, field in [
        ('["news", "news"]', "newsletter"),
        ('[{ id = "a b" }]', "newsletter.id"),
        ('[{ name = "No id" }]', "newsletter.id"),
        ("[]", "newsletter"),
    ]:
        with pytest.raises(InvalidInput) as refused:
            _settings(tmp_path, bad)
        assert refused.value.problems[0].field == field, bad


def test_every_issue_links_the_readers_own_preferences_and_its_archive_page(example_site: Path) -> None:
    site = load_site(example_site, {})
    records = [r for r in load_records(site.events, site.root) if r.id == PARIS]
    issue = render_issue(records, site.settings, None, list_name="news")
    letters = Letters(site, issue, "news", "0123456789abcdef", SECRET)
    raw = letters.letter("ana@example.org", "Ana", NOW).as_bytes()
    message = email.message_from_bytes(raw, policy=email.policy.default)
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    token = make_preferences_token(SECRET, "ana@example.org")
    for part in (html, text):
        assert f"https://cepei.example.org/preferences/{token}" in part
        assert f"https://cepei.example.org/archive/{PARIS}.html" in part
    assert "View in your browser" in html and "The week at Cepei" not in html
    assert "“Cepei news” list" in html  # the public name, never the id "news"
