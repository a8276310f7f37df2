"""Records kept in .publisher/records-loaded.json are reused only while their files are unchanged; the problems
and records are those of parsing every file, and a kept file of any other shape is read as nothing."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

import pytest

from publisher.errors import InvalidInput
from publisher.site import loaded
from publisher.site import records as records_module
from publisher.site.dated import load_dated
from publisher.site.records import Record, load_records

OLD_NS = 1_500_000_000 * 1_000_000_000  # 2017: long before the test ran, so no file is too new to keep


def _aged(site: Path) -> Path:
    for path in (site / "events").rglob("*.md"):
        os.utime(path, ns=(OLD_NS, OLD_NS))
    return site / "events"


def _shape(records: list[Record]) -> list[tuple[str, str, dict[str, int]]]:
    return [(r.model_dump_json(), r.source, r.lines) for r in records]


def _header(site: Path) -> Any:
    return json.loads((site / loaded.LOADED_FILE).read_bytes().partition(b"\n")[0])


def _problems(events: Path, root: Path, *, keep: bool) -> list[str]:
    with pytest.raises(InvalidInput) as caught:
        load_records(events, root, keep=keep)
    return [str(problem) for problem in caught.value.problems]


def test_kept_records_are_the_parsed_ones_and_reused_only_while_their_files_stay(
    example_site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = _aged(example_site)
    parsed = load_records(events, example_site, drafts=True)
    assert _shape(load_records(events, example_site, drafts=True, keep=True)) == _shape(parsed)
    assert (example_site / loaded.LOADED_FILE).is_file()

    def refused(*args: Any, **kw: Any) -> Record:
        raise AssertionError("parsed again")

    monkeypatch.setattr(records_module, "load_record", refused)
    assert _shape(load_records(events, example_site, drafts=True, keep=True)) == _shape(parsed)

    monkeypatch.undo()
    changed = sorted(events.glob("*.md"))[0]
    text = changed.read_text(encoding="utf-8")
    changed.write_text(text.replace("title: ", "title: Changed, same mtime, ", 1), encoding="utf-8")
    os.utime(changed, ns=(OLD_NS, OLD_NS))
    again = load_records(events, example_site, drafts=True, keep=True)
    assert next(r.title for r in again if r.source.endswith(changed.name)).startswith("Changed, same mtime, ")


def test_a_record_with_problems_is_never_kept_and_its_messages_are_the_parsers(example_site: Path) -> None:
    events = _aged(example_site)
    load_records(events, example_site, keep=True)
    broken = sorted(events.glob("*.md"))[1]
    broken.write_text(broken.read_text(encoding="utf-8").replace("published: ", "published: not a date ", 1))
    os.utime(broken, ns=(OLD_NS, OLD_NS))
    expected = _problems(events, example_site, keep=False)
    assert any(f"{broken.name}:" in problem for problem in expected)
    assert _problems(events, example_site, keep=True) == expected
    kept = [name for name, *_ in _header(example_site)["records"]]
    assert broken.name not in kept and len(kept) == len(list(events.glob("*.md"))) - 1
    assert _problems(events, example_site, keep=True) == expected


DATES = b'"kept", "published", "2018-02-09T09:00:00+01:00", null, null'
HEADER = b'{"version": 3, "code": "CODE", "records": [["NAME", 0, 0, "SHOWN", ' + DATES + b"]]}"
RECORD = json.dumps({"id": "kept", "title": "Kept", "published": "2018-02-09T09:00:00+01:00", "summary": "S"})


def _written(site: Path, content: bytes) -> Path:
    """`content` as the site's kept file, its placeholders filled in for the site's first record file."""
    events = _aged(site)
    name = sorted(events.glob("*.md"))[0].name
    stat = (events / name).stat()
    content = content.replace(b"CODE", loaded.code_tag().encode()).replace(b"NAME", name.encode())
    content = content.replace(b"0, 0,", f"{stat.st_mtime_ns}, {stat.st_size},".encode())
    content = content.replace(b"SHOWN", f"events/{name}".encode())
    (site / ".publisher").mkdir(exist_ok=True)
    (site / loaded.LOADED_FILE).write_bytes(content)
    return events


@pytest.mark.parametrize(
    "content",
    [
        b"not json",
        b"[1, 2]",
        HEADER.replace(b"CODE", b"another") + b"\n" + RECORD.encode(),
        HEADER.replace(b'"version": 3', b'"version": 2') + b"\n" + RECORD.encode(),
        b'{"version": 1, "code": "CODE", "records": {"NAME": [0, 0, "SHOWN", ' + json.dumps(RECORD).encode() + b"]}}",
        HEADER.replace(b', "SHOWN"', b"") + b"\n" + RECORD.encode(),  # a header entry of another shape
        HEADER.replace(b'[["NAME", 0, 0, "SHOWN", ' + DATES + b"]]", b'"x"') + b"\n" + RECORD.encode(),
        HEADER.replace(b'"published", "2018', b'1, "2018') + b"\n" + RECORD.encode(),  # a status of another type
        HEADER.replace(b"null, null", b"null") + b"\n" + RECORD.encode(),  # dates cut short
        HEADER + b"\n" + RECORD.encode() + b"\n" + RECORD.encode(),  # one record more than the header lists
        HEADER,  # one less
        HEADER + b'\n{"id": 3}',  # a record of another shape
        HEADER + b"\n" + RECORD.replace("2018-02-09T09:00:00+01:00", "2018-02-09T09:00:00").encode(),  # naive
        HEADER + b"\n" + RECORD.encode()[:-1],  # cut short
        HEADER + b"\n" + RECORD.encode().replace(b"Kept", b"K\xffpt"),  # not UTF-8
    ],
)
def test_a_kept_file_of_another_shape_reads_as_nothing(example_site: Path, content: bytes) -> None:
    parsed = load_records(_aged(example_site), example_site)
    events = _written(example_site, content)
    assert _shape(load_records(events, example_site, keep=True)) == _shape(parsed)


def test_a_kept_record_of_the_right_shape_is_taken_as_it_is(example_site: Path) -> None:
    events = _written(example_site, HEADER + b"\n" + RECORD.encode())  # what the cases above spoil
    assert "kept" in {record.id for record in load_records(events, example_site, keep=True)}


def _dated(records: list[Record]) -> list[tuple[Any, ...]]:
    return [(r.id, r.status, r.published, r.starts, r.ends, r.source) for r in records]


def test_dated_records_are_the_records_dates_and_come_from_the_header_alone(
    example_site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`load_dated` (what `publisher plan` reads) gives each record's id, status and dates, offsets kept, in
    `load_records`' order; once kept, no file is parsed and no record validated again."""
    events = _aged(example_site)
    expected = _dated(load_records(events, example_site))
    assert [tuple(d) for d in load_dated(events, example_site)] == expected  # parsed, and kept
    assert any(r[2].utcoffset() != dt.timedelta(0) for r in expected)  # the example has offsets to keep

    def refused(*args: Any, **kw: Any) -> Record:
        raise AssertionError("parsed or validated again")

    monkeypatch.setattr(records_module, "load_record", refused)  # dated imports it when it parses
    monkeypatch.setattr(Record, "model_validate_json", refused)
    assert [tuple(d) for d in load_dated(events, example_site)] == expected


