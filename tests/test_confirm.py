"""Confirmation tokens (double opt-in): signed, expiring, never interchangeable with unsubscribe tokens."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from publisher.audience.confirm import (
    DEFAULT_LIFETIME,
    Confirmation,
    confirm_url,
    make_confirm_token,
    read_confirm_token,
    verify_confirm_token,
)
from publisher.audience.unsubscribe import make_token, verify_token

SECRET = "a long random site secret"
NOW = dt.datetime(2026, 11, 20, 9, 0, tzinfo=dt.UTC)
EXPIRES = NOW + DEFAULT_LIFETIME
URL_SAFE = re.compile(r"^[A-Za-z0-9_.-]+$")


def test_a_token_round_trips_with_its_name_language_and_expiry() -> None:
    token = make_confirm_token(SECRET, "ana@example.org", "weekly", EXPIRES, name="Ana Pérez", language="es")
    assert URL_SAFE.match(token)
    assert verify_confirm_token(SECRET, token, NOW) == Confirmation(
        "ana@example.org", "weekly", EXPIRES, "Ana Pérez", "es"
    )


def test_a_token_works_until_its_expiry_and_not_after() -> None:
    token = make_confirm_token(SECRET, "ana@example.org", "news", EXPIRES)
    assert verify_confirm_token(SECRET, token, EXPIRES - dt.timedelta(seconds=1)) is not None
    assert verify_confirm_token(SECRET, token, EXPIRES) is None
    expired = read_confirm_token(SECRET, token)  # the signature still checks: the page can say "expired"
    assert expired is not None and expired.expired(EXPIRES)


def test_confirm_and_unsubscribe_tokens_are_never_taken_for_each_other() -> None:
    unsubscribe = make_token(SECRET, "ana@example.org", "news")
    confirm = make_confirm_token(SECRET, "ana@example.org", "news", EXPIRES)
    assert read_confirm_token(SECRET, unsubscribe) is None
    assert verify_token(SECRET, confirm) is None
    # The same payload signed for the other purpose does not pass either.
    payload = confirm.split(".")[0]
    assert read_confirm_token(SECRET, f"{payload}.{unsubscribe.split('.')[1]}") is None


def _forged(data: dict[str, object], signature: str) -> str:
    raw = json.dumps(data, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode() + "." + signature


def test_tampered_tokens_fail() -> None:
    token = make_confirm_token(SECRET, "ana@example.org", "news", EXPIRES)
    payload, signature = token.split(".")
    flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    later = _forged({"e": "ana@example.org", "l": "news", "x": int(EXPIRES.timestamp()) + 86400}, signature)
    for bad in [
        later,  # the expiry pushed back
        _forged({"e": "eve@example.org", "l": "news", "x": int(EXPIRES.timestamp())}, signature),
        f"{payload}.{flipped}",
        f"{payload}.{signature[:-1]}",
        f"{payload}=.{signature}",
        payload,
        "",
        ".",
        "!!!!." + signature,
    ]:
        assert read_confirm_token(SECRET, bad) is None, bad
    assert read_confirm_token("another secret", token) is None
    assert read_confirm_token("", token) is None


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="time zone"):
        make_confirm_token(SECRET, "ana@example.org", "news", dt.datetime(2026, 11, 23, 9, 0))
    with pytest.raises(ValueError, match="empty"):
        make_confirm_token("", "ana@example.org", "news", EXPIRES)
    with pytest.raises(ValueError):
        make_confirm_token(SECRET, "", "news", EXPIRES)


@given(
    email=st.emails(),
    list_name=st.text(min_size=1, max_size=30),
    name=st.none() | st.text(max_size=60),
)
def test_any_address_list_and_name_round_trip(email: str, list_name: str, name: str | None) -> None:
    token = make_confirm_token(SECRET, email, list_name, EXPIRES, name=name)
    assert URL_SAFE.match(token)
    found = verify_confirm_token(SECRET, token, NOW)
    assert found is not None and (found.email, found.list_name, found.name) == (email, list_name, name or None)


def test_the_url() -> None:
    assert confirm_url("https://cepei.example.org/", "t.s") == "https://cepei.example.org/confirm/t.s"
