#!/usr/bin/env bash
# Make sure the services the tests talk to are up on loopback: PostgreSQL :5432, Redis :6379.
# Installs them from Debian's packages when missing (CI runs as root on Debian).
set -uo pipefail

have() { command -v "$1" >/dev/null 2>&1; }
apt_install() {
  if have apt-get && [ "$(id -u)" = 0 ]; then
    apt-get update -qq >/dev/null 2>&1 || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  else
    echo "start_services: cannot install $* (need root and apt-get)" >&2
  fi
}
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# PostgreSQL
if ! port_open 5432; then
  have pg_ctlcluster || apt_install postgresql
  if have pg_ctlcluster; then
    ver=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n1)
    [ -n "$ver" ] && pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
  fi
  for _ in $(seq 1 30); do port_open 5432 && break; sleep 0.5; done
fi
port_open 5432 && echo "postgresql: up on 127.0.0.1:5432" || echo "postgresql: NOT running (its tests will skip)"

# Redis
if ! port_open 6379; then
  have redis-server || apt_install redis-server
  if have redis-server; then
    mkdir -p /var/lib/redis /var/log/redis
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
  fi
  for _ in $(seq 1 30); do port_open 6379 && break; sleep 0.5; done
fi
port_open 6379 && echo "redis: up on 127.0.0.1:6379" || echo "redis: NOT running (its tests will skip)"

# Prometheus Pushgateway: installed only; its test starts a private instance on a free port
if [ ! -x /usr/bin/prometheus-pushgateway ]; then
  apt_install prometheus-pushgateway
fi
[ -x /usr/bin/prometheus-pushgateway ] && echo "pushgateway: installed (tests start their own)" \
  || echo "pushgateway: NOT installed (its tests will skip)"
exit 0
