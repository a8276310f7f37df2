#!/usr/bin/env bash
# The whole test suite from nothing: a venv, the test dependencies, lint, types, tests.
# Needs PostgreSQL and Redis on 127.0.0.1 (started here when they are installed but down)
# and Debian's chromium (installed here when missing, as root); the reference Bluesky PDS is
# installed once into a cache outside the repository (scripts/peers.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'

bash scripts/services.sh
bash scripts/debian.sh
bash scripts/peers.sh || echo "warning: the reference Bluesky PDS could not be installed; tests/test_bluesky_pds.py will fail" >&2

.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/pytest -q -n 2 -p no:cacheprovider
