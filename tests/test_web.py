"""The web side over real HTTP on loopback: built feeds and previews, double opt-in with a real SMTP server,
RFC 8058 one-click unsubscribe, the team's plan and approvals. A real SQLite store in each test's folder."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

from publisher.audience import subscribers
from publisher.audience.confirm import DEFAULT_LIFETIME, make_confirm_token
from publisher.audience.erasure import forget
from publisher.audience.tokens import OUTBOX_SECRET
from publisher.audience.unsubscribe import make_token
from publisher.build.builder import build
from publisher.site.config import load_site
from publisher.store.dispatches import Store, open_store
from publisher.web.server import redacted, startup_notes
from tests.conftest import REPO
from tests.smtp_support import MailServer, free_port
from tests.web_support import Clock, Page, Web, basic, link_in, running

SECRET = "web-test-secret-7f3a9c51"
ADMIN = "admin-pass-31c5e8d2"
NOW = dt.datetime(2018, 2, 1, 12, 0, tzinfo=dt.UTC)  # before every record of the example site is published
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
ISSUE = "2018-02-09-south-south-cooperation-paris"

Start = Callable[..., AbstractContextManager[Web]]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example site, with review on its Mastodon rule, built once (feeds, newsletters)."""
    root = tmp_path_factory.mktemp("built") / "site"
    root.mkdir()
    for name in ("events", "media"):
        shutil.copytree(REPO / name, root / name)
    config = (REPO / "publisher.toml").read_text(encoding="utf-8")
    reviewed = config.replace('when = "published + 1 hour"\n', 'when = "published + 1 hour"\nreview = true\n')
    assert reviewed != config
    (root / "publisher.toml").write_text(reviewed, encoding="utf-8")
    build(load_site(root, env={}))
    return root


@pytest.fixture
def site_root(built: Path, tmp_path: Path) -> Path:
    root = tmp_path / "site"
    shutil.copytree(built, root, symlinks=True)
    return root


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(f"sqlite:///{tmp_path / 'state' / 'publisher.db'}")
    yield opened
    opened.close()


@pytest.fixture
def mail() -> Iterator[MailServer]:
    with MailServer() as server:
        yield server


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def start(site_root: Path, store: Store, clock: Clock, mail: MailServer) -> Iterator[Start]:
    """Start the web side with the test environment, changed by keyword (None removes a variable)."""
    seen: list[Web] = []

    @contextmanager
    def starter(**changes: str | None) -> Iterator[Web]:
        env = {"PUBLISHER_SECRET": SECRET, "PUBLISHER_ADMIN_PASSWORD": ADMIN, "PUBLISHER_EMAIL_URL": mail.url()}
        for name, value in changes.items():
            if value is None:
                env.pop(name, None)
            else:
                env[name] = value
        with running(load_site(site_root, env=env), store, clock) as web:
            seen.append(web)
            yield web

    yield starter
    for web in seen:  # whatever a test did, no page ever showed a secret
        for reply in web.replies:
            assert SECRET.encode() not in reply.body and ADMIN.encode() not in reply.body


@pytest.fixture
def web(start: Start) -> Iterator[Web]:
    with start() as running_web:
        yield running_web


def status_of(store: Store, address: str) -> str | None:
    found = subscribers.get(store, address)
    return None if found is None else found.status


# --- feeds and previews --------------------------------------------------------------------------------


def test_feeds_are_served_as_built_with_their_content_types(web: Web, site_root: Path) -> None:
    for path, kind in [
        ("feeds/atom.xml", "application/atom+xml"),
        ("feeds/rss.xml", "application/rss+xml"),
        ("feeds/languages/es/atom.xml", "application/atom+xml"),
    ]:
        reply = web.get("/" + path)
        assert reply.status == 200, path
        assert reply.header("Content-Type") == f"{kind}; charset=utf-8"
        assert reply.body == (site_root / path).read_bytes()
        assert reply.header("ETag") and reply.header("Last-Modified")


def test_an_unchanged_feed_answers_304_and_a_changed_one_its_new_content(web: Web, site_root: Path) -> None:
    first = web.get("/feeds/atom.xml")
    etag = first.header("ETag")
    assert etag is not None
    again = web.get("/feeds/atom.xml", {"If-None-Match": etag})
    assert (again.status, again.body, again.header("ETag")) == (304, b"", etag)
    assert web.get("/feeds/atom.xml", {"If-None-Match": f'"other", W/{etag}'}).status == 304
    assert web.get("/feeds/atom.xml", {"If-None-Match": '"something else"'}).status == 200
    since = first.header("Last-Modified")
    assert since is not None
    assert web.get("/feeds/atom.xml", {"If-Modified-Since": since}).status == 304
    head = web.request("HEAD", "/feeds/atom.xml")
    assert (head.status, head.body, head.header("ETag")) == (200, b"", etag)

    feed = site_root / "feeds" / "atom.xml"
    feed.write_bytes(feed.read_bytes().replace(b"Cepei", b"Cepei (rebuilt)"))
    changed = web.get("/feeds/atom.xml", {"If-None-Match": etag})
    assert changed.status == 200 and b"Cepei (rebuilt)" in changed.body
    assert changed.header("ETag") != etag


