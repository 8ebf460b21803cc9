#!/usr/bin/env bash
# Installs what `make test` needs on a fresh Debian machine, when missing:
# Docker (dockerd 20.10 from Debian), docker-compose 1.29 (e2e TestCompose),
# iptables, iproute2, busybox (the test image is built from it) and iperf3;
# then builds and caches Consul and fetches and caches Docker 26.1's dockerd
# (the e2e tests run on both).
set -euo pipefail
need=()
command -v dockerd >/dev/null || need+=(docker.io)
command -v iptables >/dev/null || need+=(iptables)
command -v ip >/dev/null || need+=(iproute2)
# The test image needs a static /bin/busybox (ldd fails on static binaries).
if [ ! -x /bin/busybox ] || ldd /bin/busybox >/dev/null 2>&1; then need+=(busybox-static); fi
command -v iperf3 >/dev/null || need+=(iperf3)
command -v nsenter >/dev/null || need+=(util-linux)
command -v docker-compose >/dev/null || need+=(docker-compose)
if [ ${#need[@]} -gt 0 ]; then
  echo "deps: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi
"$(dirname "$0")/consul.sh" >/dev/null
"$(dirname "$0")/docker26.sh" >/dev/null
echo "deps: ok"
