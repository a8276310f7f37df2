"""Each recipient's message bytes (publisher.render.letters) against the reference, `build_message`."""

from __future__ import annotations

import binascii
import datetime as dt
import email
import email.base64mime
import email.policy
import hashlib
import io
from email.generator import BytesGenerator
from email.message import EmailMessage
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from publisher.audience.unsubscribe import list_unsubscribe_headers
from publisher.channels.mail_transport import prepare
from publisher.dispatch.context import final_state
from publisher.errors import HeaderInjection
from publisher.render.base64_lines import base64_lines
from publisher.render.email import Issue, personalise, render_issue
from publisher.render.letter_parts import Parts
from publisher.render.letters import Letters, message_id
from publisher.site.config import load_site
from publisher.site.records import load_records
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
    ours = letters.letter(address, name, NOW).data
    assert b"\n" not in ours.replace(b"\r\n", b"")  # wire form: CRLF line ends only
    reference = letters.message(address, name, NOW)
    policy = email.policy.SMTP if address.isascii() else email.policy.SMTPUTF8
    same_message(parse(ours), parse(reference.as_bytes(policy=policy)))
    if address.isascii():
        assert ours.isascii()


def test_list_unsubscribe_is_plain_uris_folded_after_the_comma(example_site: Path) -> None:
    letters = letters_for(example_site, [PARIS])
    ours = letters.letter("ana@example.org", "Ana", NOW).data
    head = ours.split(b"\r\n\r\n", 1)[0].decode("ascii")
    link = letters.unsubscribe_link("ana@example.org")
    assert f"List-Unsubscribe: <{link}>,\r\n <mailto:comms@cepei.example.org?subject=unsubscribe>\r\n" in head + "\r\n"
    expected = list_unsubscribe_headers(link, "comms@cepei.example.org")
    assert letters._headers(link) | expected == letters._headers(link)  # the same values as the reference helper
    assert {k: letters._headers(link)[k] for k in expected} == expected


def test_a_message_id_cannot_be_made_without_the_secret_so_a_bounce_for_it_cannot_be_forged(
    example_site: Path,
) -> None:
    """Keyed with the link secret, stable per dispatch and recipient (a resend carries the same one)."""
    letters = letters_for(example_site, [PARIS])
    ident = letters.letter("Ana@example.org", "Ana", NOW)["Message-ID"]
    assert ident == letters.letter("ana@example.org", "Bo", NOW + dt.timedelta(hours=1))["Message-ID"]
    assert ident == letters.message("ana@example.org", "Ana", NOW)["Message-ID"]  # the reference agrees
    unkeyed = hashlib.blake2b(b"ana@example.org", digest_size=8).hexdigest()
    assert ident != f"<0123456789abcdef.{unkeyed}@cepei.example.org>"  # what anyone knowing the address could write
    assert ident.startswith("<0123456789abcdef.") and ident.endswith("@cepei.example.org>")
    another = message_id("0123456789abcdef", "ana@example.org", "cepei.example.org", "another secret")
    assert another != ident and len(another) == len(ident)
    assert message_id("d1", "Ana@example.org", "h.example", None) == f"<d1.{unkeyed}@h.example>"  # no secret: as before


@pytest.mark.parametrize("address", ["ana@example.org", "josé@example.org"])
def test_a_letter_is_its_bytes_however_it_is_serialised(example_site: Path, address: str) -> None:
    letter = letters_for(example_site, [PARIS]).letter(address, "Ana", NOW)
    outgoing = prepare(letter)  # what the email channel does with it
    assert (outgoing.data, outgoing.crlf) == (letter.data, True)
    assert outgoing.sender == "news@cepei.example.org"
    assert outgoing.message_id == letter["Message-ID"] and outgoing.message_id.startswith("<0123456789abcdef.")
    for policy in (email.policy.SMTP, email.policy.SMTPUTF8, email.policy.default):
        out = io.BytesIO()
        BytesGenerator(out, policy=policy).flatten(letter)
        assert out.getvalue() == letter.data
    assert bytes(letter) == letter.as_bytes() == letter.data
    assert letter["To"] == address and letter.get_content_type() == "multipart/alternative"


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


@pytest.fixture(scope="module")
def issues(tmp_path_factory: pytest.TempPathFactory) -> list[Issue]:
    from tests.conftest import REPO

    site = load_site(REPO, {})
    records = {r.id: r for r in load_records(site.events, site.root)}
    chosen = [[PARIS], ["2018-03-15-informe-agenda-2030"], [PARIS, "2018-04-02-call-for-papers-data-for-development"]]
    return [render_issue([records[i] for i in ids], site.settings, None, list_name="news") for ids in chosen]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.text(max_size=40),
    local=st.from_regex(r"[a-z0-9._%+=-]{1,30}", fullmatch=True),
    token=st.from_regex(r"[A-Za-z0-9_=.-]{0,120}", fullmatch=True),
    which=st.integers(0, 2),
)
def test_parts_decode_to_what_personalise_gives(
    issues: list[Issue], name: str, local: str, token: str, which: int
) -> None:
    issue = issues[which]
    email, url = f"{local}@example.org", f"https://cepei.example.org/unsubscribe/{token}"
    text, html = Parts(issue).encode(name=name, unsubscribe_url=url, email=email)
    want_html, want_text = personalise(issue, name=name, unsubscribe_url=url, email=email)
    assert binascii.a2b_base64(html.replace(b"\r\n", b"")).decode("utf-8") == want_html
    assert binascii.a2b_qp(text).decode("utf-8").replace("\r\n", "\n") == want_text
    for encoded in (text, html):
        assert all(len(line) <= 76 for line in encoded.split(b"\r\n"))
        assert b"\n" not in encoded.replace(b"\r\n", b"")


@settings(max_examples=300)
@given(st.binary(max_size=400))
def test_base64_lines_are_what_the_email_package_writes(data: bytes) -> None:
    # The stdlib's MIME encoder is the oracle: 76-character lines, each ended, nothing for nothing.
    expected = email.base64mime.body_encode(data, maxlinelen=76, eol="\r\n").encode("ascii")
    assert base64_lines(data) == expected
    assert base64_lines(data, b"\n") == expected.replace(b"\r\n", b"\n")
    assert all(len(line) <= 76 for line in base64_lines(data).split(b"\r\n"))
    assert binascii.a2b_base64(base64_lines(data)) == data
