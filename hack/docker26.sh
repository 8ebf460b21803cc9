#!/usr/bin/env bash
# Fetches dockerd and docker-proxy of Docker 26.1 (Debian 13's docker.io)
# and caches them; prints the path of that dockerd. The e2e tests run on it
# as well as on Debian 12's 20.10 (VXNET_DOCKERD, see e2e/harness).
#
# Debian 12 has no Docker 26. The package comes from the suite trixie of
# the Debian mirror the machine's apt already uses, through a private
# sources list, lists dir and cache, so nothing is added to the machine's
# own apt state. Its dockerd and docker-proxy use no glibc symbol newer
# than 2.34 (Debian 12 has 2.36) and run with Debian 12's containerd, runc
# and docker-init (tini).
set -euo pipefail
version=${DOCKER26_VERSION:-26.1.5}
suite=${DOCKER26_SUITE:-trixie}
cache=${VXNET_CACHE:-$HOME/.cache/vxnet}
dir="$cache/docker-$version"
if [ -x "$dir/dockerd" ] && [ -x "$dir/docker-proxy" ]; then echo "$dir/dockerd"; exit 0; fi

# The mirror the machine's apt takes Debian 12's docker.io from.
mirror=$(apt-cache policy docker.io | awk '$2 ~ /^https?:\/\// {print $2; exit}')
mirror=${DOCKER26_MIRROR:-${mirror:-http://deb.debian.org/debian}}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/deb"
# apt downloads as the user _apt: let it write there.
chmod 0755 "$work"
chown _apt "$work/lists/partial" "$work/cache/archives/partial" "$work/deb"
# Only the Packages index: no translations, no DEP-11 metadata.
echo "deb [target=Packages signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $suite main" >"$work/sources.list"
apt_opts=(-qq -o "Dir::Etc::SourceList=$work/sources.list" -o Dir::Etc::SourceParts=/dev/null
  -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache")
apt-get "${apt_opts[@]}" update >&2
candidate=$(apt-cache "${apt_opts[@]}" show docker.io | sed -n 's/^Version: //p' | grep -F "$version+" | head -n1 || true)
[ -n "$candidate" ] || { echo "docker26.sh: no docker.io $version in $mirror $suite" >&2; exit 1; }
(cd "$work/deb" && apt-get "${apt_opts[@]}" download "docker.io=$candidate" >&2)
dpkg-deb -x "$work"/deb/docker.io_*.deb "$work/root"
rm -rf "$dir.tmp"
mkdir -p "$dir.tmp"
install -m 0755 "$work/root/usr/sbin/dockerd" "$work/root/usr/sbin/docker-proxy" "$dir.tmp/"
got=$("$dir.tmp/dockerd" --version)
case "$got" in
  *" $version+"*|*" $version,"*) ;;
  *) echo "docker26.sh: $dir.tmp/dockerd says \"$got\", want $version" >&2; exit 1 ;;
esac
rm -rf "$dir"
mv "$dir.tmp" "$dir"
echo "$dir/dockerd"