@pytest.mark.parametrize(
    "path",
    [
        "/feeds/../publisher.toml",
        "/feeds/%2e%2e/publisher.toml",
        "/feeds/..%2fpublisher.toml",
        "/feeds/tags/../../publisher.toml",
        "/feeds/%2Fetc%2Fpasswd",
        "/feeds//etc/passwd",
        "/feeds/./atom.xml/../../publisher.toml",
        "/feeds/leak/atom.xml",  # a symbolic link inside feeds/ to a file outside it
        "/newsletters/..%2fpublisher.toml",
        "/newsletters/..%2f..%2fpublisher.toml",
        "/newsletters/%2e%2e%2fpublisher.toml",
        f"/newsletters/{ISSUE}.eml",  # built, but not a preview
        "/feeds/atom.xml%00.html",
    ],
)
def test_paths_outside_the_built_folders_are_refused(web: Web, site_root: Path, path: str) -> None:
    (site_root / "feeds" / "leak").mkdir()
    (site_root / "feeds" / "leak" / "atom.xml").symlink_to(site_root / "publisher.toml")
    assert b"[site]" in (site_root / "publisher.toml").read_bytes()
    reply = web.get(path)
    assert reply.status == 404
    assert b"[site]" not in reply.body and b"root:" not in reply.body


def test_newsletter_previews_and_calendar_files(web: Web, site_root: Path, clock: Clock) -> None:
    clock.now = dt.datetime(2018, 2, 9, 17, 0, tzinfo=dt.UTC)  # the issue's record is published
    html = web.get(f"/newsletters/{ISSUE}.html")
    assert (html.status, html.header("Content-Type")) == (200, "text/html; charset=utf-8")
    assert html.body == (site_root / "newsletters" / f"{ISSUE}.html").read_bytes()
    assert "script-src 'none'" in (html.header("Content-Security-Policy") or "")
    ics = web.get(f"/newsletters/{ISSUE}.ics")
    assert (ics.status, ics.header("Content-Type")) == (200, "text/calendar; charset=utf-8")
    assert ics.body.startswith(b"BEGIN:VCALENDAR")
    assert web.get("/newsletters/no-such-issue.html").status == 404
    assert web.get("/newsletters/2018-03-15-informe-agenda-2030.ics").status == 404  # no meeting, no calendar


def test_what_is_not_yet_published_is_shown_to_the_team_only(web: Web, site_root: Path, clock: Clock) -> None:
    """Previews are built ahead for review, and ids are guessable: before its time a record's files need the login."""
    paths = [f"/newsletters/{ISSUE}.{kind}" for kind in ("html", "txt", "ics")]
    clock.now = dt.datetime(2018, 2, 9, 16, 59, tzinfo=dt.UTC)  # a minute before 18:00+01:00
    for path in paths:
        refused = web.get(path)
        assert refused.status == 401 and b"South-South" not in refused.body, path
        assert web.get(path, basic("wrong")).status == 401
        team = web.get(path, basic(ADMIN))
        assert team.status == 200 and team.body == (site_root / path.lstrip("/")).read_bytes()
        assert "no-store" in (team.header("Cache-Control") or "")
    draft = site_root / "newsletters" / "2018-06-20-draft-annual-report.html"  # as `build --all` would write it
    draft.write_text("<p>draft</p>", encoding="utf-8")
    clock.now = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    assert web.get("/newsletters/2018-06-20-draft-annual-report.html").status == 401  # a draft is never public
    (site_root / "newsletters" / "no-record-has-this-id.html").write_text("<p>?</p>", encoding="utf-8")
    assert web.get("/newsletters/no-record-has-this-id.html").status == 401
    clock.now = dt.datetime(2018, 2, 9, 17, 0, tzinfo=dt.UTC)
    assert all(web.get(path).status == 200 for path in paths)


# --- one-click unsubscribe (RFC 8058) ------------------------------------------------------------------


def _member(store: Store, address: str, lists: tuple[str, ...] = ("news",)) -> None:
    subscribers.add(store, address, lists=lists, now=NOW - dt.timedelta(days=30), source="cli")


