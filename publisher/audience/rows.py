"""Subscriber input, checked: addresses, list names, and the rows of a CSV file.

A CSV file names its columns in its first row: ``email`` (required), ``name``,
``language``, ``lists`` (names separated by ``;`` or ``|``) and ``status``
(optional: a row saying ``unsubscribed``, ``bounced`` or ``complained`` carries
a suppression over from another system). Other columns are ignored, so an
export from another mailing tool imports as it is. A file without a header
row is read as ``email,name,language,lists``. Every bad row is reported as
``file:line: field: message`` and left out; the good rows are kept.
"""

from __future__ import annotations

import csv
import io
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from email_validator import EmailNotValidError, validate_email

from publisher.errors import InvalidInput, Problem
from publisher.site.rules import check_language
from publisher.store.tables import SUBSCRIBER_STATES, SUPPRESSED

LIST_SEPARATORS = (";", "|")
HEADERLESS = ("email", "name", "language", "lists")
FIELDS = ("email", "name", "language", "lists", "status")  # the order a row's problems are told in


def control_character(text: str | None) -> str | None:
    """The first control character in `text`, named as ``U+0000``; None when there is none.

    A NUL aborts a whole PostgreSQL transaction (and so an import), and a control character in a name or
    an address has no place in a header, a CSV export or a page: none ever reaches the store.
    """
    for char in text or "":
        if unicodedata.category(char) == "Cc":
            return f"U+{ord(char):04X}"
    return None


def _no_control(text: str | None) -> None:
    found = control_character(text)
    if found is not None:
        raise ValueError(f"contains a control character ({found}); remove it")


def normalise_email(address: str) -> str:
    """The address as stored; ValueError with email-validator's reason when it is not one."""
    given = address.strip()
    if not given:
        raise ValueError("is missing")
    _no_control(given)
    try:
        return validate_email(given, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValueError(f"{str(exc).rstrip('.')} (got {given!r})") from None


def email_key(address: str) -> str:
    """What two spellings of one address have in common (the lookup key)."""
    try:
        return normalise_email(address).lower()
    except ValueError:
        return address.strip().lower()


def split_lists(text: str | Iterable[str] | None) -> tuple[str, ...]:
    """List names from ``"news; weekly"``, ``"news|weekly"`` or an iterable; blanks dropped, order kept."""
    if text is None:
        return ()
    parts = [text] if isinstance(text, str) else list(text)
    for separator in LIST_SEPARATORS:
        parts = [piece for part in parts for piece in part.split(separator)]
    return tuple(dict.fromkeys(name.strip() for name in parts if name.strip()))


@dataclass(frozen=True, slots=True)
class Incoming:
    """A subscriber as given (by a command or a CSV row), already checked."""

    email: str
    name: str | None = None
    language: str | None = None
    lists: tuple[str, ...] = ()
    status: str = "active"

    def combined(self, later: Incoming) -> Incoming:
        """Two rows for one address: lists unioned, later values win, a suppression wins."""
        return replace(
            self,
            name=later.name or self.name,
            language=later.language or self.language,
            lists=tuple(dict.fromkeys(self.lists + later.lists)),
            status=self.status if self.status in SUPPRESSED else later.status,
        )


def checked(
    email: str, name: str | None, language: str | None, lists: Iterable[str], status: str | None
) -> tuple[Incoming | None, list[tuple[str, str]]]:
    """An `Incoming` from raw values, or None and the (field, message) problems (a control character is one).

    Line breaks and tabs in a name (a quoted CSV cell may hold them) are folded into single spaces, as the
    web form does; any other control character is a problem.
    """
    problems: list[tuple[str, str]] = []
    lists = list(lists)
    name = None if name is None else " ".join(name.split())
    for field, value in (("name", name), ("lists", "".join(lists))):
        try:
            _no_control(value)
        except ValueError as exc:
            problems.append((field, str(exc)))
    address = ""
    try:
        address = normalise_email(email)
    except ValueError as exc:
        problems.append(("email", str(exc)))
    language = (language or "").strip() or None
    try:
        language = None if language is None else check_language(language)
    except ValueError as exc:
        problems.append(("language", str(exc)))
    status = (status or "").strip().lower() or "active"
    if status not in SUBSCRIBER_STATES:
        problems.append(("status", f"must be one of {', '.join(sorted(SUBSCRIBER_STATES))} (got {status!r})"))
    problems.sort(key=lambda problem: FIELDS.index(problem[0]))
    if problems:
        return None, problems
    return Incoming(address, (name or "").strip() or None, language, split_lists(lists), status), []


def _text(path: Path, shown: str) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        raise InvalidInput([Problem(shown, line, "file", "is not UTF-8 text (save the CSV as UTF-8)")]) from None
    except OSError as exc:
        raise InvalidInput([Problem(shown, 1, "file", f"cannot be read ({exc.strerror or exc})")]) from None


def _rows(text: str) -> Iterator[tuple[int, list[str]]]:
    """Each non-blank row with the line it starts on."""
    first = text.split("\n", 1)[0]
    delimiter = next((mark for mark in (",", "\t", ";") if mark in first), ",")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    line = 1
    for row in reader:
        if any(cell.strip() for cell in row):
            yield line, row
        line = reader.line_num + 1


def read_csv(
    path: Path,
    shown: str,
    default_lists: Iterable[str] = (),
    known_lists: Sequence[str] | None = None,
    refuse: Callable[[str], str | None] | None = None,
) -> tuple[list[Incoming], list[Problem], int]:
    """The file's subscribers (one per address), its problems, and how many rows repeated an address.

    With `known_lists`, a row naming another list is a bad row (a typo must not make a list nobody sends to).
    With `refuse`, a row whose address it gives a reason for is a bad row (an address erased on request).
    """
    rows = _rows(_text(path, shown))
    first = next(rows, None)
    if first is None:
        return [], [], 0
    header = [cell.strip().lower() for cell in first[1]]
    if "email" in header:
        columns = header
    elif "@" in first[1][0]:
        columns, rows = list(HEADERLESS), _chain(first, rows)
    else:
        message = "no email column: the first row names the columns (email, name, language, lists)"
        raise InvalidInput([Problem(shown, first[0], "email", message)])
    extra = split_lists(default_lists)
    people: dict[str, Incoming] = {}
    problems: list[Problem] = []
    repeats = 0
    for line, row in rows:
        cells = dict(zip(columns, row, strict=False))
        lists = split_lists(cells.get("lists")) + extra
        person, found = checked(
            cells.get("email", ""), cells.get("name"), cells.get("language"), lists, cells.get("status")
        )
        unknown = [name for name in lists if known_lists is not None and name not in known_lists]
        if unknown and known_lists is not None and not any(field == "lists" for field, _ in found):
            why = f"{unknown[0]!r} is not one of the newsletter lists ({', '.join(known_lists)})"
            found = [*found, ("lists", why)]
            person = None
        why_not = refuse(person.email) if person is not None and refuse is not None else None
        if why_not is not None:
            found, person = [*found, ("email", why_not)], None
        problems.extend(Problem(shown, line, field, message) for field, message in found)
        if person is None:
            continue
        key = person.email.lower()
        if key in people:
            repeats += 1
            person = people[key].combined(person)
        people[key] = person
    return list(people.values()), problems, repeats


def _chain(first: tuple[int, list[str]], rest: Iterator[tuple[int, list[str]]]) -> Iterator[tuple[int, list[str]]]:
    yield first
    yield from rest
