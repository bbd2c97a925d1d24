#!/usr/bin/env bash
# The demo (README): on localhost, root CA -> intermediate -> OCSP signer -> server
# certificate, the OCSP responder from this checkout running in the background,
# `openssl ocsp` says good, revoke, it says revoked, the CA state, responder stopped.
# Output in ${PKIOPS_DEMO_DIR:-./demo-output}; extra arguments go to ansible-playbook.
#
#   scripts/demo.sh --containers [molecule args]
# runs the same story on several hosts: the molecule scenario `default` (podman containers
# ca, responder1, responder2, client; site.yml, then revoke.yml, checked from the client).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

if [ "${1:-}" = --containers ]; then
  shift
  "$here/system-deps.sh" base podman
  "$here/bootstrap.sh"
  source "$here/env.sh"
  source "$here/podman-setup.sh"
  pkiops_podman_usable
  PKIOPS_IMAGE=$("$here/build-image.sh" | tail -n 1)
  export PKIOPS_IMAGE
  cd "$PKIOPS_ROOT"
  exec molecule test --scenario-name default "$@"
fi

"$here/system-deps.sh" base
"$here/bootstrap.sh"
source "$here/env.sh"
cd "$PKIOPS_ROOT"
export PKIOPS_DEMO_DIR=${PKIOPS_DEMO_DIR:-$PKIOPS_ROOT/demo-output}
exec ansible-playbook -i playbooks/inventory/localhost.yml playbooks/demo.yml \
  -e "pki_base_dir=$PKIOPS_DEMO_DIR" "$@"