@pytest.mark.parametrize("spoil", [b'"2018-02-09T09:00:00"', b'"not a time"', b"null"])
def test_a_kept_date_that_is_not_a_time_means_the_file_is_parsed_again(example_site: Path, spoil: bytes) -> None:
    events = _aged(example_site)
    expected = _dated(load_records(events, example_site))
    load_dated(events, example_site)
    path = example_site / loaded.LOADED_FILE
    header, _, rest = path.read_bytes().partition(b"\n")
    first = json.loads(header)["records"][0][6]  # the first file's published time, as kept
    path.write_bytes(header.replace(f'"{first}"'.encode(), spoil, 1) + b"\n" + rest)

    assert [tuple(d) for d in load_dated(events, example_site)] == expected


def test_dated_records_have_the_problems_of_the_records(example_site: Path) -> None:
    events = _aged(example_site)
    load_dated(events, example_site)
    first, second = sorted(events.glob("*.md"))[:2]
    record_id = next(r.id for r in load_records(events, example_site) if r.source.endswith(first.name))
    second.write_text(second.read_text(encoding="utf-8").replace("---\n", f"---\nid: {record_id}\n", 1))
    os.utime(second, ns=(OLD_NS + 10**9, OLD_NS + 10**9))
    expected = _problems(events, example_site, keep=False)
    assert any("is already used by" in problem for problem in expected)

    with pytest.raises(InvalidInput) as caught:
        load_dated(events, example_site)

    assert [str(problem) for problem in caught.value.problems] == expected


def test_a_file_changed_under_dated_records_keeps_every_other_record_whole(
    example_site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`load_dated` reads only the header; when it keeps a changed file again, the other records' lines are
    written back as they were: `load_records` then parses nothing."""
    events = _aged(example_site)
    load_records(events, example_site, drafts=True, keep=True)
    changed = sorted(events.glob("*.md"))[0]
    changed.write_text(changed.read_text(encoding="utf-8").replace("title: ", "title: Changed ", 1))
    os.utime(changed, ns=(OLD_NS + 10**9, OLD_NS + 10**9))
    load_dated(events, example_site)  # parses the changed file, keeps it
    expected = _shape(load_records(events, example_site, drafts=True))

    def refused(*args: Any, **kw: Any) -> Record:
        raise AssertionError("parsed again")

    monkeypatch.setattr(records_module, "load_record", refused)
    assert _shape(load_records(events, example_site, drafts=True, keep=True)) == expected
