#!/usr/bin/env bash
# Start the local services the tests talk to, if they are installed and not running.
set -uo pipefail

up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if ! up 5432 && command -v pg_ctlcluster >/dev/null; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
fi
if ! up 6379 && command -v redis-server >/dev/null; then
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
fi
for _ in $(seq 1 30); do up 5432 && break; sleep 1; done
up 5432 || echo "warning: PostgreSQL is not answering on 127.0.0.1:5432" >&2
up 6379 || echo "warning: Redis is not answering on 127.0.0.1:6379" >&2
exit 0
