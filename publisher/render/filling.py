"""Filling an issue's templates: Jinja's `render`, faster, and the text cleaned for MJML.

Both give exactly what the plain way gives (tests/test_render_fast.py holds
them to it); an issue is filled twice (its MJML and its text) for every record
of a build.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Mapping
from typing import Any

import jinja2

# Control characters: MJML's parser refuses them and no reader needs them.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff]")
# The same characters in UTF-8, but the last two: bytes that are never part of another character.
_CONTROL_BYTES = bytes([*range(0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F])


def without_control(text: str) -> str:
    """`text` without the control characters MJML refuses (`_CONTROL`).

    The regex reads a whole issue character by character; most issues hold
    none, which `bytes.translate` (in C) tells several times faster.
    """
    if "\ufffe" not in text and "\uffff" not in text:
        data = text.encode("utf-8", "surrogatepass")
        if len(data.translate(None, _CONTROL_BYTES)) == len(data):
            return text
    return _CONTROL.sub("", text)


# Each template's globals as one dict, merged once (as `social` does): `Template.render` merges
# them into every call's context anew. Kept as long as the template (a reloaded one is new).
_GLOBALS: weakref.WeakKeyDictionary[jinja2.Template, dict[str, Any]] = weakref.WeakKeyDictionary()


def fill(template: jinja2.Template, context: Mapping[str, Any]) -> str:
    """`template.render(context)`, the same text, without merging the globals into the context each time.

    Should rendering fail, `render` runs again to raise the error as Jinja
    reports it (its traceback rewritten to the template's own lines).
    """
    merged = _GLOBALS.get(template)
    if merged is None:
        merged = _GLOBALS[template] = dict(template.globals)
    env = template.environment
    try:
        filled = env.context_class(env, {**merged, **context}, template.name, template.blocks, globals=merged)
        text: str = env.concat(template.root_render_func(filled))
    except Exception:
        return template.render(context)
    return text