def test_the_one_click_post_unsubscribes_at_once_with_200_and_no_redirect(web: Web, store: Store, clock: Clock) -> None:
    _member(store, "ana@example.org")
    clock.advance(dt.timedelta(hours=3))
    reply = web.request(
        "POST",
        "/unsubscribe/" + make_token(SECRET, "ana@example.org", "news"),
        body=b"List-Unsubscribe=One-Click",
        headers=FORM,  # what a mail provider sends: no cookie, no origin, no referrer
    )
    assert reply.status == 200
    assert reply.header("Location") is None and reply.header("Set-Cookie") is None
    assert "unsubscribed" in reply.text
    found = subscribers.get(store, "ana@example.org")
    assert found is not None and (found.status, found.unsubscribed_at) == ("unsubscribed", clock.now)


def test_the_one_click_post_may_come_as_multipart_form_data(web: Web, store: Store) -> None:
    _member(store, "bo@example.org")
    boundary = "----publisher-test-boundary"
    body = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="List-Unsubscribe"\r\n\r\n'
        "One-Click\r\n"
        f"--{boundary}--\r\n"
    ).encode()
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    reply = web.request("POST", "/unsubscribe/" + make_token(SECRET, "bo@example.org", "news"), body, headers)
    assert reply.status == 200
    assert status_of(store, "bo@example.org") == "unsubscribed"


def test_a_web_process_without_the_dkim_key_still_takes_one_click_unsubscribes(
    start: Start, store: Store, site_root: Path
) -> None:
    """The link secret comes from the environment alone: DKIM configured for the senders, its key only
    where mail is sent (not in the web's environment), and the one-click POST still works."""
    config = site_root / "publisher.toml"
    dkim = '[email]\ndkim_selector = "news"\ndkim_domain = "example.org"\ndkim_key = "keys/dkim.pem"\n'
    config.write_text(config.read_text(encoding="utf-8").replace("[email]\n", dkim, 1), encoding="utf-8")
    assert not (site_root / "keys" / "dkim.pem").exists()
    _member(store, "dee@example.org")
    with start(PUBLISHER_DKIM_KEY=None) as web:
        token = make_token(SECRET, "dee@example.org", "news")
        reply = web.request("POST", f"/unsubscribe/{token}", b"List-Unsubscribe=One-Click", FORM)
    assert reply.status == 200 and reply.header("Location") is None
    assert status_of(store, "dee@example.org") == "unsubscribed"


def test_a_get_shows_a_button_and_never_unsubscribes(web: Web, store: Store) -> None:
    _member(store, "cy@example.org")
    path = "/unsubscribe/" + make_token(SECRET, "cy@example.org", "news")
    for _ in range(3):  # a link scanner, a preview, the person
        reply = web.get(path)
        assert reply.status == 200
    assert web.request("HEAD", path).status == 200
    assert status_of(store, "cy@example.org") == "active"
    page = Page(reply.text)
    assert page.forms == [{"method": "post"}]  # posts back to the same URL
    assert {"tag": "input", "type": "hidden", "name": "List-Unsubscribe", "value": "One-Click"} in page.fields
    assert "cy@example.org" in reply.text
    assert web.post(path, {"List-Unsubscribe": "One-Click"}).status == 200  # the button
    assert status_of(store, "cy@example.org") == "unsubscribed"
    assert "gets no “Cepei news” from us" in web.get(path).text


def _tampered(token: str) -> list[str]:
    payload, signature = token.split(".")
    other = make_token(SECRET, "eve@example.org", "news").split(".")[0]
    flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    return [f"{other}.{signature}", f"{payload}.{flipped}", f"{payload}.{signature[:-2]}", payload, "x"]


def test_a_tampered_or_foreign_token_is_refused_with_400_and_changes_nothing(web: Web, store: Store) -> None:
    _member(store, "dee@example.org")
    token = make_token(SECRET, "dee@example.org", "news")
    confirm = make_confirm_token(SECRET, "dee@example.org", "news", NOW + dt.timedelta(days=1))
    for bad in [*_tampered(token), make_token("another secret", "dee@example.org", "news"), confirm]:
        path = "/unsubscribe/" + urllib.parse.quote(bad)
        assert web.request("POST", path, b"List-Unsubscribe=One-Click", FORM).status == 400, bad
        assert web.get(path).status == 400
    assert status_of(store, "dee@example.org") == "active"
    assert web.post(f"/confirm/{token}").status == 400  # an unsubscribe token confirms nothing either


# --- subscribing with double opt-in --------------------------------------------------------------------


def _subscribe(web: Web, address: str, **fields: str) -> None:
    reply = web.post("/subscribe", {"email": address, "list": "news", **fields})
    assert reply.status == 200, reply.text
    assert "Check your inbox" in reply.text


def _confirm_path(mail: MailServer, address: str, index: int = -1) -> str:
    url = link_in(mail.messages(address)[index], r"https://cepei\.example\.org/confirm/\S+")
    return urllib.parse.urlsplit(url).path


