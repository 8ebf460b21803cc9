#!/usr/bin/env bash
# `make scale`: a three-server Consul cluster on loopback addresses
# (127.0.0.21-23, data under /tmp/vxnet-scale), then `vxnet simulate` with
# its simulated hosts spread over the three servers' HTTP APIs. Leftovers
# of a killed run (its Consul servers, found by their data dir) go first.
# All simulated hosts connect from one address, so Consul's per-client
# connection limit (200) is lifted; real hosts each have their own.
# Arguments are passed to `vxnet simulate`.
#
# The run takes the e2e harness's machine-wide lock first, so no e2e
# cluster competes for the CPU while it measures (and none starts while
# it runs); do not wrap it in flock yourself (the second lock would wait
# for the first forever).
set -euo pipefail
cd "$(dirname "$0")/.."
lock=/run/lock/vxnet-e2e.lock
exec 9>"$lock"
if ! flock -n 9; then
  echo "scale: waiting for $lock (an e2e cluster or another scale run holds it; fuser -v $lock names it)" >&2
  flock 9
fi
echo "scale: holding $lock"
consul=$(hack/consul.sh)
base=/tmp/vxnet-scale
pkill -f "consul agent .*-data-dir $base/" 2>/dev/null && sleep 1 || true
rm -rf "$base"
mkdir -p "$base"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$base"
}
trap cleanup EXIT
for i in 1 2 3; do
  ip=127.0.0.$((20 + i))
  "$consul" agent -server -bootstrap-expect 3 -node "scale$i" -bind "$ip" -client "$ip" -advertise "$ip" \
    -data-dir "$base/$i/" -retry-join 127.0.0.21 -retry-join 127.0.0.22 -retry-join 127.0.0.23 \
    -dns-port -1 -hcl 'performance { raft_multiplier = 1 }' -hcl 'limits { http_max_conns_per_client = 15000 }' -log-level warn >"$base/consul$i.log" 2>&1 &
  pids+=($!)
done
for _ in $(seq 60); do
  leader=$(curl -sf http://127.0.0.21:8500/v1/status/leader || true)
  [ -n "$leader" ] && [ "$leader" != '""' ] && break
  sleep 1
done
[ -n "${leader:-}" ] && [ "$leader" != '""' ] || { echo "scale: no Consul leader in 60 s" >&2; tail -n 20 "$base"/consul*.log >&2; exit 1; }
echo "scale: Consul cluster up, leader $leader"
rc=0
bin/vxnet simulate --store consul://127.0.0.21:8500/vxnet-sim,consul://127.0.0.22:8500/vxnet-sim,consul://127.0.0.23:8500/vxnet-sim "$@" || rc=$?
# The Consul servers' CPU over the whole run, beside the simulator's own
# figures (scale-out.json): which side of the store the time goes to.
for p in "${pids[@]}"; do echo "scale: Consul server pid $p used $(ps -o times= -p "$p" | tr -d ' ') CPU seconds"; done
exit $rc
