"""The quick path of a record file (`publisher.site.plain`) against the model it stands in for.

Whatever front matter a file holds, `plain_record` either answers None (the model decides) or makes
the very record `load_record` makes: the same fields, the same JSON for the build's cache, the same
`Source`. It must answer for the common case, or the build would never take it, and never import
pydantic, or taking it would save nothing.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

from publisher.build.cache import Source
from publisher.build.stored import record_blob
from publisher.errors import InvalidInput
from publisher.site.plain import PlainRecord, plain_record
from publisher.site.records import Record, load_record
from tests.conftest import REPO

# Rust's trim strips the first line; Python's strip strips the second too; the third are no spaces to either.
SPACES = " \t\n\r\v\f\x85\xa0\u1680\u2000\u200a\u2028\u2029\u202f\u205f\u3000"
PYTHON_ONLY_SPACES = "\x1c\x1d\x1e\x1f"
NOT_SPACES = "\u180e\u200b\ufeff\ufffe\uffff\x00\x07\x7f\u0301"
YAML_MARKS = "#.-_:'\"{}[],&*!|>%@`\\~"
WORDS = ("Paris", "topic-1", "data.v2", "Agenda2030", "#SDGs", "ü", "x y", "-x", "_x", "a.b")
URLS = ("https://example.org/a", "http://x.org", "HTTPS://EXAMPLE.ORG", "ftp://x.org", "example.org", "https:// x")
LANGUAGES = ("en", "es-419", "fr-CA", "pt-BR", "zh-Hant-TW", "xx", "e", "en_GB", "qqq")
IMAGES = (
    "media/forum-bogota.png",
    " media/forum-bogota.png",
    "media/missing.png",
    "https://example.org/a.jpg",
    "../media/forum-bogota.png",
    "/media/forum-bogota.png",
    "publisher.toml",
    "file:///etc/passwd.png",
    "",
)
STEMS = ("2024-05-01-forum", "x", " x", "-x", "x y", "ü", "a.b_c-d")
KNOWN: tuple[str, ...] = ("id", "title", "published", "summary", "url", "updated", "language", "starts", "ends")
KNOWN += ("location", "organisers", "tags", "image", "social", "status")
OTHER = ("people", "links", "body", "source", "lines", "titel", "Title", "1", "extra")

chars = st.one_of(
    st.sampled_from(SPACES + PYTHON_ONLY_SPACES + NOT_SPACES + YAML_MARKS),
    st.characters(codec="utf-8"),
    st.characters(min_codepoint=ord("a"), max_codepoint=ord("z")),
)
hostile = st.text(chars, max_size=12)
padding = st.text(st.sampled_from(SPACES + PYTHON_ONLY_SPACES + "\ufeff"), max_size=2)


def padded(core: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """`core` with whitespace (of either kind) and byte-order marks around it, now and then."""
    return st.one_of(core, st.builds(lambda a, c, b: a + c + b, padding, core, padding))


words = padded(st.one_of(st.sampled_from(WORDS), hostile))
offsets = st.one_of(
    st.sampled_from([dt.UTC, dt.timezone(dt.timedelta(hours=5, minutes=30)), dt.timezone(dt.timedelta(hours=-3))]),
    st.builds(dt.timezone, st.timedeltas(min_value=dt.timedelta(hours=-23), max_value=dt.timedelta(hours=23))),
)
years = st.datetimes(min_value=dt.datetime(990, 1, 1), max_value=dt.datetime(9010, 12, 31))
moments = st.one_of(
    st.datetimes(min_value=dt.datetime(2017, 1, 1), max_value=dt.datetime(2019, 12, 31), timezones=offsets),
    st.datetimes(timezones=offsets) | years,
    st.dates(),
)
iso_strings = padded(
    st.builds(
        lambda moment, sep, spec: moment.isoformat(sep, spec) if isinstance(moment, dt.datetime) else str(moment),
        moments,
        st.sampled_from("T t"),
        st.sampled_from(["auto", "minutes", "seconds", "milliseconds"]),
    )
    | st.sampled_from(["2018-02-09T18:00:00+01:00:30", "2018-02-09 18:00Z", "20180209T180000+0100", "now", ""])
)
scalars = st.one_of(
    words,
    st.integers(),
    st.floats(allow_nan=False),
    st.booleans(),
    st.none(),
    moments,
    iso_strings,
)
anything = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(("src", "alt", "x")) | words, inner),
    max_leaves=6,
)


def either(likely: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A key's likely values mostly, anything now and then."""
    return st.one_of(likely, likely, likely, anything)