def test_subscribing_stores_pending_and_sends_one_email_whose_link_confirms(
    web: Web, store: Store, mail: MailServer, clock: Clock
) -> None:
    form = Page(web.get("/subscribe").text)
    assert {f["name"] for f in form.fields} == {"email", "name", "list", "language", "website"}
    _subscribe(web, "Ana.Perez@Example.org", name="Ana Pérez", list="weekly", language="es")
    pending = subscribers.get(store, "ana.perez@example.org")
    assert pending is not None
    assert (pending.status, pending.lists, pending.name, pending.language) == (
        "pending",
        ("weekly",),
        "Ana Pérez",
        "es",
    )
    assert pending.consent_at is None  # nobody has consented yet
    assert mail.per_recipient() == {"Ana.Perez@example.org": 1}

    message = email.message_from_bytes(mail.messages("Ana.Perez@example.org")[0], policy=email.policy.default)
    assert message["To"] == "Ana.Perez@example.org" and "Confirm" in message["Subject"]
    assert "Ana Pérez" not in message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    path = _confirm_path(mail, "Ana.Perez@example.org")
    clock.advance(dt.timedelta(hours=5))
    page = web.get(path)
    assert page.status == 200 and Page(page.text).forms == [{"method": "post"}]
    assert status_of(store, "ana.perez@example.org") == "pending"  # a GET confirms nothing

    assert web.post(path).status == 200
    active = subscribers.get(store, "ana.perez@example.org")
    assert active is not None
    assert (active.status, active.lists, active.consent_at, active.consent_source) == (
        "active",
        ("weekly",),
        clock.now,
        "web",
    )
    assert len(mail.received) == 1  # confirming sends nothing more


def test_a_robot_that_fills_in_the_hidden_field_is_told_to_check_its_inbox_and_nothing_happens(
    web: Web, store: Store, mail: MailServer
) -> None:
    hidden = next(f for f in Page(web.get("/subscribe").text).fields if f["name"] == "website")
    assert (hidden["tabindex"], hidden["autocomplete"], hidden["value"]) == ("-1", "off", "")
    reply = web.post("/subscribe", {"email": "victim@example.org", "list": "news", "website": "https://spam.example"})
    assert reply.status == 200 and "Check your inbox" in reply.text
    assert subscribers.get(store, "victim@example.org") is None and mail.received == []
    _subscribe(web, "person@example.org", website="")  # people leave it empty
    assert mail.count("person@example.org") == 1


def test_an_unsubscribed_person_who_subscribes_again_is_active_only_after_confirming(
    web: Web, store: Store, mail: MailServer
) -> None:
    _member(store, "ed@example.org")
    subscribers.unsubscribe(store, "ed@example.org", NOW - dt.timedelta(days=2))
    _subscribe(web, "ed@example.org")
    assert status_of(store, "ed@example.org") == "unsubscribed"
    assert mail.count("ed@example.org") == 1
    path = _confirm_path(mail, "ed@example.org")
    assert web.get(path).status == 200
    assert status_of(store, "ed@example.org") == "unsubscribed"
    assert web.post(path).status == 200
    assert status_of(store, "ed@example.org") == "active"


def test_an_erased_address_gets_the_usual_answer_and_nothing_is_stored_or_sent(
    web: Web, store: Store, mail: MailServer
) -> None:
    """An address erased on request (GDPR art. 17) is never added back by the form, and the form does not tell."""
    _subscribe(web, "gil@example.org")
    mailed = _confirm_path(mail, "gil@example.org")  # a link mailed before the erasure
    forget(store, "gil@example.org", SECRET, NOW)
    erased = web.post("/subscribe", {"email": "Gil@example.org", "list": "news"})
    usual = web.post("/subscribe", {"email": "new@example.org", "list": "news"})
    assert erased.status == usual.status == 200
    assert erased.text.replace("Gil@example.org", "@") == usual.text.replace("new@example.org", "@")
    assert subscribers.get(store, "gil@example.org") is None and mail.count("gil@example.org") == 1
    assert web.post(mailed).status == 409 and subscribers.get(store, "gil@example.org") is None


def test_a_bounced_or_complained_address_gets_the_usual_answer_and_no_email(
    web: Web, store: Store, mail: MailServer
) -> None:
    """The mail server or the reader's own complaint said no more mail: not even a confirmation."""
    _member(store, "hal@example.org")
    subscribers.mark_bounced(store, "hal@example.org", NOW - dt.timedelta(days=2))
    _member(store, "ivy@example.org")
    subscribers.mark_complained(store, "ivy@example.org", NOW - dt.timedelta(days=2))
    usual = web.post("/subscribe", {"email": "new@example.org", "list": "news"})
    for address, status in (("hal@example.org", "bounced"), ("ivy@example.org", "complained")):
        reply = web.post("/subscribe", {"email": address, "list": "news"})
        assert reply.status == 200
        assert reply.text.replace(address, "@") == usual.text.replace("new@example.org", "@")
        assert status_of(store, address) == status and mail.count(address) == 0


