"""Unsubscribe tokens (HMAC-signed), their URL, and the RFC 8058 headers."""

from __future__ import annotations

import base64
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from publisher.audience.unsubscribe import list_unsubscribe_headers, make_token, unsubscribe_url, verify_token

SECRET = "a long random site secret"
URL_SAFE = re.compile(r"^[A-Za-z0-9_.-]+$")


def test_a_token_round_trips_and_is_url_safe() -> None:
    token = make_token(SECRET, "ana+news@example.org", "news")
    assert URL_SAFE.match(token)
    assert verify_token(SECRET, token) == ("ana+news@example.org", "news")
    assert token == make_token(SECRET, "ana+news@example.org", "news")  # stable: the same link in every resend


def test_a_token_depends_on_the_secret_the_address_and_the_list() -> None:
    token = make_token(SECRET, "ana@example.org", "news")
    assert verify_token("another secret", token) is None
    assert token != make_token(SECRET, "ana@example.org", "weekly")
    assert token != make_token(SECRET, "bo@example.org", "news")


def test_tampered_tokens_fail() -> None:
    token = make_token(SECRET, "ana@example.org", "news")
    payload, signature = token.split(".")
    other_payload = make_token(SECRET, "bo@example.org", "news").split(".")[0]
    flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    forged_payload = base64.urlsafe_b64encode(b"eve@example.org\nnews").rstrip(b"=").decode()
    for bad in [
        f"{other_payload}.{signature}",  # someone else's address with ana's signature
        f"{forged_payload}.{signature}",
        f"{payload}.{flipped}",
        f"{payload}.{signature[:-1]}",  # truncated
        f"{payload}={'.'}{signature}",  # padded: a second spelling of the same payload
        f"{payload}{signature}",
        payload,
        "",
        ".",
        "not a token at all",
        f"{payload}.{signature}.extra",
        "!!!!." + signature,
    ]:
        assert verify_token(SECRET, bad) is None, bad


@given(
    email=st.emails(),
    list_name=st.text(min_size=1, max_size=40).filter(lambda s: "\n" not in s and "\r" not in s),
)
def test_any_address_and_list_round_trip(email: str, list_name: str) -> None:
    token = make_token(SECRET, email, list_name)
    assert URL_SAFE.match(token)
    assert verify_token(SECRET, token) == (email, list_name)


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        make_token("", "ana@example.org", "news")
    with pytest.raises(ValueError, match="line break"):
        make_token(SECRET, "ana@example.org\nBcc: eve@example.org", "news")
    with pytest.raises(ValueError):
        make_token(SECRET, "", "news")
    assert verify_token("", "x.y") is None


def test_the_url_and_the_headers() -> None:
    token = make_token(SECRET, "ana@example.org", "news")
    url = unsubscribe_url("https://cepei.example.org/", token)
    assert url == f"https://cepei.example.org/unsubscribe/{token}"
    assert list_unsubscribe_headers(url, "leave@cepei.example.org") == {
        "List-Unsubscribe": f"<{url}>, <mailto:leave@cepei.example.org?subject=unsubscribe>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
    assert list_unsubscribe_headers(url)["List-Unsubscribe"] == f"<{url}>"
    assert list_unsubscribe_headers(url, "mailto:leave@cepei.example.org?subject=stop")["List-Unsubscribe"].endswith(
        "<mailto:leave@cepei.example.org?subject=stop>"
    )


@pytest.mark.parametrize(
    ("url", "mailto"),
    [
        ("https://x.org/unsubscribe/t\r\nBcc: eve@example.org", None),
        ("https://x.org/a>, <https://evil.example", None),
        ("javascript:alert(1)", None),
        ("/unsubscribe/t", None),
        ("https://x.org/unsubscribe/t", "leave@x.org>\r\nBcc: eve@example.org"),
    ],
)
def test_headers_refuse_what_could_break_them(url: str, mailto: str | None) -> None:
    with pytest.raises(ValueError):
        list_unsubscribe_headers(url, mailto)
