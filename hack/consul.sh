#!/usr/bin/env bash
# Builds the Consul server binary used by the e2e tests from the Go module
# proxy and caches it; prints its path. Consul is not packaged by Debian.
set -euo pipefail
version=${CONSUL_VERSION:-1.20.6}
cache=${VXNET_CACHE:-$HOME/.cache/vxnet}
bin="$cache/consul-$version"
if [ -x "$bin" ]; then echo "$bin"; exit 0; fi
mkdir -p "$cache"
# One build at a time: callers that find a build under way (unit tests,
# e2e, make scale and make bench started together on a fresh machine)
# wait for it and take its binary instead of compiling Consul again each.
exec 8>"$cache/consul.lock"
flock 8
if [ -x "$bin" ]; then echo "$bin"; exit 0; fi
export GOTOOLCHAIN=local GOFLAGS=-mod=mod
dir=$(go mod download -json "github.com/hashicorp/consul@v$version" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
[ -n "$dir" ] || { echo "consul.sh: module download failed" >&2; exit 1; }
work=$(mktemp -d)
trap 'chmod -R u+w "$work"; rm -rf "$work"' EXIT
cp -r "$dir/." "$work/"
chmod -R u+w "$work"
# The replace block points at sibling modules of the monorepo that the module
# zip does not contain; the published versions are used instead.
sed -i '/^replace (/,/^)/d' "$work/go.mod"
(cd "$work" && go build -o "$bin.tmp" . >&2)
mv "$bin.tmp" "$bin"
echo "$bin"
