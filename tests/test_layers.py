"""The package's layers (ARCHITECTURE.md): imports run one way, down the layers, never back up.

    cli
    web
    dispatch
    build · channels · render
    store · audience · timeline
    site
    errors

Every module belongs to the package its folder names, and every import of a
publisher module, at the top of a file or inside a function, is checked: the
same layer or a lower one. Then the rules ARCHITECTURE.md names on top of the
order: render never imports a channel; a channel never imports the store or
the audience; build and dispatch never import each other; the web reaches a
channel only through dispatch; only the store and dispatch reach the ledger.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

PACKAGE = REPO / "publisher"

# Top to bottom; "" is the package's own __init__ and __main__.
LAYERS: list[set[str]] = [
    {"__main__"},
    {"cli"},
    {"web"},
    {"dispatch"},
    {"build", "channels", "render"},
    {"store", "audience", "timeline"},
    {"site"},
    {"errors", ""},
]

# (importer prefix, imported prefix): never, whatever the layers allow.
FORBIDDEN = [
    ("render", "channels"),
    ("channels", "store"),
    ("channels", "audience"),
    ("timeline", "render"),
    ("store", "render"),
    ("store", "audience"),
    ("store", "timeline"),
    ("timeline", "store"),
    ("timeline", "audience"),
    ("audience", "timeline"),
    ("build", "dispatch"),
    ("dispatch", "build"),
    ("web", "channels"),
]


def layer_of(module: str) -> int:
    top = module.split(".")[0]
    for depth, names in enumerate(LAYERS):
        if top in names:
            return depth
    raise AssertionError(f"publisher.{module} is in no layer: place its package in tests/test_layers.py")


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
            # from publisher.audience import subscribers: the module, when it is one
            names = [
                f"{names[0]}.{alias.name}"
                if (REPO / names[0].replace(".", "/") / f"{alias.name}.py").exists()
                else names[0]
                for alias in node.names
            ]
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
                upward.append(f"{module} imports {imported}")
    assert upward == []


def test_the_rules_on_top_of_the_layers_hold() -> None:
    broken = []
    for module, path in modules().items():
        for imported in imports(module, path):
            for importer, forbidden in FORBIDDEN:
                if module.split(".")[0] == importer and imported.split(".")[0] == forbidden:
                    broken.append(f"{module} imports {imported}")
            if imported in ("store.ledger", "store.marks") and module.split(".")[0] not in ("store", "dispatch"):
                broken.append(f"{module} reaches the ledger")
    assert broken == []


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Import circles of `graph` (module → the modules it imports), each as the modules along it (at least
    one per tangle: a depth-first walk, in name order)."""
    found: list[list[str]] = []
    path: list[str] = []
    done: set[str] = set()

    def visit(module: str) -> None:
        if module in path:
            found.append([*path[path.index(module) :], module])
        elif module not in done:
            path.append(module)
            for imported in sorted(graph.get(module, ())):
                visit(imported)
            path.pop()
            done.add(module)

    for start in sorted(graph):
        visit(start)
    return found


def test_no_import_circle_between_modules() -> None:
    """Imports inside functions included: a circle there still ties the modules into one."""
    known = modules()
    assert circles({module: imports(module, path) for module, path in known.items()}) == []


def test_a_circle_is_caught() -> None:
    """The checker itself: the circle the runner and its senders once made is found."""
    graph = {"dispatch.runner": {"dispatch.email"}, "dispatch.email": {"dispatch.runner", "site.config"}}
    assert circles(graph) == [["dispatch.email", "dispatch.runner", "dispatch.email"]]


def test_an_upward_import_is_caught(tmp_path: Path) -> None:
    """The checker itself: a site module importing the CLI, even inside a function, is found."""
    sample = tmp_path / "records.py"
    sample.write_text(
        "def f():\n    from publisher.cli.main import cli\n    from . import config\n"
        "    from publisher.audience import subscribers\n",
        encoding="utf-8",
    )
    assert imports("site.records", sample) == {"cli.main", "site.config", "audience.subscribers"}
    assert layer_of("cli.main") < layer_of("site.records")
    assert layer_of("audience.subscribers") < layer_of("site.records")


