#!/usr/bin/env bash
# Build the Debian 12 + systemd image molecule runs (no registry is reachable, so we debootstrap).
# Env: LIFELINE_TEST_IMAGE (image name), LIFELINE_DEBIAN_MIRROR, LIFELINE_DEBIAN_SECURITY_MIRROR.
# Skips the build when the image already exists; `podman rmi` it to force a rebuild.
set -euo pipefail
cd "$(dirname "$0")/.."

export CONTAINERS_CONF="${CONTAINERS_CONF:-$PWD/tests/containers/containers.conf}"
IMAGE="${LIFELINE_TEST_IMAGE:-localhost/lifeline-debian12-systemd:bookworm}"
MIRROR="${LIFELINE_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# Security updates live beside the main archive on deb.debian.org (…/debian-security).
case "$MIRROR" in
  */debian|*/debian/) SEC_DEFAULT="${MIRROR%/}-security" ;;
  *) SEC_DEFAULT="http://deb.debian.org/debian-security" ;;
esac
SECURITY="${LIFELINE_DEBIAN_SECURITY_MIRROR:-$SEC_DEFAULT}"

if podman image exists "$IMAGE"; then
  echo "lifeline: image $IMAGE already exists, not rebuilding"
  exit 0
fi

start=$(date +%s)
rootfs=$(mktemp -d /var/tmp/lifeline-rootfs.XXXXXX)
trap 'rm -rf --one-file-system "$rootfs"' EXIT

# python3-apt: Ansible's apt module needs it; sudo: the scenario connects as an unprivileged user
# and every play escalates with become (and roles become postgres); ca-certificates: TLS to S3.
debootstrap --variant=minbase \
  --include=python3,systemd,systemd-sysv,dbus,ca-certificates,python3-apt,sudo \
  bookworm "$rootfs" "$MIRROR"

# apt inside the containers uses the same mirror as the build (debootstrap writes only the main suite).
cat > "$rootfs/etc/apt/sources.list" <<SOURCES
deb $MIRROR bookworm main
deb $MIRROR bookworm-updates main
deb $SECURITY bookworm-security main
SOURCES
# Ship the image without the downloaded .debs and package lists; prepare runs apt-get update.
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/lib/apt/periodic/update-success-stamp
# Ansible's apt cache_valid_time judges freshness by the lists dir mtime: make empty lists look stale.
touch -d @0 "$rootfs/var/lib/apt/lists"
# Debootstrap copies the host's /etc/hostname; podman sets the hostname per container.
rm -f "$rootfs/etc/hostname"
: > "$rootfs/etc/machine-id"   # empty: systemd generates a fresh id per container boot

tar -C "$rootfs" --numeric-owner -c . \
  | podman import --change 'CMD ["/sbin/init"]' --change 'STOPSIGNAL SIGRTMIN+3' - "$IMAGE"
rm -rf --one-file-system "$rootfs"; trap - EXIT
echo "lifeline: built $IMAGE in $(( $(date +%s) - start )) s"