def test_the_form_never_adds_a_list_to_an_active_subscriber_without_confirmation(
    web: Web, store: Store, mail: MailServer
) -> None:
    _member(store, "flo@example.org", ("news",))
    _subscribe(web, "flo@example.org", list="weekly")
    found = subscribers.get(store, "flo@example.org")
    assert found is not None and (found.status, found.lists) == ("active", ("news",))
    assert web.post(_confirm_path(mail, "flo@example.org")).status == 200
    found = subscribers.get(store, "flo@example.org")
    assert found is not None and found.lists == ("news", "weekly")


def test_a_confirmation_link_works_once_and_never_undoes_a_later_unsubscribe(
    web: Web, store: Store, mail: MailServer, clock: Clock
) -> None:
    _subscribe(web, "rae@example.org")
    _subscribe(web, "rae@example.org")  # two emails, two links
    first, second = _confirm_path(mail, "rae@example.org", 0), _confirm_path(mail, "rae@example.org", 1)
    assert web.post(first).status == 200 and status_of(store, "rae@example.org") == "active"
    assert web.post(first).status == 409 and web.get(first).status == 409  # used
    clock.advance(dt.timedelta(hours=1))
    unsubscribe = "/unsubscribe/" + make_token(SECRET, "rae@example.org", "news")
    assert web.post(unsubscribe, {"List-Unsubscribe": "One-Click"}).status == 200
    clock.advance(dt.timedelta(hours=1))
    for replayed in (first, second):  # the used one, and one issued before the unsubscribe but never used
        assert web.post(replayed).status == 409
        assert status_of(store, "rae@example.org") == "unsubscribed"
    _subscribe(web, "rae@example.org")  # asked again after leaving: a new link brings them back
    assert web.post(_confirm_path(mail, "rae@example.org")).status == 200
    assert status_of(store, "rae@example.org") == "active"


def test_a_used_confirmation_link_never_undoes_leaving_that_one_list(
    web: Web, store: Store, mail: MailServer, clock: Clock
) -> None:
    """Leaving one list keeps the reader active on the others: a replayed link for that list must still not work."""
    subscribers.add(store, "una@example.org", lists=["news"], now=NOW, source="cli")
    clock.advance(dt.timedelta(minutes=1))
    _subscribe(web, "una@example.org", list="weekly")
    link = _confirm_path(mail, "una@example.org")
    assert web.post(link).status == 200
    clock.advance(dt.timedelta(hours=1))
    weekly = "/unsubscribe/" + make_token(SECRET, "una@example.org", "weekly")
    assert web.post(weekly, {"List-Unsubscribe": "One-Click"}).status == 200
    clock.advance(dt.timedelta(hours=1))
    assert web.post(link).status == 409
    found = subscribers.get(store, "una@example.org")
    assert found is not None and (found.status, found.lists) == ("active", ("news",))


def test_a_form_never_changes_the_name_or_language_of_someone_on_the_list(
    web: Web, store: Store, mail: MailServer
) -> None:
    subscribers.add(store, "sol@example.org", name="Sol", language="en", lists=["news"], now=NOW, source="cli")
    _subscribe(web, "sol@example.org", name="Mallory", language="es", list="weekly")
    assert web.post(_confirm_path(mail, "sol@example.org")).status == 200  # Sol wants weekly too
    _subscribe(web, "tom@example.org", name="Tom", language="en")
    _subscribe(web, "tom@example.org", name="Mallory", language="es")
    assert web.post(_confirm_path(mail, "tom@example.org")).status == 200
    sol, tom = subscribers.get(store, "sol@example.org"), subscribers.get(store, "tom@example.org")
    assert sol is not None and (sol.name, sol.language, sol.lists) == ("Sol", "en", ("news", "weekly"))
    assert tom is not None and (tom.name, tom.language, tom.status) == ("Tom", "en", "active")


def test_an_expired_confirmation_link_is_refused(web: Web, store: Store, mail: MailServer, clock: Clock) -> None:
    _subscribe(web, "gil@example.org")
    _subscribe(web, "hal@example.org")
    clock.advance(DEFAULT_LIFETIME - dt.timedelta(minutes=1))
    assert web.post(_confirm_path(mail, "hal@example.org")).status == 200  # still in time
    clock.advance(dt.timedelta(minutes=1))
    path = _confirm_path(mail, "gil@example.org")
    assert web.get(path).status == 410
    assert web.post(path).status == 410
    assert (status_of(store, "gil@example.org"), status_of(store, "hal@example.org")) == ("pending", "active")


