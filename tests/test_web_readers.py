"""The reader's pages over HTTP: one-click leaves only the email's list, preferences, the archive, forgetting."""

from __future__ import annotations

import datetime as dt
import re
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from publisher.audience import recipients, subscribers
from publisher.audience.preferences import make_preferences_token
from publisher.audience.tokens import OUTBOX_SECRET, link_secret
from publisher.audience.unsubscribe import make_token
from publisher.build.builder import build
from publisher.site.config import load_site
from publisher.store.dispatches import Store
from tests.cdp_support import Browser
from tests.dispatch_support import PARIS, PARIS_DUE, SECRET, add_people, at, command, configure, parsed, store_of
from tests.web_support import Clock, Page, Web, basic, running

ADMIN = "admin-pass-for-forget-9c1e"
ENV = {"PUBLISHER_SECRET": SECRET, "PUBLISHER_ADMIN_PASSWORD": ADMIN}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
SENT = PARIS_DUE + dt.timedelta(minutes=5)


@pytest.fixture
def sent(example_site: Path) -> Path:
    """The example site after its news dispatch of the Paris record went to Ana (news and weekly) and Bo."""
    configure(example_site)
    build(load_site(example_site, ENV))  # the languages the site offers come from its feeds
    add_people(example_site, ENV, ["ana@example.org"], lists=("news", "weekly"))
    add_people(example_site, ENV, ["bo@example.org"])
    assert command(example_site, ENV, "run", "--once", "--now", at(SENT)).exit_code == 0
    return example_site


@pytest.fixture
def store(sent: Path) -> Iterator[Store]:
    opened = store_of(sent, ENV)
    yield opened
    opened.close()


@pytest.fixture
def web(sent: Path, store: Store) -> Iterator[Web]:
    with running(load_site(sent, env=ENV), store, Clock(SENT + dt.timedelta(hours=1))) as server:
        yield server


def _mail_to(site: Path, address: str) -> bytes:
    found = [p.read_bytes() for p in (site / "outbox" / "mail" / "new").iterdir() if address.encode() in p.read_bytes()]
    assert len(found) == 1
    return found[0]


def status_of(store: Store, address: str) -> str | None:
    found = subscribers.get(store, address)
    return None if found is None else found.status


def _path(url: str) -> str:
    return urllib.parse.urlsplit(url).path


def test_one_click_from_a_news_email_leaves_news_and_keeps_weekly(sent: Path, store: Store, web: Web) -> None:
    message = parsed(_mail_to(sent, "ana@example.org"))
    assert message["List-Id"].startswith("<news.")
    one_click = re.search(r"<(https://[^>]+)>", message["List-Unsubscribe"])
    assert one_click is not None
    reply = web.request("POST", _path(one_click.group(1)), b"List-Unsubscribe=One-Click", FORM)
    assert reply.status == 200 and reply.header("Location") is None
    assert recipients.active_addresses(store, "weekly") == ["ana@example.org"]
    assert recipients.active_addresses(store, "news") == ["bo@example.org"]
    page = Page(reply.text)
    assert (
        "“Cepei news”" in reply.text
        and "“The week at Cepei”" in reply.text
        and "news”" not in reply.text.replace("Cepei news”", "")
    )
    (everything,) = page.forms  # the second, explicit step
    assert everything["action"].endswith("/everything")
    assert web.post(everything["action"]).status == 200
    found = subscribers.get(store, "ana@example.org")
    assert found is not None and found.status == "unsubscribed"


def test_the_preferences_page_changes_lists_and_language_for_the_next_issue(sent: Path, store: Store, web: Web) -> None:
    text = parsed(_mail_to(sent, "ana@example.org")).get_body(("plain",)).get_content()  # type: ignore[union-attr]
    link = re.search(r"https://cepei\.example\.org/preferences/\S+?(?=>)", text)
    assert link is not None
    page = web.get(_path(link.group(0)))
    assert page.status == 200
    boxes = {f["name"]: "checked" in f for f in Page(page.text).fields if f.get("type") == "checkbox"}
    assert boxes == {"list-news": True, "list-weekly": True}
    assert "The week at Cepei" in page.text and "One email on Monday morning" in page.text
    saved = web.post(_path(link.group(0)), {"list-weekly": "on", "language": "es"})
    assert saved.status == 200 and "Saved." in saved.text
    found = subscribers.get(store, "ana@example.org")
    assert found is not None and found.lists == ("weekly",) and found.language == "es"
    assert recipients.active_addresses(store, "news") == ["bo@example.org"]  # the next news issue skips her
    bad = web.post(_path(link.group(0)), {"list-weekly": "on", "language": "not a tag!"})
    assert bad.status == 400
    assert web.get("/preferences/" + "x" * 10 + "." + "y" * 32).status == 400


