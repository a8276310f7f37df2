"""The subscriber list on real SQLite and PostgreSQL: add, import, remove, recipients, export."""

from __future__ import annotations

import csv
import datetime as dt
import io
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from publisher.audience import recipients, subscribers
from publisher.audience.subscribers import Subscriber
from publisher.errors import InvalidInput
from publisher.store.dispatches import Store, open_store
from tests import store_support
from tests.store_support import NOW

LATER = NOW + dt.timedelta(days=3)


@pytest.fixture(params=store_support.DATABASES)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from store_support.database_url(request.param, tmp_path)


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    yield from store_support.opened(store_url)


def write_csv(tmp_path: Path, text: str, name: str = "people.csv", encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def emails(people: list[Subscriber]) -> list[str]:
    return [person.email for person in people]


# --- add ------------------------------------------------------------------------------------------


def test_an_address_is_normalised_and_matched_whatever_its_case(store: Store) -> None:
    first = subscribers.add(store, " Ana.Perez@Example.ORG ", name="Ana", lists=["news"], now=NOW, source="cli")
    assert (first.email, first.name, first.lists, first.status) == ("Ana.Perez@example.org", "Ana", ("news",), "active")
    again = subscribers.add(store, "ana.perez@EXAMPLE.org", language="es", lists=["weekly"], now=LATER, source="cli")
    assert again.id == first.id
    assert (again.email, again.name, again.language, again.lists) == (
        "Ana.Perez@example.org",
        "Ana",
        "es",
        ("news", "weekly"),
    )
    assert (again.consent_at, again.consent_source, again.updated_at) == (NOW, "cli", LATER)


def test_times_come_back_aware_utc(store: Store) -> None:
    added = subscribers.add(
        store, "bo@example.org", now=NOW.astimezone(dt.timezone(dt.timedelta(hours=-5))), source="web"
    )
    assert added.created_at == NOW and added.created_at.tzinfo is dt.UTC
    assert added.consent_at is not None and added.consent_at.tzinfo is dt.UTC


def test_a_bad_address_or_language_is_bad_input_naming_the_field(store: Store) -> None:
    with pytest.raises(InvalidInput) as caught:
        subscribers.add(store, "ana.example.org", language="english please", now=NOW, source="cli")
    assert [str(problem) for problem in caught.value.problems] == [
        "command line:1: email: An email address must have an @-sign (got 'ana.example.org')",
        "command line:1: language: is not a BCP 47 language tag (got 'english please')",
    ]
    assert subscribers.list_subscribers(store) == []


def test_pending_becomes_active_on_confirmation_but_active_never_goes_back(store: Store) -> None:
    pending = subscribers.add(store, "cy@example.org", lists=["news"], now=NOW, source="web", status="pending")
    assert (pending.status, pending.consent_at) == ("pending", None)  # consent is the confirmation's alone
    confirmed = subscribers.add(store, "cy@example.org", now=LATER, source="web:confirm")
    assert (confirmed.status, confirmed.consent_at, confirmed.consent_source) == ("active", LATER, "web:confirm")
    assert subscribers.add(store, "cy@example.org", now=LATER, source="web", status="pending").status == "active"


def test_sign_ups_never_confirmed_are_forgotten_after_the_cutoff_and_nothing_else_is(store: Store) -> None:
    subscribers.add(store, "old@example.org", lists=["news"], now=NOW, source="web", status="pending")
    subscribers.add(store, "new@example.org", lists=["news"], now=LATER, source="web", status="pending")
    subscribers.add(store, "ana@example.org", lists=["news"], now=NOW, source="cli")
    subscribers.add(store, "gone@example.org", lists=["news"], now=NOW, source="cli")
    subscribers.remove(store, "gone@example.org", NOW)
    subscribers.add(store, "team@example.org", lists=["news"], now=NOW, source="import", status="pending")
    assert subscribers.forget_unconfirmed(store, LATER) == 1  # only the web's pending row from before the cutoff
    left = sorted(emails(subscribers.list_subscribers(store)))
    assert left == ["ana@example.org", "gone@example.org", "new@example.org", "team@example.org"]
    assert subscribers.forget_unconfirmed(store, LATER) == 0


# --- remove and suppression -------------------------------------------------------------------------


def test_two_sign_ups_of_one_new_address_at_once_make_one_row(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """The second to insert finds the row the first made (its unique key) and merges into it instead of failing."""
    real, done, failed, others = subscribers._by_key, threading.Event(), list[BaseException](), list[threading.Thread]()

    def other() -> None:
        try:
            subscribers.add(store, "Ana@example.org", lists=["weekly"], now=NOW, source="web", status="pending")
        except BaseException as exc:  # the test must see it
            failed.append(exc)
        done.set()

    def reading(connection: Any, keys: Any) -> dict[str, Subscriber]:
        found = real(connection, keys)
        if not others:  # the other sign-up runs between our read and our insert
            others.append(threading.Thread(target=other))
            others[0].start()
            done.wait(timeout=1.5)  # SQLite: it waits for our write transaction instead
        return found

    monkeypatch.setattr(subscribers, "_by_key", reading)
    mine = subscribers.add(store, "ana@example.org", lists=["news"], now=NOW, source="web", status="pending")
    others[0].join()
    assert failed == []
    (only,) = subscribers.list_subscribers(store)
    assert only == subscribers.get(store, "ANA@example.org")
    assert mine.id == only.id and only.status == "pending" and set(only.lists) == {"news", "weekly"}


def test_remove_keeps_the_row_as_a_suppression_entry(store: Store) -> None:
    subscribers.add(store, "dee@example.org", lists=["news"], now=NOW, source="cli")
    removed = subscribers.remove(store, "DEE@example.org", LATER)
    assert removed is not None and (removed.status, removed.unsubscribed_at) == ("unsubscribed", LATER)
    assert emails(subscribers.list_subscribers(store)) == ["dee@example.org"]
    assert subscribers.recipients(store, "news") == []
    assert subscribers.remove(store, "nobody@example.org", LATER) is None


def test_a_plain_add_never_resubscribes_but_the_person_asking_again_does(store: Store) -> None:
    subscribers.add(store, "ed@example.org", lists=["news"], now=NOW, source="cli")
    subscribers.unsubscribe(store, "ed@example.org", NOW + dt.timedelta(days=1))
    kept = subscribers.add(store, "ed@example.org", lists=["weekly"], now=LATER, source="cli")
    assert (kept.status, kept.lists) == ("unsubscribed", ("news",))
    back = subscribers.add(store, "ed@example.org", lists=["weekly"], now=LATER, source="web:confirm", resubscribe=True)
    assert (back.status, back.lists, back.consent_at, back.unsubscribed_at) == (
        "active",
        ("weekly",),  # consent is per list: coming back to "weekly" does not restore "news"
        LATER,
        None,
    )


def test_a_bounce_after_an_unsubscribe_keeps_the_first_time(store: Store) -> None:
    subscribers.add(store, "flo@example.org", now=NOW, source="cli")
    subscribers.unsubscribe(store, "flo@example.org", NOW + dt.timedelta(hours=1))
    bounced = subscribers.mark_bounced(store, "flo@example.org", LATER)
    assert bounced is not None and (bounced.status, bounced.unsubscribed_at) == ("bounced", NOW + dt.timedelta(hours=1))
    complained = subscribers.mark_complained(store, "flo@example.org", LATER)
    assert complained is not None and complained.status == "complained"


# --- recipients ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["50%", "a\\b", 'say "hi"', "noticias-año", "x_y"])
def test_every_way_of_asking_who_is_on_a_list_agrees_on_awkward_names(store: Store, name: str) -> None:
    # One SQL filter (recipients.on_list) behind the list, the send and the count: LIKE's own
    # characters, JSON's escapes and non-ASCII must neither hide a member nor let a near name in.
    near = {"50%": "500", "a\\b": "ab", 'say "hi"': "say hi", "noticias-año": "noticias-ano", "x_y": "xzy"}[name]
    subscribers.add(store, "in@example.org", lists=[name], now=NOW, source="cli")
    subscribers.add(store, "near@example.org", lists=[near], now=NOW, source="cli")
    assert emails(subscribers.list_subscribers(store, name)) == ["in@example.org"]
    assert emails(subscribers.recipients(store, name)) == ["in@example.org"]
    assert recipients.active_addresses(store, name) == ["in@example.org"]
    assert recipients.audience_size(store, name) == 1


def test_recipients_are_the_active_members_of_exactly_that_list_in_id_order(store: Store) -> None:
    for address, lists in [
        ("a@example.org", ["news"]),
        ("b@example.org", ["news-es"]),
        ("c@example.org", ["weekly", "news"]),
        ("d@example.org", ["a_b"]),
        ("e@example.org", ["axb"]),
        ("f@example.org", ["news"]),
    ]:
        subscribers.add(store, address, lists=lists, now=NOW, source="cli")
    subscribers.mark_bounced(store, "f@example.org", NOW)
    subscribers.add(store, "g@example.org", lists=["news"], now=NOW, source="web", status="pending")
    assert emails(subscribers.recipients(store, "news")) == ["a@example.org", "c@example.org"]
    assert recipients.audience_size(store, "news") == 2
    assert emails(subscribers.recipients(store, "a_b")) == ["d@example.org"]
    assert emails(subscribers.list_subscribers(store, status="bounced")) == ["f@example.org"]
    assert emails(subscribers.list_subscribers(store, "news")) == [
        "a@example.org",
        "c@example.org",
        "f@example.org",
        "g@example.org",
    ]


def test_ledger_targets_find_their_subscribers(store: Store) -> None:
    subscribers.add(store, "Hana@Example.org", name="Hana", now=NOW, source="cli")
    found = subscribers.find(store, ["Hana@example.org", "ghost@example.org"])
    assert list(found) == ["Hana@example.org"]
    assert found["Hana@example.org"].name == "Hana"
    assert subscribers.get(store, "HANA@EXAMPLE.ORG") == found["Hana@example.org"]


# --- CSV import --------------------------------------------------------------------------------------


def test_an_import_keeps_the_good_rows_and_names_every_bad_one(store: Store, tmp_path: Path) -> None:
    path = write_csv(
        tmp_path,
        "email,name,language,lists\n"
        "ana@example.org,Ana,es,news;weekly\n"
        "not-an-address,Bad,,news\n"
        "bo@example.org,Bo,klingon-please,news\n"
        '"cy@example.org","Cy, the\nsecond",en,news|events\n'
        "dee@example,Dee,,\n"
        ",No Address,,\n",
    )
    result = subscribers.import_csv(store, path, NOW, shown="people.csv")
    assert [str(problem) for problem in result.problems] == [
        "people.csv:3: email: An email address must have an @-sign (got 'not-an-address')",
        "people.csv:4: language: is not a BCP 47 language tag (got 'klingon-please')",
        "people.csv:7: email: The part after the @-sign is not valid. It should have a period (got 'dee@example')",
        "people.csv:8: email: is missing",
    ]
    assert (result.added, result.updated, result.skipped) == (2, 0, 0)
    ana, cy = subscribers.list_subscribers(store)
    assert (ana.email, ana.name, ana.language, ana.lists) == ("ana@example.org", "Ana", "es", ("news", "weekly"))
    assert (cy.name, cy.lists, cy.consent_source) == ("Cy, the second", ("news", "events"), "import:people.csv")


def test_duplicates_are_merged_within_the_file_and_with_the_list(store: Store, tmp_path: Path) -> None:
    subscribers.add(store, "ana@example.org", name="Ana", lists=["news"], now=NOW, source="cli")
    subscribers.add(store, "same@example.org", lists=["news", "members"], now=NOW, source="cli")
    path = write_csv(
        tmp_path,
        "email,lists,name\n"
        "ANA@example.org,weekly,\n"
        "bo@example.org,news,Bo\n"
        "bo@EXAMPLE.org,events,Bo B.\n"
        "same@example.org,news,\n",
    )
    result = subscribers.import_csv(store, path, LATER, default_lists=["members"])
    assert (result.added, result.updated, result.unchanged, result.skipped, result.duplicates) == (1, 1, 1, 0, 1)
    people = {person.email: person for person in subscribers.list_subscribers(store)}
    assert people["ana@example.org"].lists == ("news", "weekly", "members")
    assert people["ana@example.org"].name == "Ana"
    assert (people["bo@example.org"].name, people["bo@example.org"].lists) == ("Bo B.", ("news", "members", "events"))
    assert people["same@example.org"].updated_at == NOW


def test_an_import_never_resubscribes_anyone_suppressed(store: Store, tmp_path: Path) -> None:
    for address, mark in [
        ("gone@example.org", subscribers.unsubscribe),
        ("bounce@example.org", subscribers.mark_bounced),
        ("angry@example.org", subscribers.mark_complained),
    ]:
        subscribers.add(store, address, lists=["news"], now=NOW, source="cli")
        mark(store, address, NOW)
    path = write_csv(
        tmp_path,
        "email,lists,status\ngone@example.org,news;weekly,active\nBOUNCE@example.org,news,\nangry@example.org,news,\n",
    )
    result = subscribers.import_csv(store, path, LATER, default_lists=["news"])
    assert (result.added, result.updated, result.skipped, result.problems) == (0, 0, 3, [])
    statuses = {person.email: (person.status, person.lists) for person in subscribers.list_subscribers(store)}
    assert statuses == {
        "gone@example.org": ("unsubscribed", ("news",)),
        "bounce@example.org": ("bounced", ("news",)),
        "angry@example.org": ("complained", ("news",)),
    }
    assert subscribers.recipients(store, "news") == []


def test_an_export_never_hands_a_spreadsheet_a_formula(store: Store) -> None:
    names = ['=HYPERLINK("https://evil.example","x")', "+1+cmd", "-2+3", "@SUM(A1)", "Ana"]
    for n, name in enumerate(names):
        subscribers.add(store, f"p{n}@example.org", name=name, lists=["news"], now=NOW, source="cli")
    out = io.StringIO()
    subscribers.export_csv(store, out)
    cells = [row[1] for row in csv.reader(io.StringIO(out.getvalue()))][1:]
    assert cells == [*("'" + name for name in names[:4]), "Ana"]


def test_an_export_imports_back_with_its_suppressions(store: Store, tmp_path: Path) -> None:
    subscribers.add(
        store, "ana@example.org", name="Ana Pérez", language="es", lists=["news", "weekly"], now=NOW, source="cli"
    )
    subscribers.add(store, "bo@example.org", lists=["news"], now=NOW, source="cli")
    subscribers.remove(store, "bo@example.org", NOW)
    out = io.StringIO()
    assert subscribers.export_csv(store, out) == 2
    exported = out.getvalue()
    assert exported.splitlines()[0] == "email,name,language,lists,status,consent_at,consent_source,created_at"
    assert (
        exported.splitlines()[1]
        == "ana@example.org,Ana Pérez,es,news;weekly,active,2026-11-20T09:00:00+00:00,cli,2026-11-20T09:00:00+00:00"
    )

    fresh = open_store(f"sqlite:///{tmp_path / 'other.db'}")
    result = subscribers.import_csv(fresh, write_csv(tmp_path, exported, "export.csv"), LATER)
    assert (result.added, result.problems) == (2, [])
    again = {person.email: (person.name, person.lists, person.status) for person in subscribers.list_subscribers(fresh)}
    assert again == {
        "ana@example.org": ("Ana Pérez", ("news", "weekly"), "active"),
        "bo@example.org": (None, (), "unsubscribed"),
    }
    assert subscribers.recipients(fresh, "news")[0].email == "ana@example.org"
    fresh.close()


def test_a_file_without_a_header_or_with_semicolons_or_a_bom_reads_the_same(store: Store, tmp_path: Path) -> None:
    plain = write_csv(tmp_path, "ana@example.org,Ana,es,news|weekly\n", "plain.csv")
    excel = write_csv(tmp_path, "\ufeffEmail;Name;Lists\nbo@example.org;Bo;news\n", "excel.csv")
    assert subscribers.import_csv(store, plain, NOW).added == 1
    assert subscribers.import_csv(store, excel, NOW).added == 1
    people = [(person.email, person.name, person.lists) for person in subscribers.list_subscribers(store)]
    assert people == [("ana@example.org", "Ana", ("news", "weekly")), ("bo@example.org", "Bo", ("news",))]


def test_a_file_that_cannot_be_read_as_a_whole_is_bad_input(store: Store, tmp_path: Path) -> None:
    cases = {
        write_csv(tmp_path, "name,lists\nAna,news\n", "noemail.csv"): "noemail.csv:1: email: no email column",
        write_csv(tmp_path, "email\nana@example.org\nJos\xe9@example.org\n", "latin.csv", "latin-1"): (
            "latin.csv:3: file: is not UTF-8 text"
        ),
        tmp_path / "missing.csv": "missing.csv:1: file: cannot be read (No such file or directory)",
    }
    for path, message in cases.items():
        with pytest.raises(InvalidInput) as caught:
            subscribers.import_csv(store, path, NOW, shown=path.name)
        assert str(caught.value).startswith(message)
    assert subscribers.list_subscribers(store) == []


def test_an_empty_file_imports_nothing(store: Store, tmp_path: Path) -> None:
    result = subscribers.import_csv(store, write_csv(tmp_path, ""), NOW)
    assert (result.added, result.problems) == (0, [])


def test_a_large_import_is_one_pass(store: Store, tmp_path: Path) -> None:
    rows = "".join(f"reader{number}@example.org,Reader {number},en,news\n" for number in range(3000))
    result = subscribers.import_csv(store, write_csv(tmp_path, "email,name,language,lists\n" + rows), NOW)
    assert result.added == 3000
    again = subscribers.import_csv(
        store,
        write_csv(tmp_path, "email,name,language,lists\n" + rows.replace(",en,news", ",en,weekly"), "two.csv"),
        LATER,
    )
    assert (again.added, again.updated) == (0, 3000)
    assert recipients.audience_size(store, "weekly") == 3000
