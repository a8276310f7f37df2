"""The fast front-matter walk builds what PyYAML's own constructor builds, with the same lines and problems."""

from __future__ import annotations

import math
from typing import Any

import pytest
import yaml

from publisher.site import front_matter
from publisher.site.front_matter import FrontMatter

CASES = {
    "plain": "title: A\npublished: 2024-03-01T10:00:00+01:00\ntags: [a, b]\n",
    "nested": "image:\n  src: a.png\n  alt: An image\nlinks:\n  - title: T\n    url: https://x.org\n  - title: U\n",
    "social": "social:\n  hashtags: [One, Two]\n  x:\n    text: Hi\n    thread:\n      - one\n      - two\n",
    "scalars": "a: 1\nb: 1.5\nc: yes\nd: null\ne: ~\nf: ''\ng: 0x1f\nh: .inf\ni: 2024-01-01\nk: 1_000\n",
    "more scalars": "a: NO\nb: -.NaN\nc: 0o17\nd: +12\ne: 1e3\nf: True\ng: 12:30:00\nh: 190:20:30\n",
    "quoted": 'title: "yes"\nsummary: \'1\'\nlocation: "null"\n',
    "block text": "summary: |\n  Two\n  lines\nbody: >\n  folded\n  text\n",
    "duplicate": "title: A\nsummary: B\ntitle: C\n",
    "nested duplicate": "image:\n  src: a.png\n  src: b.png\n  alt: x\n",
    "duplicate in a list item": "links:\n  - title: A\n    title: B\n",
    "same text, other keys": "handles:\n  1: a\n  '1': b\n",
    "number keys": "1: a\n2024-01-01: b\nnull: c\ntrue: d\n",
    "dotted key": "image.src: x\nimage:\n  src: y\n",
    "anchors": "a: &x\n  b: 1\nc: *x\nd: &y [1, 2]\ne: *y\n",
    "merge": "base: &b\n  x: 1\nthing:\n  <<: *b\n  y: 2\n",
    "aliases of aliases": "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
    + "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n",
    "set": "tags: !!set {a, b}\n",
    "omap": "tags: !!omap [a: 1, b: 2]\n",
    "binary": "image: !!binary aGVsbG8=\n",
    "explicit str": "a: !!str 12\nb: !!int '12'\n",
    "unknown tag": "a: !thing x\n",
    "complex key": "? [a, b]\n: c\n",
    "list root": "- a\n- b\n",
    "scalar root": "just text\n",
    "empty": "",
    "comment only": "# nothing\n",
    "bad YAML": "title: [a\n",
    "bad date": "published: 2024-13-45T10:00:00+01:00\n",
    "bad offset": "published: 2024-01-01T10:00:00+25:00\n",
    "tabs and unicode": "title: Ça va\u00a0?\nsummary: 日本語\n",
    "flow mapping": "image: {src: a.png, alt: b}\nsocial: {x: hi}\n",
    "nested lists": "a:\n  - [1, 2]\n  - - x\n    - y\n",
}


def parsed(front: str) -> tuple[Any, ...]:
    try:
        fm = FrontMatter(f"---\n{front}---\nBody.\n")
    except Exception as exc:  # both paths must fail alike
        return ("raised", type(exc))
    return (_comparable(fm.data), fm.lines, fm.problems, fm.error, fm.unreadable, fm.body, fm.body_line)


def _comparable(value: Any) -> Any:
    """NaN is not equal to itself: compare it by name."""
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if isinstance(value, dict):
        return {k: _comparable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_comparable(v) for v in value]
    return value


@pytest.mark.parametrize("name", list(CASES))
def test_the_fast_walk_matches_pyyaml(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fast = parsed(CASES[name])

    def unusual(*args: Any) -> Any:
        raise front_matter._Unusual

    monkeypatch.setattr(FrontMatter, "_walk", unusual)  # every front matter down PyYAML's own path
    assert fast == parsed(CASES[name])


@pytest.mark.parametrize("name", ["plain", "scalars", "more scalars", "duplicate", "anchors"])
def test_the_data_is_what_pyyaml_loads(name: str) -> None:
    assert _comparable(FrontMatter(f"---\n{CASES[name]}---\n").data) == _comparable(
        yaml.load(CASES[name], Loader=yaml.CSafeLoader)
    )


def test_ordinary_front_matter_takes_the_fast_walk(monkeypatch: pytest.MonkeyPatch) -> None:
    slow: list[str] = []
    original = FrontMatter._parse_slowly

    def counted(self: FrontMatter, front: str) -> None:
        slow.append(front)
        original(self, front)

    monkeypatch.setattr(FrontMatter, "_parse_slowly", counted)
    for name in ("plain", "nested", "social", "scalars", "duplicate", "nested duplicate", "flow mapping"):
        FrontMatter(f"---\n{CASES[name]}---\n")
    assert slow == []
    FrontMatter(f"---\n{CASES['merge']}---\n")
    assert len(slow) == 1


def test_a_duplicate_key_names_both_lines() -> None:
    fm = FrontMatter("---\ntitle: A\nimage:\n  src: a\n  src: b\ntitle: C\n---\n")
    assert fm.problems == [
        (5, "image.src", "is given twice, on lines 4 and 5; keep one"),
        (6, "title", "is given twice, on lines 2 and 6; keep one"),
    ]
    assert fm.data == {"title": "C", "image": {"src": "b"}}


def test_the_resolver_gives_pyyaml_tags() -> None:
    values = ["", "~", "null", "Null", "yes", "No", "off", "1", "-1", "0b11", "1.0", ".5", "-.inf", ".NaN", "1:20"]
    values += ["2024-01-01", "2024-01-01 10:00", "<<", "=", "text", "12abc", "+", "0x", "1_0", "Yes please"]
    ours = front_matter._Loader("")
    theirs = yaml.SafeLoader("")
    for value in values:
        for implicit in ((True, False), (False, True), (False, False)):
            assert ours.resolve(yaml.ScalarNode, value, implicit) == theirs.resolve(yaml.ScalarNode, value, implicit)
    assert ours.resolve(yaml.SequenceNode, None, (True, False)) == "tag:yaml.org,2002:seq"
    assert ours.resolve(yaml.MappingNode, None, (True, False)) == "tag:yaml.org,2002:map"


def test_aliases_may_stand_for_10000_values_and_no_more() -> None:
    """An alias is a reference to one value: PyYAML builds it once, but every walk over the values (the line
    of each key, the model, the JSON of a record) writes it out, and aliases of aliases multiply."""
    level = "[" + ", ".join(["*a"] * 10) + "]"
    at_most = FrontMatter(f"---\na: &a [{', '.join(['x'] * 9)}]\nb: &b {level}\nc: {level.replace('a', 'b')}\n---\n")
    assert at_most.error is None and len(at_most.data["c"]) == 10  # about 1,100 values written out
    over = FrontMatter(f"---\ntitle: T\n{CASES['aliases of aliases']}---\n")
    assert over.error == (6, front_matter.TOO_MANY) and over.data == {}
