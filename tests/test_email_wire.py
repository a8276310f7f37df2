"""The fast wire writer gives exactly the bytes of ``as_bytes(policy=SMTP)``, or leaves the job to it."""

from __future__ import annotations

import contextlib
import datetime as dt
import email
import email.policy
from collections.abc import Iterator
from email.message import EmailMessage, Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from publisher.channels.mail_transport import prepare, smtp_payload
from publisher.channels.wire import message_bytes
from publisher.render.email import Issue
from publisher.render.message import build_message

SMTP = email.policy.SMTP


def newsletter_issue(html: str, text: str) -> Issue:
    return Issue(
        id="2018-02-09-paris",
        kind="single",
        language="es",
        subject="Cooperación Sur-Sur: la reunión de París",
        preheader="",
        html=html,
        text=text,
        record_ids=("2018-02-09-paris",),
    )


def built(to: str, html: str, text: str) -> EmailMessage:
    return build_message(
        newsletter_issue(html, text),
        sender="Cepei <news@cepei.example.org>",
        to=to,
        html=html,
        text=text,
        headers={
            "Reply-To": "comms@cepei.example.org",
            "List-Id": "<news.cepei.example.org>",
            "List-Unsubscribe": "<https://cepei.example.org/unsubscribe/"
            + "t" * 90
            + ">, <mailto:x@cepei.example.org>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
        message_id=f"<d1.{len(to)}@cepei.example.org>",
        date=dt.datetime(2018, 2, 9, 18, tzinfo=dt.UTC),
    )


def samples() -> list[Message]:
    plain = EmailMessage()
    plain["From"], plain["To"], plain["Subject"] = "a@example.org", "b@example.org", "Ünïcödé " * 12
    plain.set_content("línea uno\n.punto\r\nline three\rno newline at the end")
    mixed = EmailMessage()
    mixed["From"], mixed["To"] = '"Doe, Jane" <jane@example.org>', "x@example.org, y@example.org"
    mixed.set_content("text")
    mixed.add_alternative("<p>html</p>", subtype="html")
    mixed.add_attachment(b"\x00\x01" * 300, maintype="application", subtype="octet-stream", filename="a.bin")
    legacy = MIMEMultipart("alternative")
    legacy["Subject"] = "compat32 " * 15
    legacy.attach(MIMEText("plain", "plain", "utf-8"))
    legacy.attach(MIMEText("<b>é</b>", "html", "utf-8"))
    parsed = email.message_from_bytes(mixed.as_bytes(), policy=email.policy.default)
    with_preamble = EmailMessage()
    with_preamble.set_content("a")
    with_preamble.add_alternative("<p>b</p>", subtype="html")
    with_preamble.preamble = "This is a multi-part message in MIME format.\n"
    with_preamble.epilogue = "\nthe end\n"
    empty = EmailMessage()
    empty["Subject"] = "no body"
    return [plain, mixed, legacy, parsed, with_preamble, empty]


@contextlib.contextmanager
def no_generator() -> Iterator[None]:
    """Within it, falling back to the standard generator fails the test: the fast path must do it all."""

    def refuse(*args: object, **kwargs: object) -> bytes:
        raise AssertionError("fell back to as_bytes()")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Message, "as_bytes", refuse)
        yield


@pytest.mark.parametrize("message", samples(), ids=["8bit-text", "mixed", "compat32", "parsed", "preamble", "empty"])
def test_the_same_bytes_as_the_generator(message: Message) -> None:
    expected = message.as_bytes(policy=SMTP)
    with no_generator():
        assert message_bytes(message) == expected


def test_a_newsletter_gives_the_same_bytes_and_shares_its_folded_headers() -> None:
    html = "<p>" + "Hola " * 400 + "</p>\n" * 3
    first, second = built("ana@example.org", html, "Hola\n" * 50), built("bo@example.org", html, "Hola\n" * 50)
    expected = [m.as_bytes(policy=SMTP) for m in (first, second, first)]
    with no_generator():
        assert [message_bytes(m) for m in (first, second, first)] == expected
    assert b"\r\n" in message_bytes(first) and b"\n" not in message_bytes(first).replace(b"\r\n", b"")


@settings(max_examples=60, deadline=None)
@given(
    text=st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=300),
    html=st.text(max_size=300),
    subject=st.text(min_size=1, max_size=120).filter(lambda s: s.splitlines() == [s] and bool(s.strip())),
)
def test_any_issue_gives_the_same_bytes(text: str, html: str, subject: str) -> None:
    message = build_message(
        Issue(id="i", kind="single", language="en", subject=subject, preheader="", html="", text="", record_ids=()),
        sender="news@example.org",
        to="ana@example.org",
        html=html,
        text=text,
    )
    expected = message.as_bytes(policy=SMTP)
    with no_generator():
        assert message_bytes(message) == expected


def test_what_it_does_not_write_itself_goes_to_the_generator() -> None:
    no_boundary = MIMEMultipart("mixed")
    no_boundary.attach(MIMEText("a"))
    no_boundary.set_param("boundary", "", header="Content-Type")
    forwarded = EmailMessage()
    forwarded.set_content("see below")
    inner = EmailMessage()
    inner["Subject"] = "inner"
    inner.set_content("inner body")
    forwarded.add_attachment(inner)
    for message in (no_boundary, forwarded):
        assert message_bytes(message) == message.as_bytes(policy=SMTP)


def test_bytes_in_wire_form_are_sent_as_they_are() -> None:
    raw = b"From: Cepei <news@cepei.example.org>\nMessage-ID: <m1@cepei.example.org>\nSubject: hi\n\n.dot\nend"
    outgoing = prepare(raw)
    assert (outgoing.sender, outgoing.message_id, outgoing.crlf) == (
        "news@cepei.example.org",
        "<m1@cepei.example.org>",
        False,
    )
    assert smtp_payload(outgoing.data, crlf=outgoing.crlf).endswith(b"\r\n\r\n..dot\r\nend\r\n.\r\n")
    with pytest.raises(ValueError, match="no From"):
        prepare(b"Subject: nobody\r\n\r\nbody")
