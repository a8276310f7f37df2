"""X API v2 as X's official SDK has it: the routes and their request-body models.

The source is `xdk` (PyPI, X's own Python SDK generated from its OpenAPI spec;
read at version 0.10.x): every method of `xdk/<area>/client.py` names its path
(`url = self.client.base_url + "/2/..."`), its HTTP method
(`self.client.session.post(...)`) and, when it has a body, its pydantic
request model (`body: CreateMetadataRequest`, from `xdk/<area>/models.py`).
This module reads those files rather than restating them, so the fake of X
(tests/fakes/x_api.py) cannot know a path or a body shape X does not have.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import xdk
from pydantic import BaseModel, ValidationError

_URL = re.compile(r'url = self\.client\.base_url \+ "([^"]+)"')
_CALL = re.compile(r"self\.client\.session\.(get|post|put|delete|patch)\(")
_BODY = re.compile(r"^\w+\(\s*self[^)]*?\bbody: (\w+)", re.S)


@dataclass(frozen=True)
class Route:
    """One operation of the API: `POST /2/media/metadata` and the model its JSON body must fit."""

    method: str
    template: str  # "/2/media/upload/{id}/append"
    pattern: re.Pattern[str]
    body: type[BaseModel] | None

    @property
    def key(self) -> str:
        return f"{self.method} {self.template}"


@cache
def sdk_routes() -> tuple[Route, ...]:
    """Every operation in the installed xdk's clients (streams, which use their own call, are GETs)."""
    routes: list[Route] = []
    for client in sorted(Path(xdk.__file__).parent.glob("*/client.py")):
        models = importlib.import_module(f"xdk.{client.parent.name}.models")
        for block in re.split(r"\n    def ", client.read_text(encoding="utf-8"))[1:]:
            url = _URL.search(block)
            if url is None:
                continue
            call = _CALL.search(block)
            body = _BODY.search(block)
            model = getattr(models, body.group(1)) if body else None
            template = url.group(1)
            pattern = re.compile("^" + re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(template)) + "$")
            routes.append(Route(call.group(1).upper() if call else "GET", template, pattern, model))
    return tuple(routes)


def find_route(method: str, path: str) -> Route | None:
    """The SDK's operation for `method path`, a literal path winning over a template."""
    matches = [r for r in sdk_routes() if r.method == method and r.pattern.match(path)]
    matches.sort(key=lambda r: r.template.count("{"))
    return matches[0] if matches else None


def body_problems(route: Route, body: Any) -> list[str]:
    """Why `body` is not a valid request body for `route` (empty when it is).

    Beyond the model itself, a field the spec does not name is refused: xdk's
    models allow extras (to stay forward compatible), but a field X does not
    know is how a wrong shape such as `{"media_id", "alt_text"}` would slip by.
    """
    if route.body is None:
        return []
    if not isinstance(body, dict):
        return ["the body is not a JSON object"]
    try:
        parsed = route.body.model_validate(body)
    except ValidationError as error:
        return [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()]
    return _extras(parsed, "$")


def _extras(value: Any, where: str) -> list[str]:
    found: list[str] = []
    if isinstance(value, BaseModel):
        found += [f"{where}.{name}: not a field of {type(value).__name__}" for name in value.model_extra or {}]
        for name in type(value).model_fields:
            found += _extras(getattr(value, name), f"{where}.{name}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _extras(item, f"{where}[{index}]")
    return found
