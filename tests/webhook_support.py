"""Amazon SNS and Mailgun as the tests play them: a signing key and certificate of our own, messages signed
exactly as SNS signs them, a loopback server handing out the certificate (and taking subscription
confirmations), and Mailgun's HMAC signature.

The string SNS signs is written out here from AWS's page ("Verifying the signatures of Amazon SNS
messages"), not taken from the code under test: ``name\\nvalue\\n`` for Message, MessageId, Subject (when
present), Timestamp, TopicArn, Type (a Notification) or Message, MessageId, SubscribeURL, Timestamp, Token,
TopicArn, Type (a SubscriptionConfirmation).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import http.server
import itertools
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

TOPIC = "arn:aws:sns:eu-west-1:123456789012:publisher-ses-events"
OTHER_TOPIC = "arn:aws:sns:eu-west-1:123456789012:someone-elses"
MAILGUN_KEY = "mailgun-signing-key-4b1d"
CERT_PATH = "/SimpleNotificationService-7506a1e35b36ef5a444dd1a8e7cc3ed8.pem"  # named as SNS names its certificates
_numbers = itertools.count(1)


def signing_pair(name: str = "sns.eu-west-1.amazonaws.com") -> tuple[rsa.RSAPrivateKey, bytes]:
    """A fresh RSA key and a self-signed certificate (PEM) for it."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    start = dt.datetime(2017, 1, 1, tzinfo=dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    return key, certificate.public_bytes(serialization.Encoding.PEM)


def string_to_sign(message: dict[str, str]) -> bytes:
    if message["Type"] == "Notification":
        names = ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
    else:
        names = ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"]
    return "".join(f"{name}\n{message[name]}\n" for name in names if name in message).encode("utf-8")


def sign(message: dict[str, str], key: rsa.RSAPrivateKey, version: str = "1") -> dict[str, str]:
    """`message` with SignatureVersion and Signature, as SNS signs (SHA1withRSA for 1, SHA256withRSA for 2)."""
    algorithm: hashes.HashAlgorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
    signature = key.sign(string_to_sign(message), padding.PKCS1v15(), algorithm)
    return {**message, "SignatureVersion": version, "Signature": base64.b64encode(signature).decode("ascii")}


def ses_event(kind: str, message_id: str, recipient: str, *, bounce_type: str = "Permanent") -> dict[str, Any]:
    """An SES notification in AWS's documented shape, about the message we sent with `message_id`."""
    mail = {
        "timestamp": "2018-02-09T17:00:05.000Z",
        "source": "news@cepei.example.org",
        "messageId": f"0102016{next(_numbers):09d}-ses-own-id-000000",  # SES's own id, never ours
        "destination": [recipient],
        "headersTruncated": False,
        "headers": [{"name": "From", "value": "news@cepei.example.org"}, {"name": "Message-ID", "value": message_id}],
        "commonHeaders": {"from": ["news@cepei.example.org"], "to": [recipient], "messageId": message_id},
    }
    feedback_id = f"feedback-{next(_numbers)}"
    if kind == "Bounce":
        status = "5.1.1" if bounce_type == "Permanent" else "4.2.2"
        bounce = {
            "bounceType": bounce_type,
            "bounceSubType": "General",
            "bouncedRecipients": [{"emailAddress": recipient, "action": "failed", "status": status}],
            "timestamp": "2018-02-09T17:00:09.000Z",
            "feedbackId": feedback_id,
        }
        return {"notificationType": "Bounce", "bounce": bounce, "mail": mail}
    complaint = {
        "complainedRecipients": [{"emailAddress": recipient}],
        "timestamp": "2018-02-09T17:30:00.000Z",
        "feedbackId": feedback_id,
        "complaintFeedbackType": "abuse",
    }
    return {"notificationType": "Complaint", "complaint": complaint, "mail": mail}


def notification(event: dict[str, Any], cert_url: str, when: dt.datetime, topic: str = TOPIC) -> dict[str, str]:
    """An SNS Notification carrying `event` (unsigned)."""
    return {
        "Type": "Notification",
        "MessageId": f"22b80b92-fdea-4c2c-8f9d-{next(_numbers):012d}",
        "TopicArn": topic,
        "Subject": "Amazon SES Email Event Notification",
        "Message": json.dumps(event),
        "Timestamp": when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        "SigningCertURL": cert_url,
        "UnsubscribeURL": "https://sns.eu-west-1.amazonaws.com/?Action=Unsubscribe",
    }


def confirmation(subscribe_url: str, cert_url: str, when: dt.datetime, topic: str = TOPIC) -> dict[str, str]:
    return {
        "Type": "SubscriptionConfirmation",
        "MessageId": f"165545c9-2a5c-472c-8df2-{next(_numbers):012d}",
        "Token": "2336412f37fb687f5d51e6e241d09c805a5a57b30d712f794cc5f6a988666d92768dd60a747ba6f3beb71854e285d6ad02",
        "TopicArn": topic,
        "Message": f"You have chosen to subscribe to the topic {topic}.\nTo confirm, visit the SubscribeURL.",
        "SubscribeURL": subscribe_url,
        "Timestamp": when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        "SigningCertURL": cert_url,
    }


@dataclass
class AmazonSide:
    """A loopback server playing SNS's hosts: the certificate at /cert.pem, and subscription links."""

    port: int
    certificate: bytes
    requests: list[str] = field(default_factory=list)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


@contextmanager
def amazon_side(certificate: bytes) -> Iterator[AmazonSide]:
    side = AmazonSide(0, certificate)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            side.requests.append(self.path)
            body = side.certificate if self.path == CERT_PATH else b"<ConfirmSubscriptionResponse/>"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    side.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield side
    finally:
        server.shutdown()
        server.server_close()


def mailgun_event(
    event: str,
    message_id: str,
    recipient: str,
    when: dt.datetime,
    *,
    severity: str = "permanent",
    key: str = MAILGUN_KEY,
) -> dict[str, Any]:
    """A Mailgun webhook body in its documented shape, signed with `key` (HMAC-SHA256 of timestamp + token)."""
    timestamp = str(int(when.timestamp()))
    token = hashlib.sha256(f"token{next(_numbers)}".encode()).hexdigest()[:50]
    signature = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    data: dict[str, Any] = {
        "event": event,
        "id": f"mailgun-event-{next(_numbers)}",
        "timestamp": when.timestamp(),
        "recipient": recipient,
        "message": {"headers": {"message-id": message_id.strip("<>"), "from": "news@cepei.example.org"}},
    }
    if event == "failed":
        code = "5.1.1" if severity == "permanent" else "4.2.2"
        data |= {"severity": severity, "reason": "generic", "delivery-status": {"code": 550, "enhanced-code": code}}
    return {"signature": {"timestamp": timestamp, "token": token, "signature": signature}, "event-data": data}
