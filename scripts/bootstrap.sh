#!/usr/bin/env bash
# Creates (or refreshes) the project virtualenv from the pinned requirements and
# links the checkout into a collections path so ansible finds pkiops.ocsp.
# Idempotent: re-running with unchanged requirements does nothing expensive.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${PKIOPS_VENV:-$root/.venv}
cache=${PKIOPS_CACHE:-$HOME/.cache/pkiops-ocsp}
mkdir -p "$cache"

stamp="$venv/.requirements.sha256"
want=$(cat "$root/requirements/dev.txt" "$root/requirements/dev.in" | sha256sum | cut -d' ' -f1)
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "bootstrap: installing pinned requirements into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check --upgrade pip
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$root/requirements/dev.in" -c "$root/requirements/dev.txt"
  echo "$want" > "$stamp"
fi

# ansible finds collections as <path>/ansible_collections/<namespace>/<name>.
colls="$root/.cache/collections/ansible_collections/pkiops"
mkdir -p "$colls"
ln -sfn "$root" "$colls/ocsp"
