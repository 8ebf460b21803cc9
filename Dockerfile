# The vxnet binary in an image of its own, for users with an image
# registry: the final stage is the managed plugin's rootfs. vxnet's own
# build and tests never use this file (`make plugin` assembles the same
# rootfs from the local build, with no image pulled).
#
#   docker build -t vxnet-rootfs .
#   id=$(docker create vxnet-rootfs)
#   mkdir -p build/plugin/rootfs
#   docker export "$id" | tar -x -C build/plugin/rootfs
#   docker rm "$id"
#   cp plugin-config/config.json build/plugin/
#   docker plugin create vxnet:latest build/plugin

FROM golang:1.26 AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOTOOLCHAIN=local
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/vxnet ./cmd/vxnet \
 && mkdir -p /out/root/run/docker/plugins /out/root/var/lib/vxnet /out/root/host/run \
             /out/root/host/proc /out/root/etc /out/root/tmp \
 && chmod 1777 /out/root/tmp \
 && mv /out/vxnet /out/root/vxnet

# scratch: the static binary and the mount points plugin-config/config.json
# names; nothing else runs in the plugin.
FROM scratch
COPY --from=build /out/root/ /
ENTRYPOINT ["/vxnet", "serve", "--socket", "/run/docker/plugins/vxnet.sock"]
