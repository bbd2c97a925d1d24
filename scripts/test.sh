#!/usr/bin/env bash
# The whole test suite: unit, module integration (real ansible-playbook), responder
# interop with independent OCSP clients, fuzz, ansible-lint, ansible-test sanity and
# the molecule scenarios (skipped with a message where podman cannot run).
# Extra arguments go to pytest, e.g. scripts/test.sh -k revoke
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
"$here/system-deps.sh" base clients podman
"$here/bootstrap.sh"
source "$here/env.sh"
cd "$PKIOPS_ROOT"
# Two workers: most tests wait on subprocesses (ansible-playbook, servers, clients).
exec python -m pytest -n 2 "$@"