def test_an_old_preferences_link_does_not_subscribe_again_someone_who_left(sent: Path, store: Store, web: Web) -> None:
    """After a one-click unsubscribe the footer's link shows a page pointing to /subscribe; a POST changes nothing."""
    text = parsed(_mail_to(sent, "bo@example.org")).get_body(("plain",)).get_content()  # type: ignore[union-attr]
    link = re.search(r"https://cepei\.example\.org/preferences/\S+?(?=>)", text)
    assert link is not None
    secret = link_secret(load_site(sent, env=ENV), outbox=False)
    assert secret is not None
    one_click = "/unsubscribe/" + make_token(secret, "bo@example.org", "news")
    assert web.request("POST", one_click, b"List-Unsubscribe=One-Click", FORM).status == 200
    before = subscribers.get(store, "bo@example.org")
    assert before is not None and before.status == "unsubscribed"
    for reply in (web.get(_path(link.group(0))), web.post(_path(link.group(0)), {"list-news": "on", "language": "es"})):
        assert reply.status == 200
        assert "not subscribed" in reply.text and 'href="/subscribe"' in reply.text
        assert not any(f.get("type") == "checkbox" for f in Page(reply.text).fields)
    assert subscribers.get(store, "bo@example.org") == before
    assert recipients.active_addresses(store, "news") == ["ana@example.org"]


def test_the_archive_is_served_and_an_unsent_issue_is_not(web: Web) -> None:
    assert web.get(f"/archive/{PARIS}.html").status == 200
    assert PARIS in web.get("/archive/").text
    assert web.get("/archive/atom.xml").header("Content-Type") == "application/atom+xml; charset=utf-8"
    assert web.get("/archive/2018-03-15-informe-agenda-2030.html").status == 404
    assert web.get("/archive/issues.json").status == 404


def test_the_team_forgets_a_person_with_a_button(store: Store, web: Web) -> None:
    plan = web.get("/admin/plan", basic(ADMIN))
    assert {"method": "post", "action": "/admin/forget"} in Page(plan.text).forms
    reply = web.request("POST", "/admin/forget", b"email=bo%40example.org", {**FORM, **basic(ADMIN)})
    assert reply.status == 200 and "bo@example.org" not in reply.text
    assert subscribers.get(store, "bo@example.org") is None
    plan = web.get("/admin/plan", basic(ADMIN))
    assert "1 address was erased" in plan.text and "bo@" not in plan.text
    assert web.request("POST", "/admin/forget", b"email=ana%40example.org", FORM).status == 401


def test_a_reader_changes_lists_and_language_in_chromium(sent: Path, store: Store, web: Web, tmp_path: Path) -> None:
    text = parsed(_mail_to(sent, "ana@example.org")).get_body(("plain",)).get_content()  # type: ignore[union-attr]
    link = re.search(r"https://cepei\.example\.org(/preferences/\S+?)(?=>)", text)
    assert link is not None
    url = f"http://127.0.0.1:{web.port}{link.group(1)}"
    with Browser(tmp_path) as browser:
        browser.go(url)
        browser.wait_for("One email on Monday morning")  # the weekly list's public description
        assert browser.run("document.querySelector('input[name=list-news]').checked") is True
        browser.run("document.querySelector('input[name=list-news]').click()")  # off: Cepei news
        browser.run("document.getElementById('language').value = 'es'")
        browser.run("document.querySelector('button[type=submit]').click()")
        browser.wait_for("Saved.")
        assert browser.run("document.querySelector('input[name=list-news]').checked") is False
        assert browser.run("document.getElementById('language').value") == "es"
    found = subscribers.get(store, "ana@example.org")
    assert found is not None and found.lists == ("weekly",) and found.language == "es"
    assert recipients.active_addresses(store, "news") == ["bo@example.org"]
    later = dt.datetime(2018, 3, 15, 20, 0, tzinfo=dt.UTC)  # the next news issue: she is not among its recipients
    assert command(sent, ENV, "run", "--once", "--now", at(later)).exit_code == 0
    to_ana = [p for p in (sent / "outbox" / "mail" / "new").iterdir() if b"ana@example.org" in p.read_bytes()]
    assert len(to_ana) == 1  # the Paris issue only
    assert len(list((sent / "outbox" / "mail" / "new").iterdir())) == 3  # Paris to both, the next issue to Bo