def test_a_forged_confirmation_link_is_refused(web: Web, store: Store) -> None:
    _subscribe(web, "ivy@example.org")
    forged = make_confirm_token("not the site's secret", "ivy@example.org", "news", NOW + dt.timedelta(days=1))
    for bad in [forged, *_tampered(make_confirm_token(SECRET, "ivy@example.org", "news", NOW + DEFAULT_LIFETIME))]:
        assert web.post("/confirm/" + urllib.parse.quote(bad)).status == 400
    assert web.post("/confirm/" + make_token(SECRET, "ivy@example.org", "news")).status == 400
    assert status_of(store, "ivy@example.org") == "pending"


def test_bad_input_shows_the_form_again_with_the_errors_escaped(web: Web, store: Store, mail: MailServer) -> None:
    reply = web.post("/subscribe", {"email": "not an address <script>", "name": "<b>x</b>", "list": "nope"})
    assert reply.status == 400
    assert "<script>" not in reply.text and "&lt;script&gt;" in reply.text
    assert "<b>x</b>" not in reply.text and "&lt;b&gt;x&lt;/b&gt;" in reply.text
    page = Page(reply.text)
    email_field = next(f for f in page.fields if f.get("name") == "email")
    assert email_field.get("aria-invalid") == "true"
    assert "Please choose a newsletter" in reply.text
    assert subscribers.list_subscribers(store) == [] and mail.received == []


def test_the_form_is_rate_limited_per_client_and_per_address(web: Web, mail: MailServer, clock: Clock) -> None:
    for _ in range(4):
        _subscribe(web, "jo@example.org")  # the same address: three emails a day at most
    assert mail.count("jo@example.org") == 3
    for n in range(6):
        _subscribe(web, f"k{n}@example.org")
    refused = web.post("/subscribe", {"email": "late@example.org", "list": "news"})
    assert refused.status == 429 and int(refused.header("Retry-After") or 0) > 0
    assert mail.count("late@example.org") == 0
    clock.advance(dt.timedelta(hours=1))
    _subscribe(web, "late@example.org")
    assert mail.count("late@example.org") == 1


def test_a_post_from_another_site_is_refused(web: Web, store: Store, mail: MailServer) -> None:
    evil = {"Origin": "https://evil.example"}
    assert web.post("/subscribe", {"email": "kim@example.org", "list": "news"}, evil).status == 403
    assert web.post("/subscribe", {"email": "kim@example.org"}, {"Sec-Fetch-Site": "cross-site"}).status == 403
    assert subscribers.get(store, "kim@example.org") is None and mail.received == []
    for forged in (f"http://127.0.0.1:{web.port}", "https://evil.example", "http://cepei.example.org"):
        # the Host header is the sender's to choose: never what makes an origin ours
        headers = {"Origin": forged, "Host": urllib.parse.urlsplit(forged).netloc}
        assert web.post("/subscribe", {"email": "kim@example.org", "list": "news"}, headers).status == 403, forged
    own = {"Origin": "https://cepei.example.org"}  # the configured site URL
    assert web.post("/subscribe", {"email": "kim@example.org", "list": "news"}, own).status == 200
    path = _confirm_path(mail, "kim@example.org")
    assert web.post(path, headers=evil).status == 403
    assert status_of(store, "kim@example.org") == "pending"
    assert web.post(path, headers={"Origin": "https://cepei.example.org"}).status == 200  # the site's public URL
    assert status_of(store, "kim@example.org") == "active"


def test_without_the_site_secret_nobody_can_subscribe_and_outbox_links_stop_working(
    start: Start, store: Store, mail: MailServer
) -> None:
    _member(store, "lu@example.org")
    with start(PUBLISHER_SECRET=None) as web:
        assert web.get("/subscribe").status == 503
        assert web.post("/subscribe", {"email": "new@example.org", "list": "news"}).status == 503
        outbox_token = make_token(OUTBOX_SECRET, "lu@example.org", "news")  # mail really goes out: not accepted
        assert web.request("POST", f"/unsubscribe/{outbox_token}", b"List-Unsubscribe=One-Click", FORM).status == 503
    assert mail.received == [] and status_of(store, "lu@example.org") == "active"


