#!/usr/bin/env bash
# Installs the Debian packages a target needs, only when missing, and starts Postgres and
# Redis for the tests when they are down (installing them on a machine that has none).
#   scripts/ensure_system.sh run    ffmpeg
#   scripts/ensure_system.sh test   ffmpeg, espeak-ng, sox, chromium, Postgres, Redis
set -euo pipefail
target="${1:-run}"
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

need=()
want() { command -v "$1" >/dev/null 2>&1 || need+=("$2"); }
want ffmpeg ffmpeg
if [ "$target" = test ]; then
  want espeak-ng espeak-ng
  want sox sox
  want chromium chromium
  [ -d /usr/lib/postgresql ] || need+=(postgresql)
  want redis-server redis-server
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

[ "$target" = test ] || exit 0

# Postgres on 127.0.0.1:5432 with the 'postgres' role reachable without a password (the
# tests create and drop their own databases).
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  hba=/etc/postgresql/$version/main/pg_hba.conf
  if ! grep -q "quilt-curator-tests" "$hba"; then
    # Only local TCP connections are trusted; this runs on development and CI machines.
    $SUDO sed -i '1i host all all 127.0.0.1/32 trust # quilt-curator-tests' "$hba"
  fi
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$version" main start
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
pg_isready -h 127.0.0.1 -p 5432

if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  $SUDO mkdir -p /var/lib/redis /var/log/redis
  $SUDO redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" \
    --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
  for _ in $(seq 1 30); do redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 && break; sleep 0.5; done
fi
redis-cli -h 127.0.0.1 -p 6379 ping
