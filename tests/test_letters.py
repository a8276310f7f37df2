"""Each recipient's message bytes (publisher.letters) against the reference, `build_message`."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from publisher.config import load_site
from publisher.dispatch import final_state
from publisher.errors import HeaderInjection
from publisher.letters import Letters
from publisher.records import load_records
from publisher.render.email import render_issue
from publisher.unsubscribe import list_unsubscribe_headers
from tests.dispatch_support import PARIS, SECRET

NOW = dt.datetime(2018, 2, 9, 17, 30, 12, tzinfo=dt.UTC)


def letters_for(site_dir: Path, record_ids: list[str], *, test: bool = False) -> Letters:
    site = load_site(site_dir, {})
    records = [r for r in load_records(site.events, site.root) if r.id in record_ids]
    issue = render_issue(records, site.settings, None, list_name="news")
    return Letters(site, issue, "news", "0123456789abcdef", SECRET, test=test)


def parse(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def same_message(ours: EmailMessage, reference: EmailMessage) -> None:
    assert [name for name, _ in ours.items()] == [name for name, _ in reference.items()]
    for (name, value), (_, expected) in zip(ours.items(), reference.items(), strict=True):
        assert " ".join(str(value).split()) == " ".join(str(expected).split()), name
    mine = [(part.get_content_type(), part.get_content()) for part in ours.walk() if not part.is_multipart()]  # type: ignore[attr-defined]
    theirs = [(p.get_content_type(), p.get_content()) for p in reference.walk() if not p.is_multipart()]  # type: ignore[attr-defined]
    assert mine == theirs


@pytest.mark.parametrize(
    ("records", "address", "name", "test"),
    [
        ([PARIS], "ana.perez@example.org", "Ana Pérez", False),
        ([PARIS], "bo@example.org", "", True),  # no name: "Hello," ; a test send: [TEST]
        (
            ["2018-03-15-informe-agenda-2030", "2018-04-02-call-for-papers-data-for-development"],
            "c@example.org",
            "Cy",
            False,
        ),
        ([PARIS], "josé@example.org", "José", False),  # an address only UTF-8 can spell
    ],
)
def test_the_bytes_of_a_letter_are_the_reference_message(
    example_site: Path, records: list[str], address: str, name: str, test: bool
) -> None:
    letters = letters_for(example_site, records, test=test)
    ours = letters.letter(address, name, NOW)
    assert b"\n" not in ours.replace(b"\r\n", b"")  # wire form: CRLF line ends only
    reference = letters.message(address, name, NOW)
    policy = email.policy.SMTP if address.isascii() else email.policy.SMTPUTF8
    same_message(parse(ours), parse(reference.as_bytes(policy=policy)))
    if address.isascii():
        assert ours.isascii()


def test_list_unsubscribe_is_plain_uris_folded_after_the_comma(example_site: Path) -> None:
    letters = letters_for(example_site, [PARIS])
    ours = letters.letter("ana@example.org", "Ana", NOW)
    head = ours.split(b"\r\n\r\n", 1)[0].decode("ascii")
    link = letters.unsubscribe_link("ana@example.org")
    assert f"List-Unsubscribe: <{link}>,\r\n <mailto:comms@cepei.example.org?subject=unsubscribe>\r\n" in head + "\r\n"
    expected = list_unsubscribe_headers(link, "comms@cepei.example.org")
    assert letters._headers(link) | expected == letters._headers(link)  # the same values as the reference helper
    assert {k: letters._headers(link)[k] for k in expected} == expected


def test_a_line_break_in_an_address_is_refused(example_site: Path) -> None:
    letters = letters_for(example_site, [PARIS])
    with pytest.raises(HeaderInjection):
        letters.letter("ana@example.org\r\nBcc: mallory@example.org", "Ana", NOW)


@pytest.mark.parametrize(
    ("counts", "state"),
    [
        ({}, "sent"),
        ({"sent": 3}, "sent"),
        ({"sent": 2, "failed_temporary": 1}, "partly_sent"),
        ({"pending": 3}, "partly_sent"),  # never "due": the store would take it for a dispatch not started
        ({"sent": 2, "failed_permanent": 1}, "partly_sent"),
        ({"failed_permanent": 2}, "failed"),
        ({"unknown": 1, "failed_permanent": 1}, "unknown"),
    ],
)
def test_final_state(counts: dict[str, int], state: str) -> None:
    assert final_state(counts) == state
