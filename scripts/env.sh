# shellcheck shell=bash
# Sourced by the scripts: the environment every command of this project runs in.
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PKIOPS_ROOT="$root"
export PKIOPS_CACHE=${PKIOPS_CACHE:-$HOME/.cache/pkiops-ocsp}
export PATH="${PKIOPS_VENV:-$root/.venv}/bin:$PATH"
export ANSIBLE_COLLECTIONS_PATH="$root/.cache/collections:$HOME/.ansible/collections"
export ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=false
export ANSIBLE_NOCOLOR=1
export PYTHONDONTWRITEBYTECODE=1
