"""What a failed atproto call means: was it refused, may it have happened, may a retry cure it.

The atproto client raises its own errors for answers (with the XRPC error name
and message) and lets some httpx transport errors through unwrapped; these
helpers read both.
"""

from __future__ import annotations

import httpx
from atproto_client.exceptions import AtProtocolError, RequestErrorBase, UnauthorizedError

FAILURES = (AtProtocolError, httpx.TransportError)
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


def status_of(error: BaseException) -> int | None:
    response = getattr(error, "response", None) if isinstance(error, RequestErrorBase) else None
    return None if response is None else int(response.status_code)


def xrpc_error(error: BaseException) -> tuple[str, str]:
    """The XRPC error name and message of a refused call ("" when absent)."""
    response = getattr(error, "response", None) if isinstance(error, RequestErrorBase) else None
    content = getattr(response, "content", None)
    if isinstance(content, bytes | str | None):  # no JSON error body
        return "", ""
    # an XrpcError, or a DotDict when the body lacks "message"
    return str(getattr(content, "error", None) or ""), str(getattr(content, "message", None) or "")


def error_name(error: BaseException) -> str:
    return xrpc_error(error)[0]


def session_over(error: BaseException) -> bool:
    """The access token was refused (revoked, expired): a new login may cure it."""
    return isinstance(error, UnauthorizedError) or error_name(error) in ("ExpiredToken", "InvalidToken")


def transport_error(error: BaseException) -> httpx.TransportError | None:
    """The httpx transport error behind `error` (atproto wraps some, not all)."""
    current: BaseException | None = error
    while current is not None:
        if isinstance(current, httpx.TransportError):
            return current
        current = current.__cause__
    return None


def transient(error: BaseException) -> bool:
    """A failure a retry may cure: no answer at all, 5xx, 408, 409."""
    status = status_of(error)
    if status is None:
        transport = transport_error(error)
        return transport is not None and not isinstance(transport, httpx.UnsupportedProtocol)
    return status >= 500 or status in (408, 409)


def may_have_landed(error: BaseException) -> bool:
    """The create may have been written although we heard no success."""
    status = status_of(error)
    if status is None:
        transport = transport_error(error)
        return transport is not None and not isinstance(transport, NOT_SENT)
    return status >= 500 or status == 409 or "AlreadyExists" in error_name(error)


def describe(error: BaseException) -> str:
    """The network's own words for `error`, or what went wrong on the way."""
    status = status_of(error)
    if status is not None:
        name, message = xrpc_error(error)
        words = f"{name}: {message}" if name and message else name or message
        return f"HTTP {status} {words}".rstrip()
    transport = transport_error(error)
    cause = transport if transport is not None else error
    return f"{type(cause).__name__}: {cause}" if str(cause) else type(cause).__name__