images = st.fixed_dictionaries(
    {"src": padded(st.sampled_from(IMAGES)), "alt": words},
    optional={"credit": st.none() | words, "title": words},
)
socials = st.sampled_from([{}, {"x": "Own text"}, {"hashtags": "SDGs"}, None]) | st.fixed_dictionaries(
    {"hashtags": st.lists(words, max_size=3)}
)
LIKELY: dict[str, st.SearchStrategy[Any]] = {
    "id": padded(st.sampled_from(STEMS)),
    "title": words,
    "summary": st.none() | words,
    "location": st.none() | words,
    "published": moments | iso_strings,
    "updated": st.none() | moments | iso_strings,
    "starts": st.none() | moments | iso_strings,
    "ends": st.none() | moments | iso_strings,
    "url": st.none() | padded(st.sampled_from(URLS)),
    "language": st.none() | padded(st.sampled_from(LANGUAGES)),
    "organisers": st.lists(words, max_size=3),
    "tags": st.lists(words, max_size=3),
    "image": st.none() | images,
    "social": socials,
    "status": padded(st.sampled_from(["draft", "published", "cancelled", "Draft"])),
    "people": st.sampled_from([[], [{"name": "Ana"}]]),
    "links": st.sampled_from([[], [{"title": "A", "url": "https://example.org"}]]),
}


def in_year(year: int) -> st.SearchStrategy[dt.datetime]:
    return st.datetimes(min_value=dt.datetime(year, 1, 1), max_value=dt.datetime(year, 12, 31), timezones=offsets)


def iso(moments: st.SearchStrategy[dt.datetime]) -> st.SearchStrategy[str]:
    return padded(st.builds(lambda moment, sep: moment.isoformat(sep), moments, st.sampled_from("T ")))


# Values the model mostly accepts, with their variations (spaces around, byte-order marks, offsets in seconds);
# the dates in order: published, updated, starts, ends.
valid_words = padded(st.sampled_from(WORDS[:6]) | st.text(st.characters(codec="utf-8"), min_size=1, max_size=8))
TAME: dict[str, st.SearchStrategy[Any]] = {
    "id": padded(st.sampled_from(STEMS[:2] + STEMS[-1:])),
    "title": valid_words,
    "summary": st.none() | valid_words,
    "location": st.none() | valid_words,
    "published": in_year(2017) | iso(in_year(2017)),
    "updated": st.none() | in_year(2018) | iso(in_year(2018)),
    "starts": st.none() | in_year(2019) | iso(in_year(2019)),
    "ends": st.none() | in_year(2020) | iso(in_year(2020)),
    "url": padded(st.sampled_from(URLS[:3])),
    "language": padded(st.sampled_from(LANGUAGES[:5])),
    "organisers": st.lists(valid_words, max_size=3),
    "tags": st.lists(padded(st.sampled_from((*WORDS[:4], "ü", "a.b"))), max_size=3),
    "image": st.fixed_dictionaries(
        {"src": st.sampled_from(IMAGES[:4]), "alt": valid_words}, optional={"credit": st.none() | valid_words}
    ),
    "social": st.sampled_from([{}]) | st.fixed_dictionaries({"hashtags": st.lists(st.sampled_from(WORDS[3:5]))}),
    "status": st.sampled_from(["draft", "published", "cancelled"]),
}


