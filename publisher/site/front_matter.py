"""A record file's YAML front matter, split from its Markdown body, with the line of every key.

The lines are what problems name (``events/x.md:4: published: ...``), nested
keys too (``image.src``, ``links.1.url``). PyYAML's C loader composes the
nodes (they carry the marks); one walk over them then builds the values and
notes the lines together. The walk builds plain strings, maps and lists
itself and hands every other scalar (dates, numbers, ...) to PyYAML's own
constructor: PyYAML's Python constructor costs as much as the C compose, and a
second walk for the lines as much again. Anything the walk does not handle
(merge keys, tags such as ``!!set``, a key that is no scalar, a construction
error) sends the front matter down PyYAML's own path, so values and messages
stay PyYAML's.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

import yaml

_STR = "tag:yaml.org,2002:str"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"


class _Loader(yaml.CSafeLoader if hasattr(yaml, "CSafeLoader") else yaml.SafeLoader):  # type: ignore[misc]
    """PyYAML's safe loader resolving plain scalars' tags with one dictionary look-up of their first character.

    The same tags as PyYAML's `Resolver.resolve` (which builds a list per scalar), for a loader without
    path resolvers, which the safe loader has none of: the C composer calls it for every node.
    """

    _by_first: ClassVar[dict[str, tuple[tuple[str, re.Pattern[str]], ...]]] = {
        first: tuple(resolvers)
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
        if first is not None
    }

    def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
        if kind is yaml.ScalarNode:
            if implicit[0]:
                for tag, pattern in self._by_first.get(value[:1], ()):
                    if pattern.match(value):
                        return tag
            return _STR
        return _SEQ if kind is yaml.SequenceNode else _MAP

    def descend_resolver(self, current_node: Any, current_index: Any) -> None:
        pass

    def ascend_resolver(self) -> None:
        pass


_FAST_RESOLVE = not yaml.SafeLoader.yaml_path_resolvers and None not in yaml.SafeLoader.yaml_implicit_resolvers


#: How many values front matter may stand for once its aliases are written out. A record holds tens;
#: aliases of aliases ("billion laughs") multiply: nine lines of them stand for 387 million values,
#: which building or walking took minutes and gigabytes.
EXPANDED_LIMIT = 10_000
TOO_DEEP = "nests more lists and mappings inside each other than a record can hold"
TOO_MANY = f"its YAML aliases (*name) stand for more than {EXPANDED_LIMIT:,} values; write the values out"


def _expanded(node: yaml.Node, sizes: dict[int, int], above: set[int]) -> int:
    """How many nodes `node` stands for with every alias written out; each node counted once (`sizes`)."""
    known = sizes.get(id(node))
    if known is not None:
        return known
    if isinstance(node, yaml.ScalarNode) or id(node) in above:  # (an alias inside its anchor: said elsewhere)
        return 1
    above.add(id(node))
    children = [part for pair in node.value for part in pair] if isinstance(node, yaml.MappingNode) else node.value
    total = 1 + sum(_expanded(child, sizes, above) for child in children)
    above.discard(id(node))
    sizes[id(node)] = total
    return total


def _too_many(node: yaml.Node) -> tuple[int, str] | None:
    """(line, message) when the front matter's aliases stand for more than `EXPANDED_LIMIT` values."""
    sizes: dict[int, int] = {}
    try:
        if _expanded(node, sizes, set()) <= EXPANDED_LIMIT:
            return None
    except RecursionError:
        return (node.start_mark.line + 1, TOO_DEEP)
    return (_largest(node, sizes).start_mark.line + 1, TOO_MANY)


def _largest(node: yaml.Node, sizes: dict[int, int]) -> yaml.Node:
    """The key whose value stands for the most nodes (`_expanded`'s `sizes`), or the node itself."""
    if not isinstance(node, yaml.MappingNode) or not node.value:
        return node
    key: yaml.Node = max(node.value, key=lambda pair: sizes.get(id(pair[1]), 1))[0]
    return key


