#!/usr/bin/env bash
# Debian's Chromium for the browser tests (a newsletter read on a phone), installed when missing.
set -uo pipefail
command -v chromium >/dev/null && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null \
    || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; }
fi
command -v chromium >/dev/null || echo "warning: chromium is not installed; the browser tests will fail" >&2
exit 0