@st.composite
def record_files(draw: st.DrawFn, keys: tuple[str, ...] = KNOWN + OTHER, *, wild: bool = True) -> bytes:
    """A record file's bytes: front matter of known and unknown keys, each dumped by PyYAML or written raw.

    `wild`: values of any type for any key, now and then, and hostile bodies; else mostly likely values.
    """
    chosen = draw(st.lists(st.sampled_from(keys), unique=True, max_size=len(keys)))
    if draw(st.integers(0, 4)) > 0:
        chosen += [key for key in ("title", "published") if key not in chosen]
    lines = ["---"]
    for key in chosen:
        value = draw(either(LIKELY.get(key, anything)) if wild else st.one_of(*[TAME[key]] * 9, LIKELY[key]))
        if isinstance(value, str) and draw(st.integers(0, 4 if wild else 12)) == 0 and "\n" not in value:
            lines.append(f"{key}: {value}")  # raw: whatever YAML makes of it
        else:
            style = draw(st.sampled_from([None, False, True]))
            unicode = draw(st.booleans())
            dumped = yaml.safe_dump({key: value}, default_flow_style=style, allow_unicode=unicode, width=1 << 30)
            flow = dumped.startswith("{")  # (None: flow style for a mapping of scalars only)
            lines.append(dumped[1:-2] if flow else dumped.rstrip("\n"))  # `key: value`, not `{key: value}`
    end = draw(st.sampled_from(["---", "...", "--- ", ""]) if wild else st.just("---"))
    lines += [end, draw(padded(hostile | st.just("Some body.")) if wild else padded(st.just("Some body.")))]
    text = "\n".join(lines)
    if draw(st.booleans()):
        text = text.replace("\n", draw(st.sampled_from(["\r\n", "\r"])))
    return (draw(st.sampled_from(["", "\ufeff"])) + text).encode()


def assert_same(plain: PlainRecord, record: Record) -> None:
    """Every field of the quick path's record is the model's, of the same type; datetimes with their offsets."""
    for name in (field.name for field in msgspec.structs.fields(PlainRecord)):
        mine, theirs = getattr(plain, name), getattr(record, name)
        if name == "image":
            assert (mine is None) == (theirs is None)
            if mine is not None:
                assert (mine.src, mine.alt, mine.credit) == (theirs.src, theirs.alt, theirs.credit)
        elif name == "social":
            assert mine.hashtags == theirs.hashtags
            assert (mine.x, mine.mastodon, mine.bluesky) == (theirs.x, theirs.mastodon, theirs.bluesky)
        elif isinstance(theirs, dt.datetime):
            assert type(mine) is dt.datetime
            assert (mine, mine.isoformat()) == (theirs, theirs.isoformat())
        else:
            assert type(mine) is type(theirs), name
            assert mine == theirs, name
    assert (record.people, record.links) == ((), ())


def note(what: str) -> None:
    """Counted in Hypothesis's statistics (`--hypothesis-show-statistics`): how often each path is taken."""
    if currently_in_test_context():
        event(what)


def assert_agree(data: bytes, stem: str = "2024-05-01-forum") -> None:
    """The property: the quick path answers None, or exactly what the model makes."""
    path = REPO / "events" / f"{stem}.md"
    shown = f"events/{stem}.md"
    plain = plain_record(data, path, REPO, shown)
    try:
        record = load_record(path, REPO, data=data, shown=shown)
    except InvalidInput:
        note("the model refuses")
        assert plain is None
        return
    note("the model accepts; quick path " + ("declines" if plain is None else "agrees"))
    if plain is None:
        return
    assert_same(plain, record)
    again = Record.model_validate_json(plain.blob())
    assert again == record
    assert_same(plain, again)
    assert plain.blob() == record_blob(record)  # the cache holds the same bytes, whichever path parsed the file
    mine, theirs = Source.parsed(plain, "key", "name"), Source.parsed(record, "key", "name")
    for slot in Source.__struct_fields__:
        assert getattr(mine, slot) == getattr(theirs, slot), slot


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(record_files(), st.sampled_from(STEMS))
def test_the_quick_path_makes_what_the_model_makes_or_nothing(data: bytes, stem: str) -> None:
    assert_agree(data, stem)


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(record_files(KNOWN, wild=False), st.sampled_from(STEMS[:2]))
def test_the_quick_path_agrees_on_the_keys_it_knows(data: bytes, stem: str) -> None:
    assert_agree(data, stem)


