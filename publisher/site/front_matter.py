"""A record file's YAML front matter, split from its Markdown body, with the line of every key.

The lines are what problems name (``events/x.md:4: published: ...``), nested
keys too (``image.src``, ``links.1.url``). PyYAML's C loader composes the
nodes (they carry the marks); only then are they turned into values.
"""

from __future__ import annotations

import re
from typing import Any

import yaml


class FrontMatter:
    """Front matter split from its body, with the line of every key."""

    def __init__(self, text: str) -> None:
        self.data: dict[str, Any] = {}
        self.lines: dict[str, int] = {}
        self.body = text
        self.body_line = 1
        self.error: tuple[int, str] | None = None
        #: (line, field, message): a key given twice, a value YAML reads but Python cannot hold.
        self.problems: list[tuple[int, str, str]] = []
        self.unreadable = False  # a value could not be built: `data` is empty, `problems` says why
        if not text.startswith("---"):
            self.error = (1, "a record starts with '---' and its YAML front matter")
            return
        end = re.search(r"^(---|\.\.\.)[ \t]*$", text[3:], re.MULTILINE)
        if end is None:
            self.error = (1, "the front matter has no closing '---'")
            return
        front = text[3 : 3 + end.start()]
        rest = text[3 + end.end() :]
        self.body = rest.lstrip("\r\n")
        skipped = rest[: len(rest) - len(self.body)] if self.body else rest[:1]
        self.body_line = text[: 3 + end.end()].count("\n") + skipped.count("\n") + 1
        self._parse(front)

    def _parse(self, front: str) -> None:
        loader = yaml.CSafeLoader(front) if hasattr(yaml, "CSafeLoader") else yaml.SafeLoader(front)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "context_mark", None) or getattr(exc, "problem_mark", None)
            line = mark.line + 1 if mark is not None else 1
            problem = getattr(exc, "problem", None) or str(exc)
            self.error = (line, f"bad YAML: {problem}")
            return
        except (ValueError, OverflowError):  # e.g. a timestamp with a UTC offset of 25 hours
            self.problems = _unbuildable(node) if node is not None else [(1, "front matter", "cannot be read")]
            self.unreadable = True
            return
        finally:
            loader.dispose()
        if not isinstance(data, dict):
            self.error = (2, "the front matter must be a mapping of keys to values")
            return
        self.data = data
        if node is None:  # empty front matter: no keys, no lines
            return
        for key_node, value_node in node.value:
            self._key(str(key_node.value), key_node)
            self._nested(str(key_node.value), value_node)

    def _key(self, name: str, key_node: yaml.Node) -> None:
        """Note the line of key `name`; a key given twice is a problem (YAML would keep the last silently)."""
        line = key_node.start_mark.line + 1
        if name in self.lines:
            first = self.lines[name]
            self.problems.append((line, name, f"is given twice, on lines {first} and {line}; keep one"))
            return
        self.lines[name] = line

    def _nested(self, prefix: str, node: yaml.Node) -> None:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                name = f"{prefix}.{key_node.value}"
                self._key(name, key_node)
                self._nested(name, value_node)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                name = f"{prefix}.{index}"
                self.lines[name] = item.start_mark.line + 1
                self._nested(name, item)


def _unbuildable(node: yaml.Node, name: str = "front matter") -> list[tuple[int, str, str]]:
    """The scalars under `node` that YAML resolves but cannot build (a date past the calendar, an offset of a day)."""
    if isinstance(node, yaml.MappingNode):
        found = []
        for key_node, value_node in node.value:
            key = str(key_node.value) if name == "front matter" else f"{name}.{key_node.value}"
            found.extend(_unbuildable(value_node, key))
        return found
    if isinstance(node, yaml.SequenceNode):
        return [p for index, item in enumerate(node.value) for p in _unbuildable(item, f"{name}.{index}")]
    try:
        yaml.SafeLoader("").construct_object(node, deep=True)  # a fresh loader: the failed one keeps its state
    except (ValueError, OverflowError) as exc:
        why = "a UTC offset is less than 24 hours" if "offset" in str(exc) else str(exc)
        return [(node.start_mark.line + 1, name, f"is not a date and time (got {node.value!r}: {why})")]
    return []