def test_without_the_site_secret_outbox_links_are_never_taken_even_for_a_trial_outbox(
    start: Start, store: Store, tmp_path: Path
) -> None:
    """The outbox placeholder is in the source for anyone to read: a served site never accepts a token it signed."""
    _member(store, "lu@example.org")
    outbox = make_token(OUTBOX_SECRET, "lu@example.org", "news")
    with start(PUBLISHER_SECRET=None, PUBLISHER_EMAIL_URL=f"maildir:{tmp_path / 'outbox'}") as web:
        answers = [web.get(f"/unsubscribe/{outbox}"), web.post(f"/unsubscribe/{outbox}", {"List-Unsubscribe": "x"})]
        confirm = make_confirm_token(OUTBOX_SECRET, "new@example.org", "news", NOW + dt.timedelta(days=1))
        answers += [web.get(f"/confirm/{confirm}"), web.post(f"/confirm/{confirm}")]
    assert [reply.status for reply in answers] == [503] * 4
    assert "PUBLISHER_SECRET" in answers[0].text and "lu@example.org" not in answers[0].text
    assert status_of(store, "lu@example.org") == "active" and status_of(store, "new@example.org") is None


def test_serve_says_at_start_that_links_are_off_without_the_site_secret(site_root: Path, tmp_path: Path) -> None:
    outbox = {"PUBLISHER_EMAIL_URL": f"maildir:{tmp_path / 'outbox'}", "PUBLISHER_ADMIN_PASSWORD": ADMIN}
    notes = startup_notes(load_site(site_root, env=outbox))
    assert len(notes) == 1 and "PUBLISHER_SECRET" in notes[0]
    assert "unsubscribe links" in notes[0] and "preferences links" in notes[0]
    assert startup_notes(load_site(site_root, env={**outbox, "PUBLISHER_SECRET": SECRET})) == []


# --- the team's pages ----------------------------------------------------------------------------------


def test_the_team_pages_need_the_password(web: Web, start: Start) -> None:
    refused = web.get("/admin/plan")
    assert refused.status == 401
    assert (refused.header("WWW-Authenticate") or "").startswith("Basic ")
    assert web.get("/admin/plan", basic("wrong")).status == 401
    assert web.get("/admin/plan", basic(ADMIN[:-1])).status == 401
    assert web.get("/admin/plan", {"Authorization": "Bearer " + ADMIN}).status == 401
    page = web.get("/admin/plan", basic(ADMIN))
    assert page.status == 200 and ISSUE in page.text
    with start(PUBLISHER_ADMIN_PASSWORD=None) as closed:
        off = closed.get("/admin/plan", basic(ADMIN))
        assert off.status == 403 and "set PUBLISHER_ADMIN_PASSWORD" in off.text


def test_once_locked_out_even_the_right_password_is_refused_until_the_window_ends(web: Web, clock: Clock) -> None:
    statuses = [web.get("/admin/plan", basic(f"guess-{n}")).status for n in range(21)]
    assert statuses == [401] * 20 + [429]
    locked = web.get("/admin/plan", basic(ADMIN))
    assert locked.status == 429 and ISSUE not in locked.text and int(locked.header("Retry-After") or 0) > 0
    assert web.post("/admin/approve/any", headers=basic(ADMIN)).status == 429
    clock.advance(dt.timedelta(minutes=15))
    assert web.get("/admin/plan", basic(ADMIN)).status == 200


def _approve_paths(html: str) -> list[str]:
    return [form["action"] for form in Page(html).forms if form.get("action", "").startswith("/admin/approve/")]


def test_approving_a_dispatch_waiting_for_review(web: Web, store: Store, clock: Clock) -> None:
    paths = _approve_paths(web.get("/admin/plan", basic(ADMIN)).text)
    assert len(paths) == 4, "the reviewed Mastodon rule holds one post per published record"
    path = paths[0]
    dispatch_id = path.rsplit("/", 1)[1]

    assert web.post(path).status == 401
    assert web.post(path, headers={**basic(ADMIN), "Origin": "https://evil.example"}).status == 403
    before = store.get_dispatch(dispatch_id)
    assert before is None or before.state == "waiting_review"
    assert path in _approve_paths(web.get("/admin/plan", basic(ADMIN)).text)

    clock.advance(dt.timedelta(minutes=7))
    approved = web.post(path, headers=basic(ADMIN))
    assert approved.status == 200 and approved.header("Location") is None
    row = store.get_dispatch(dispatch_id)
    assert row is not None
    assert (row.channel, row.state, row.review_approved_at) == ("mastodon", "approved", clock.now)
    assert web.post(path, headers=basic(ADMIN)).status == 409
    assert web.post("/admin/approve/no-such-dispatch", headers=basic(ADMIN)).status == 404
    assert _approve_paths(web.get("/admin/plan", basic(ADMIN)).text) == paths[1:]
    others = [store.get_dispatch(p.rsplit("/", 1)[1]) for p in paths[1:]]
    assert all(other is None or other.state == "waiting_review" for other in others)


# --- every page ----------------------------------------------------------------------------------------


