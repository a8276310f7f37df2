#!/usr/bin/env bash
# Debian's programs the tests use as judges, installed when missing (as root):
# chromium (a newsletter read on a phone), spamassassin (a newsletter scored as a spam filter would),
# postfix (a real MTA bouncing mail to unknown users: tests/test_bounces_postfix.py starts its own instance).
set -uo pipefail
for pair in chromium:chromium spamassassin:spamassassin postfix:postfix; do
  package=${pair%%:*} command=${pair##*:}
  PATH="$PATH:/usr/sbin:/sbin" command -v "$command" >/dev/null && continue
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$package" >/dev/null \
      || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$package" >/dev/null; }
  fi
  PATH="$PATH:/usr/sbin:/sbin" command -v "$command" >/dev/null || echo "warning: $package is not installed; the tests that need it will fail" >&2
done
exit 0
