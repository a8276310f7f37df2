"""A reader in a real browser (Debian's headless Chromium, over the DevTools protocol): fills in the subscribe
form, follows the confirmation link from the mail (a Maildir), and unsubscribes from the link an issue carries."""

from __future__ import annotations

import datetime as dt
import mailbox
import shutil
from pathlib import Path

from publisher.audience import subscribers
from publisher.audience.unsubscribe import make_token, unsubscribe_url
from publisher.build.builder import build
from publisher.site.config import load_site
from publisher.store.dispatches import open_store
from tests.cdp_support import Browser
from tests.conftest import REPO
from tests.smtp_support import free_port
from tests.web_support import Clock, link_in, running

SECRET = "browser-test-secret-5d1e"


def test_subscribe_confirm_and_unsubscribe_in_a_real_browser(tmp_path: Path) -> None:
    port = free_port()
    site_url = f"http://127.0.0.1:{port}"  # the browser's Origin is the configured site's
    root = tmp_path / "site"
    root.mkdir()
    for name in ("events", "media"):
        shutil.copytree(REPO / name, root / name)
    config = (REPO / "publisher.toml").read_text(encoding="utf-8")
    (root / "publisher.toml").write_text(config.replace('url = "https://cepei.example.org"', f'url = "{site_url}"', 1))
    assert site_url in (root / "publisher.toml").read_text(encoding="utf-8")
    build(load_site(root, env={}))
    maildir = tmp_path / "mail"
    site = load_site(root, env={"PUBLISHER_SECRET": SECRET, "PUBLISHER_EMAIL_URL": f"maildir:{maildir}"})
    store = open_store(f"sqlite:///{tmp_path / 'publisher.db'}")
    clock = Clock(dt.datetime(2018, 2, 1, 12, 0, tzinfo=dt.UTC))
    try:
        with running(site, store, clock, port), Browser(tmp_path) as browser:
            browser.go(f"{site_url}/subscribe")
            browser.wait_for("Email address")
            browser.run(
                "document.getElementById('email').value = 'reader@example.org';"
                "document.getElementById('name').value = 'Ana Reader';"
                "document.querySelector('form button[type=submit]').click(); true"
            )
            assert "reader@example.org" in browser.wait_for("Check your inbox")
            found = subscribers.get(store, "reader@example.org")
            assert found is not None and found.status == "pending"

            messages = [message.as_bytes() for message in mailbox.Maildir(maildir, create=False)]
            assert len(messages) == 1
            browser.go(link_in(messages[0], rf"{site_url}/confirm/\S+"))
            browser.wait_for("reader@example.org")
            browser.run("document.querySelector('form button').click(); true")
            browser.wait_for("You are subscribed")
            found = subscribers.get(store, "reader@example.org")
            assert found is not None and (found.status, found.name) == ("active", "Ana Reader")

            # The link every issue carries for this reader (the email dispatch signs it the same way).
            browser.go(unsubscribe_url(site_url, make_token(SECRET, "reader@example.org", "news")))
            browser.wait_for("Unsubscribe")
            browser.run("document.querySelector('form button').click(); true")
            assert "reader@example.org" in browser.wait_for("You are unsubscribed")
            found = subscribers.get(store, "reader@example.org")
            assert found is not None and found.status == "unsubscribed"
    finally:
        store.close()
