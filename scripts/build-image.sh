#!/usr/bin/env bash
# Builds the Debian 12 systemd image the molecule scenarios run on, without any image
# registry: debootstrap a minimal bookworm rootfs, cache it as a tar.zst under
# $PKIOPS_CACHE/images, and import it into (rootful) podman when the image is absent.
# Prints the image reference on stdout (the last line), e.g.
#   export PKIOPS_IMAGE=$(scripts/build-image.sh)
# Cheap when everything is there: the tarball is rebuilt only when missing, the image
# imported only when podman lacks it. The tag is a hash of what goes into the image, so a
# change here makes a new image instead of silently reusing a stale one.
#   --rebuild   ignore the cached tarball and the imported image
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=podman-setup.sh
source "$here/podman-setup.sh"

name=localhost/pkiops-ocsp-debian12
suite=bookworm
mirror=${PKIOPS_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# python3 + python3-cryptography: the collection's modules run on the targets with the
# system python. python3-venv brings ensurepip, so the role's venv gets pip without
# python3-pip. openssl: the verify steps and operators use the CLI.
# debootstrap resolves --include dependencies only shallowly (python3-cryptography fails
# to configure that way), so it lays down the base and apt installs the rest.
base_packages=(systemd systemd-sysv dbus)
packages=(python3 python3-cryptography python3-venv openssl ca-certificates)
# Units that fail or make no sense in a container.
masked=(systemd-remount-fs.service dev-hugepages.mount sys-fs-fuse-connections.mount
        getty.target console-getty.service systemd-firstboot.service)
recipe_version=1

rebuild=false
[ "${1:-}" = --rebuild ] && rebuild=true

tag=$(printf '%s\n' "$recipe_version" "$suite" "${base_packages[*]}" "${packages[*]}" "${masked[*]}" | sha256sum | cut -c1-12)
image="$name:$tag"
images_dir="${PKIOPS_CACHE:-$HOME/.cache/pkiops-ocsp}/images"
tarball="$images_dir/pkiops-ocsp-debian12-$tag.tar.zst"
mkdir -p "$images_dir"

# One builder at a time (parallel test workers may all ask for the image).
exec 9>"$images_dir/.lock"
flock 9

log() { echo "build-image: $*" >&2; }

if $rebuild; then
  rm -f "$tarball"
  podman image rm -f "$image" >/dev/null 2>&1 || true
fi

if ! podman image exists "$image"; then
  if [ ! -s "$tarball" ]; then
    "$here/system-deps.sh" podman
    rootfs=$(mktemp -d "$images_dir/rootfs.XXXXXX")
    trap 'rm -rf "$rootfs"' EXIT
    log "debootstrap $suite from $mirror (1-2 min)"
    include=$(IFS=,; echo "${base_packages[*]}")
    debootstrap --variant=minbase --include="$include" "$suite" "$rootfs" "$mirror" \
      > "$images_dir/debootstrap.log" 2>&1 \
      || { cp "$rootfs/debootstrap/debootstrap.log" "$images_dir/" 2>/dev/null || true
           tail -n 20 "$images_dir/debootstrap.log" >&2; exit 1; }
    log "apt-get install ${packages[*]}"
    DEBIAN_FRONTEND=noninteractive chroot "$rootfs" apt-get install -y -q \
      --no-install-recommends "${packages[@]}" >> "$images_dir/debootstrap.log" 2>&1 \
      || { tail -n 20 "$images_dir/debootstrap.log" >&2; exit 1; }
    # An empty machine-id makes systemd generate one per container at boot.
    : > "$rootfs/etc/machine-id"
    for unit in "${masked[@]}"; do
      ln -sfn /dev/null "$rootfs/etc/systemd/system/$unit"
    done
    ln -sfn /lib/systemd/system/multi-user.target "$rootfs/etc/systemd/system/default.target"
    chroot "$rootfs" apt-get clean
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/log/*.log
    log "packing $tarball"
    tar -C "$rootfs" --numeric-owner -c . | zstd -q -T0 -o "$tarball.tmp"
    mv -f "$tarball.tmp" "$tarball"
    rm -rf "$rootfs"
    trap - EXIT
  fi
  log "importing $image"
  zstd -dc "$tarball" | podman import \
    --change 'CMD ["/sbin/init"]' --change 'STOPSIGNAL=SIGRTMIN+3' \
    - "$image" >/dev/null
fi
# A stable alias, so `molecule` run by hand finds an image without PKIOPS_IMAGE.
podman tag "$image" "$name:latest"
echo "$image"
