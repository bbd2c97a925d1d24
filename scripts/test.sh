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
# Debian 12's own python3 with its python3-cryptography 38: the oldest cryptography the
# modules support, used as a managed host's interpreter by the guide-chain test.
export PKIOPS_COMPAT_PYTHON=${PKIOPS_COMPAT_PYTHON:-/usr/bin/python3}
# Two workers: most tests wait on subprocesses (ansible-playbook, servers, clients).
exec python -m pytest -n 2 "$@"
