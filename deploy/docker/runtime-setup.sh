#!/usr/bin/env bash
# Runtime stage, as root, on Debian: the few packages a binary calls at run time and the
# non-root user the image runs as (uid and gid 10001, home /var/lib/gridsweep, the WORKDIR).
# The worker gets curl and CA certificates for `worker data fetch --source official`.
#   deploy/docker/runtime-setup.sh worker|coordinator
set -euo pipefail

case "${1:-}" in
    worker) packages=(ca-certificates curl) ;;
    coordinator) packages=() ;;
    *)
        echo "usage: $0 worker|coordinator" >&2
        exit 2
        ;;
esac
if ((${#packages[@]})); then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${packages[@]}"
    rm -rf /var/lib/apt/lists/*
fi
groupadd --gid 10001 gridsweep
useradd --uid 10001 --gid 10001 --no-log-init --home-dir /var/lib/gridsweep --no-create-home \
    --shell /usr/sbin/nologin gridsweep
install -d -o 10001 -g 10001 -m 0755 /var/lib/gridsweep
