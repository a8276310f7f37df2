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
        finally:
            loader.dispose()
        if not isinstance(data, dict):
            self.error = (2, "the front matter must be a mapping of keys to values")
            return
        self.data = data
        if node is None:  # empty front matter: no keys, no lines
            return
        for key_node, value_node in node.value:
            self.lines[str(key_node.value)] = key_node.start_mark.line + 1
            self._nested(str(key_node.value), value_node)

    def _nested(self, prefix: str, node: yaml.Node) -> None:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                name = f"{prefix}.{key_node.value}"
                self.lines[name] = key_node.start_mark.line + 1
                self._nested(name, value_node)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                name = f"{prefix}.{index}"
                self.lines[name] = item.start_mark.line + 1
                self._nested(name, item)
