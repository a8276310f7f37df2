"""Typed exceptions. Only the CLI turns them into messages and exit codes."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec

# C0 and C1 control characters: a file name or a YAML key may hold a line break, which printed as it is
# would split a problem's line in two (and could forge a second problem line).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def _visible(text: str) -> str:
    """`text` with each control character written as Python writes it in a string (a line break as \\n)."""
    return _CONTROL.sub(lambda match: repr(match.group())[1:-1], text) if _CONTROL.search(text) else text


class Problem(msgspec.Struct, frozen=True, order=True):
    """One problem in one input file, at one line, about one field (a struct: a dataclass cost every command
    0.5 ms to make as it started)."""

    path: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        """One line, whatever the path, field or message hold."""
        return f"{_visible(self.path)}:{self.line}: {_visible(self.field)}: {_visible(self.message)}"


class PublisherError(Exception):
    """Base of every error publisher raises on purpose."""

    exit_code = 1


class InvalidInput(PublisherError):
    """Bad records, bad configuration, bad flags: exit 2, every problem listed."""

    exit_code = 2

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class WorkFailed(PublisherError):
    """A failure while doing the work (sending, writing): exit 1."""

    exit_code = 1


class ChannelError(WorkFailed):
    """A channel could not deliver; `permanent` says whether a retry can help."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        self.permanent = permanent
        super().__init__(message)


class ImageUnavailable(ChannelError):
    """An image that cannot be had (unreachable, refused, too large, not an image, a private address).

    At post time it does not sink the post: the post goes out without it.
    """


def relative(path: Path, root: Path | None) -> str:
    """`path` as the user would write it: relative to `root` when inside it."""
    if root is not None:
        try:
            return str(path.resolve().relative_to(root.resolve()))
        except ValueError:
            pass
    return str(path)


class HeaderInjection(PublisherError, ValueError):
    """A mail header that would break the message: a newline in a value, or a bad or reserved name."""


class UnknownChannel(WorkFailed):
    """A dispatch names a channel publisher has no sender for: refused, never sent as another channel."""


class WebhookRefused(PublisherError):
    """A provider's webhook request that is not proved to be theirs (unsigned, wrongly signed, stale, replayed,
    from a topic or host we do not take): the web side answers 403 and nothing changes."""


class MissingExtra(PublisherError):
    """A setting asks for what an optional extra provides (PostgreSQL, a queue), and it is not installed.

    Exit 2, one line that names the extra to install: the setting is right, the installation is short.
    """

    exit_code = 2

    def __init__(self, what: str, missing: str, extra: str = "scale") -> None:
        self.extra = extra
        super().__init__(f"{what} needs {missing}, which is not installed here: pip install 'publisher[{extra}]'")
