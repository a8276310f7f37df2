"""Records kept in .publisher/records-loaded.json are reused only while their files are unchanged; the problems
and records are those of parsing every file, and a kept file of any other shape is read as nothing."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from publisher.errors import InvalidInput
from publisher.site import loaded
from publisher.site import records as records_module
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


HEADER = b'{"version": 2, "code": "CODE", "records": [["NAME", 0, 0, "SHOWN"]]}'
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
        HEADER.replace(b'"version": 2', b'"version": 1') + b"\n" + RECORD.encode(),
        b'{"version": 1, "code": "CODE", "records": {"NAME": [0, 0, "SHOWN", ' + json.dumps(RECORD).encode() + b"]}}",
        HEADER.replace(b', "SHOWN"', b"") + b"\n" + RECORD.encode(),  # a header entry of another shape
        HEADER.replace(b'[["NAME", 0, 0, "SHOWN"]]', b'"x"') + b"\n" + RECORD.encode(),
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