def test_the_build_cache_digests_every_module_that_shapes_a_builds_output() -> None:
    """An edit to any module rendering or parsing records must invalidate earlier builds' outputs.

    The cache digests whole packages, found by walking their folders: every
    module a build reaches, however deep, must be one of the files it digests.
    """
    from publisher.build.cache import code_files

    known = modules()
    todo, seen = ["build.builder", "build.work"], set()
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(imports(module, known[module]))
    digested = set(code_files(PACKAGE))
    assert all(path.is_file() for path in digested)
    assert sorted(m for m in seen if known[m] not in digested) == []


def test_the_build_cache_finds_a_new_module_without_a_list(tmp_path: Path) -> None:
    """A module added anywhere in a digested package is digested; the packages a build does not use are not."""
    from publisher.build.cache import code_files

    for name in (
        "__init__.py",
        "errors.py",
        "site/config.py",
        "render/new/deep.py",
        "build/extra.py",
        "store/x.py",
        "timeline/plan.py",
    ):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("", encoding="utf-8")
    found = {str(path.relative_to(tmp_path)) for path in code_files(tmp_path)}
    assert found == {
        "__init__.py",
        "errors.py",
        "site/config.py",
        "render/new/deep.py",
        "build/extra.py",
        "timeline/plan.py",
    }


def test_no_module_is_over_450_lines() -> None:
    """Small pieces (STYLE.md): a module past 450 lines is split where its ideas part."""
    long = {
        name: n for name, path in modules().items() if (n := len(path.read_text(encoding="utf-8").splitlines())) > 450
    }
    assert long == {}


def test_the_top_of_the_package_shows_the_stages() -> None:
    """Four files and one package per stage (ARCHITECTURE.md): nothing else sits at the top."""
    entries = {p.name for p in PACKAGE.iterdir() if p.name != "__pycache__"}
    stages = {"site", "render", "timeline", "store", "audience", "channels", "build", "dispatch", "web", "cli"}
    assert entries == {"__init__.py", "__main__.py", "errors.py", "py.typed"} | stages


def private_imports(source: str) -> list[str]:
    """Each `from publisher… import _name` in `source`, as "line: module.name" (a dunder is public)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.ImportFrom) or not (node.level or (node.module or "").startswith("publisher")):
            continue
        for alias in node.names:
            if alias.name.startswith("_") and not (alias.name.startswith("__") and alias.name.endswith("__")):
                found.append(f"{node.lineno}: {'.' * node.level}{node.module or ''}.{alias.name}")
    return found


def test_no_module_imports_a_private_name_of_another() -> None:
    # A `_name` is its module's own business: what another module needs is public, with a docstring.
    found = [
        f"publisher/{path.relative_to(PACKAGE)}:{line}"
        for path in modules().values()
        for line in private_imports(path.read_text(encoding="utf-8"))
    ]
    assert found == []


def test_the_private_import_check_sees_every_spelling() -> None:
    source = (
        "from publisher.site.config import Site, _key_line\n"
        "from .ledger import _MARK_SENT\n"
        "from publisher import __version__\n"
        "from os import _exit\n"
        "def f():\n"
        "    from publisher.store import _hidden\n"
    )
    assert private_imports(source) == [
        "1: publisher.site.config._key_line",
        "2: .ledger._MARK_SENT",
        "6: publisher.store._hidden",
    ]


def test_no_library_function_is_named_like_a_test() -> None:
    # pytest collects any `test_*` a test module imports, and a reader takes it for one.
    named = [
        f"publisher/{path.relative_to(PACKAGE)}:{node.lineno}: {node.name}"
        for path in modules().values()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        and node.name.lower().startswith("test")
    ]
    assert named == []
