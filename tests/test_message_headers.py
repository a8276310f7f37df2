"""List-Unsubscribe stays a readable URL however long its token (RFC 2369, RFC 8058)."""

from __future__ import annotations

import email
import email.policy

from publisher.render.email import render_issue
from publisher.render.message import build_message
from publisher.site.config import load_site
from publisher.site.records import load_records
from tests.conftest import REPO


def test_a_long_list_unsubscribe_url_is_never_turned_into_encoded_words() -> None:
    site = load_site(REPO, env={})
    record = load_records(site.events, site.root)[-1]
    issue = render_issue([record], site.settings)
    url = "https://cepei.example.org/unsubscribe/" + "Ab3_" * 40
    value = f"<{url}>, <mailto:comms@cepei.example.org?subject=unsubscribe>"
    message = build_message(
        issue,
        sender="news@cepei.example.org",
        to="ana@example.org",
        html="<p>x</p>",
        text="x",
        headers={"List-Unsubscribe": value, "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"},
        message_id="<1@cepei.example.org>",
    )
    wire = message.as_bytes(policy=email.policy.SMTP)
    assert b"=?utf-8?" not in wire
    assert f"List-Unsubscribe: <{url}>,\r\n <mailto:".encode() in wire
    parsed = email.message_from_bytes(wire, policy=email.policy.default)
    assert str(parsed["List-Unsubscribe"]) == value
    assert all(len(line) <= 998 for line in wire.split(b"\r\n"))
