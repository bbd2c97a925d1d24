#!/usr/bin/env bash
# Configures rootful podman for the multi-host tests without touching /etc: writes
# containers.conf and storage.conf under $PKIOPS_CACHE/podman and points podman at them
# through CONTAINERS_CONF / CONTAINERS_STORAGE_CONF.
#
#   source scripts/podman-setup.sh   # write the files, export the variables
#   scripts/podman-setup.sh          # same, then check that podman runs; prints the exports
#
# Why each setting (see docs/role.md, "Test environment"):
# - runtime runc: crun 1.8 refuses this kind of host's cgroup v1 hybrid layout.
# - cgroup_manager cgroupfs: PID 1 of the host is not always systemd.
# - events_logger file: no journald needed on the host.
# - default_ulimits: podman asks for nofile=1048576, which fails where CAP_SYS_RESOURCE is
#   dropped; use the hard limits this process really has (nproc capped at 32768).
#   A --ulimit on a command line replaces this list entirely, so never pass one.
# - storage driver overlay in the default rootful locations, so `podman ps` without these
#   variables still shows (and can remove) the containers.

pkiops_podman_setup() {
  local cache conf_dir nofile nproc
  cache=${PKIOPS_CACHE:-$HOME/.cache/pkiops-ocsp}
  conf_dir="$cache/podman"
  mkdir -p "$conf_dir"
  nofile=$(ulimit -Hn)
  [ "$nofile" = unlimited ] && nofile=1048576
  nproc=$(ulimit -Hu)
  if [ "$nproc" = unlimited ] || [ "$nproc" -gt 32768 ]; then nproc=32768; fi

  # Written to a temp file and renamed, so a concurrent podman never reads half a file.
  cat > "$conf_dir/containers.conf.tmp" <<EOF
# Written by scripts/podman-setup.sh; regenerated on every run.
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
log_driver = "k8s-file"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"

[network]
network_backend = "netavark"
EOF
  mv -f "$conf_dir/containers.conf.tmp" "$conf_dir/containers.conf"

  cat > "$conf_dir/storage.conf.tmp" <<EOF
# Written by scripts/podman-setup.sh; regenerated on every run.
[storage]
driver = "overlay"
runroot = "/run/containers/storage"
graphroot = "/var/lib/containers/storage"
EOF
  mv -f "$conf_dir/storage.conf.tmp" "$conf_dir/storage.conf"

  export CONTAINERS_CONF="$conf_dir/containers.conf"
  export CONTAINERS_STORAGE_CONF="$conf_dir/storage.conf"
}

# Succeeds when rootful podman can start a container here; prints why not otherwise.
pkiops_podman_usable() {
  if [ "$(id -u)" != 0 ]; then
    echo "podman-setup: rootful podman needed (systemd containers with SYS_ADMIN); not root" >&2
    return 1
  fi
  if ! command -v podman >/dev/null 2>&1; then
    echo "podman-setup: podman not installed (scripts/system-deps.sh podman)" >&2
    return 1
  fi
  if ! podman info >/dev/null 2>"${TMPDIR:-/tmp}/pkiops-podman-info.err"; then
    echo "podman-setup: 'podman info' fails: $(tail -n 3 "${TMPDIR:-/tmp}/pkiops-podman-info.err")" >&2
    return 1
  fi
  return 0
}

# molecule's podman driver connects with containers.podman.podman. Galaxy is not reachable,
# so the collection comes out of the `ansible` wheel on PyPI (the bundle for ansible-core
# 2.19); only that one collection is extracted, into $PKIOPS_CACHE/collections.
PKIOPS_ANSIBLE_BUNDLE_VERSION=12.3.0
pkiops_podman_collection() {
  local cache dest wheels python
  cache=${PKIOPS_CACHE:-$HOME/.cache/pkiops-ocsp}
  dest="$cache/collections"
  if [ ! -f "$dest/ansible_collections/containers/podman/MANIFEST.json" ]; then
    wheels="$cache/wheels/ansible-bundle"
    python=${PKIOPS_ROOT:+$PKIOPS_ROOT/.venv/bin/python}
    [ -x "${python:-}" ] || python=python3
    echo "podman-setup: extracting containers.podman from ansible==$PKIOPS_ANSIBLE_BUNDLE_VERSION" >&2
    mkdir -p "$wheels" "$dest"
    "$python" -m pip download -q --disable-pip-version-check --no-deps \
      -d "$wheels" "ansible==$PKIOPS_ANSIBLE_BUNDLE_VERSION"
    "$python" - "$wheels/ansible-$PKIOPS_ANSIBLE_BUNDLE_VERSION-py3-none-any.whl" "$dest" <<'EOF'
import sys, zipfile
wheel, dest = sys.argv[1:]
prefix = "ansible_collections/containers/podman/"
with zipfile.ZipFile(wheel) as archive:
    archive.extractall(dest, [n for n in archive.namelist() if n.startswith(prefix)])
EOF
  fi
  case ":${ANSIBLE_COLLECTIONS_PATH:-}:" in
    *":$dest:"*) ;;
    *) export ANSIBLE_COLLECTIONS_PATH="$dest${ANSIBLE_COLLECTIONS_PATH:+:$ANSIBLE_COLLECTIONS_PATH}" ;;
  esac
}

pkiops_podman_setup
pkiops_podman_collection

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  pkiops_podman_usable
  echo "export CONTAINERS_CONF=$CONTAINERS_CONF"
  echo "export CONTAINERS_STORAGE_CONF=$CONTAINERS_STORAGE_CONF"
fi