def test_every_page_is_small_accessible_html_and_shows_no_secret(web: Web, store: Store, mail: MailServer) -> None:
    _member(store, "mo@example.org")
    _subscribe(web, "nia@example.org")
    pages = [
        web.get("/"),
        web.get("/subscribe"),
        web.get(_confirm_path(mail, "nia@example.org")),
        web.get("/unsubscribe/" + make_token(SECRET, "mo@example.org", "news")),
        web.get("/unsubscribe/bad"),
        web.get("/unsubscribe"),
        web.get("/nowhere"),
        web.get("/admin/plan"),
        web.get("/admin/plan", basic(ADMIN)),
        web.request("DELETE", "/subscribe"),
    ]
    for reply in pages:
        page = Page(reply.text)
        assert reply.header("Content-Type") == "text/html; charset=utf-8"
        assert page.lang == "en"
        assert {"name": "viewport", "content": "width=device-width, initial-scale=1"} in page.metas
        visible = [f for f in page.fields if f.get("type") not in ("hidden",)]
        assert all(f["id"] in page.labels_for for f in visible), reply.text
        assert "default-src 'none'" in (reply.header("Content-Security-Policy") or "")
        assert SECRET not in reply.text and ADMIN not in reply.text
    assert pages[-1].status == 405 and pages[-1].header("Allow") == "GET, HEAD, POST"


def test_tokens_never_reach_the_request_log(web: Web, store: Store, mail: MailServer) -> None:
    line = '"POST /unsubscribe/eyJhbGci.abcDEF123 HTTP/1.1" 200 512 "GET /confirm/eyJl.xyz HTTP/1.1"'
    assert redacted(line) == '"POST /unsubscribe/… HTTP/1.1" 200 512 "GET /confirm/… HTTP/1.1"'
    _member(store, "ola@example.org")
    _subscribe(web, "pia@example.org")
    tokens = [make_token(SECRET, "ola@example.org", "news"), _confirm_path(mail, "pia@example.org").split("/")[-1]]
    web.get(f"/unsubscribe/{tokens[0]}")
    web.post(f"/confirm/{tokens[1]}")
    deadline = time.monotonic() + 5
    while len(web.log) < 3 and time.monotonic() < deadline:  # a line is written just after its response
        time.sleep(0.01)
    assert any('"GET /unsubscribe/… HTTP/1.1" 200' in entry for entry in web.log), web.log
    assert any('"POST /confirm/… HTTP/1.1" 200' in entry for entry in web.log), web.log
    assert not any(token in entry or token[:20] in entry for token in tokens for entry in web.log)


def test_serve_runs_until_ctrl_c(site_root: Path, tmp_path: Path) -> None:
    port = free_port()
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from publisher.site.config import load_site\n"
        "from publisher.web.server import serve\n"
        f"serve(load_site(Path({str(site_root)!r})), '127.0.0.1', {port})\n"
        "print('stopped', file=sys.stderr)\n"
    )
    env = {**os.environ, "PUBLISHER_DATABASE_URL": f"sqlite:///{tmp_path / 'serve.db'}", "PUBLISHER_SECRET": SECRET}
    env.pop("PUBLISHER_ADMIN_PASSWORD", None)
    process = subprocess.Popen([sys.executable, "-c", script], env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        first = process.stderr.readline()
        assert first.startswith(f"serving Cepei on http://127.0.0.1:{port}/")
        assert "PUBLISHER_ADMIN_PASSWORD" in process.stderr.readline()
        web = Web(port)
        assert web.get("/feeds/rss.xml").status == 200
        assert web.get("/unsubscribe/" + make_token(SECRET, "x@example.org", "news")).status == 200
        process.send_signal(signal.SIGINT)
        _, rest = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0
    assert "stopped" in rest and "Traceback" not in rest
    assert SECRET not in first + rest and "/unsubscribe/…" in rest


# --- on a phone --------------------------------------------------------------------------------------------


def test_the_pages_a_reader_opens_from_an_email_fit_a_phone_screen(web: Web, tmp_path: Path) -> None:
    """Unsubscribing and subscribing happen on the phone the newsletter was read on: laid out 375 px wide."""
    from tests.browser_support import PHONE_WIDTH, on_a_phone

    pages = {
        "subscribe": "/subscribe",
        "unsubscribe": "/unsubscribe/" + make_token(SECRET, "ana.maria.de.los.angeles@example.org", "news"),
        "confirm": "/confirm/" + make_confirm_token(SECRET, "dee@example.org", "news", NOW + dt.timedelta(days=1)),
        "the team's timeline": "/admin/plan",
    }
    for name, path in pages.items():
        reply = web.get(path, basic(ADMIN) if path.startswith("/admin") else None)
        assert reply.status == 200, name
        layout = on_a_phone(reply.text, tmp_path)
        assert layout.too_wide == [], name
        assert layout.scroll_width <= PHONE_WIDTH, name
