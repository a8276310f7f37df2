"""The package's layers (DESIGN.md): imports run one way, down the layers, never back up.

    cli
    web · scheduler · workers
    dispatch · build
    channels · render · timeline · store
    records · config
    errors

Every module is placed in a layer below (a new module fails this test until it
is placed), and every import of a publisher module, at the top of a file or
inside a function, is checked: the same layer or a lower one. Then the rules
DESIGN.md names on top: render never imports a channel; a channel never
imports the store; timeline and store never import a renderer; only the
store and dispatch reach the ledger.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

PACKAGE = REPO / "publisher"

# Top to bottom. A module name matches an entry exactly, or an entry ending in "." as a prefix.
LAYERS: list[tuple[str, set[str]]] = [
    ("cli", {"__main__", "cli", "cli_context", "cli_subscribers"}),
    ("web · scheduler · workers", {"web", "web_http", "web_pages", "web_subscribe", "scheduler", "workers", "broker",
                                   "status"}),
    ("dispatch · build", {"dispatch", "dispatch_email", "dispatch_feeds", "dispatch_social", "letters", "letter_parts",
                          "marks", "build", "build_cache", "build_files", "build_manifest", "build_render", "check",
                          "scaffold"}),
    ("channels · render · timeline · store", {"channels.", "render.", "render", "channels", "timeline", "cron",
                                              "store", "ledger", "database", "tables", "migrations.", "subscribers",
                                              "subscriber_rows", "recipients", "unsubscribe", "confirm", "tokens",
                                              "templates"}),
    ("records · config", {"records", "record_files", "front_matter", "config"}),
    ("errors", {"errors", ""}),  # "": the package itself (its __init__)
]  # fmt: skip


def layer_of(module: str) -> int:
    for depth, (_, names) in enumerate(LAYERS):
        if module in names or any(name.endswith(".") and module.startswith(name) for name in names):
            return depth
    raise AssertionError(f"publisher.{module} is in no layer: place it in tests/test_layers.py")


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports(module: str, path: Path) -> set[str]:
    """The publisher modules `module` imports anywhere in its file, as names inside the package."""
    package = module.split(".")[:-1] if path.name != "__init__.py" else module.split(".")
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = [p for p in package[: len(package) - node.level + 1] if p]
                names = [".".join(["publisher", *base, *([node.module] if node.module else [])])]
            else:
                names = [node.module or ""]
            if names == ["publisher"]:  # from publisher import subscribers
                names = [f"publisher.{alias.name}" for alias in node.names]
        else:
            continue
        found.update(name.removeprefix("publisher").removeprefix(".") for name in names if name.startswith("publisher"))
    return found - {module}


def test_every_module_imports_only_its_own_layer_or_below() -> None:
    known = modules()
    upward = []
    for module, path in known.items():
        for imported in imports(module, path):
            assert imported in known, f"publisher.{module} imports publisher.{imported}, which does not exist"
            if layer_of(imported) < layer_of(module):
                upward.append(f"{module} ({LAYERS[layer_of(module)][0]}) imports {imported}")
    assert upward == []


def test_the_rules_design_md_names_hold() -> None:
    broken = []
    for module, path in modules().items():
        found = imports(module, path)
        if module.startswith("render") and any(name.startswith("channels") for name in found):
            broken.append(f"{module}: a renderer imports a channel")
        if module.startswith("channels") and found & {"store", "ledger", "tables", "database", "subscribers"}:
            broken.append(f"{module}: a channel imports the store")
        if module in ("timeline", "cron", "store", "ledger") and any(name.startswith("render") for name in found):
            broken.append(f"{module}: knows a renderer")
        if "ledger" in found and module not in ("store", "marks") and not module.startswith("dispatch"):
            broken.append(f"{module}: reaches the ledger")
    assert broken == []


def test_an_upward_import_is_caught(tmp_path: Path) -> None:
    """The checker itself: a records module importing the CLI, even inside a function, is found."""
    sample = tmp_path / "records.py"
    sample.write_text("def f():\n    from publisher.cli import cli\n    from . import config\n", encoding="utf-8")
    assert imports("records", sample) == {"cli", "config"}
    assert layer_of("cli") < layer_of("records")


def test_the_build_cache_digests_every_module_that_shapes_a_builds_output() -> None:
    """An edit to any module rendering or parsing records must invalidate earlier builds' outputs."""
    from publisher.build_cache import _BUILD_CODE

    known = modules()
    todo, seen = ["build", "build_render"], set()
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(imports(module, known[module]))
    # Where files are found, written and remembered: no part in what they hold.
    bookkeeping = {"build_cache", "build_files", "record_files", ""}
    covered = {name.removesuffix(".py") for name in _BUILD_CODE} | {m for m in known if m.startswith("render.")}
    assert sorted(seen - bookkeeping - covered - {"render"}) == []
