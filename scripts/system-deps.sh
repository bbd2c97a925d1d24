#!/usr/bin/env bash
# Installs the Debian packages the tests and the demo use, only those missing.
# Groups: base (always), clients (independent OCSP clients), podman (multi-host tests),
# bench (load generator).
set -euo pipefail
declare -A groups=(
  [base]="openssl make python3-venv python3-cryptography rsync shellcheck"
  [clients]="gnutls-bin libnss3-tools default-jre-headless openjdk-17-jdk-headless"
  [podman]="podman runc iptables netavark aardvark-dns conmon catatonit uidmap slirp4netns fuse-overlayfs debootstrap zstd"
  [bench]="wrk util-linux"
)
want=()
for g in "${@:-base}"; do
  for p in ${groups[$g]}; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || want+=("$p")
  done
done
[ ${#want[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "system-deps: missing packages ${want[*]}; install them as root" >&2
  exit 1
fi
echo "system-deps: installing ${want[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null