@pytest.mark.parametrize(
    "text",
    [
        "---\ntitle: A\npublished: 2024-01-01T10:00:00+01:00\n---\n\x1cBody\x1c",  # Rust keeps \x1c, Python not
        "---\ntitle: A\npublished: 2024-01-01T10:00:00+01:00:30\n---\nBody",  # an offset with seconds
        "---\ntitle: A\npublished: 2024-01-01T10:00:00+01:00\npeople: []\n---\nBody",  # a key it leaves
        "---\ntitle: A\npublished: 2024-01-01T10:00:00+01:00\nsocial: {x: Hello}\n---\nBody",
        "---\ntitle: A\npublished: 2024-01-01T10:00:00+01:00\nstatus: ' draft'\n---\nBody",
    ],
)
def test_what_the_quick_path_leaves_to_the_model(text: str) -> None:
    assert plain_record(text.encode(), Path("events/a.md"), None, "events/a.md") is None
    assert_agree(text.encode())


def typical_records() -> list[str]:
    return [
        "---\ntitle: Forum on financing, Bogotá\nsummary: >-\n  Ministers meet\n  in Bogotá.\n"
        "published: 2018-05-02T09:00:00-05:00\nupdated: 2018-05-03 10:00:00-05:00\nlanguage: es-419\n"
        "url: https://example.org/forum\nstarts: 2018-05-21T08:00:00-05:00\nends: 2018-05-22T17:00:00-05:00\n"
        "location: Hotel Tequendama\norganisers: [Cepei, UNDP Colombia]\ntags: [financing, sdgs]\n"
        "image:\n  src: media/forum-bogota.png\n  alt: The room\n  credit: © Cepei\n"
        "social:\n  hashtags: ['#FfD', SDGs]\nstatus: published\n---\nRegistration is **open**.\n",
        "---\nid: webinar-2018\ntitle: 'Cancelled: webinar'\nsummary: It is cancelled.\n"
        "published: 2018-06-01T11:00:00Z\nstatus: cancelled\n---\n",
        "\ufeff---\r\ntitle: A draft\r\npublished: '2018-06-20T09:00:00+02:00'\r\nstatus: draft\r\n"
        "image: {src: 'https://example.org/a.jpg', alt: A chart}\r\n---\r\n\r\nThe body.\r\n",
    ]


def test_the_quick_path_takes_typical_records() -> None:
    for text in typical_records():
        assert plain_record(text.encode(), REPO / "events" / "a.md", REPO, "events/a.md") is not None, text
        assert_agree(text.encode(), "a")


def common_event_files() -> list[Path]:
    """The example site's records with no people, links or network texts (found by the model, not by us)."""
    files = []
    for path in sorted((REPO / "events").glob("*.md")):
        record = load_record(path, REPO)
        social = record.social
        if not record.people and not record.links and (social.x, social.mastodon, social.bluesky) == (None,) * 3:
            files.append(path)
    return files


def test_the_quick_path_takes_the_example_sites_common_records() -> None:
    files = common_event_files()
    assert len(files) >= 3
    for path in files:
        assert plain_record(path.read_bytes(), path, REPO, f"events/{path.name}") is not None, path
        assert_agree(path.read_bytes(), path.stem)


def test_the_quick_path_takes_the_benchmarks_records() -> None:
    spec = importlib.util.spec_from_file_location("bench_build", REPO / "bench" / "build.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    rng = random.Random(7)
    for i in range(0, 2000, 97):
        data = bench.record_text(i, rng).encode()
        assert plain_record(data, REPO / "events" / "a.md", REPO, "events/a.md") is not None
        assert_agree(data, "a")


def test_the_quick_path_never_imports_pydantic(tmp_path: Path) -> None:
    record = tmp_path / "a.md"
    record.write_text(typical_records()[0], encoding="utf-8")
    code = (
        "import sys; from pathlib import Path; from publisher.site.plain import plain_record; "
        f"r = plain_record(Path({str(record)!r}).read_bytes(), Path({str(record)!r}), Path({str(REPO)!r}), 'a.md'); "
        "print(r is not None, 'pydantic' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path)
    assert done.stdout.split() == ["True", "False"]


def test_the_quick_record_has_the_models_fields_but_those_it_leaves_to_the_model() -> None:
    """A field added to the model and not here would be dropped from the quick path's blob without a word."""
    mine = {field.name for field in msgspec.structs.fields(PlainRecord)}
    assert mine | {"people", "links"} == set(Record.model_fields)
    assert list(json.loads(PlainRecord("a", "A", dt.datetime(2024, 1, 1, tzinfo=dt.UTC), summary="s").blob())) == [
        *Record.model_fields
    ]  # the blob names every field of the model, in its order