class _Unusual(Exception):
    """The fast walk met YAML it leaves to PyYAML's own constructor."""


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
        loader = _Loader(front) if _FAST_RESOLVE else _safe_loader(front)
        try:
            node = loader.get_single_node()
            if node is not None and "*" in front:  # aliases, maybe: never more values than a record can hold
                self.error = _too_many(node)
                if self.error:
                    return
            if isinstance(node, yaml.MappingNode) and node.tag == _MAP:
                self.data = self._walk(loader, node, "", set())
                return
        except (yaml.YAMLError, _Unusual, ValueError, OverflowError, TypeError, AttributeError, RecursionError):
            pass  # PyYAML's own path below says what it is
        finally:
            loader.dispose()
        self.lines, self.problems = {}, []
        self._parse_slowly(front)

    def _walk(self, loader: Any, node: yaml.Node, prefix: str, above: set[int]) -> Any:
        """The value of `node` as PyYAML builds it, noting the line of every key below `prefix` on the way."""
        if isinstance(node, yaml.ScalarNode):
            return node.value if node.tag == _STR else loader.construct_object(node, deep=True)
        if id(node) in above:  # an alias of a node that holds it
            raise _Unusual
        above.add(id(node))
        if isinstance(node, yaml.MappingNode) and node.tag == _MAP:
            mapping = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag not in (_STR, *_KEY_TAGS):
                    raise _Unusual  # a merge key, a key that is a mapping or a list
                key = self._walk(loader, key_node, "", above)
                name = f"{prefix}{key_node.value}"
                self._key(name, key_node)
                mapping[key] = self._walk(loader, value_node, f"{name}.", above)
            value: Any = mapping
        elif isinstance(node, yaml.SequenceNode) and node.tag == _SEQ:
            value = []
            for index, item in enumerate(node.value):
                name = f"{prefix}{index}"
                self.lines[name] = item.start_mark.line + 1
                value.append(self._walk(loader, item, f"{name}.", above))
        else:
            raise _Unusual
        above.discard(id(node))
        return value

    def _parse_slowly(self, front: str) -> None:
        loader = _safe_loader(front)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "context_mark", None) or getattr(exc, "problem_mark", None)
            line = mark.line + 1 if mark is not None else 1
            problem = getattr(exc, "problem", None) or str(exc)
            self.error = (line, f"bad YAML: {problem}")
            return
        # e.g. a timestamp with a UTC offset of 25 hours; `!!timestamp 'x'` fails in PyYAML with AttributeError
        except RecursionError:
            self.error = (node.start_mark.line + 1 if node is not None else 1, TOO_DEEP)
            return
        except (ValueError, OverflowError, AttributeError, TypeError):
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
            try:
                self._nested(str(key_node.value), value_node)
            except RecursionError:  # (the fast walk gave up on it for the same reason)
                self.problems.append((key_node.start_mark.line + 1, str(key_node.value), TOO_DEEP))

    def _key(self, name: str, key_node: yaml.Node) -> None:
        """Note the line of key `name`; a key given twice is a problem (YAML would keep the last silently)."""
        line = key_node.start_mark.line + 1
        if name in self.lines:
            first = self.lines[name]
            self.problems.append((line, name, f"is given twice, on lines {first} and {line}; keep one"))
            return
        self.lines[name] = line

    def _nested(self, prefix: str, node: yaml.Node, above: frozenset[int] = frozenset()) -> None:
        if id(node) in above:  # an alias inside its own anchor (`x: &a [*a]`): a value with no end
            self.problems.append((node.start_mark.line + 1, prefix, "refers to itself (an alias inside its anchor)"))
            return
        above = above | {id(node)}
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                name = f"{prefix}.{key_node.value}"
                self._key(name, key_node)
                self._nested(name, value_node, above)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                name = f"{prefix}.{index}"
                self.lines[name] = item.start_mark.line + 1
                self._nested(name, item, above)


def _safe_loader(front: str) -> Any:
    return yaml.CSafeLoader(front) if hasattr(yaml, "CSafeLoader") else yaml.SafeLoader(front)


#: Scalar keys PyYAML builds as hashable values of their own (a key `1:`, `yes:`, `2024-01-01:`).
_KEY_TAGS = tuple(f"tag:yaml.org,2002:{name}" for name in ("null", "bool", "int", "float", "timestamp"))


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
    except (AttributeError, TypeError):  # PyYAML's own failure on a value its tag does not fit: `!!timestamp 'x'`
        tag = str(node.tag).rpartition(":")[2]
        what = "a date and time" if tag == "timestamp" else f"YAML's !!{tag}"
        return [(node.start_mark.line + 1, name, f"is not {what} (got {node.value!r})")]
    return []