def test_the_readers_buttons_refuse_a_post_from_another_site_but_one_click_does_not(
    sent: Path, store: Store, web: Web
) -> None:
    """The preferences form and the everything step are our pages' buttons; RFC 8058 one-click comes from anywhere."""
    secret = link_secret(load_site(sent, env=ENV), outbox=False)
    assert secret is not None
    preferences = "/preferences/" + make_preferences_token(secret, "ana@example.org")
    everything = "/unsubscribe/" + make_token(secret, "ana@example.org", "weekly") + "/everything"
    for foreign in ({"Sec-Fetch-Site": "cross-site"}, {"Origin": "https://evil.example"}, {"Origin": "null"}):
        assert web.post(preferences, {"list-weekly": "on"}, foreign).status == 403, foreign
        assert web.post(everything, {}, foreign).status == 403, foreign
        assert web.post("/admin/forget", {"email": "bo@example.org"}, {**foreign, **basic(ADMIN)}).status == 403
    ana, bo = subscribers.get(store, "ana@example.org"), subscribers.get(store, "bo@example.org")
    assert ana is not None and (ana.status, ana.lists) == ("active", ("news", "weekly"))
    assert bo is not None and bo.status == "active"
    own = web.post(preferences, {"list-weekly": "on"}, {"Origin": "https://cepei.example.org"})
    assert own.status == 200 and "no-store" in (own.header("Cache-Control") or "")
    one_click = "/unsubscribe/" + make_token(secret, "ana@example.org", "weekly")
    provider = {"Origin": "https://mail.provider.example", **FORM}
    assert web.request("POST", one_click, b"List-Unsubscribe=One-Click", provider).status == 200
    assert status_of(store, "ana@example.org") == "unsubscribed"


def test_without_the_site_secret_the_readers_links_and_the_forget_button_are_off(
    sent: Path, store: Store, tmp_path: Path
) -> None:
    """Links signed with the public outbox placeholder are never taken by a served site; nothing is erased unkeyed."""
    env = {"PUBLISHER_ADMIN_PASSWORD": ADMIN, "PUBLISHER_EMAIL_URL": f"maildir:{tmp_path / 'outbox'}"}
    unsubscribe = "/unsubscribe/" + make_token(OUTBOX_SECRET, "ana@example.org", "news")
    preferences = "/preferences/" + make_preferences_token(OUTBOX_SECRET, "ana@example.org")
    with running(load_site(sent, env=env), store, Clock(SENT + dt.timedelta(hours=1))) as web:
        answers = [
            web.get(unsubscribe),
            web.request("POST", unsubscribe, b"List-Unsubscribe=One-Click", FORM),
            web.post(unsubscribe + "/everything"),
            web.get(preferences),
            web.post(preferences, {"list-weekly": "on"}),
            web.post("/admin/forget", {"email": "bo@example.org"}, basic(ADMIN)),
        ]
    assert [reply.status for reply in answers] == [503] * 6
    assert all("PUBLISHER_SECRET" in reply.text and "ana@example.org" not in reply.text for reply in answers)
    ana = subscribers.get(store, "ana@example.org")
    assert ana is not None and (ana.status, ana.lists) == ("active", ("news", "weekly"))
    assert status_of(store, "bo@example.org") == "active"


def test_personal_pages_are_never_stored_and_archive_pages_run_no_script(sent: Path, web: Web) -> None:
    secret = link_secret(load_site(sent, env=ENV), outbox=False)
    assert secret is not None
    for path in ("/preferences/" + make_preferences_token(secret, "ana@example.org"),
                 "/unsubscribe/" + make_token(secret, "ana@example.org", "news")):  # fmt: skip
        reply = web.get(path)
        assert reply.status == 200 and reply.header("Cache-Control") == "no-store", path
        assert reply.header("Referrer-Policy") == "no-referrer"
    page = web.get(f"/archive/{PARIS}.html")
    assert "script-src 'none'" in (page.header("Content-Security-Policy") or "")
    assert "ana@example.org" not in page.text
    assert web.get("/archive/../publisher.toml").status == 404
    assert web.get("/archive/%2e%2e%2fpublisher.toml").status == 404
