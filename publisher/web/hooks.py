"""The providers' webhooks on `serve`: ``POST /webhooks/ses`` (Amazon SES through SNS) and ``POST /webhooks/mailgun``.

Thin: the checks and the reading are `publisher.audience.webhooks`' pure
functions, the policy is `publisher.audience.bounces.apply` (the same as for
the bounce mailbox); here are only what needs the network or the process's
memory: SNS's signing certificates, fetched once per URL and kept
(`SigningCertificates`), the GET that confirms an SNS subscription, and the
tokens already seen. A request that is not proved to be the provider's is
answered 403 and changes nothing.

A Mailgun request needs ``PUBLISHER_MAILGUN_SIGNING_KEY`` (the webhook signing
key of Mailgun's dashboard); an SES one needs its topic in ``[bounces]
sns_topics``. Without them each route refuses everything (403).
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections import OrderedDict

import httpx

from publisher.audience import bounces, webhooks
from publisher.audience.reports import Report
from publisher.errors import WebhookRefused
from publisher.web.http import Request, Response, json_response
from publisher.web.pages import WebContext

__all__ = ["MAILGUN_KEY_ENV", "SigningCertificates", "mailgun", "ses"]

log = logging.getLogger("publisher.web.hooks")
MAILGUN_KEY_ENV = "PUBLISHER_MAILGUN_SIGNING_KEY"
MAX_BODY_BYTES = 256 * 1024  # SNS's largest message; an SES notification with headers stays far below
MAX_CERTIFICATE_BYTES = 64 * 1024
FETCH_TIMEOUT = 10.0


class SigningCertificates:
    """SNS's signing certificates (PEM) by URL: fetched once (https, no redirects, bounded), then kept."""

    def __init__(self, size: int = 32) -> None:
        self.size = size
        self.fetched = 0  # how many were fetched (the cache's hits are the rest)
        self._found: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, url: str) -> bytes:
        """The certificate at `url` (already checked against ``[bounces] sns_url``); WebhookRefused if unreadable."""
        with self._lock:
            if url in self._found:
                self._found.move_to_end(url)
                return self._found[url]
        try:
            with httpx.stream("GET", url, timeout=FETCH_TIMEOUT, follow_redirects=False) as response:
                if response.status_code != 200:
                    raise WebhookRefused(f"the SNS signing certificate answered {response.status_code}")
                body = b""
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > MAX_CERTIFICATE_BYTES:
                        raise WebhookRefused("the SNS signing certificate is too large")
        except httpx.HTTPError as exc:
            raise WebhookRefused(f"the SNS signing certificate cannot be fetched ({type(exc).__name__})") from None
        with self._lock:
            self.fetched += 1
            self._found[url] = body
            while len(self._found) > self.size:
                self._found.popitem(last=False)
        return body


class _HookState:
    def __init__(self) -> None:
        self.certificates = SigningCertificates()
        self.sns_seen = webhooks.Replays(webhooks.SNS_MAX_AGE * 2)
        self.mailgun_seen = webhooks.Replays(webhooks.MAILGUN_MAX_AGE * 2)


_states: weakref.WeakKeyDictionary[WebContext, _HookState] = weakref.WeakKeyDictionary()
_states_lock = threading.Lock()


def state(ctx: WebContext) -> _HookState:
    """The webhooks' memory for one running app (certificates, tokens seen)."""
    with _states_lock:
        found = _states.get(ctx)
        if found is None:
            found = _states[ctx] = _HookState()
        return found


def _refused(source: str, exc: WebhookRefused) -> Response:
    log.warning("%s webhook refused: %s", source, exc)
    return json_response(403, {"refused": str(exc)})


def _body(request: Request) -> bytes:
    request.max_content_length = MAX_BODY_BYTES  # past it Werkzeug answers 413
    return request.get_data(cache=False)


def _apply(ctx: WebContext, report: Report | None, source: str) -> Response:
    if report is None:  # an event that is not a bounce or complaint (delivered, opened, ...): taken, nothing done
        return json_response(200, {"ignored": 1})
    now = ctx.now()
    done = bounces.apply(ctx.store(), report, source=source, now=now, settings=ctx.site.settings.bounces, secret=None)
    return json_response(200, dict(done))


def ses(ctx: WebContext, request: Request) -> Response:
    """POST /webhooks/ses: an SNS message, verified; a subscription confirmed, or an SES event acted on."""
    settings = ctx.site.settings.bounces
    now = ctx.now()
    hooks = state(ctx)
    try:
        message = webhooks.sns_message(_body(request))
        if message.get("TopicArn") not in settings.sns_topics:
            raise WebhookRefused("the SNS message is from a topic we do not take ([bounces] sns_topics)")
        certificate_url = message.get("SigningCertURL", "")
        if not webhooks.sns_certificate_url_allowed(certificate_url, settings.sns_url):
            raise WebhookRefused("the SNS signing certificate is not SNS's, on an SNS host ([bounces] sns_url)")
        certificate = hooks.certificates.get(certificate_url)
        webhooks.verify_sns(message, certificate, topics=settings.sns_topics, now=now)
        if not hooks.sns_seen.first(message.get("MessageId", ""), now):
            raise WebhookRefused("the SNS message was delivered before")
    except WebhookRefused as exc:
        return _refused("SES", exc)
    if message["Type"] == "SubscriptionConfirmation":
        return _confirm(message, settings.sns_url)
    if message["Type"] == "UnsubscribeConfirmation":
        return json_response(200, {"ignored": 1})
    return _apply(ctx, webhooks.ses_report(message), "ses")


def _confirm(message: dict[str, str], pattern: str) -> Response:
    """Confirm the subscription by a GET of its SubscribeURL, when that is on an SNS host too."""
    url = message.get("SubscribeURL", "")
    if not webhooks.sns_url_allowed(url, pattern):
        return _refused("SES", WebhookRefused("the SubscribeURL is not on an SNS host ([bounces] sns_url)"))
    try:
        response = httpx.get(url, timeout=FETCH_TIMEOUT, follow_redirects=False)
    except httpx.HTTPError as exc:
        log.warning("the SNS subscription to %s could not be confirmed: %s", message.get("TopicArn"), exc)
        return json_response(502, {"confirmed": 0})
    confirmed = response.status_code == 200
    log.info("SNS subscription to %s confirmed: %s", message.get("TopicArn"), confirmed)
    return json_response(200 if confirmed else 502, {"confirmed": int(confirmed)})


def mailgun(ctx: WebContext, request: Request) -> Response:
    """POST /webhooks/mailgun: a Mailgun event, its signature checked with PUBLISHER_MAILGUN_SIGNING_KEY."""
    key = ctx.site.secret(MAILGUN_KEY_ENV)
    try:
        if key is None:
            raise WebhookRefused(f"Mailgun's webhooks are off: {MAILGUN_KEY_ENV} is not set")
        payload = webhooks.mailgun_payload(_body(request))
        webhooks.verify_mailgun(payload, key, now=ctx.now(), replays=state(ctx).mailgun_seen)
    except WebhookRefused as exc:
        return _refused("Mailgun", exc)
    return _apply(ctx, webhooks.mailgun_report(payload), "mailgun")
