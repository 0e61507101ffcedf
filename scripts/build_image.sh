#!/usr/bin/env bash
# make image: build image/Dockerfile as <repository>:<version> (recsys.IMAGE, the name the chart
# and the compiled pipeline use), with buildah, or docker or podman when present.
#
# No registry is reachable here, so the base image is made locally: debootstrap a Debian 12
# (bookworm) minbase with python3 into $BASE_DIR once, import it as localhost/recsys-base:bookworm,
# and pass it as BASE_IMAGE (RECSYS_BASE_IMAGE=<ref> uses another one, e.g. the public python slim
# image where a registry is reachable). pip inside the build uses the machine's CA bundle, mounted
# read-only (never copied into the image). The last line printed is the image reference.
#   scripts/build_image.sh [--print-name]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
IMAGE=$(PYTHONPATH=src "$PY" -c 'import recsys; print(recsys.IMAGE)')
VERSION=$(PYTHONPATH=src "$PY" -c 'import recsys; print(recsys.__version__)')
if [ "${1:-}" = "--print-name" ]; then echo "$IMAGE"; exit 0; fi

BUILDER=""
for tool in buildah docker podman; do
  if command -v "$tool" >/dev/null && { [ "$tool" != docker ] || docker info >/dev/null 2>&1; }; then
    BUILDER=$tool; break
  fi
done
[ -n "$BUILDER" ] || { echo "make image: no buildah, docker or podman: apt-get install buildah" >&2; exit 2; }

BASE_DIR=${BASE_DIR:-/var/tmp/recsys-base}
BASE=${RECSYS_BASE_IMAGE:-localhost/recsys-base:bookworm}
if [ -z "${RECSYS_BASE_IMAGE:-}" ] && ! $BUILDER inspect --type image "$BASE" >/dev/null 2>&1; then
  command -v debootstrap >/dev/null || {
    echo "make image: base image $BASE is missing; make it with debootstrap (apt-get install debootstrap)," \
         "or set RECSYS_BASE_IMAGE to a python 3.11 image" >&2; exit 2; }
  if [ ! -x "$BASE_DIR/rootfs/usr/bin/python3" ]; then
    echo "making the base image: debootstrap bookworm into $BASE_DIR/rootfs (about a minute) ..."
    rm -rf "$BASE_DIR/rootfs" && mkdir -p "$BASE_DIR"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates,libgomp1 bookworm \
      "$BASE_DIR/rootfs" >"$BASE_DIR/debootstrap.log" 2>&1 || {
      echo "make image: debootstrap failed, see $BASE_DIR/debootstrap.log" >&2; exit 2; }
    rm -rf "$BASE_DIR"/rootfs/var/cache/apt/archives/*.deb "$BASE_DIR"/rootfs/var/lib/apt/lists/*
  fi
  ctr=$(buildah from scratch)
  buildah copy "$ctr" "$BASE_DIR/rootfs" / >/dev/null
  buildah config --env LANG=C.UTF-8 --cmd /bin/bash "$ctr"
  buildah commit -q "$ctr" "$BASE" >/dev/null
  buildah rm "$ctr" >/dev/null
fi

CA=$(pip config get global.cert 2>/dev/null || true)
CA=${CA:-/etc/ssl/certs/ca-certificates.crt}
REVISION=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
args=(--build-arg "BASE_IMAGE=$BASE" --build-arg "VERSION=$VERSION" --build-arg "REVISION=$REVISION"
      -f image/Dockerfile -t "$IMAGE")
if [ "$BUILDER" = buildah ]; then
  # the CA bundle at the same path inside: pip in the build trusts what the machine trusts
  buildah bud --isolation chroot --layers -v "$CA:$CA:ro" --build-arg "PIP_CERT=$CA" "${args[@]}" . >&2
else
  "$BUILDER" build "${args[@]}" . >&2
fi
echo "$IMAGE"
