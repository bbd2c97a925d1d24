#!/usr/bin/env bash
# The main job on localhost: root CA -> intermediate -> OCSP signer -> server cert,
# revoke one, show the CA state. Output in ${PKIOPS_DEMO_DIR:-./demo-output}.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
"$here/system-deps.sh" base
"$here/bootstrap.sh"
source "$here/env.sh"
cd "$PKIOPS_ROOT"
export PKIOPS_DEMO_DIR=${PKIOPS_DEMO_DIR:-$PKIOPS_ROOT/demo-output}
exec ansible-playbook -i playbooks/inventory/localhost.yml playbooks/demo.yml \
  -e "pki_base_dir=$PKIOPS_DEMO_DIR" "$@"
