#!/usr/bin/env bash
# The multi-host demo: four systemd containers (ca, responder1, responder2, client) on a
# podman network, configured by playbooks/site.yml through molecule's default scenario,
# then checked from the client (good -> revoke.yml -> revoked on both responders).
# The containers stay up to look around; `scripts/demo-containers.sh --destroy` removes
# them. Needs root (rootful podman); see docs/role.md.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
"$here/system-deps.sh" base podman
"$here/bootstrap.sh"
source "$here/env.sh"
source "$here/podman-setup.sh"
cd "$PKIOPS_ROOT"
export NO_COLOR=1

if [ "${1:-}" = --destroy ]; then
  exec molecule destroy --scenario-name default
fi

pkiops_podman_usable
PKIOPS_IMAGE=$("$here/build-image.sh")
export PKIOPS_IMAGE
# From fresh containers, so that the demo shows "good" before the revocation.
molecule destroy --scenario-name default
molecule converge --scenario-name default
molecule verify --scenario-name default

cat <<EOT

Demo done; the containers are still running:
  podman ps --filter name='^(ca|responder1|responder2|client)$'
Ask a responder yourself, from the client (the client's certificate is revoked now):
  podman exec client openssl ocsp -issuer /etc/pki/pkiops/ca-chain.cert.pem \\
    -CAfile /etc/pki/pkiops/ca-chain.cert.pem -cert /etc/pki/pkiops/client.cert.pem \\
    -url http://responder2:2560/ -resp_text
Look at a responder:
  podman exec responder1 systemctl status ocsp-responder
  podman exec responder1 journalctl -u ocsp-responder -o cat
Remove everything:
  scripts/demo-containers.sh --destroy
EOT
