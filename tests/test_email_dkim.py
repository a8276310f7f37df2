"""DKIM signing (dkimpy), verified with dkimpy against the generated public key."""

from __future__ import annotations

import base64
import email
import email.policy
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from publisher.channels.email import EmailChannel, dkim_sign
from publisher.errors import InvalidInput
from publisher.site.config import Site, load_site
from publisher.site.settings import EmailSettings
from tests.smtp_support import MailServer, sample_message


@pytest.fixture
def server() -> Iterator[MailServer]:
    with MailServer() as running:
        yield running


# -- DKIM ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dkim_key() -> tuple[bytes, bytes]:
    """(private key PEM, DNS TXT record) for selector `news`, domain cepei.example.org."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return pem, b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)


def dns_for(record: bytes) -> Callable[..., bytes | None]:
    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        return record if name == b"news._domainkey.cepei.example.org." else None

    return lookup


def newsletter(to: str) -> EmailMessage:
    msg = sample_message(1, to)
    msg["List-Id"] = "<news.cepei.example.org>"
    msg["List-Unsubscribe"] = "<https://cepei.example.org/unsubscribe/abc>"
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    return msg


def test_dkim_signature_verifies_and_covers_the_unsubscribe_headers(dkim_key: tuple[bytes, bytes]) -> None:
    pem, record = dkim_key
    signed = dkim_sign(
        newsletter("ana@example.org").as_bytes(policy=email.policy.SMTP), "news", "cepei.example.org", pem
    )
    assert dkim.verify(signed, dnsfunc=dns_for(record))
    header = email.message_from_bytes(signed, policy=email.policy.default)["DKIM-Signature"]
    signed_names = {h.strip() for h in header.split("h=")[1].split(";")[0].split(":")}
    assert {
        "from",
        "to",
        "subject",
        "date",
        "message-id",
        "list-id",
        "list-unsubscribe",
        "list-unsubscribe-post",
    } <= signed_names
    for old, new in [
        (b"List-Unsubscribe-Post: List-Unsubscribe=One-Click", b"List-Unsubscribe-Post: nothing"),
        (b"Issue 1", b"Issue 2"),
    ]:
        assert not dkim.verify(signed.replace(old, new), dnsfunc=dns_for(record))


def test_dkim_signed_mail_arrives_verifiable(
    server: MailServer, dkim_key: tuple[bytes, bytes], example_site: Path
) -> None:
    pem, record = dkim_key
    key_file = example_site / "dkim.pem"
    key_file.write_bytes(pem)
    site = load_site(example_site, env={"PUBLISHER_EMAIL_URL": server.url()})
    email_settings = EmailSettings(
        url="maildir:x", dkim_selector="news", dkim_domain="cepei.example.org", dkim_key="dkim.pem"
    )
    site = Site(root=site.root, settings=site.settings.model_copy(update={"email": email_settings}), env=site.env)
    channel = EmailChannel.from_site(site)
    assert channel.signer is not None and not channel.is_outbox
    assert channel.send(newsletter("ana@example.org"), "ana@example.org").outcome == "sent"
    (received,) = server.messages("ana@example.org")
    assert received.startswith(b"DKIM-Signature: ")
    assert dkim.verify(received, dnsfunc=dns_for(record))


def test_a_pkcs1_key_from_the_environment_signs_too(dkim_key: tuple[bytes, bytes], example_site: Path) -> None:
    pem, record = dkim_key
    traditional = serialization.load_pem_private_key(pem, password=None).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    assert traditional.startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    site = with_dkim(example_site, {"PUBLISHER_DKIM_KEY": traditional.decode()}, dkim_key=None)
    channel = EmailChannel.from_site(site)  # the default Maildir: signed all the same
    assert channel.is_outbox and channel.signer is not None
    assert channel.send(newsletter("ana@example.org"), "ana@example.org").sent
    (stored,) = (example_site / "outbox/mail/new").iterdir()
    assert dkim.verify(stored.read_bytes(), dnsfunc=dns_for(record))


def with_dkim(site_root: Path, env: dict[str, str], **dkim: str | None) -> Site:
    site = load_site(site_root, env=env)
    fields = {"dkim_selector": "news", "dkim_domain": "cepei.example.org", "dkim_key": "dkim.pem", **dkim}
    settings = site.settings.model_copy(update={"email": EmailSettings(**fields)})
    return Site(root=site.root, settings=settings, env=site.env)


@pytest.mark.parametrize(
    ("dkim", "key_text", "field", "words"),
    [
        ({"dkim_selector": None, "dkim_key": None}, None, "email.dkim_selector", "is required"),
        ({}, None, "email.dkim_key", "cannot read the key file"),
        ({}, "not a key", "email.dkim_key", "not a PEM RSA private key"),
        ({"dkim_key": None}, None, "email.dkim_key", "PUBLISHER_DKIM_KEY"),
    ],
)
def test_dkim_settings_are_checked(
    example_site: Path,
    dkim_key: tuple[bytes, bytes],
    dkim: dict[str, str | None],
    key_text: str | None,
    field: str,
    words: str,
) -> None:
    if key_text is not None:
        (example_site / "dkim.pem").write_text(key_text)
    env = {"PUBLISHER_DKIM_KEY": dkim_key[0].decode()} if field == "email.dkim_selector" else {}
    with pytest.raises(InvalidInput) as caught:
        EmailChannel.from_site(with_dkim(example_site, env, **dkim))
    assert [(p.field, words in p.message) for p in caught.value.problems] == [(field, True)]
    assert "not a key" not in str(caught.value)  # the key's text is never shown
